"""The dtypes that the type annotations promise are the dtypes the functions return.

Every test here is checked twice. mypy (``[tool.mypy] files`` includes ``tests``)
checks each :func:`typing.assert_type`: the overloads must give ``NDArray[np.float32]``
for ``float32`` input, ``NDArray[np.float64]`` for lists and integer arrays, and so on.
pytest runs the same lines and asserts the runtime dtype, so the static claim and the
behaviour cannot drift apart. (At runtime :func:`typing.assert_type` only returns its
argument.)

The overloads of the dtype-preserving functions, in order:

* ``NDArray[F] -> NDArray[F]`` for any floating ``F`` (``float16``/``32``/``64``);
* ``Float64Like -> NDArray[np.float64]``: Python numbers, nested lists of them and
  integer arrays, which :func:`~attention_from_scratch._checks.as_float_array` casts to
  ``float64``;
* ``ArrayLike -> FloatArray``: any other array-like (an object with ``__array__``, a
  list of ``float32`` arrays), whose floating dtype is only known at runtime.
"""

from __future__ import annotations

from typing import assert_type

import numpy as np
from numpy.typing import NDArray

from attention_from_scratch._checks import FloatArray
from attention_from_scratch.arrays import BoolArray, F, Float64Like, IntArray
from attention_from_scratch.arrays import FloatArray as PublicFloatArray
from attention_from_scratch.norms import (
    LayerNormGrads,
    RMSNormGrads,
    cosine_similarity,
    l2_norm,
    l2_normalize,
    l2_normalize_vjp,
    layer_norm,
    layer_norm_vjp,
    rms_norm,
    rms_norm_vjp,
)
from attention_from_scratch.projections import (
    AttentionParams,
    LinearGrads,
    linear,
    linear_vjp,
    merge_heads,
    project_qkv,
    split_heads,
)
from attention_from_scratch.self_attention import causal_mask, padding_mask
from attention_from_scratch.softmax import (
    entropy,
    log_softmax,
    log_softmax_vjp,
    logsumexp,
    softmax,
    softmax_jacobian,
    softmax_vjp,
)

SCORES = [[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]]  # the book's running example
X16 = np.array(SCORES, dtype=np.float16)
X32 = np.array(SCORES, dtype=np.float32)
X64 = np.array(SCORES, dtype=np.float64)
XINT = np.array([[1, 0, 1], [0, 4, 2], [1, 2, 2]], dtype=np.int64)


# --- softmax.py ---


def test_softmax_keeps_each_floating_dtype() -> None:
    p16 = assert_type(softmax(X16), NDArray[np.float16])
    p32 = assert_type(softmax(X32), NDArray[np.float32])
    p64 = assert_type(softmax(X64), NDArray[np.float64])
    assert p16.dtype == np.float16
    assert p32.dtype == np.float32
    assert p64.dtype == np.float64


def test_softmax_of_a_list_or_integers_is_float64() -> None:
    from_list = assert_type(softmax(SCORES), NDArray[np.float64])
    from_row = assert_type(softmax([0.0, 4.0, 2.0]), NDArray[np.float64])
    from_ints = assert_type(softmax(XINT), NDArray[np.float64])
    from_int_list = assert_type(softmax([[1, 2], [3, 4]]), NDArray[np.float64])
    for out in (from_list, from_row, from_ints, from_int_list):
        assert out.dtype == np.float64


def test_softmax_of_a_float_array_of_unknown_precision() -> None:
    x: FloatArray = X32  # statically "some floating dtype"
    out = assert_type(softmax(x), FloatArray)
    assert out.dtype == np.float32


