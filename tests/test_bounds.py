"""Overflow proven impossible by a bound is not scanned for: the proof must be sound.

:func:`~attention_from_scratch._checks.sum_bound` bounds each product from the peaks
that the input checks find; where the bound :func:`~attention_from_scratch._checks.fits`
the dtype, ``linear``, ``linear_vjp``, ``multi_head_attention``, its ``attention_vjp``,
``layer_norm`` / ``layer_norm_vjp`` with ``stats`` and ``log_softmax_vjp`` run their
lines without ``np.errstate`` and skip the scans of their results. These tests run the
same calls again with every bound refused (the guarded lines, as before the bounds) and
require the very same bits, or the same error, for inputs of every magnitude up to the
largest float: a bound that wrongly claimed a result finite would return ``inf`` (or
raise a ``RuntimeWarning``, an error under this suite's warning filter) where the
guarded lines raise :class:`FloatingPointError`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import attention_from_scratch._backward as backward_module
import attention_from_scratch._kernel as kernel_module
import attention_from_scratch.norms as norms_module
import attention_from_scratch.projections as projections_module
import attention_from_scratch.self_attention as self_attention_module
import attention_from_scratch.softmax as softmax_module
from attention_from_scratch._checks import (
    fits,
    largest,
    largest_entry,
    named_peak,
    peak,
    sum_bound,
)
from attention_from_scratch._checks.finite import MOST_TERMS
from attention_from_scratch.norms import layer_norm, layer_norm_stats, layer_norm_vjp
from attention_from_scratch.projections import AttentionParams, linear, linear_vjp
from attention_from_scratch.self_attention import attention_vjp, multi_head_attention
from attention_from_scratch.softmax import log_softmax, log_softmax_vjp

Arrays = dict[str, NDArray[Any]]


def test_sum_bound_counts_the_terms_the_peaks_and_the_rounding() -> None:
    assert sum_bound(16, 0.5, 3.0) == 2 * 16 * 0.5 * 3.0
    assert sum_bound(4) == 8.0
    assert sum_bound(3, 1e200, 1e200) == math.inf  # beyond Python floats: nothing proven
    assert sum_bound(0, 1e200, 1e200) == 0.0  # no terms: the sum is 0
    assert sum_bound(MOST_TERMS, 1.0) == 2.0 * MOST_TERMS
    assert sum_bound(MOST_TERMS + 1, 1.0) == math.inf  # too many terms for the factor 2
    assert sum_bound(2, 1e200, 1e200, 0.0) == math.inf  # inf * 0 would be NaN: unknown


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_fits_allows_half_the_largest_float(dtype: type[np.floating[Any]]) -> None:
    top = float(np.finfo(dtype).max)
    assert largest(np.dtype(dtype)) == top
    assert fits(top / 2, np.dtype(dtype))
    assert not fits(top / 2 * (1 + 1e-15), np.dtype(dtype))
    assert not fits(math.inf, np.dtype(dtype))
    assert not fits(math.nan, np.dtype(dtype))


def test_peak_is_max_abs_and_validates() -> None:
    assert peak(np.array([[1.0, -3.0], [2.0, 0.5]]), "x") == 3.0
    assert peak(np.zeros((0, 3)), "x") == 0.0
    with pytest.raises(ValueError, match=r"x must be finite: found NaN at index \(1,\)"):
        peak(np.array([1.0, np.nan]), "x")


def test_named_peak_and_largest_entry_validate_and_name() -> None:
    gamma, beta = np.array([0.5, -2.0]), np.array([1.0, np.inf])
    assert named_peak({"gamma": gamma, "beta": None}) == 2.0
    with pytest.raises(ValueError, match=r"fn\(beta\) must be finite: found \+inf"):
        named_peak({"gamma": gamma, "beta": beta}, "fn({})")
    assert largest_entry(np.array([-np.inf, -1.0]), "log_p") == -1.0
    assert largest_entry(np.zeros(0), "log_p") == -math.inf
    with pytest.raises(ValueError, match="log_p must be finite"):
        largest_entry(np.array([-1.0, np.nan]), "log_p")


def _guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every bound: each call runs its guarded lines and scans its results."""
    for module in (
        kernel_module,
        projections_module,
        norms_module,
        softmax_module,
        backward_module,
    ):
        if hasattr(module, "fits"):
            monkeypatch.setattr(module, "fits", lambda *_: False)
    monkeypatch.setattr(self_attention_module, "may_overflow", lambda *_: True)
    monkeypatch.setattr(self_attention_module, "near_top", lambda *_: True)


