"""Tests of :mod:`attention_from_scratch.self_attention`.

Values are checked against the loop-based float64 reference of
``tests/reference/attention_ref.py`` (to 1e-12), against hand-computed numbers of the
running examples, by hypothesis properties, and for every bad input of docs/guarantees.md
that concerns attention. pytest runs with ``filterwarnings = error``, so a test that
passes also shows that no RuntimeWarning escaped.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from attention_from_scratch.examples import fluffy_blue_creature, gram_example
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import (
    Attention,
    ProjectedAttention,
    causal_mask,
    multi_head_attention,
    padding_mask,
    scaled_dot_product_attention,
    self_attention,
)
from tests.reference.attention_ref import (
    attention_ref,
    attention_ref_batched,
    multi_head_ref_batched,
    scores_ref,
)
from tests.reference.softmax_ref import softmax_row
from tests.tolerances import assert_close, tolerance

F64 = NDArray[np.float64]
BoolArr = NDArray[np.bool_]


def _normal(seed: int, *shape: int) -> F64:
    return np.random.default_rng(seed).normal(size=shape)


def _mask(seed: int, *shape: int, p: float = 0.6) -> BoolArr:
    return np.random.default_rng(seed).random(shape) < p


def _mha_ref(params: AttentionParams, x: Any, **kwargs: Any) -> Any:
    """The batched multi-head reference with ``params``' arrays as plain lists."""

    def plain(arr: NDArray[Any] | None) -> list[Any] | None:
        return None if arr is None else list(arr.tolist())

    return multi_head_ref_batched(
        x,
        params.w_q.tolist(),
        params.w_k.tolist(),
        params.w_v.tolist(),
        w_o=plain(params.w_o),
        b_q=plain(params.b_q),
        b_k=plain(params.b_k),
        b_v=plain(params.b_v),
        b_o=plain(params.b_o),
        **kwargs,
    )


# ---------------------------------------------------------------------------
# scaled_dot_product_attention against the reference (float64, 1e-12)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "d_k", "d_v"),
    [(3, 3, 4, 4), (2, 5, 3, 6), (5, 2, 4, 1), (1, 1, 1, 1), (4, 7, 8, 3)],
)
def test_plain_matches_reference(n: int, m: int, d_k: int, d_v: int) -> None:
    q, k, v = _normal(1, n, d_k), _normal(2, m, d_k), _normal(3, m, d_v)
    result = scaled_dot_product_attention(q, k, v)
    ref = attention_ref(q, k, v)
    assert isinstance(result, Attention)
    assert result.output.shape == (n, d_v)
    assert result.weights.shape == (n, m)
    assert result.mask is None
    assert result.scale == 1.0 / math.sqrt(d_k)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)


def test_mask_matches_reference() -> None:
    q, k, v = _normal(4, 5, 3), _normal(5, 6, 3), _normal(6, 6, 2)
    mask = _mask(7, 5, 6)
    mask[0] = False  # query 0 may attend to nothing
    result = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = attention_ref(q, k, v, mask=mask)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)
    np.testing.assert_array_equal(result.weights[~mask], 0.0)
    np.testing.assert_array_equal(result.weights[0], np.zeros(6))
    np.testing.assert_array_equal(result.output[0], np.zeros(2))
    assert result.mask is not None
    np.testing.assert_array_equal(result.mask, mask)


def test_bias_with_neg_inf_matches_reference() -> None:
    q, k, v = _normal(8, 4, 3), _normal(9, 5, 3), _normal(10, 5, 4)
    bias = _normal(11, 4, 5)
    bias[0, 1] = bias[2, 0] = bias[2, 4] = -np.inf
    bias[3] = -np.inf  # a fully forbidden row: weights 0, output 0
    result = scaled_dot_product_attention(q, k, v, bias=bias)
    ref = attention_ref(q, k, v, bias=bias)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)
    np.testing.assert_array_equal(result.weights[np.isneginf(bias)], 0.0)
    np.testing.assert_array_equal(result.output[3], np.zeros(4))
    np.testing.assert_allclose(result.weights[:3].sum(axis=-1), 1.0, rtol=0, atol=1e-15)


def test_bias_and_mask_together() -> None:
    q, k, v = _normal(12, 4, 2), _normal(13, 6, 2), _normal(14, 6, 3)
    bias = _normal(15, 1, 6)  # broadcast over the queries
    bias[0, 5] = -np.inf
    mask = _mask(16, 4, 6)
    result = scaled_dot_product_attention(q, k, v, bias=bias, mask=mask)
    ref = attention_ref(q, k, v, bias=bias, mask=mask)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)


@pytest.mark.parametrize(("n", "m"), [(4, 4), (3, 6), (6, 3), (1, 5), (5, 1)])
def test_causal_matches_reference(n: int, m: int) -> None:
    q, k, v = _normal(17, n, 3), _normal(18, m, 3), _normal(19, m, 2)
    result = scaled_dot_product_attention(q, k, v, is_causal=True)
    ref = attention_ref(q, k, v, is_causal=True)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)
    # top-left aligned: query i sees keys 0 .. i, also when n != m
    above = np.arange(m)[None, :] > np.arange(n)[:, None]
    np.testing.assert_array_equal(result.weights[above], 0.0)
    assert result.is_causal
    assert result.mask is not None
    np.testing.assert_array_equal(result.mask, ~above)


def test_causal_and_mask_are_anded() -> None:
    q, k, v = _normal(20, 5, 3), _normal(21, 5, 3), _normal(22, 5, 2)
    mask = _mask(23, 5, 5)
    result = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    ref = attention_ref(q, k, v, mask=mask, is_causal=True)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)
    assert result.mask is not None
    np.testing.assert_array_equal(result.mask, mask & np.tri(5, dtype=bool))


def test_causal_flag_equals_causal_mask() -> None:
    q, k, v = _normal(24, 3, 4), _normal(25, 6, 4), _normal(26, 6, 2)
    flag = scaled_dot_product_attention(q, k, v, is_causal=True)
    explicit = scaled_dot_product_attention(q, k, v, mask=causal_mask(3, 6))
    np.testing.assert_array_equal(flag.weights, explicit.weights)
    np.testing.assert_array_equal(flag.output, explicit.output)


@pytest.mark.parametrize("scale", [0.0, 0.125, 2.0, -1.0, 1e-300])
def test_custom_scale_matches_reference(scale: float) -> None:
    q, k, v = _normal(27, 4, 5), _normal(28, 3, 5), _normal(29, 3, 2)
    result = scaled_dot_product_attention(q, k, v, scale=scale)
    ref = attention_ref(q, k, v, scale=scale)
    assert result.scale == scale
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)


