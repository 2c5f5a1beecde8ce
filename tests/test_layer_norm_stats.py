"""Tests of :func:`~attention_from_scratch.norms.layer_norm_stats` and the ``stats=`` of
:func:`~attention_from_scratch.norms.layer_norm` and
:func:`~attention_from_scratch.norms.layer_norm_vjp`.

The statistics computed once must give the same bits as the functions computing them
themselves, on the kernel's rows-at-once path and on the scaled lines; ``mean``,
``rstd`` and ``x_hat`` are checked against loops written here in exact arithmetic.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

import attention_from_scratch.norms as norms_module
from attention_from_scratch._kernel import layer_norm_stats as kernel_stats
from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.norms import (
    LayerNormGrads,
    LayerNormStats,
    layer_norm,
    layer_norm_stats,
    layer_norm_vjp,
)
from tests.reference.all_ref import map_vectors as ref_map
from tests.reference.norms_ref import layer_norm_ref
from tests.tolerances import against_reference, assert_close

Array = NDArray[Any]
DTYPES = [np.float16, np.float32, np.float64]


def _grid(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> Array:
    """Multiples of 1/8 in [-4, 4]: every dtype holds them exactly (docs/guarantees.md)."""
    return (rng.integers(-32, 33, size=shape) / 8.0).astype(dtype)


def _both(
    x: Any, grad: Any, gamma: Any, beta: Any, eps: float
) -> tuple[LayerNormStats, tuple[Array, Array], tuple[LayerNormGrads, LayerNormGrads]]:
    """The statistics, and (with stats, without) of layer_norm and of layer_norm_vjp."""
    s = layer_norm_stats(x, eps=eps)
    forward = (
        layer_norm(x, gamma, beta, eps=eps, stats=s),
        layer_norm(x, gamma, beta, eps=eps),
    )
    backward = (
        layer_norm_vjp(x, grad, gamma, eps=eps, stats=s),
        layer_norm_vjp(x, grad, gamma, eps=eps),
    )
    return s, forward, backward


def _assert_same_bits(x: Any, grad: Any, gamma: Any, beta: Any, eps: float) -> None:
    s, (y_s, y), (g_s, g) = _both(x, grad, gamma, beta, eps)
    np.testing.assert_array_equal(y_s, y, strict=True)
    for field in ("x", "gamma", "beta", "mean", "rstd"):
        np.testing.assert_array_equal(getattr(g_s, field), getattr(g, field), strict=True)
    np.testing.assert_array_equal(s.mean, g.mean, strict=True)
    np.testing.assert_array_equal(s.rstd, g.rstd, strict=True)
    np.testing.assert_array_equal(s.x_hat, layer_norm(x, eps=eps), strict=True)


# --- the same bits with and without the statistics ---


@given(
    dtype=st.sampled_from(DTYPES),
    batch=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    d=st.integers(1, 40),
    with_gamma=st.booleans(),
    with_beta=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_stats_give_the_same_bits_as_without(
    dtype: Any, batch: list[int], d: int, with_gamma: bool, with_beta: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    shape = (*batch, d)
    x = rng.standard_normal(shape).astype(dtype)
    x[..., 0] += dtype(3.0)  # an offset: the corrected mean matters
    grad = rng.standard_normal(shape).astype(dtype)
    gamma = rng.standard_normal(d).astype(dtype) if with_gamma else None
    beta = rng.standard_normal(d).astype(dtype) if with_beta else None
    assert kernel_stats(x, 1e-5) is not None  # the rows-at-once path
    _assert_same_bits(x, grad, gamma, beta, 1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_gamma", [False, True])
@pytest.mark.parametrize(
    ("scale", "eps"),
    [(1.0, 0.0), (1.0, 1e-300), (1e-20, 1e-300), (math.inf, 1e-5)],
)
def test_stats_give_the_same_bits_on_the_scaled_lines(
    dtype: Any, with_gamma: bool, scale: float, eps: float
) -> None:
    """Tiny eps or huge entries (scale inf: the dtype's largest / 16): the scaled lines."""
    if scale == math.inf:
        if dtype == np.float16:
            pytest.skip("float16 squares do not overflow float32: the kernel computes them")
        scale = float(np.finfo(dtype).max) / 16
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2, 3, 5)) * scale).astype(dtype)
    if not x.all():
        pytest.skip(f"{scale:g} underflows in {np.dtype(dtype)}")
    assert kernel_stats(x, eps) is None  # eps below unscaled_eps, or the squares overflow
    grad = rng.standard_normal(x.shape).astype(dtype)
    gamma = rng.standard_normal(5).astype(dtype) if with_gamma else None
    beta = rng.standard_normal(5).astype(dtype)
    _assert_same_bits(x, grad, gamma, beta, eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stats_give_the_same_bits_when_every_row_is_scaled(
    monkeypatch: pytest.MonkeyPatch, dtype: Any
) -> None:
    """With the kernel switched off everywhere, stats and no stats take the scaled lines."""
    monkeypatch.setattr(norms_module, "layer_norm_rows", lambda *_: None)
    monkeypatch.setattr(norms_module, "layer_norm_vjp_rows", lambda *_: None)
    monkeypatch.setattr(norms_module, "stats_rows", lambda *_: None)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 17)).astype(dtype)
    x[0, 0] = 2.0  # a constant row: x_hat exactly 0
    grad = rng.standard_normal(x.shape).astype(dtype)
    gamma = rng.standard_normal(17).astype(dtype)
    beta = rng.standard_normal(17).astype(dtype)
    _assert_same_bits(x, grad, gamma, beta, 1e-5)
    _assert_same_bits(x, grad, None, None, 1e-5)
    np.testing.assert_array_equal(layer_norm_stats(x).x_hat[0, 0], 0.0)