def test_other_softmax_functions_keep_float32() -> None:
    p = assert_type(softmax(X32), NDArray[np.float32])
    g = np.ones_like(X32)
    results = (
        assert_type(log_softmax(X32), NDArray[np.float32]),
        assert_type(logsumexp(X32), NDArray[np.float32]),
        assert_type(logsumexp(X32, keepdims=True), NDArray[np.float32]),
        assert_type(entropy(p), NDArray[np.float32]),
        assert_type(softmax_jacobian(p), NDArray[np.float32]),
        assert_type(softmax_vjp(p, g), NDArray[np.float32]),
    )
    assert [r.dtype for r in results] == [np.float32] * len(results)


def test_softmax_vjp_of_lists_is_float64() -> None:
    out = assert_type(softmax_vjp([0.5, 0.5], [1.0, 0.0]), NDArray[np.float64])
    mixed = assert_type(softmax_vjp(softmax(SCORES), [[1.0, 0.0, 0.0]] * 3), NDArray[np.float64])
    assert out.dtype == mixed.dtype == np.float64


# --- norms.py ---


def test_norms_keep_float32() -> None:
    gamma = np.full(3, 2.0, dtype=np.float32)
    beta = np.zeros(3, dtype=np.float32)
    results = (
        assert_type(l2_norm(X32), NDArray[np.float32]),
        assert_type(l2_normalize(X32), NDArray[np.float32]),
        assert_type(cosine_similarity(X32, X32), NDArray[np.float32]),
        assert_type(layer_norm(X32), NDArray[np.float32]),
        assert_type(layer_norm(X32, gamma, beta), NDArray[np.float32]),
        assert_type(rms_norm(X32), NDArray[np.float32]),
        assert_type(rms_norm(X32, gamma), NDArray[np.float32]),
    )
    assert [r.dtype for r in results] == [np.float32] * len(results)


def test_norms_of_lists_are_float64() -> None:
    results = (
        assert_type(l2_norm([3.0, 4.0]), NDArray[np.float64]),
        assert_type(l2_normalize(XINT), NDArray[np.float64]),
        assert_type(cosine_similarity([1.0, 0.0], X64[0, :2]), NDArray[np.float64]),
        assert_type(layer_norm(SCORES, [1.0, 1.0, 1.0]), NDArray[np.float64]),
        assert_type(rms_norm(SCORES), NDArray[np.float64]),
    )
    assert [r.dtype for r in results] == [np.float64] * len(results)


# --- projections.py ---


def test_projections_keep_float32() -> None:
    w = np.eye(3, 4, dtype=np.float32)
    b = np.zeros(4, dtype=np.float32)
    params = AttentionParams.random(3, 2, n_heads=2, rng=0, dtype=np.float32)
    y = assert_type(linear(X32, w), NDArray[np.float32])
    y_b = assert_type(linear(X32, w, b), NDArray[np.float32])
    heads = assert_type(split_heads(y, 2), NDArray[np.float32])
    merged = assert_type(merge_heads(heads), NDArray[np.float32])
    qkv = assert_type(
        project_qkv(X32, params),
        tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
    )
    cross = assert_type(
        project_qkv(X32, params, context=X32[:2]),
        tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
    )
    for out in (y, y_b, heads, merged, *qkv, *cross):
        assert out.dtype == np.float32
    assert heads.shape == (2, 3, 2)


def test_projections_of_lists_are_float64() -> None:
    params = AttentionParams.random(3, 2, rng=0)
    y = assert_type(linear(SCORES, np.eye(3)), NDArray[np.float64])
    y_b = assert_type(linear(XINT, np.eye(3), [0.0, 0.0, 1.0]), NDArray[np.float64])
    heads = assert_type(split_heads([[1.0, 2.0], [3.0, 4.0]], 2), NDArray[np.float64])
    merged = assert_type(merge_heads([[[1.0], [2.0]]]), NDArray[np.float64])
    q, k, v = assert_type(
        project_qkv(SCORES, params),
        tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    )
    for out in (y, y_b, heads, merged, q, k, v):
        assert out.dtype == np.float64


# --- self_attention.py: the masks are boolean ---


