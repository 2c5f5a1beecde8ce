"""The kernel is the readable formula, arranged for speed: the two are pinned together.

``scaled_dot_product_attention`` (and everything built on it) runs the three lines of
Eq. 1 as written when the scores are small, and the chunked kernel of
:mod:`attention_from_scratch._kernel` when they are large. Here the size switch is
moved so that the same inputs go through both, and the results must agree to 2 ulp
(of each weight; of each output entry, relative to ``|P| @ |V|``, the size of the
terms it sums) for every dtype, with masks, bias, broadcasting and fully masked rows.
The softmax's blocked rows are pinned to the textbook formula the same way.

One arrangement computes a different formula: where Cauchy--Schwarz bounds every
score, the kernel exponentiates the scores without subtracting the row maximum. It is
pinned to the exact softmax of the same scores instead (8 ulp, where the shifted
formula's own error grows with ``|s - max s|``), and to the readable path within the
documented tolerances.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from attention_from_scratch import _kernel as kernel_module
from attention_from_scratch import norms as norms_module
from attention_from_scratch import self_attention as sa_module
from attention_from_scratch import softmax as softmax_module
from attention_from_scratch._kernel import (
    DOT_FEATURES,
    SHORT_ROWS,
    affine_rescaled,
    check_overflow,
    layer_norm_stats,
    matmul_rows,
    max_along,
    never_attended,
    row_sums,
    sum_along,
)
from attention_from_scratch.norms import layer_norm, layer_norm_vjp
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import (
    multi_head_attention,
    scaled_dot_product_attention,
    tiled_attention,
)
from attention_from_scratch.softmax import softmax
from tests.reference.all_ref import map_vectors as ref_map
from tests.reference.norms_ref import layer_norm_ref

DTYPES = [np.float16, np.float32, np.float64]
ULPS = 2


def _within_ulps(actual: NDArray[Any], desired: NDArray[Any], scale: NDArray[Any]) -> None:
    """|actual - desired| <= ULPS ulp of ``scale`` (in the arrays' dtype), entry by entry."""
    spacing = np.spacing(np.abs(scale).astype(desired.dtype))
    diff = np.abs(actual.astype(np.float64) - desired.astype(np.float64))
    bad = diff > ULPS * spacing.astype(np.float64)
    assert not bad.any(), f"{int(bad.sum())} entries differ by more than {ULPS} ulp"


def _outputs_agree(actual: Any, desired: Any, weights: Any, v: Any) -> None:
    """Outputs agree as far as weights within 2 ulp allow: 2 ulp of each weight times |v|.

    ``O = P V`` with each weight off by up to 2 ulp moves an output by up to
    ``2 * spacing(|P|) @ |V|``, plus the rounding of the output itself.
    """
    p = np.abs(weights.astype(np.float64))
    work = np.float32 if weights.dtype == np.float16 else weights.dtype
    spread = np.spacing(p.astype(work)).astype(np.float64) @ np.abs(v.astype(np.float64))
    out = np.abs(desired.astype(np.float64))
    bound = ULPS * spread + ULPS * np.spacing(out.astype(desired.dtype)).astype(np.float64)
    diff = np.abs(actual.astype(np.float64) - desired.astype(np.float64))
    bad = diff > bound
    assert not bad.any(), f"{int(bad.sum())} outputs differ beyond 2 ulp of the weights"


def _both_paths(
    monkeypatch: pytest.MonkeyPatch, run: Any, *, shifted: bool = True
) -> tuple[Any, Any]:
    """``run()`` through the readable lines, then through the kernel.

    ``shifted``: the kernel subtracts each row's maximum as the readable lines do (the
    same operations, pinned to 2 ulp); else it may skip the shift where Cauchy--Schwarz
    proves the scores small (:func:`test_unshifted_kernel_is_as_accurate`).
    """
    with monkeypatch.context() as patch:
        patch.setattr(sa_module, "_READABLE_BYTES", 1 << 62)
        readable = run()
    with monkeypatch.context() as patch:
        patch.setattr(sa_module, "_READABLE_BYTES", 0)
        if shifted:
            patch.setattr(kernel_module, "UNSHIFTED_LIMIT", {})  # never skip the shift
        kernel = run()
    return readable, kernel


def _cases(dtype: type[np.floating[Any]]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    q = rng.normal(size=(2, 3, 5, 4)).astype(dtype)
    k = rng.normal(size=(3, 6, 4)).astype(dtype)  # broadcast over the leading 2
    v = rng.normal(size=(2, 1, 6, 3)).astype(dtype)  # broadcast over the heads
    mask = rng.random((5, 6)) < 0.6
    mask[1] = False  # a fully masked row
    bias = rng.normal(size=(3, 5, 6)).astype(dtype)
    bias[:, 2, 0] = -np.inf
    return [
        {"q": q, "k": k, "v": v},
        {"q": q, "k": k, "v": v, "mask": mask},
        {"q": q, "k": k, "v": v, "bias": bias},
        {"q": q, "k": k, "v": v, "mask": mask, "bias": bias, "is_causal": True},
        {"q": q[0, 0], "k": k[0], "v": v[0, 0], "is_causal": True, "scale": 0.3},
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(5))
def test_kernel_equals_the_readable_formula(
    monkeypatch: pytest.MonkeyPatch, dtype: type[np.floating[Any]], case: int
) -> None:
    kwargs = _cases(dtype)[case]
    q, k, v = kwargs.pop("q"), kwargs.pop("k"), kwargs.pop("v")
    readable, kernel = _both_paths(
        monkeypatch, lambda: scaled_dot_product_attention(q, k, v, **kwargs)
    )
    assert kernel.weights.dtype == readable.weights.dtype == dtype
    _within_ulps(kernel.weights, readable.weights, readable.weights)
    _outputs_agree(kernel.output, readable.output, readable.weights, v)
    if readable.mask is not None:
        np.testing.assert_array_equal(kernel.weights[~readable.mask], 0)
        np.testing.assert_array_equal(readable.weights[~readable.mask], 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_head_paths_agree(monkeypatch: pytest.MonkeyPatch, dtype: type[Any]) -> None:
    params = AttentionParams.random(
        8, 2, n_heads=4, n_kv_heads=2, out_proj=True, bias=True, rng=1, dtype=dtype
    )
    x = np.random.default_rng(2).normal(size=(2, 5, 8)).astype(dtype)
    readable, kernel = _both_paths(
        monkeypatch,
        lambda: multi_head_attention(x, params, n_heads=4, n_kv_heads=2, is_causal=True),
    )
    _within_ulps(kernel.weights, readable.weights, readable.weights)
    _within_ulps(kernel.head_outputs, readable.head_outputs, np.abs(readable.head_outputs) + 1)


# --- the unshifted arrangement: exp(s) where Cauchy--Schwarz bounds every score --------

#: Tolerances of docs/guarantees.md, by dtype: (rtol, atol).
DOCUMENTED = {np.float16: (1e-3, 1e-5), np.float32: (1.3e-6, 1e-5), np.float64: (1e-12, 1e-12)}


def _exact_softmax(z: NDArray[Any], allowed: NDArray[np.bool_] | None = None) -> NDArray[Any]:
    """softmax of the rows of ``z`` in extended precision (the x87 80-bit long double)."""
    wide = z.astype(np.longdouble)
    if allowed is not None:
        wide = np.where(allowed, wide, -np.inf)
    top = np.max(wide, axis=-1, keepdims=True)
    top[np.isneginf(top)] = 0
    e = np.exp(wide - top)
    total = np.sum(e, axis=-1, keepdims=True)
    total[total == 0] = 1
    out: NDArray[Any] = e / total
    return out


def _spy_unshifted(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record each decision of ``_kernel.unshifted`` (True: the shift is skipped)."""
    taken: list[bool] = []
    decide = kernel_module.unshifted

    def spy(*args: Any) -> bool:
        taken.append(decide(*args))
        return taken[-1]

    monkeypatch.setattr(kernel_module, "unshifted", spy)
    return taken


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unshifted_kernel_is_as_accurate(dtype: type[np.floating[Any]]) -> None:
    """softmax_rows without the shift: within 8 ulp of the exact softmax of the same scores.

    The rounding of exp, of the pairwise sum of 333 terms, of the reciprocal and of the
    product. The shifted formula rounds ``s - max s`` first, an error that grows with
    the distance to the maximum (up to 67 ulp here); unshifted, the exponent is the
    score itself.
    """
    if dtype == np.float64 and np.finfo(np.longdouble).eps > 1e-18:
        pytest.skip("no extended precision to compare float64 with")
    limit = kernel_module.UNSHIFTED_LIMIT[np.dtype(dtype).itemsize]
    rng = np.random.default_rng(12)
    z = rng.uniform(-limit, limit, size=(600, 333)).astype(dtype)  # every score within the limit
    allowed: NDArray[np.bool_] = np.less(rng.random(z.shape), 0.9)
    allowed[5] = False  # a row with no key allowed
    exact = _exact_softmax(z, allowed).astype(np.float64)
    shifted, unshifted = np.empty_like(z), np.empty_like(z)
    for out, shift in ((shifted, True), (unshifted, False)):
        kernel_module.softmax_rows(
            z, out, where=allowed, allow_empty_rows=True, report=lambda: None, shift=shift
        )
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    error = np.abs(unshifted.astype(np.float64) - exact)
    assert np.all(error <= 8 * spacing)
    np.testing.assert_array_equal(unshifted[~allowed], 0)  # masked keys and the empty row: 0
    # the shifted formula, for comparison: its largest error is not smaller
    assert np.max(error / spacing) <= np.max(np.abs(shifted - exact) / spacing)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(5))
def test_unshifted_kernel_agrees_with_the_readable_formula(
    monkeypatch: pytest.MonkeyPatch, dtype: type[np.floating[Any]], case: int
) -> None:
    """The same cases with the shift skipped: the documented tolerances, masked entries 0."""
    taken = _spy_unshifted(monkeypatch)
    kwargs = _cases(dtype)[case]
    q, k, v = kwargs.pop("q"), kwargs.pop("k"), kwargs.pop("v")
    readable, kernel = _both_paths(
        monkeypatch, lambda: scaled_dot_product_attention(q, k, v, **kwargs), shifted=False
    )
    assert taken == [True]  # these small scores skip the shift
    rtol, atol = DOCUMENTED[dtype]
    np.testing.assert_allclose(kernel.weights, readable.weights, rtol=rtol, atol=atol)
    np.testing.assert_allclose(kernel.output, readable.output, rtol=rtol, atol=atol)
    if readable.mask is not None:
        np.testing.assert_array_equal(kernel.weights[~readable.mask], 0)


def test_unshifted_decides_by_cauchy_schwarz() -> None:
    """max|q_i| max|k_j| + max|b| (1% for rounding) against the limit of the dtype."""
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    q = np.zeros((2, 3, 4))
    k = np.zeros((2, 5, 4))
    q[1, 2] = [3.0, 4.0, 0.0, 0.0]  # |q| = 5
    k[0, 4] = [0.0, 0.0, 12.0, 5.0]  # |k| = 13: bound 65 * 1.01 over 64
    assert not kernel_module.unshifted(q, k, 0.0, f32)
    assert kernel_module.unshifted(q, k, 0.0, f64)  # float64's limit is 512
    k[0, 4] = [0.0, 0.0, 6.0, 8.0]  # |k| = 10: bound 50.5
    assert kernel_module.unshifted(q, k, 0.0, f32)
    bias = np.zeros((3, 5))
    bias[0, 0] = -np.inf  # forbids a key: bounds nothing
    assert kernel_module.bias_peak(bias) == 0.0
    assert kernel_module.unshifted(q, k, kernel_module.bias_peak(bias), f32)
    bias[1, 1] = -14.0  # 50.5 + 14 over 64
    assert kernel_module.bias_peak(bias) == 14.0
    assert not kernel_module.unshifted(q, k, kernel_module.bias_peak(bias), f32)
    huge = np.full((1, 4), 1e20, np.float32)  # |q|^2 overflows float32: inf, no skip
    assert not kernel_module.unshifted(huge, huge, 0.0, f32)
    assert not kernel_module.unshifted(q, k, 0.0, np.dtype(np.float16))  # no limit: never


def test_scores_at_the_limit_give_exact_weights_unshifted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scores of +-63 and less (exact in float32): unshifted, nothing over- or underflows."""
    q = np.zeros((4, 64, 8), np.float32)
    k = np.zeros((4, 64, 8), np.float32)
    q[..., 0] = 63 - np.arange(64) / 8  # |q_i| from 63 down to 55.125
    k[..., 0] = np.where(np.arange(64) % 2 == 0, 1.0, -1.0)  # |k_j| = 1: scores +-q_i0
    v = np.random.default_rng(0).normal(size=(4, 64, 3)).astype(np.float32)
    taken = _spy_unshifted(monkeypatch)
    monkeypatch.setattr(sa_module, "_READABLE_BYTES", 0)
    result = scaled_dot_product_attention(q, k, v, scale=1.0)
    assert taken == [True]  # 63 * 1 * 1.01 is within float32's limit of 64
    scores = q @ np.swapaxes(k, -1, -2)  # exact: one nonzero product each
    exact = _exact_softmax(scores).astype(np.float64)
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(result.weights - exact) <= 8 * spacing)
    eps = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(result.weights[..., 0::2], 1 / 32, rtol=4 * eps)  # e^63 each
    np.testing.assert_array_equal(result.weights[..., 1::2], 0)  # e^-126 of the top: 0, exactly
    assert np.all(np.isfinite(result.output))


def test_the_running_example_takes_the_readable_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a reader steps through in a debugger is the formula, not the kernel."""

    def refuse(*_: object, **__: object) -> None:
        msg = "the 3x4 example must not need the kernel"
        raise AssertionError(msg)

    monkeypatch.setattr(sa_module, "attention", refuse)
    x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    weights = scaled_dot_product_attention(x, x, x).weights
    np.testing.assert_allclose(weights[0], [0.422319, 0.155362, 0.422319], atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_blocked_softmax_equals_the_textbook_formula(dtype: type[Any]) -> None:
    """softmax's blocked in-place rows against exp(x - max) / sum, 2 ulp."""
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(3000, 70)) * 4).astype(dtype)  # many blocks of rows
    work = x.astype(np.float32 if dtype == np.float16 else dtype)
    e = np.exp(work - work.max(axis=-1, keepdims=True))
    textbook = (e / e.sum(axis=-1, keepdims=True)).astype(dtype)
    _within_ulps(softmax(x), textbook, textbook)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_softmax_paths_agree(
    monkeypatch: pytest.MonkeyPatch, dtype: type[Any], temperature: float
) -> None:
    """softmax's readable lines and its blocked kernel, same input, 2 ulp; masked rows 0."""
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(40, 7, 9)) * 5).astype(dtype)
    where = rng.random((7, 9)) < 0.5
    where[:, 3] = False  # along axis 1: nothing allowed at column 3
    results = []
    for limit in (1 << 62, 0):
        with monkeypatch.context() as patch:
            patch.setattr(softmax_module, "READABLE_ENTRIES", limit)
            results.append(softmax(x, axis=1, temperature=temperature, where=where))
    readable, kernel = results
    _within_ulps(kernel, readable, readable)
    np.testing.assert_array_equal(readable[:, :, 3], 0)
    np.testing.assert_array_equal(kernel[:, :, 3], 0)