def _block(dtype: type[np.floating[Any]], x_scale: float, w_scale: float, seed: int) -> Arrays:
    """The calls of a training step whose bounds are proven, on scaled data: every array."""
    rng = np.random.default_rng(seed)
    batch, n, d_model, heads, d_ff = 3, 5, 8, 2, 12

    def draw(*shape: int, scale: float = 1.0) -> NDArray[Any]:
        return (scale * rng.standard_normal(shape)).astype(dtype)

    h0 = draw(batch, n, d_model, scale=x_scale)
    gamma, beta = draw(d_model, scale=w_scale), draw(d_model, scale=w_scale)
    params = AttentionParams(
        w_q=draw(d_model, d_model, scale=w_scale),
        w_k=draw(d_model, d_model, scale=w_scale),
        w_v=draw(d_model, d_model, scale=w_scale),
        w_o=draw(d_model, d_model, scale=w_scale),
        b_q=draw(d_model, scale=w_scale),
        b_k=draw(d_model, scale=w_scale),
        b_v=draw(d_model, scale=w_scale),
        b_o=draw(d_model, scale=w_scale),
    )
    w_1, c_1 = draw(d_model, d_ff, scale=w_scale), draw(d_ff, scale=w_scale)
    out: Arrays = {}
    stats = layer_norm_stats(h0)
    out["a"] = a = layer_norm(h0, gamma, beta, stats=stats)
    att = multi_head_attention(a, params, n_heads=heads, lengths=np.array([5, 3, 1]))
    out["att"] = att.output
    out["u"] = u = linear(att.output, w_1, c_1)
    out["log_p"] = log_p = log_softmax(u)
    grad = draw(*u.shape, scale=x_scale)
    out["d_u"] = d_u = log_softmax_vjp(log_p, grad)
    lin = linear_vjp(att.output, w_1, d_u)
    out.update({"lin.x": lin.x, "lin.w": lin.weight, "lin.b": lin.bias})
    att_grads = attention_vjp(att, lin.x)
    out.update({f"att.{k}": v for k, v in att_grads.params.arrays().items()})
    out.update({"att.x": att_grads.x, "att.q": att_grads.q, "att.k": att_grads.k})
    norm = layer_norm_vjp(h0, att_grads.x, gamma, stats=stats)
    out.update({"ln.x": norm.x, "ln.gamma": norm.gamma, "ln.beta": norm.beta})
    new = params.map(lambda p, g: p - p.dtype.type(0.1) * g, att_grads.params)
    out.update({f"new.{k}": v for k, v in new.arrays().items()})
    return out


def _outcome(
    dtype: type[np.floating[Any]], x_scale: float, w_scale: float, seed: int
) -> Arrays | str:
    """The arrays of :func:`_block`, or the kind of error it raised."""
    try:
        return _block(dtype, x_scale, w_scale, seed)
    except FloatingPointError as error:
        return f"FloatingPointError: {error}"


def _assert_same(proven: Arrays | str, guarded: Arrays | str) -> None:
    if isinstance(guarded, str) or isinstance(proven, str):
        assert proven == guarded
        return
    assert proven.keys() == guarded.keys()
    for name, arr in proven.items():
        assert arr.dtype == guarded[name].dtype, name
        np.testing.assert_array_equal(arr, guarded[name], err_msg=name, strict=True)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_proven_and_guarded_lines_give_the_same_bits(
    dtype: type[np.floating[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On ordinary values the bounds hold (float16 aside): no scan, the same results."""
    proven = _outcome(dtype, 1.0, 0.3, seed=5)
    assert not isinstance(proven, str)
    assert all(np.isfinite(arr).all() for arr in proven.values())
    _guarded(monkeypatch)
    _assert_same(proven, _outcome(dtype, 1.0, 0.3, seed=5))


@given(
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    x_exponent=st.floats(0.0, 1.0),
    w_exponent=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_bounds_never_claim_an_overflow_away(
    dtype: type[np.floating[Any]], x_exponent: float, w_exponent: float, seed: int
) -> None:
    """Magnitudes up to the largest float: what the bounds skip, the guarded lines agree with.

    The exponents are fractions of the dtype's range (``max ** fraction``), so that the
    products land on both sides of every bound and of the overflow itself.
    """
    top = math.log2(float(np.finfo(dtype).max))
    x_scale, w_scale = 2.0 ** (x_exponent * top - 2), 2.0 ** (w_exponent * top / 2 - 2)
    proven = _outcome(dtype, x_scale, w_scale, seed)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _guarded(monkeypatch)
        guarded = _outcome(dtype, x_scale, w_scale, seed)
    _assert_same(proven, guarded)


def test_ordinary_values_are_not_scanned_for_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """float64 of ordinary size: every bound fits, and no result is scanned or guarded."""

    def refuse(*_: object, **__: object) -> Any:
        msg = "a result was scanned for overflow although a bound proved it finite"
        raise AssertionError(msg)

    for module, name in [
        (projections_module, "finite_results"),
        (norms_module, "finite_results"),
        (norms_module, "finite_result"),
        (softmax_module, "finite_result"),
        (backward_module, "arrays_finite"),
        (backward_module, "all_finite"),
        (kernel_module, "all_finite"),
        (kernel_module, "finite_result"),
        (self_attention_module, "within_values"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(kernel_module, "check_overflow", refuse)
    arrays = _block(np.float64, 1.0, 0.3, seed=2)
    assert all(np.isfinite(arr).all() for arr in arrays.values())