def test_batch_dims_broadcast() -> None:
    n, m, d, d_v = 4, 5, 3, 2
    q = _normal(30, 2, 3, n, d)  # (batch, heads, n, d_k)
    k = _normal(31, 3, m, d)  # shared by the 2 batch entries
    v = _normal(32, 3, m, d_v)
    mask = _mask(33, 3, n, m)
    bias = _normal(34, n, m)
    result = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)
    ref = attention_ref_batched(q, k, v, mask=mask, bias=bias)
    assert result.output.shape == (2, 3, n, d_v)
    assert result.weights.shape == (2, 3, n, m)
    assert result.scores.shape == (2, 3, n, m)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)
    assert_close(result.scores, ref.scores)


def test_batch_dims_broadcast_causal() -> None:
    q, k, v = _normal(35, 2, 1, 3, 4), _normal(36, 4, 6, 4), _normal(37, 1, 6, 3)
    result = scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)
    ref = attention_ref_batched(q, k, v, is_causal=True, scale=0.3)
    assert result.output.shape == (2, 4, 3, 3)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)


def test_integer_input_is_float64() -> None:
    q = [[1, 0], [0, 1]]
    k = [[1, 1], [2, 0], [0, 2]]
    v = [[1], [2], [3]]
    result = scaled_dot_product_attention(q, k, v)
    ref = attention_ref(q, k, v)
    assert result.output.dtype == np.float64
    assert_close(result.output, ref.output)


# ---------------------------------------------------------------------------
# multi_head_attention and self_attention against the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("is_causal", [False, True])
def test_multi_head_with_biases_and_output_projection(is_causal: bool) -> None:
    params = AttentionParams.random(6, 2, 3, n_heads=3, out_proj=True, bias=True, rng=40)
    x = _normal(41, 5, 6)
    result = multi_head_attention(x, params, n_heads=3, is_causal=is_causal)
    ref = _mha_ref(params, x, n_heads=3, is_causal=is_causal)
    assert isinstance(result, ProjectedAttention)
    assert result.output.shape == (5, 6)
    assert result.weights.shape == (3, 5, 5)
    assert result.head_outputs.shape == (3, 5, 3)
    assert result.q.shape == (3, 5, 2)
    assert result.k.shape == (3, 5, 2)
    assert result.v.shape == (3, 5, 3)
    assert (result.n_heads, result.n_kv_heads, result.has_head_axis) == (3, 3, True)
    assert result.context is None
    assert_close(result.weights, ref.weights)
    assert_close(result.head_outputs, ref.head_outputs)
    assert_close(result.output, ref.output)
    # head i holds columns i*d_k : (i+1)*d_k of q = x w_q + b_q
    assert_close(result.q, ref.q.reshape(5, 3, 2).swapaxes(0, 1))


def test_multi_head_without_output_projection_concatenates_heads() -> None:
    params = AttentionParams.random(4, 3, n_heads=2, rng=42)
    x = _normal(43, 3, 4)
    result = multi_head_attention(x, params, n_heads=2)
    ref = _mha_ref(params, x, n_heads=2)
    assert result.output.shape == (3, 6)
    assert_close(result.output, ref.output)
    np.testing.assert_array_equal(result.output[:, :3], result.head_outputs[0])
    np.testing.assert_array_equal(result.output[:, 3:], result.head_outputs[1])


@pytest.mark.parametrize("n_kv_heads", [2, 1])
def test_grouped_query_attention(n_kv_heads: int) -> None:
    params = AttentionParams.random(
        8, 2, n_heads=4, n_kv_heads=n_kv_heads, out_proj=True, bias=True, rng=44
    )
    x = _normal(45, 2, 5, 8)
    result = multi_head_attention(x, params, n_heads=4, n_kv_heads=n_kv_heads)
    ref = _mha_ref(params, x, n_heads=4, n_kv_heads=n_kv_heads)
    assert result.k.shape == (2, n_kv_heads, 5, 2)
    assert result.weights.shape == (2, 4, 5, 5)
    assert result.n_kv_heads == n_kv_heads
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)


def test_grouped_query_equals_mha_with_repeated_key_value_heads() -> None:
    """GQA = MHA whose key/value heads are copies: kv head j serves query heads 2j, 2j+1."""
    gqa = AttentionParams.random(6, 3, n_heads=4, n_kv_heads=2, out_proj=True, rng=46)
    d_k = 3
    heads = [0, 0, 1, 1]  # the kv head each query head uses
    w_k = np.concatenate([gqa.w_k[:, j * d_k : (j + 1) * d_k] for j in heads], axis=1)
    w_v = np.concatenate([gqa.w_v[:, j * d_k : (j + 1) * d_k] for j in heads], axis=1)
    mha = AttentionParams(w_q=gqa.w_q, w_k=w_k, w_v=w_v, w_o=gqa.w_o)
    x = _normal(47, 4, 6)
    grouped = multi_head_attention(x, gqa, n_heads=4, n_kv_heads=2)
    full = multi_head_attention(x, mha, n_heads=4)
    assert_close(grouped.weights, full.weights)
    assert_close(grouped.output, full.output)


def test_cross_attention() -> None:
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, bias=True, rng=48)
    x = _normal(49, 3, 4)
    context = _normal(50, 7, 4)
    mask = _mask(51, 3, 7)
    result = multi_head_attention(x, params, n_heads=2, context=context, mask=mask)
    ref = _mha_ref(params, x, n_heads=2, context=context, mask=mask)
    assert result.weights.shape == (2, 3, 7)
    assert result.output.shape == (3, 4)
    assert result.context is not None
    np.testing.assert_array_equal(result.context, context)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)


def test_cross_attention_causal_n_less_than_m() -> None:
    params = AttentionParams.random(4, 4, rng=52)
    x, context = _normal(53, 2, 4), _normal(54, 5, 4)
    result = multi_head_attention(x, params, n_heads=1, context=context, is_causal=True)
    ref = _mha_ref(params, x, n_heads=1, context=context, is_causal=True)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)
    np.testing.assert_array_equal(result.weights[0, 0, 1:], 0.0)