def test_masks_are_bool() -> None:
    causal = assert_type(causal_mask(3), NDArray[np.bool_])
    rect = assert_type(causal_mask(2, 3), NDArray[np.bool_])
    padding = assert_type(padding_mask([1, 3], 3), NDArray[np.bool_])
    for mask in (causal, rect, padding):
        assert mask.dtype == np.bool_


# --- the backward passes and the parameter update ---


def test_vjps_keep_float32_or_give_their_result_types() -> None:
    g = np.ones_like(X32)
    gamma = np.ones(3, dtype=np.float32)
    unit = assert_type(l2_normalize_vjp(X32, g), NDArray[np.float32])
    log_p = assert_type(log_softmax_vjp(log_softmax(X32), g), NDArray[np.float32])
    listed = assert_type(l2_normalize_vjp([3.0, 4.0], [1.0, 0.0]), NDArray[np.float64])
    from_lists = assert_type(log_softmax_vjp([0.0, -1.0], [1.0, 0.0]), NDArray[np.float64])
    ln = assert_type(layer_norm_vjp(X32, g, gamma), LayerNormGrads)
    rn = assert_type(rms_norm_vjp(X32, g), RMSNormGrads)
    lin = assert_type(linear_vjp(X32, np.eye(3, dtype=np.float32), g), LinearGrads)
    fields = (
        assert_type(ln.x, FloatArray),
        assert_type(ln.gamma, FloatArray),
        assert_type(ln.rstd, FloatArray),
        assert_type(rn.gamma, FloatArray),
        assert_type(lin.weight, FloatArray),
    )
    assert [a.dtype for a in (unit, log_p, *fields)] == [np.float32] * 7
    assert listed.dtype == from_lists.dtype == np.float64


def test_params_map_arrays_and_output_weight() -> None:
    params = AttentionParams.random(4, 2, out_proj=True, rng=0, dtype=np.float32)
    w_o = assert_type(params.output_weight, FloatArray)  # no assert needed for w_o
    arrays = assert_type(params.arrays(), dict[str, FloatArray])
    stepped = assert_type(params.map(lambda w, g: w - 0.1 * g, params), AttentionParams)
    assert w_o.shape == (2, 4)
    assert list(arrays) == ["w_q", "w_k", "w_v", "w_o"]
    assert stepped.dtype == np.float32


def test_public_array_aliases_are_the_signatures_types() -> None:
    def step(w: NDArray[F], grad: NDArray[F]) -> NDArray[F]:
        out: NDArray[F] = w - grad
        return out

    x: Float64Like = [[1.0, 2.0]]
    mask: BoolArray = causal_mask(2)
    lengths: IntArray = np.array([1, 2])
    unit = assert_type(l2_normalize(X32), NDArray[np.float32])
    some: PublicFloatArray = unit
    assert_type(step(X32, X32), NDArray[np.float32])
    assert PublicFloatArray is FloatArray
    assert mask.dtype == np.bool_
    assert lengths.dtype.kind == "i"
    assert some.dtype == np.float32
    assert np.asarray(x).dtype == np.float64


def test_projected_gradients_have_x_and_params() -> None:
    """attention_vjp of a projected result: x and params are not Optional for mypy."""
    from attention_from_scratch.examples import fluffy_blue_creature
    from attention_from_scratch.self_attention import (
        AttentionGrads,
        ProjectedGrads,
        attention_vjp,
        scaled_dot_product_attention,
        self_attention,
    )

    ex = fluffy_blue_creature()
    grads = attention_vjp(self_attention(ex.x, ex.params), np.ones((3, 4)))
    assert_type(grads, ProjectedGrads)
    assert_type(grads.x, FloatArray)
    assert_type(grads.params, AttentionParams)
    assert grads.x.shape == (3, 4)
    assert grads.params.w_q.shape == ex.params.w_q.shape
    plain = attention_vjp(scaled_dot_product_attention(ex.x, ex.x, ex.x), np.ones((3, 4)))
    assert_type(plain, AttentionGrads)
    assert plain.x is None