# --- the statistics against loops in exact arithmetic ---


def _mean_ref(row: list[float]) -> float:
    return float(sum((Fraction(v) for v in row), Fraction(0)) / len(row))


def _rstd_ref(row: list[float], eps: float) -> float:
    """1 / sqrt(var + eps), var exact; the root and division in float64."""
    values = [Fraction(v) for v in row]
    mean = sum(values, Fraction(0)) / len(values)
    var = sum(((v - mean) ** 2 for v in values), Fraction(0)) / len(values)
    return 1.0 / math.sqrt(float(var + Fraction(eps)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-5, 0.25])
def test_statistics_match_the_loop_reference(dtype: Any, eps: float) -> None:
    rng = np.random.default_rng(11)
    x = _grid(rng, (3, 4, 9), dtype)
    x[0, 0] = 1.5  # constant: mean 1.5, x_hat 0, rstd 1 / sqrt(eps)
    s = layer_norm_stats(x, eps=eps)
    x64 = x.astype(np.float64)
    rows = x64.reshape(-1, 9).tolist()
    mean = np.array([_mean_ref(r) for r in rows]).reshape(3, 4)
    rstd = np.array([_rstd_ref(r, eps) for r in rows]).reshape(3, 4)
    x_hat = ref_map(lambda r: layer_norm_ref(r, eps=eps), x64)
    tol = against_reference(dtype)
    assert_close(s.mean, mean, tol=tol)
    assert_close(s.rstd, rstd, tol=tol)
    assert_close(s.x_hat, x_hat, tol=tol)
    assert s.x_hat.dtype == s.mean.dtype == s.rstd.dtype == s.x.dtype == dtype
    assert s.mean.shape == s.rstd.shape == (3, 4)
    assert s.x_hat.shape == s.x.shape == (3, 4, 9)
    assert s.eps == eps
    np.testing.assert_array_equal(s.x, x)
    np.testing.assert_array_equal(s.x_hat[0, 0], 0.0)


def test_running_example_statistics() -> None:
    ex = fluffy_blue_creature()
    s = layer_norm_stats(ex.x)
    np.testing.assert_array_equal(s.mean, [0.5, 0.5, 0.25])
    # fluffy and blue: variance 1/4; creature: variance 3/16
    assert_close(s.rstd, [1 / math.sqrt(0.25 + 1e-5)] * 2 + [1 / math.sqrt(3 / 16 + 1e-5)])
    assert_close(s.x_hat, ref_map(layer_norm_ref, ex.x))


def test_huge_entries_statistics() -> None:
    """Entries near 1e300: the squares overflow, the scaled lines do not."""
    x = np.array([[1e300, 2e300, 3e300, 4e300]])
    s = layer_norm_stats(x)
    assert_close(s.mean, [2.5e300])
    assert_close(s.rstd, [1 / (math.sqrt(1.25) * 1e300)])
    assert_close(s.x_hat, ref_map(layer_norm_ref, x))


# --- the rules of stats= ---


def test_x_may_be_the_same_object_a_copy_or_a_list() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4))
    grad = rng.standard_normal((3, 4))
    s = layer_norm_stats(x)
    expected = layer_norm(x)
    for same in (x, s.x, x.copy(), x.tolist(), np.asfortranarray(x)):
        np.testing.assert_array_equal(layer_norm(same, stats=s), expected, strict=True)
        np.testing.assert_array_equal(
            layer_norm_vjp(same, grad, stats=s).x, layer_norm_vjp(x, grad).x, strict=True
        )
    s_list = layer_norm_stats(x.tolist())  # a list: always validated, never trusted by identity
    np.testing.assert_array_equal(layer_norm(x, stats=s_list), expected, strict=True)
    ints = np.array([[1, 2, 3, 5]])
    s_int = layer_norm_stats(ints)  # integers: float64
    assert s_int.x.dtype == np.float64
    np.testing.assert_array_equal(layer_norm(ints, stats=s_int), layer_norm(ints), strict=True)