def test_batch_with_padding_mask() -> None:
    n = 5
    params = AttentionParams.random(6, 3, n_heads=2, out_proj=True, bias=True, rng=55)
    x = _normal(56, 2, n, 6)
    mask = padding_mask([n, 2], n)  # (2, 1, n): the second sequence has 2 real tokens
    result = multi_head_attention(x, params, n_heads=2, mask=mask)
    ref = _mha_ref(params, x, n_heads=2, mask=mask)
    assert result.weights.shape == (2, 2, n, n)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)
    np.testing.assert_array_equal(result.weights[1, :, :, 2:], 0.0)
    # the real tokens of sequence 1 do not depend on its padding
    alone = multi_head_attention(x[1, :2], params, n_heads=2)
    assert_close(result.output[1, :2], alone.output)


def test_self_attention_matches_reference() -> None:
    params = AttentionParams.random(5, 3, 2, out_proj=True, bias=True, rng=57)
    x = _normal(58, 2, 4, 5)
    mask = _mask(59, 4, 4)
    result = self_attention(x, params, mask=mask, is_causal=True)
    ref = _mha_ref(params, x, n_heads=1, mask=mask, is_causal=True)
    assert result.weights.shape == (2, 4, 4)
    assert result.q.shape == (2, 4, 3)
    assert result.v.shape == (2, 4, 2)
    assert result.has_head_axis is False
    assert_close(result.weights, ref.weights[:, 0])
    assert_close(result.output, ref.output)


@pytest.mark.parametrize(("out_proj", "bias"), [(False, False), (True, True)])
def test_self_attention_is_one_head_multi_head(out_proj: bool, bias: bool) -> None:
    params = AttentionParams.random(4, 3, out_proj=out_proj, bias=bias, rng=60)
    x = _normal(61, 3, 5, 4)
    mask = _mask(62, 3, 1, 5)
    single = self_attention(x, params, mask=mask, is_causal=True)
    multi = multi_head_attention(x, params, n_heads=1, mask=mask, is_causal=True)
    assert single.params is multi.params is params
    np.testing.assert_array_equal(single.output, multi.output)
    np.testing.assert_array_equal(single.weights, multi.weights[..., 0, :, :])
    np.testing.assert_array_equal(single.q, multi.q[..., 0, :, :])
    np.testing.assert_array_equal(single.k, multi.k[..., 0, :, :])
    np.testing.assert_array_equal(single.v, multi.v[..., 0, :, :])
    np.testing.assert_array_equal(single.x, x)
    np.testing.assert_array_equal(single.scores, multi.scores[..., 0, :, :])


def test_projected_scores_are_per_head_logits() -> None:
    params = AttentionParams.random(6, 2, n_heads=3, n_kv_heads=1, bias=True, rng=63)
    x = _normal(64, 4, 6)
    result = multi_head_attention(x, params, n_heads=3, n_kv_heads=1, is_causal=True)
    ref = _mha_ref(params, x, n_heads=3, n_kv_heads=1)
    assert result.scores.shape == (3, 4, 4)
    for head in range(3):
        expected = scores_ref(ref.q[:, 2 * head : 2 * head + 2], ref.k)
        assert_close(result.scores[head], expected)


# ---------------------------------------------------------------------------
# The running examples
# ---------------------------------------------------------------------------


def test_fluffy_blue_creature() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    # adjectives have a zero query: uniform; creature: softmax of [4, 3, 0] / sqrt(4)
    e = [math.exp(2.0 - 2.0), math.exp(1.5 - 2.0), math.exp(0.0 - 2.0)]
    w_creature = [e_j / math.fsum(e) for e_j in e]
    expected = np.array([[1 / 3] * 3, [1 / 3] * 3, w_creature])
    assert_close(result.weights, expected)
    np.testing.assert_allclose(w_creature, [0.5741, 0.3482, 0.0777], atol=5e-5)
    w_fluffy, w_blue, _ = w_creature
    creature = w_fluffy * np.array([0.0, 0, 0, 1]) + w_blue * np.array([0.0, 0, 1, 0])
    assert_close(result.output[2], creature)
    np.testing.assert_array_equal(result.scores, [[0, 0, 0], [0, 0, 0], [2, 1.5, 0]])
    assert result.scale == 0.5


def test_gram_example() -> None:
    ex = gram_example()
    result = self_attention(ex.x, ex.params)
    np.testing.assert_array_equal(result.scores, [[1, 0, 1], [0, 4, 2], [1, 2, 2]])
    np.testing.assert_allclose(result.weights[0], [0.422319, 0.155362, 0.422319], atol=1e-6)
    assert_close(result.weights[0], softmax_row([1, 0, 1], [True] * 3))
    direct = scaled_dot_product_attention(ex.x, ex.x, ex.x)
    np.testing.assert_array_equal(direct.scores, [[1, 0, 1], [0, 4, 2], [1, 2, 2]])
    assert_close(direct.output, attention_ref(ex.x, ex.x, ex.x).output)


# ---------------------------------------------------------------------------
# The scores property
# ---------------------------------------------------------------------------


def test_scores_are_logits_before_masking() -> None:
    q, k, v = _normal(65, 3, 4), _normal(66, 5, 4), _normal(67, 5, 2)
    bias = _normal(68, 3, 5)
    bias[1, 2] = -np.inf
    mask = _mask(69, 3, 5)
    mask[0, 0] = False
    result = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias, scale=0.7)
    expected = (q * 0.7) @ k.T + bias
    assert_close(result.scores, expected)
    assert_close(result.scores, scores_ref(q, k, scale=0.7, bias=bias))
    # a masked entry still shows its logit (not -inf, not 0)
    assert np.isfinite(result.scores[0, 0])
    assert result.scores[0, 0] == pytest.approx(float(expected[0, 0]), rel=1e-12)
    assert result.scores[1, 2] == -np.inf
    assert result.weights[0, 0] == 0.0


def test_scores_are_cached() -> None:
    q = _normal(70, 2, 3)
    result = scaled_dot_product_attention(q, q, q)
    first = result.scores
    assert result.scores is first


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_scores_dtype_is_q_dtype(dtype: type[np.floating[Any]]) -> None:
    q = _normal(71, 3, 4).astype(dtype)
    result = scaled_dot_product_attention(q, q, q)
    assert result.scores.dtype == dtype
    assert result.weights.dtype == dtype
    assert result.output.dtype == dtype
    assert_close(result.scores, scores_ref(q, q), tol=tolerance(dtype))


def test_float16_scores_that_do_not_fit_raise() -> None:
    """float16 is computed in float32: the weights exist, the float16 scores do not."""
    q = np.full((2, 4), 300.0, dtype=np.float16)  # q.k / 2 = 180000 > 65504
    result = scaled_dot_product_attention(q, q, q)
    np.testing.assert_array_equal(result.weights, np.full((2, 2), 0.5, dtype=np.float16))
    with pytest.raises(FloatingPointError, match="float16"):
        _ = result.scores