@pytest.mark.parametrize(
    "forbid",
    [
        {"mask": np.array([True, False])},
        {"bias": np.array([0.0, -np.inf], np.float32)},
        {"is_causal": True},
    ],
    ids=["mask", "bias", "causal"],
)
@pytest.mark.parametrize("path", ["readable", "blocked-softmax", "kernel"])
def test_every_path_ignores_overflow_on_keys_that_cannot_be_attended(
    monkeypatch: pytest.MonkeyPatch, forbid: dict[str, Any], path: str
) -> None:
    """q_0 . k_1 overflows float32; key 1 is masked, biased to -inf or after query 0."""
    q = np.array([[1e19] * 4, [0.0] * 4], np.float32)
    k = np.array([[1.0] * 4, [1e20] * 4], np.float32)
    v = np.array([[1.0], [7.0]], np.float32)
    monkeypatch.setattr(sa_module, "_READABLE_BYTES", 0 if path == "kernel" else 1 << 62)
    if path == "blocked-softmax":
        monkeypatch.setattr(kernel_module, "READABLE_ENTRIES", 0)
    result = scaled_dot_product_attention(q, k, v, **forbid)
    if "is_causal" in forbid:
        np.testing.assert_array_equal(result.weights, [[1.0, 0.0], [0.5, 0.5]])
    else:  # query 1 sees key 0 only as well
        np.testing.assert_array_equal(result.weights, [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(result.output[0], [1.0])


def test_check_overflow_reads_only_allowed_entries_with_a_finite_bias() -> None:
    scores = np.array([[1.0, np.inf, np.nan, -np.inf]], np.float32)
    bias = np.array([0.0, 0.0, -np.inf, 0.0], np.float32)
    allowed = np.array([True, False, True, False])
    check_overflow(scores, bias, allowed)  # nothing attended overflowed: no error
    with pytest.raises(FloatingPointError, match="overflowed float32"):
        check_overflow(scores, bias, None)  # key 1 may be attended


def test_never_attended_scores_are_neg_inf_where_the_bias_is() -> None:
    scores = np.array([[1.0, np.nan, np.inf]], np.float64)
    bias = np.array([0.0, -np.inf, 0.0])
    out = never_attended(scores.copy(), bias)
    np.testing.assert_array_equal(out, [[1.0, -np.inf, np.inf]])
    read_only = np.broadcast_to(scores, (2, 3))  # not writeable: a new array
    np.testing.assert_array_equal(never_attended(read_only, bias)[1], [1.0, -np.inf, np.inf])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_rescaled_equals_the_exact_product(dtype: type[np.floating[Any]]) -> None:
    """Rows and columns scaled by powers of two: exact where the plain product overflows."""
    top = float(np.finfo(dtype).max) / 2
    x = np.array([[top, top, -top], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype)
    weight = np.array([[1.0, 0.5], [1.0, 0.5], [1.0, 0.5]], dtype)
    bias = np.array([0.0, -top / 4], dtype)
    out = affine_rescaled(x, weight, bias)
    assert out.dtype == dtype
    expected = np.array([[top, top / 4], [6.0, 3.0 - top / 4], [0.0, -top / 4]], dtype)
    np.testing.assert_array_equal(out, expected)


def test_scale_on_k_when_q_times_scale_overflows_and_error_when_both_do() -> None:
    q = np.array([[1.7014118e38]], np.float32)
    zeros = np.zeros((1, 1), np.float32)
    result = scaled_dot_product_attention(q, zeros, zeros, scale=2.0)  # (q s) . 0 = 0
    np.testing.assert_array_equal(result.scores, [[0.0]])
    np.testing.assert_array_equal(result.weights, [[1.0]])
    big = np.array([[1e308]])
    with pytest.raises(FloatingPointError, match="q \\* scale and k \\* scale"):
        scaled_dot_product_attention(big, big, big, scale=4.0)


def test_float16_gradients_recompute_large_broadcast_weights() -> None:
    """The backward pass of a float16 result recomputes P in float32 (the blocked path)."""
    from attention_from_scratch.self_attention import attention_vjp

    rng = np.random.default_rng(5)
    q = rng.normal(size=(130, 4)).astype(np.float16)
    v = rng.normal(size=(2, 130, 1)).astype(np.float16)  # a batch axis q and k lack
    result = scaled_dot_product_attention(q, q, v)
    grads = attention_vjp(result, np.ones((2, 130, 1), np.float16))
    assert grads.q.dtype == np.float16
    work = [a.astype(np.float64) for a in (q, v)]
    scores = work[0] @ work[0].T / 2
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    d_p = np.ones((2, 130, 1)) @ np.swapaxes(work[1], -1, -2)  # (2, 130, 130)
    d_s = p * (d_p - np.sum(d_p * p, axis=-1, keepdims=True))
    d_q = (d_s @ work[0]).sum(axis=0) / 2
    np.testing.assert_allclose(grads.q, d_q, rtol=0.05, atol=0.05)


def test_attention_gradient_near_the_float_max_is_rescaled_not_inf() -> None:
    """dS = P (dP - rowsum(dP P)): dP - rowsum overflows though dS does not."""
    from attention_from_scratch.self_attention import attention_vjp

    q = np.array([[1.0]])
    k = np.array([[math.log(9.0)], [0.0]])  # weights [0.9, 0.1]
    v = np.array([[1.0], [-1.0]])
    result = scaled_dot_product_attention(q, k, v, scale=1.0)
    grads = attention_vjp(result, np.array([[1e308]]))  # dP = [1e308, -1e308]
    p = result.weights[0]
    d_p = np.array([1.0, -1.0])  # dP / 1e308
    d_s = p * (d_p - np.sum(d_p * p)) * 1e308  # [1.8e307, -1.8e307]
    np.testing.assert_allclose(grads.k[:, 0], d_s * q[0, 0], rtol=1e-12)
    np.testing.assert_allclose(grads.q[0, 0], d_s @ k[:, 0], rtol=1e-12)
    np.testing.assert_allclose(grads.v[:, 0], p * 1e308, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_short_sequences_collapse_into_whole_chunks(
    monkeypatch: pytest.MonkeyPatch, dtype: type[Any]
) -> None:
    """Many short sequences (the kernel spans sequences per chunk) equal the formula."""
    rng = np.random.default_rng(9)
    q = rng.normal(size=(40, 3, 6, 4)).astype(dtype)
    k = rng.normal(size=(3, 6, 4)).astype(dtype)  # broadcast over the 40: copied per chunk
    mask = rng.random((40, 1, 6, 6)) < 0.7
    readable, kernel = _both_paths(
        monkeypatch, lambda: scaled_dot_product_attention(q, k, k, mask=mask, is_causal=True)
    )
    _within_ulps(kernel.weights, readable.weights, readable.weights)
    _outputs_agree(kernel.output, readable.output, readable.weights, k)


# --- every core: the softmax rows of large inputs on several threads ------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_change_no_bit(monkeypatch: pytest.MonkeyPatch, dtype: type[Any]) -> None:
    """Attention, tiled attention and softmax on 1, 2 and 3 threads: identical, bit for bit."""
    rng = np.random.default_rng(5)
    q, k, v = (rng.normal(size=(2, 4, 160, 16)).astype(dtype) for _ in range(3))
    mask = rng.random((160, 160)) < 0.8
    mask[3] = False  # a fully masked row
    big = rng.normal(size=(1200, 600)).astype(dtype)  # 2.9 MB or more: above THREAD_BYTES
    assert big.nbytes >= kernel_module.THREAD_BYTES
    results = []
    for threads in ("1", "2", "3", "2"):
        monkeypatch.setenv(kernel_module.THREADS_ENV, threads)
        # (2, 4, 160, 160) scores are 0.8 or 1.6 MB: lower the threshold to reach them
        monkeypatch.setattr(kernel_module, "THREAD_BYTES", 1 << 16)
        attention = scaled_dot_product_attention(q, k, v, mask=mask)
        tiled = tiled_attention(q, k, v, block_size=32, is_causal=True)
        results.append((attention.weights, attention.output, softmax(big, axis=-1), tiled))
    for weights, output, soft, tiled in results[1:]:
        np.testing.assert_array_equal(weights, results[0][0])
        np.testing.assert_array_equal(output, results[0][1])
        np.testing.assert_array_equal(soft, results[0][2])
        np.testing.assert_array_equal(tiled, results[0][3])
    np.testing.assert_array_equal(results[0][0][..., 3, :], 0.0)


def test_threads_are_counted_before_blas_is_held_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """As many threads as BLAS uses, read before it is held to one; one thread: BLAS as it is."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.delenv(kernel_module.THREADS_ENV, raising=False)
    asked: list[int] = []
    monkeypatch.setattr(kernel_module, "run_parts", lambda _work, _count, n: asked.append(n))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        kernel_module.run_large(lambda _a, _b: None, 4, kernel_module.THREAD_BYTES)
    assert asked == [2]  # not 1: the count is read before the limit inside run_large

    def blas_threads() -> list[int]:
        return [
            lib["num_threads"]
            for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"
        ]

    monkeypatch.setenv(kernel_module.THREADS_ENV, "1")
    inside: list[list[int]] = []
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        kernel_module.run_large(lambda _a, _b: inside.append(blas_threads()), 4, 1 << 40)
    assert asked == [2]  # one thread: no pool
    assert inside == [[2] * len(inside[0])]  # and BLAS keeps its two threads


def test_threads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kernel_module.THREADS_ENV, "3")
    assert kernel_module.kernel_threads() == 3
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(kernel_module.THREADS_ENV, bad)
        message = f"AFS_NUM_THREADS must be a positive integer, got '{re.escape(bad)}'"
        with pytest.raises(ValueError, match=message):
            kernel_module.kernel_threads()
    monkeypatch.delenv(kernel_module.THREADS_ENV)
    assert kernel_module.kernel_threads() >= 1  # as many as BLAS uses


def test_run_parts_covers_every_index_once_and_raises_the_first_error() -> None:
    seen: list[tuple[int, int]] = []
    kernel_module.run_parts(lambda a, b: seen.append((a, b)), 10, 3)
    assert sorted(seen) == [(0, 3), (3, 6), (6, 10)]
    kernel_module.run_parts(lambda a, b: seen.append((a, b)), 1, 4)
    assert seen[-1] == (0, 1)

    def fail(first: int, last: int) -> None:
        if first > 0:
            msg = f"part {first}-{last}"
            raise FloatingPointError(msg)

    with pytest.raises(FloatingPointError, match="part 5-10"):
        kernel_module.run_parts(fail, 10, 2)


# --- layer_norm: the rows at once, unscaled, against the scaled readable lines ---


def _norm_paths(monkeypatch: pytest.MonkeyPatch, run: Any) -> tuple[Any, Any]:
    """``run()`` through the scaled readable lines of ``norms``, then through the kernel."""
    with monkeypatch.context() as patch:
        patch.setattr(norms_module, "layer_norm_rows", lambda *_: None)
        patch.setattr(norms_module, "layer_norm_vjp_rows", lambda *_: None)
        readable = run()
    kernel = run()
    return readable, kernel


def _rows_within(actual: NDArray[Any], desired: NDArray[Any], scale: NDArray[Any]) -> None:
    """|actual - desired| <= ULPS ulp of each row's largest ``|scale|`` (same dtype)."""
    row_scale = np.max(np.abs(scale), axis=-1, keepdims=True)
    _within_ulps(actual, desired, np.broadcast_to(row_scale, desired.shape))


def _norm_rows(dtype: type[np.floating[Any]], d: int) -> NDArray[Any]:
    """Rows of every kind: random, offset (1e3 + noise), one-hot, constant, nearly constant."""
    rng = np.random.default_rng(d)
    x = rng.normal(size=(3, 5, d))
    x[0, 1] += 1e3  # a large offset: the corrected mean matters
    x[0, 2] = 0.0
    x[0, 2, 0] = 1.0  # one-hot
    x[1, 0] = 7.0  # constant: x_hat exactly 0
    x[1, 1] = 2.0
    x[1, 1, -1] = np.nextafter(dtype(2.0), dtype(3.0))  # one ulp off constant
    x[2] *= 1e-3  # small rows: eps matters
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 2, 16, 17, 40, 100])
def test_layer_norm_rows_at_once_equal_the_scaled_lines(
    monkeypatch: pytest.MonkeyPatch, dtype: type[np.floating[Any]], d: int
) -> None:
    """Sums in another order, no power-of-two scaling: as accurate as the scaled lines.

    Each path is within 2 ulp of each row's largest entry of the exact result (the
    reference in rational arithmetic), so the two are within 4 ulp of each other.
    """
    x = _norm_rows(dtype, d)
    rng = np.random.default_rng(100 + d)
    gamma = rng.normal(size=d).astype(dtype)
    beta = rng.normal(size=d).astype(dtype)
    exact = ref_map(layer_norm_ref, x.astype(np.float64)).astype(dtype)
    readable, kernel = _norm_paths(monkeypatch, lambda: layer_norm(x))
    assert kernel.dtype == readable.dtype == dtype
    _rows_within(kernel, exact, exact)
    _rows_within(kernel, readable, 2 * exact)
    np.testing.assert_array_equal(kernel[1, 0], 0.0)  # a constant row: exactly 0
    readable, kernel = _norm_paths(monkeypatch, lambda: layer_norm(x, gamma, beta))
    x_hat = exact.astype(np.float64)
    _rows_within(kernel, readable, 2 * (np.abs(x_hat * gamma.astype(np.float64)) + np.abs(beta)))
    np.testing.assert_array_equal(kernel[1, 0], beta)  # constant: beta, bit for bit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 4, 16, 40])
def test_layer_norm_vjp_rows_at_once_equal_the_scaled_lines(
    monkeypatch: pytest.MonkeyPatch, dtype: type[np.floating[Any]], d: int
) -> None:
    """dx to 2 ulp of its row's terms; dgamma, dbeta to 2 ulp of the sums of magnitudes."""
    x = _norm_rows(dtype, d)
    rng = np.random.default_rng(200 + d)
    grad = rng.normal(size=x.shape).astype(dtype)
    gamma = rng.normal(size=d).astype(dtype)
    readable, kernel = _norm_paths(monkeypatch, lambda: layer_norm_vjp(x, grad, gamma))
    x_hat = layer_norm(x).astype(np.float64)
    g_hat = np.abs(grad.astype(np.float64) * gamma)
    # dx = rstd (g - mean(g) - x_hat mean(g x_hat)): the size of its terms, per row
    rstd = readable.rstd.astype(np.float64)[..., None]
    terms = rstd * (
        g_hat + g_hat.mean(-1, keepdims=True) + np.abs(x_hat) * 2 * g_hat.mean(-1, keepdims=True)
    )
    _rows_within(kernel.x, readable.x, terms)
    rows = (-1, d)
    sum_g_x = np.sum(np.abs(grad.astype(np.float64)).reshape(rows), axis=0) * np.max(np.abs(x_hat))
    _within_ulps(kernel.gamma, readable.gamma, sum_g_x)
    _within_ulps(
        kernel.beta, readable.beta, np.sum(np.abs(grad.astype(np.float64)).reshape(rows), axis=0)
    )
    _within_ulps(kernel.mean, readable.mean, np.max(np.abs(x.astype(np.float64)), axis=-1))
    _within_ulps(kernel.rstd, readable.rstd, readable.rstd)


def test_layer_norm_takes_the_scaled_lines_where_scaling_can_matter() -> None:
    """Tiny eps, squares that overflow, NaN: the kernel declines, the scaled lines decide."""
    x = np.array([[1.0, 2.0, 4.0]])
    assert layer_norm_stats(x, 1e-5) is not None
    assert layer_norm_stats(x, 0.0) is None  # eps = 0: a variance that underflows counts
    assert layer_norm_stats(x, 1e-300) is None  # below unscaled_eps(float64)
    assert layer_norm_stats(x * 1e300, 1e-5) is None  # the squares overflow
    assert layer_norm_stats(np.array([[1.0, np.nan]]), 1e-5) is None  # reported by the lines
    np.testing.assert_allclose(layer_norm(x * 1e300), layer_norm(x, eps=0.0), rtol=1e-15)
    with pytest.raises(ValueError, match=r"^x must be finite"):
        layer_norm([[1.0, np.nan]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [3, 16, 17, 64, 768])
def test_row_sums_are_as_accurate_as_pairwise_summation(
    dtype: type[np.floating[Any]], d: int
) -> None:
    """Within 3 ulp of the sum of magnitudes, against correctly rounded sums (fsum)."""
    rows = (np.random.default_rng(d).normal(size=(300, d)) + 0.5).astype(dtype)
    exact = np.array([math.fsum(row) for row in rows.astype(np.float64)])
    magnitude = np.sum(np.abs(rows.astype(np.float64)), axis=1)
    error = np.abs(row_sums(rows).astype(np.float64) - exact)
    assert np.all(error <= 3 * np.finfo(dtype).eps / 2 * magnitude)


def _short_rows_with_specials(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: type[np.floating[Any]]
) -> NDArray[Any]:
    """Rows of every magnitude, with zeros of both signs, infinities, NaN and the largest float."""
    rows = rng.normal(size=shape) * np.exp(3 * rng.normal(size=shape))
    flat = rows.reshape(-1, shape[-1])
    flat[0] = -0.0  # a row of negative zeros: numpy's sum is +0
    flat[1, 0] = np.inf
    flat[2, -1] = np.nan
    flat[3, :] = float(np.finfo(dtype).max)  # the sum overflows
    if shape[-1] >= 2:
        flat[4, :2] = [np.inf, -np.inf]  # inf - inf: NaN
    with np.errstate(over="ignore"):
        return rows.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", range(1, DOT_FEATURES + 1))
def test_short_row_reductions_are_numpys_bit_for_bit(
    dtype: type[np.floating[Any]], d: int
) -> None:
    """max_along and sum_along by columns give np.max's and np.sum's results, bit for bit."""
    rows = _short_rows_with_specials(np.random.default_rng(d), (9, 72, d), dtype)
    assert rows.size >= SHORT_ROWS * d * d  # many short rows: the column-by-column path
    with np.errstate(over="ignore", invalid="ignore"):
        total, expected_total = sum_along(rows, -1), np.sum(rows, axis=-1, keepdims=True)
    np.testing.assert_array_equal(total, expected_total)  # NaN where NaN
    np.testing.assert_array_equal(np.signbit(total), np.signbit(expected_total))
    np.testing.assert_array_equal(max_along(rows, 2), np.max(rows, axis=-1, keepdims=True))
    strided = rows[::-1, :, ::-1]  # not C-contiguous: reshaped by a copy, same sums
    with np.errstate(over="ignore", invalid="ignore"):
        np.testing.assert_array_equal(sum_along(strided, -1), np.sum(strided, -1, keepdims=True))
    np.testing.assert_array_equal(max_along(strided, -1), np.max(strided, -1, keepdims=True))


def test_short_row_reductions_leave_other_shapes_to_numpy() -> None:
    """Long rows, few rows, another axis and float16 go to np.max and np.sum themselves."""
    rng = np.random.default_rng(3)
    cases: list[tuple[NDArray[np.floating[Any]], int]] = [
        (rng.normal(size=(100, DOT_FEATURES + 1)), -1),  # rows too long
        (rng.normal(size=(SHORT_ROWS * 4 - 1, 4)), -1),  # too few rows
        (rng.normal(size=(100, 4)), 0),  # not the last axis
        (rng.normal(size=(100, 4)).astype(np.float16), -1),  # float16 sums
    ]
    for arr, axis in cases:
        np.testing.assert_array_equal(sum_along(arr, axis), np.sum(arr, axis, keepdims=True))
        np.testing.assert_array_equal(max_along(arr, axis), np.max(arr, axis, keepdims=True))


@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 160), st.integers(1, DOT_FEATURES)),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_short_row_sums_match_numpy_property(
    shape: tuple[int, int, int], dtype: type[np.floating[Any]], seed: int
) -> None:
    rows = (np.random.default_rng(seed).normal(size=shape) * 1e3).astype(dtype)
    np.testing.assert_array_equal(sum_along(rows, -1), np.sum(rows, axis=-1, keepdims=True))
    np.testing.assert_array_equal(max_along(rows, -1), np.max(rows, axis=-1, keepdims=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_rows_is_the_batched_product(dtype: type[np.floating[Any]]) -> None:
    """Every row in one product: the batched ``a @ b`` to 2 ulp of ``|a| @ |b|``."""
    rng = np.random.default_rng(11)
    a = rng.normal(size=(4, 5, 7)).astype(dtype)
    b = rng.normal(size=(7, 3)).astype(dtype)
    work = np.float32 if dtype == np.float16 else dtype
    out = matmul_rows(a.astype(work), b.astype(work))
    assert out.shape == (4, 5, 3)
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    _within_ulps(out, (a.astype(work) @ b.astype(work)), scale.astype(work))
    np.testing.assert_array_equal(matmul_rows(a[0], b), a[0] @ b)  # 2-D: the product itself


def test_the_bias_is_scanned_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The overflow guard and the unshifted decision share one bias_peak of the bias."""
    calls: list[tuple[int, ...]] = []
    scan = kernel_module.bias_peak

    def counting(bias: Any) -> float:
        calls.append(() if bias is None else bias.shape)
        return scan(bias)

    monkeypatch.setattr(kernel_module, "bias_peak", counting)
    monkeypatch.setattr(sa_module, "bias_peak", counting)
    monkeypatch.setattr(sa_module, "_READABLE_BYTES", 0)  # the kernel's path
    rng = np.random.default_rng(8)
    q, k, v = (rng.normal(size=(2, 40, 8)) for _ in range(3))
    bias = rng.normal(size=(40, 40))
    scaled_dot_product_attention(q, k, v, bias=bias)
    assert calls == [(40, 40)]