def test_errors_name_the_argument() -> None:
    x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    grad = np.ones_like(x)
    s = layer_norm_stats(x)
    other = x.copy()
    other[1, 2] = 5.0
    with pytest.raises(ValueError, match=r"^stats were computed from a different x: x\[1, 2\]"):
        layer_norm(other, stats=s)
    with pytest.raises(ValueError, match=r"^stats were computed from a different x"):
        layer_norm_vjp(other, grad, stats=s)
    with pytest.raises(ValueError, match=r"^x has shape \(1, 4\), but stats were computed"):
        layer_norm(x[:1], stats=s)
    with pytest.raises(ValueError, match=r"^x has shape \(2, 2, 4\)"):
        layer_norm_vjp(np.stack([x, x]), np.stack([grad, grad]), stats=s)
    with pytest.raises(TypeError, match=r"^x has dtype float32, but stats"):
        layer_norm(x.astype(np.float32), stats=s)
    nan = x.copy()
    nan[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"^x must be finite"):
        layer_norm(nan, stats=s)
    with pytest.raises(ValueError, match=r"^eps=0\.001 differs from the eps=1e-05"):
        layer_norm(x, eps=1e-3, stats=s)
    with pytest.raises(ValueError, match=r"^eps=0\.001 differs"):
        layer_norm_vjp(x, grad, eps=1e-3, stats=s)
    s_eps = layer_norm_stats(x, eps=1e-3)
    with pytest.raises(ValueError, match=r"^eps=1e-05 differs from the eps=0\.001"):
        layer_norm(x, stats=s_eps)  # the default eps is not stats.eps: say so
    np.testing.assert_array_equal(layer_norm(x, eps=1e-3, stats=s_eps), layer_norm(x, eps=1e-3))
    with pytest.raises(ValueError, match=r"^eps must be"):
        layer_norm(x, eps=-1.0, stats=s)
    with pytest.raises(TypeError, match=r"^stats must be a LayerNormStats, got"):
        layer_norm(x, stats=(s.mean, s.rstd))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^stats must be a LayerNormStats"):
        layer_norm_vjp(x, grad, stats=s.x_hat)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"gamma must have shape \(d,\)"):
        layer_norm(x, np.ones(3), stats=s)
    with pytest.raises(ValueError, match=r"grad"):
        layer_norm_vjp(x, grad[:1], stats=s)
    with pytest.raises(ValueError, match=r"^x must be finite"):
        layer_norm_stats([[1.0, np.inf]])
    with pytest.raises(ValueError, match=r"^x has a last axis of length 0"):
        layer_norm_stats(np.ones((2, 0)))
    with pytest.raises(TypeError, match=r"^x must be"):
        layer_norm_stats(np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"^x has a constant row at index \(1,\)"):
        layer_norm_stats([[1.0, 2.0], [3.0, 3.0]], eps=0.0)


def test_a_float16_rstd_too_large_is_an_error_as_without_stats() -> None:
    x = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]], dtype=np.float16)
    with pytest.raises(FloatingPointError, match=r"^layer_norm_stats: rstd overflows float16"):
        layer_norm_stats(x, eps=1e-12)
    with pytest.raises(FloatingPointError, match=r"^layer_norm_vjp: rstd overflows float16"):
        layer_norm_vjp(x, np.ones_like(x), eps=1e-12)


# --- a result never changes ---


def test_statistics_are_read_only_and_never_change() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 5))
    s = layer_norm_stats(x)
    before = {name: np.array(getattr(s, name)) for name in ("x", "x_hat", "mean", "rstd")}
    for name in before:
        arr = getattr(s, name)
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.eps = 1.0  # type: ignore[misc]
    y = layer_norm(x, stats=s)
    y[...] = 0.0  # the result is the caller's, not a view of the statistics
    grads = layer_norm_vjp(x, np.ones_like(x), stats=s)
    assert not grads.x.flags.writeable
    assert grads.mean is s.mean
    assert grads.rstd is s.rstd
    x[...] = 7.0  # the caller's array changes; the statistics do not
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(s, name), value, strict=True)
    np.testing.assert_array_equal(layer_norm(s.x, stats=s), layer_norm(before["x"]))
    assert "_source" not in repr(s)
    assert repr(s).startswith("LayerNormStats(x=array(")


def test_statistics_not_made_by_layer_norm_stats_are_refused() -> None:
    """The constructor and dataclasses.replace do not make the kept working arrays."""
    x = np.array([[0.0, 1.0, 0.0, 1.0]])
    s = layer_norm_stats(x)
    for made in (
        LayerNormStats(x=s.x, x_hat=s.x_hat, mean=s.mean, rstd=s.rstd, eps=s.eps),
        dataclasses.replace(s, eps=1e-3),
    ):
        with pytest.raises(TypeError, match=r"^stats must be made by layer_norm_stats"):
            layer_norm(x, eps=made.eps, stats=made)
        with pytest.raises(TypeError, match=r"^stats must be made by layer_norm_stats"):
            layer_norm_vjp(x, np.ones_like(x), eps=made.eps, stats=made)