def test_result_is_frozen() -> None:
    q = _normal(72, 2, 3)
    result = scaled_dot_product_attention(q, q, q)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.scale = 2.0  # type: ignore[misc]


# ---------------------------------------------------------------------------
# causal_mask and padding_mask
# ---------------------------------------------------------------------------


def test_causal_mask_values() -> None:
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(causal_mask(2, 4), [[1, 0, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(causal_mask(3, 2), [[1, 0], [1, 1], [1, 1]])
    assert causal_mask(3).dtype == np.bool_
    assert causal_mask(0).shape == (0, 0)
    numpy_int: Any = np.int64(2)  # numpy integers are accepted too
    assert causal_mask(numpy_int, 5).shape == (2, 5)
    for n, m in [(1, 1), (4, 7), (7, 4)]:
        mask = causal_mask(n, m)
        for i in range(n):
            for j in range(m):
                assert mask[i, j] == (j <= i)


def test_padding_mask_values() -> None:
    mask = padding_mask([3, 1, 0], 3)
    assert mask.shape == (3, 1, 3)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask[:, 0], [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(padding_mask(np.array([2], dtype=np.int32), 4), [[[1, 1, 0, 0]]])
    assert padding_mask(np.zeros(0, dtype=int), 2).shape == (0, 1, 2)


@pytest.mark.parametrize(
    ("args", "error", "name"),
    [
        ((2.0,), TypeError, "n_q"),
        ((True,), TypeError, "n_q"),
        (("3",), TypeError, "n_q"),
        ((-1,), ValueError, "n_q"),
        ((2, -1), ValueError, "n_k"),
        ((2, 1.5), TypeError, "n_k"),
    ],
)
def test_causal_mask_bad_arguments(
    args: tuple[Any, ...], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        causal_mask(*args)


@pytest.mark.parametrize(
    ("lengths", "n", "error", "name"),
    [
        ([1.5], 3, TypeError, "lengths"),
        ([True], 3, TypeError, "lengths"),
        ([[1]], 3, ValueError, "lengths"),
        ([4], 3, ValueError, "lengths"),
        ([-1], 3, ValueError, "lengths"),
        ([1], -1, ValueError, "n"),
        ([1], 2.0, TypeError, "n"),
    ],
)
def test_padding_mask_bad_arguments(
    lengths: Any, n: Any, error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        padding_mask(lengths, n)


# ---------------------------------------------------------------------------
# Hypothesis properties
# ---------------------------------------------------------------------------

moderate = st.floats(-5, 5, allow_nan=False, allow_infinity=False)
sizes = st.integers(1, 5)


@st.composite
def qkv_mask(
    draw: st.DrawFn, elements: st.SearchStrategy[float] = moderate
) -> tuple[F64, F64, F64, BoolArr]:
    """q (n, d_k), k (m, d_k), v (m, d_v) and a bool mask (n, m)."""
    n, m, d_k, d_v = draw(sizes), draw(sizes), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    q = draw(hnp.arrays(np.float64, (n, d_k), elements=elements))
    k = draw(hnp.arrays(np.float64, (m, d_k), elements=elements))
    v = draw(hnp.arrays(np.float64, (m, d_v), elements=elements))
    mask = draw(hnp.arrays(np.bool_, (n, m)))
    return q, k, v, mask


@st.composite
def sequences(draw: st.DrawFn) -> tuple[F64, AttentionParams, BoolArr]:
    """x (n, d_model), random params and a bool mask (n, n)."""
    n, d_model, d_k = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    x = draw(hnp.arrays(np.float64, (n, d_model), elements=st.floats(-3, 3)))
    params = AttentionParams.random(
        d_model, d_k, out_proj=draw(st.booleans()), bias=True, rng=draw(st.integers(0, 2**16))
    )
    mask = draw(hnp.arrays(np.bool_, (n, n)))
    return x, params, mask


@given(qkv_mask())
def test_rows_sum_to_one_or_are_exactly_zero(case: tuple[F64, F64, F64, BoolArr]) -> None:
    q, k, v, mask = case
    result = scaled_dot_product_attention(q, k, v, mask=mask)
    for i in range(q.shape[0]):
        if mask[i].any():
            assert math.isclose(float(result.weights[i].sum()), 1.0, rel_tol=0, abs_tol=1e-12)
        else:
            np.testing.assert_array_equal(result.weights[i], 0.0)
            np.testing.assert_array_equal(result.output[i], 0.0)
    np.testing.assert_array_equal(result.weights[~mask], 0.0)


@given(
    qkv_mask(),
    st.data(),
)
def test_weights_lie_in_unit_interval(
    case: tuple[F64, F64, F64, BoolArr], data: st.DataObject
) -> None:
    q, k, v, _ = case
    bias = data.draw(
        hnp.arrays(
            np.float64,
            (q.shape[0], k.shape[0]),
            elements=st.one_of(st.floats(-50, 50), st.just(-math.inf)),
        )
    )
    result = scaled_dot_product_attention(q, k, v, bias=bias)
    assert np.all(result.weights >= 0.0)
    assert np.all(result.weights <= 1.0)
    np.testing.assert_array_equal(result.weights[np.isneginf(bias)], 0.0)
    assert_close(result.weights, attention_ref(q, k, v, bias=bias).weights)


@given(sequences(), st.data())
def test_permutation_equivariance(
    case: tuple[F64, AttentionParams, BoolArr], data: st.DataObject
) -> None:
    x, params, mask = case
    n = x.shape[0]
    perm = np.array(data.draw(st.permutations(range(n))), dtype=np.intp)
    result = self_attention(x, params, mask=mask)
    permuted = self_attention(x[perm], params, mask=mask[np.ix_(perm, perm)])
    assert_close(permuted.output, result.output[perm])
    assert_close(permuted.weights, result.weights[np.ix_(perm, perm)])


@given(qkv_mask())
def test_output_lies_in_convex_hull_of_values(case: tuple[F64, F64, F64, BoolArr]) -> None:
    q, k, v, mask = case
    result = scaled_dot_product_attention(q, k, v, mask=mask)
    for i in range(q.shape[0]):
        allowed = v[mask[i]]
        if allowed.shape[0] == 0:
            continue
        slack = 1e-13 * (1.0 + float(np.abs(allowed).max()))  # rounding of sum_j w_j v_j
        assert np.all(result.output[i] >= allowed.min(axis=0) - slack)
        assert np.all(result.output[i] <= allowed.max(axis=0) + slack)


@given(qkv_mask(), st.booleans())
def test_zero_scale_or_zero_query_gives_mean_of_values(
    case: tuple[F64, F64, F64, BoolArr], zero_query: bool
) -> None:
    q, k, v, mask = case
    if zero_query:
        result = scaled_dot_product_attention(np.zeros_like(q), k, v, mask=mask)
    else:
        result = scaled_dot_product_attention(q, k, v, mask=mask, scale=0.0)
    for i in range(q.shape[0]):
        allowed = mask[i]
        count = int(allowed.sum())
        if count == 0:
            np.testing.assert_array_equal(result.output[i], 0.0)
            continue
        np.testing.assert_array_equal(result.weights[i][allowed], 1.0 / count)
        mean = [math.fsum(v[allowed, c]) / count for c in range(v.shape[1])]
        np.testing.assert_allclose(result.output[i], mean, rtol=1e-12, atol=1e-13)


@given(sequences(), st.data())
def test_causal_ignores_the_future(
    case: tuple[F64, AttentionParams, BoolArr], data: st.DataObject
) -> None:
    x, params, _ = case
    n, d_model = x.shape
    cut = data.draw(st.integers(0, n - 1))  # tokens cut+1 .. n-1 are changed
    later = data.draw(hnp.arrays(np.float64, (n - cut - 1, d_model), elements=st.floats(-3, 3)))
    changed = x.copy()
    changed[cut + 1 :] = later
    before = self_attention(x, params, is_causal=True)
    after = self_attention(changed, params, is_causal=True)
    np.testing.assert_array_equal(np.triu(before.weights, 1), 0.0)
    assert np.array_equal(before.output[: cut + 1], after.output[: cut + 1])
    assert np.array_equal(before.weights[: cut + 1], after.weights[: cut + 1])


@given(qkv_mask(), st.data())
def test_masked_key_and_value_change_nothing(
    case: tuple[F64, F64, F64, BoolArr], data: st.DataObject
) -> None:
    q, k, v, mask = case
    j = data.draw(st.integers(0, k.shape[0] - 1))
    mask = mask.copy()
    mask[:, j] = False  # no query may attend to key j
    k2, v2 = k.copy(), v.copy()
    k2[j] = data.draw(hnp.arrays(np.float64, k.shape[1], elements=moderate))
    v2[j] = data.draw(hnp.arrays(np.float64, v.shape[1], elements=moderate))
    before = scaled_dot_product_attention(q, k, v, mask=mask)
    after = scaled_dot_product_attention(q, k2, v2, mask=mask)
    assert np.array_equal(before.weights, after.weights)
    assert np.array_equal(before.output, after.output)


@given(
    qkv_mask(st.floats(-1, 1, width=16)),
    st.sampled_from([np.float16, np.float32, np.float64]),
)
def test_dtype_preserved_and_agrees_with_float64(
    case: tuple[F64, F64, F64, BoolArr], dtype: type[np.floating[Any]]
) -> None:
    q, k, v, mask = (a.astype(dtype) if a.dtype != np.bool_ else a for a in case)
    result = scaled_dot_product_attention(q, k, v, mask=mask)
    assert result.output.dtype == dtype
    assert result.weights.dtype == dtype
    # the same values (exactly representable in every dtype), computed in float64
    exact = attention_ref(q, k, v, mask=mask)
    assert_close(result.weights, exact.weights, tol=tolerance(dtype))
    assert_close(result.output, exact.output, tol=tolerance(dtype))


@given(
    qkv_mask(st.floats(-1e100, 1e100)),
    hnp.arrays(np.float64, 3, elements=st.floats(-1e300, 1e300)),
)
def test_finite_in_finite_out(case: tuple[F64, F64, F64, BoolArr], big: F64) -> None:
    q, k, v, mask = case
    v = v.copy()
    v[0, 0] = big[0]  # values as large as 1e300
    result = scaled_dot_product_attention(q, k, v, mask=mask)
    assert np.isfinite(result.weights).all()
    assert np.isfinite(result.output).all()
    assert np.isfinite(result.scores).all()


@given(qkv_mask(), st.data())
def test_matches_reference(case: tuple[F64, F64, F64, BoolArr], data: st.DataObject) -> None:
    q, k, v, mask = case
    is_causal = data.draw(st.booleans())
    scale = data.draw(st.none() | st.floats(-2, 2))
    result = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, scale=scale)
    ref = attention_ref(q, k, v, mask=mask, is_causal=is_causal, scale=scale)
    assert_close(result.weights, ref.weights)
    assert_close(result.output, ref.output)


# ---------------------------------------------------------------------------
# Bad inputs (docs/guarantees.md)
# ---------------------------------------------------------------------------


def _qkv() -> tuple[F64, F64, F64]:
    return _normal(80, 3, 4), _normal(81, 5, 4), _normal(82, 5, 2)


@pytest.mark.parametrize("name", ["q", "k", "v"])
@pytest.mark.parametrize(("bad", "word"), [(np.nan, "NaN"), (np.inf, "+inf"), (-np.inf, "-inf")])
def test_non_finite_q_k_v(name: str, bad: float, word: str) -> None:
    arrays = dict(zip("qkv", _qkv(), strict=True))
    arrays[name][1, 1] = bad
    with pytest.raises(ValueError, match=rf"{name} must be finite.*{re.escape(word)}.*\(1, 1\)"):
        scaled_dot_product_attention(arrays["q"], arrays["k"], arrays["v"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_pos_inf_bias(bad: float) -> None:
    q, k, v = _qkv()
    bias = np.zeros((3, 5))
    bias[2, 3] = bad
    with pytest.raises(ValueError, match=r"bias.*\(2, 3\)"):
        scaled_dot_product_attention(q, k, v, bias=bias)


def test_bias_beyond_float32_range() -> None:
    q, k, v = (a.astype(np.float32) for a in _qkv())
    with pytest.raises(ValueError, match="bias"):
        scaled_dot_product_attention(q, k, v, bias=np.full((3, 5), -1e300))


def test_different_dtypes() -> None:
    q, k, v = _qkv()
    with pytest.raises(TypeError, match=r"float32.*float64"):
        scaled_dot_product_attention(q.astype(np.float32), k, v)
    with pytest.raises(TypeError, match="v float16"):
        scaled_dot_product_attention(q, k, v.astype(np.float16))


def test_shape_mismatches() -> None:
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=re.escape("q (3, 4), k (5, 3)")):
        scaled_dot_product_attention(q, k[:, :3], v)
    with pytest.raises(ValueError, match=re.escape("k (5, 4), v (4, 2)")):
        scaled_dot_product_attention(q, k, v[:4])
    with pytest.raises(ValueError, match=re.escape("q (2, 3, 4), k (3, 5, 4)")):
        scaled_dot_product_attention(np.stack([q, q]), np.stack([k, k, k]), v)
    with pytest.raises(ValueError, match="q needs at least 2 dimensions"):
        scaled_dot_product_attention(q[0], k, v)


def test_mask_must_be_bool() -> None:
    q, k, v = _qkv()
    with pytest.raises(TypeError, match=r"mask must be bool.*got int64"):
        scaled_dot_product_attention(q, k, v, mask=np.ones((3, 5), dtype=np.int64))
    with pytest.raises(TypeError, match=r"mask must be bool.*got float64"):
        scaled_dot_product_attention(q, k, v, mask=np.ones((3, 5)))
    with pytest.raises(TypeError, match="mask"):
        scaled_dot_product_attention(q, k, v, mask="all")


def test_mask_and_bias_must_broadcast() -> None:
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=re.escape("mask of shape (3, 4)") + ".*" + "(3, 5)"):
        scaled_dot_product_attention(q, k, v, mask=np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match=re.escape("bias of shape (2, 5)") + ".*" + "(3, 5)"):
        scaled_dot_product_attention(q, k, v, bias=np.zeros((2, 5)))
    params = AttentionParams.random(4, 2, rng=83)
    with pytest.raises(ValueError, match=re.escape("mask of shape (3, 4)") + ".*" + "(3, 3)"):
        self_attention(np.ones((3, 4)), params, mask=np.ones((3, 4), dtype=bool))


def test_no_keys_or_no_features() -> None:
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="m = 0"):
        scaled_dot_product_attention(q, k[:0], v[:0])
    with pytest.raises(ValueError, match="d_k = 0"):
        scaled_dot_product_attention(q[:, :0], k[:, :0], v)


def test_no_queries_gives_empty_output() -> None:
    q, k, v = _qkv()
    result = scaled_dot_product_attention(q[:0], k, v)
    assert result.output.shape == (0, 2)
    assert result.weights.shape == (0, 5)
    assert result.scores.shape == (0, 5)
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, rng=84)
    cross = multi_head_attention(np.ones((0, 4)), params, n_heads=2, context=np.ones((3, 4)))
    assert cross.output.shape == (0, 4)
    assert cross.weights.shape == (2, 0, 3)


def test_empty_batch_gives_empty_results() -> None:
    result = scaled_dot_product_attention(
        np.ones((0, 3, 4)), np.ones((0, 5, 4)), np.ones((0, 5, 2))
    )
    assert result.output.shape == (0, 3, 2)
    assert result.weights.shape == (0, 3, 5)
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, rng=85)
    projected = multi_head_attention(np.ones((0, 3, 4)), params, n_heads=2, is_causal=True)
    assert projected.output.shape == (0, 3, 4)
    assert projected.weights.shape == (0, 2, 3, 3)


def test_float32_overflow_raises() -> None:
    big = np.full((2, 4), 1e20, dtype=np.float32)  # q.k / 2 = 2e40 > 3.4e38
    with pytest.raises(FloatingPointError, match="float64"):
        scaled_dot_product_attention(big, big, big)
    with pytest.raises(FloatingPointError, match="float64"):
        scaled_dot_product_attention(-big, big, big)
    # scores that fit, plus a bias that pushes them over
    q = np.full((1, 2), 1.5e19, dtype=np.float32)
    with pytest.raises(FloatingPointError, match="float32"):
        scaled_dot_product_attention(q, q, q, bias=np.full((1, 1), 3e38, dtype=np.float32))
    # the same numbers in float64 are fine
    big64 = big.astype(np.float64)
    result = scaled_dot_product_attention(big64, big64, big64)
    np.testing.assert_array_equal(result.weights, np.full((2, 2), 0.5))


def test_large_finite_float64_values() -> None:
    q = np.array([[1e150], [-1e150]])
    k = np.array([[1e150], [-1e150], [0.0]])
    v = np.array([[1e308], [-1e308], [0.0]])
    result = scaled_dot_product_attention(q, k, v, scale=1.0)  # scores +-1e300
    np.testing.assert_array_equal(result.weights, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(result.output, [[1e308], [-1e308]])
    tiny = scaled_dot_product_attention(np.array([[1e300]]), np.array([[1e-300], [2e-300]]), v[:2])
    assert_close(tiny.output, attention_ref([[1e300]], [[1e-300], [2e-300]], v[:2]).output)
    assert np.isfinite(tiny.output).all()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (np.ones((3, 4), dtype=bool), TypeError),
        (np.ones((3, 4), dtype=complex), TypeError),
        (None, TypeError),
        ("abc", TypeError),
        ([[1.0, 2.0, 3.0, 4.0], [3.0]], ValueError),
        (np.ones((3, 4), dtype=np.float32), TypeError),
        (np.ones((3, 5)), ValueError),
        (np.ones(4), ValueError),
    ],
)
def test_bad_x(bad: Any, error: type[Exception]) -> None:
    params = AttentionParams.random(4, 2, n_heads=2, rng=86)
    with pytest.raises(error, match="x"):
        multi_head_attention(bad, params, n_heads=2)
    if bad is None:
        return  # context=None means self-attention
    with pytest.raises(error, match="context"):
        multi_head_attention(np.ones((3, 4)), params, n_heads=2, context=bad)


def test_bad_options() -> None:
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="is_causal"):
        scaled_dot_product_attention(q, k, v, is_causal=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        scaled_dot_product_attention(q, k, v, scale=math.nan)
    with pytest.raises(ValueError, match="scale"):
        scaled_dot_product_attention(q, k, v, scale=math.inf)
    with pytest.raises(TypeError, match="scale"):
        scaled_dot_product_attention(q, k, v, scale="1")  # type: ignore[arg-type]


def test_bad_head_counts() -> None:
    params = AttentionParams.random(8, 2, n_heads=4, rng=87)
    x = np.ones((3, 8))
    with pytest.raises(ValueError, match="n_kv_heads must divide n_heads"):
        multi_head_attention(x, params, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="n_heads"):
        multi_head_attention(x, params, n_heads=3)
    with pytest.raises(ValueError, match="n_heads"):
        multi_head_attention(x, params, n_heads=0)
    with pytest.raises(TypeError, match="n_heads"):
        multi_head_attention(x, params, n_heads=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="d_k"):
        multi_head_attention(x, params, n_heads=2, n_kv_heads=1)  # w_k has 8 columns: d 8 != 4


def test_params_must_be_attention_params() -> None:
    ex = fluffy_blue_creature()
    with pytest.raises(TypeError, match="params must be an AttentionParams, got dict"):
        multi_head_attention(ex.x, {"w_q": ex.params.w_q}, n_heads=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="params must be an AttentionParams, got tuple"):
        self_attention(ex.x, (ex.params.w_q, ex.params.w_k, ex.params.w_v))  # type: ignore[arg-type]


def test_inputs_are_not_modified() -> None:
    q, k, v = _qkv()
    mask = _mask(88, 3, 5)
    bias = _normal(89, 3, 5)
    bias[0, 0] = -np.inf
    copies = [a.copy() for a in (q, k, v, mask, bias)]
    _ = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias, is_causal=True).scores
    for before, after in zip(copies, (q, k, v, mask, bias), strict=True):
        np.testing.assert_array_equal(before, after)
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, bias=True, rng=90)
    x, context = _normal(91, 3, 4), _normal(92, 5, 4)
    x_copy, context_copy = x.copy(), context.copy()
    multi_head_attention(x, params, n_heads=2, context=context, mask=mask)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(context, context_copy)


def test_memory_layout_does_not_matter() -> None:
    q, k, v = _normal(93, 17, 8), _normal(94, 33, 8), _normal(95, 33, 3)
    mask = _mask(96, 17, 33)
    base = scaled_dot_product_attention(q, k, v, mask=mask)
    fortran = scaled_dot_product_attention(
        np.asfortranarray(q), np.asfortranarray(k), np.asfortranarray(v), mask=mask
    )
    q_rev = np.ascontiguousarray(q[::-1])[::-1]  # negative strides, same values
    k_rev = np.ascontiguousarray(k[:, ::-1])[:, ::-1]
    v_rev = np.ascontiguousarray(v[::-1, ::-1])[::-1, ::-1]
    assert q_rev.strides[0] < 0
    reversed_ = scaled_dot_product_attention(q_rev, k_rev, v_rev, mask=mask)
    for other in (fortran, reversed_):
        assert np.array_equal(base.weights, other.weights)
        assert np.array_equal(base.output, other.output)
    params = AttentionParams.random(8, 4, n_heads=2, out_proj=True, bias=True, rng=97)
    a = multi_head_attention(q, params, n_heads=2)
    b = multi_head_attention(np.asfortranarray(q), params, n_heads=2)
    c = multi_head_attention(q_rev, params, n_heads=2)
    assert np.array_equal(a.output, b.output)
    assert np.array_equal(a.output, c.output)


def test_fully_masked_rows_give_no_warning() -> None:
    q, k, v = _qkv()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = scaled_dot_product_attention(q, k, v, mask=np.zeros((3, 5), dtype=bool))
        bias_result = scaled_dot_product_attention(q, k, v, bias=np.full((3, 5), -np.inf))
        causal = scaled_dot_product_attention(
            q, k, v, mask=np.zeros((3, 5), dtype=bool), is_causal=True
        )
    for r in (result, bias_result, causal):
        np.testing.assert_array_equal(r.weights, np.zeros((3, 5)))
        np.testing.assert_array_equal(r.output, np.zeros((3, 2)))


def _overflowing_second_key() -> tuple[NDArray[np.float32], ...]:
    """q . k_1 ~ 4e39 overflows float32; q . k_0 = 4e19 does not."""
    q = np.full((1, 4), 1e19, np.float32)
    k = np.array([[1.0] * 4, [1e20] * 4], np.float32)
    v = np.array([[1.0], [7.0]], np.float32)
    return q, k, v


@pytest.mark.parametrize(
    "forbid",
    [
        {"mask": [True, False]},
        {"bias": np.array([0.0, -np.inf], np.float32)},
        {"mask": [True, True], "bias": np.array([0.0, -np.inf], np.float32)},
    ],
    ids=["mask", "bias", "mask-and-bias"],
)
def test_a_key_that_cannot_be_attended_changes_nothing_even_if_its_score_overflows(
    forbid: dict[str, Any],
) -> None:
    q, k, v = _overflowing_second_key()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = scaled_dot_product_attention(q, k, v, **forbid)
    np.testing.assert_array_equal(result.weights, [[1.0, 0.0]])
    np.testing.assert_array_equal(result.output, [[1.0]])  # v_0, as without key 1


def test_a_causal_mask_hides_overflowing_keys_after_the_query() -> None:
    _, k, v = _overflowing_second_key()
    q = np.array([[1e19] * 4, [0.0] * 4], np.float32)  # query 0 never sees key 1
    result = scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_array_equal(result.weights, [[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_array_equal(result.output, [[1.0], [4.0]])


def test_an_overflow_on_a_key_that_may_be_attended_is_still_an_error() -> None:
    q, k, v = _overflowing_second_key()
    with pytest.raises(FloatingPointError, match="overflowed float32"):
        scaled_dot_product_attention(q, k, v, mask=[False, True])


@pytest.mark.parametrize(
    ("dtype", "value", "advice"),
    [
        (np.float32, 1e20, "; compute in float64 or rescale q and k"),
        (np.float64, 1e160, "; rescale q and k"),
    ],
)
def test_overflow_advice_fits_the_dtype(
    dtype: type[np.floating[Any]], value: float, advice: str
) -> None:
    x = np.full((1, 4), value, dtype)
    with pytest.raises(FloatingPointError, match=re.escape(advice) + "$"):
        scaled_dot_product_attention(x, x, np.ones((1, 1), dtype))


HEAD_HINT = "; one mask serves every head (it has no head axis)"


@pytest.mark.parametrize(
    ("x_shape", "n_heads", "mask_shape", "quoted"),
    [
        ((5, 4), 1, (7, 5, 5), "mask of shape (7, 5, 5) does not broadcast to "),
        ((3, 5, 4), 1, (2, 5, 5), "mask of shape (2, 5, 5) does not broadcast to "),
        ((5, 4), 2, (2, 5, 5), "mask of shape (2, 5, 5) does not broadcast to "),
        ((3, 5, 4), 2, (3, 2, 5, 5), "mask of shape (3, 2, 5, 5) does not broadcast to "),
    ],
    ids=["self", "self-batched", "per-head", "per-head-batched"],
)
def test_mask_errors_quote_the_callers_shapes(
    x_shape: tuple[int, ...], n_heads: int, mask_shape: tuple[int, ...], quoted: str
) -> None:
    """The shapes the caller passed and the caller's (..., n, m), not per-head arrays."""
    params = AttentionParams.random(4, 2, n_heads=n_heads, rng=0)
    scores = (*x_shape[:-1], x_shape[-2])  # (..., n, n)
    expected = f"{quoted}scores (..., n, m) of shape {scores}"
    if n_heads > 1:
        expected += HEAD_HINT
    with pytest.raises(ValueError, match=re.escape(expected) + "$"):
        multi_head_attention(
            np.ones(x_shape), params, n_heads=n_heads, mask=np.ones(mask_shape, bool)
        )
    if n_heads == 1:  # self_attention is multi_head_attention with one head
        with pytest.raises(ValueError, match=re.escape(expected) + "$"):
            self_attention(np.ones(x_shape), params, mask=np.ones(mask_shape, bool))


# ---------------------------------------------------------------------------
# multi_head_attention: bias per head, padding by lengths
# ---------------------------------------------------------------------------


def _heads_by_hand(
    x: NDArray[np.float64], params: AttentionParams, h: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """q, k, v per head, (B, h, n, d), projected and split with plain numpy."""

    def split(a: NDArray[np.float64]) -> NDArray[np.float64]:
        b, n, width = a.shape
        return a.reshape(b, n, h, width // h).transpose(0, 2, 1, 3)

    return split(x @ params.w_q), split(x @ params.w_k), split(x @ params.w_v)


def test_multi_head_bias_is_added_per_head() -> None:
    rng = np.random.default_rng(11)
    params = AttentionParams.random(8, 2, n_heads=4, rng=1)
    x = rng.normal(size=(2, 5, 8))
    bias = rng.normal(size=(4, 5, 5))  # one (n, m) bias per head, as ALiBi
    bias[1, 0, 3] = -np.inf
    result = multi_head_attention(x, params, n_heads=4, bias=bias)
    q, k, v = _heads_by_hand(x, params, 4)
    expected = scaled_dot_product_attention(q, k, v, bias=bias)  # (B, h, n, m)
    np.testing.assert_allclose(result.weights, expected.weights, rtol=0, atol=1e-14)
    assert result.weights[:, 1, 0, 3].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(result.scores, expected.scores, rtol=0, atol=1e-14)
    view = result.head_view(batch=1, head=1)
    np.testing.assert_array_equal(view.bias, bias[1])
    assert not view.allowed[0, 3]


def test_self_attention_bias_and_lengths() -> None:
    ex = fluffy_blue_creature()
    bias = np.array([[0.0, 1.0, -np.inf]] * 3)
    result = self_attention(ex.x, ex.params, bias=bias)
    q, k, v = ex.x @ ex.params.w_q, ex.x @ ex.params.w_k, ex.x @ ex.params.w_v
    expected = scaled_dot_product_attention(q, k, v, bias=bias)
    np.testing.assert_allclose(result.weights, expected.weights, rtol=0, atol=1e-15)
    batch = np.stack([ex.x, ex.x])
    padded = self_attention(batch, ex.params, lengths=[3, 2])
    by_mask = self_attention(batch, ex.params, mask=padding_mask([3, 2], 3))
    np.testing.assert_array_equal(padded.weights, by_mask.weights)
    assert padded.weights[1, :, 2].tolist() == [0.0, 0.0, 0.0]


def test_lengths_pad_the_keys_of_every_head() -> None:
    rng = np.random.default_rng(12)
    params = AttentionParams.random(8, 2, n_heads=2, out_proj=True, rng=2)
    x = rng.normal(size=(3, 4, 8))
    by_lengths = multi_head_attention(x, params, n_heads=2, lengths=[4, 2, 1], is_causal=True)
    mask = padding_mask([4, 2, 1], 4)  # (3, 1, 4): the docstring's hint, as written
    by_mask = multi_head_attention(x, params, n_heads=2, mask=mask, is_causal=True)
    np.testing.assert_array_equal(by_lengths.weights, by_mask.weights)
    np.testing.assert_array_equal(by_lengths.output, by_mask.output)
    assert by_lengths.weights[2, :, 3, 1:].tolist() == [[0.0] * 3] * 2


@pytest.mark.parametrize(
    ("lengths", "error", "match"),
    [
        ([4, 2], ValueError, r"lengths must have one entry per sequence, the batch shape \(3,\)"),
        ([4, 2, 5], ValueError, r"lengths must lie in 0 \.\. m = 4"),
        ([1.5, 2, 3], TypeError, "lengths"),
    ],
)
def test_bad_lengths_name_lengths(lengths: object, error: type[Exception], match: str) -> None:
    params = AttentionParams.random(8, 2, n_heads=2, rng=2)
    with pytest.raises(error, match=match):
        multi_head_attention(np.ones((3, 4, 8)), params, n_heads=2, lengths=lengths)  # type: ignore[arg-type]


def test_a_bias_that_does_not_fit_the_heads_names_bias() -> None:
    params = AttentionParams.random(8, 2, n_heads=4, rng=2)
    with pytest.raises(ValueError, match="bias"):
        multi_head_attention(np.ones((4, 8)), params, n_heads=4, bias=np.zeros((3, 4, 4)))


def test_gradient_of_a_multi_head_bias_by_finite_differences() -> None:
    from attention_from_scratch.self_attention import attention_vjp

    rng = np.random.default_rng(13)
    params = AttentionParams.random(6, 2, n_heads=3, rng=3)
    x = rng.normal(size=(4, 6))
    bias = rng.normal(size=(3, 4, 4))
    upstream = rng.normal(size=(4, 6))

    def loss(b: NDArray[np.float64]) -> float:
        return float(np.sum(multi_head_attention(x, params, n_heads=3, bias=b).output * upstream))

    grads = attention_vjp(multi_head_attention(x, params, n_heads=3, bias=bias), upstream)
    assert grads.bias is not None
    assert grads.bias.shape == bias.shape
    numeric = np.zeros_like(bias)
    h = 1e-6
    for index in np.ndindex(bias.shape):
        step = np.zeros_like(bias)
        step[index] = h
        numeric[index] = (loss(bias + step) - loss(bias - step)) / (2 * h)
    np.testing.assert_allclose(grads.bias, numeric, rtol=1e-6, atol=1e-9)
