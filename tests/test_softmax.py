"""Tests of :mod:`attention_from_scratch.softmax`.

Values are checked five ways: against the loop-based float64 reference
(``tests/reference/softmax_ref.py``), against numbers computed by hand, against
``scipy.special``, against derivatives by the complex step (and torch autograd where
torch is installed), and through hypothesis properties. Every bad input of
docs/guarantees.md that concerns softmax is checked for its exception type and message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

import numpy as np
import pytest
import scipy.special
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal
from numpy.typing import NDArray

from attention_from_scratch.softmax import (
    entropy,
    log_softmax,
    logsumexp,
    softmax,
    softmax_jacobian,
    softmax_vjp,
)
from tests.reference import softmax_ref as ref
from tests.tolerances import REFERENCE, Tolerance, against_reference, assert_close

AnyArray = NDArray[Any]
FloatDType = type[np.floating[Any]]

FLOAT_DTYPES: list[FloatDType] = [np.float16, np.float32, np.float64]
LOW_DTYPES: list[FloatDType] = [np.float16, np.float32]
F64_MAX = float(np.finfo(np.float64).max)
F64_TINY = float(np.finfo(np.float64).tiny)  # smallest normal float64
F16_MAX = float(np.finfo(np.float16).max)  # 65504

# Against the float64 reference: REFERENCE (rtol = atol = 1e-12; tests/tolerances.py).
# Softmax weights below the smallest normal float64 have lost their relative precision
# by design, hence atol = tiny there.
REF_TINY = Tolerance(REFERENCE.rtol, F64_TINY)


GRAM_SCORES = np.array([[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]])
"""The Gram example's scaled scores x x^T / sqrt(4)."""

CREATURE_SCORES = np.array([2.0, 1.5, 0.0])
"""The 'creature' row of the fluffy-blue-creature example, scaled by 1/sqrt(4)."""

CUBE = np.array(
    [
        [[0.5, -1.0, 3.0, 0.0], [2.0, 2.0, -7.5, 1.25], [-0.125, 4.0, 1.0, -2.0]],
        [[10.0, -10.0, 0.0, 1e-3], [-np.inf, 0.0, 1.0, 2.0], [3.0, 3.0, 3.0, 3.0]],
    ]
)
"""A hand-picked (2, 3, 4) array with ties, a -inf and a wide row; every axis is valid."""

# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def elements(dtype: FloatDType, bound: float) -> st.SearchStrategy[Any]:
    """Finite floats of ``dtype`` in ``[-bound, bound]``."""
    return hnp.from_dtype(
        np.dtype(dtype),
        min_value=-bound,
        max_value=bound,
        allow_nan=False,
        allow_infinity=False,
    )


@st.composite
def scores_and_axis(
    draw: st.DrawFn,
    dtype: FloatDType = np.float64,
    bound: float | None = None,
    *,
    neg_inf: bool = False,
) -> tuple[AnyArray, int]:
    """An array of shape up to 3-d (sides up to 5) and an axis of it, possibly negative.

    ``bound=None`` draws the range too, from small to the whole finite range of the
    dtype. ``neg_inf=True`` sets some entries to ``-inf``, keeping one finite entry in
    every row along ``axis``.
    """
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    if bound is None:
        top = float(np.finfo(dtype).max)
        bound = draw(st.sampled_from([1.0, 10.0, 1e3, top]))
    x = draw(hnp.arrays(dtype, shape, elements=elements(dtype, bound)))
    if neg_inf:
        holes = draw(hnp.arrays(np.bool_, shape))
        np.moveaxis(holes, axis, 0)[0] = False  # the first entry of every row stays finite
        x[holes] = -np.inf
    return x, axis


@st.composite
def masks_for(draw: st.DrawFn, shape: tuple[int, ...]) -> AnyArray:
    """A boolean ``where`` array whose shape broadcasts to ``shape`` (sides 1 or equal)."""
    n_dims = draw(st.integers(0, len(shape)))
    sub = shape[len(shape) - n_dims :]
    mask_shape = tuple(draw(st.sampled_from([1, side])) for side in sub)
    return draw(hnp.arrays(np.bool_, mask_shape))


def probabilities(x: AnyArray, axis: int) -> NDArray[np.float64]:
    """Reference softmax of ``x`` in float64: valid weights to feed the derivative routines."""
    return ref.softmax(x, axis=axis)


def reduced_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """``shape`` without ``axis`` (the shape of a reduction)."""
    ax = axis % len(shape)
    return shape[:ax] + shape[ax + 1 :]


temperatures = st.sampled_from([1.0, 0.25, 0.5, 2.0, 3.0, 10.0])


def uniform(shape: tuple[int, ...], n: int, dtype: FloatDType) -> AnyArray:
    """Rows of the rounded ``1/n``, computed like the package: float16 via float32."""
    work = np.float32 if np.dtype(dtype) == np.float16 else dtype
    return np.full(shape, 1.0 / n).astype(work).astype(dtype)


# ---------------------------------------------------------------------------
# 1. Hand-computed numbers
# ---------------------------------------------------------------------------


def test_gram_example_row_0_is_e_1_e_over_2e_plus_1() -> None:
    e = math.e
    exact = np.array([e, 1.0, e]) / (2.0 * e + 1.0)
    weights = softmax(GRAM_SCORES)
    assert weights.shape == (3, 3)
    assert_allclose(weights[0], exact, rtol=1e-14, atol=0)
    # torch's values, as quoted in the design (6 decimals).
    assert_allclose(weights[0], [0.422319, 0.155362, 0.422319], rtol=0, atol=5e-7)
    # Rows 1 and 2 by hand: [1, e^4, e^2] / (1 + e^4 + e^2) and [e, e^2, e^2] / (e + 2e^2).
    e2, e4 = math.exp(2.0), math.exp(4.0)
    assert_allclose(weights[1], np.array([1.0, e4, e2]) / (1.0 + e4 + e2), rtol=1e-14)
    assert_allclose(weights[2], np.array([e, e2, e2]) / (e + 2.0 * e2), rtol=1e-14)


def test_gram_example_log_softmax_logsumexp_and_entropy_by_hand() -> None:
    e = math.e
    lse0 = math.log(2.0 * e + 1.0)
    assert_allclose(log_softmax(GRAM_SCORES)[0], [1.0 - lse0, -lse0, 1.0 - lse0], rtol=1e-15)
    assert_allclose(logsumexp(GRAM_SCORES)[0], lse0, rtol=1e-15)
    a, b = e / (2.0 * e + 1.0), 1.0 / (2.0 * e + 1.0)
    h0 = -(2.0 * a * math.log(a) + b * math.log(b))
    assert_allclose(entropy(softmax(GRAM_SCORES))[0], h0, rtol=1e-14)
    # Rows 0 and 2 are permutations of each other: same entropy and logsumexp (+1).
    assert_allclose(logsumexp(GRAM_SCORES)[2], lse0 + 1.0, rtol=1e-15)


def test_running_example_creature_row() -> None:
    # [e^2, e^1.5, 1] / (e^2 + e^1.5 + 1) = [7.3891, 4.4817, 1] / 12.8708. (The topic card
    # quotes [0.5745, 0.3485, 0.0770] as approximate; to 4 decimals it is the values below.)
    e2, e15 = math.exp(2.0), math.exp(1.5)
    exact = np.array([e2, e15, 1.0]) / (e2 + e15 + 1.0)
    weights = softmax(CREATURE_SCORES)
    assert_allclose(weights, exact, rtol=1e-14)
    assert_allclose(weights, [0.5741, 0.3482, 0.0777], rtol=0, atol=5e-5)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 100])
@pytest.mark.parametrize("value", [0.0, -3.5, 1e4])
def test_uniform_row_is_exactly_one_over_n(dtype: FloatDType, n: int, value: float) -> None:
    x = np.full((2, n), value, dtype=dtype)
    weights = softmax(x)
    assert weights.dtype == dtype
    # exp(0) = 1 exactly, the sum is exactly n: every weight is the rounded 1/n.
    assert_array_equal(weights, uniform((2, n), n, dtype))
    assert_allclose(entropy(np.full(n, 1.0 / n)), math.log(n), rtol=1e-14, atol=1e-15)


def test_logsumexp_of_1000_1000_is_1000_plus_log_2() -> None:
    assert float(logsumexp([1000.0, 1000.0])) == 1000.0 + math.log(2.0)
    assert float(logsumexp([-1000.0, -1000.0])) == -1000.0 + math.log(2.0)
    assert_allclose(log_softmax([1000.0, 1000.0]), [-math.log(2.0)] * 2, rtol=1e-15)


def test_temperature_by_hand() -> None:
    # softmax([0, 4, 2] / 10) = [1, e^0.4, e^0.2] / (1 + e^0.4 + e^0.2)
    e4, e2 = math.exp(0.4), math.exp(0.2)
    expected = np.array([1.0, e4, e2]) / (1.0 + e4 + e2)
    assert_allclose(softmax([0.0, 4.0, 2.0], temperature=10.0), expected, rtol=1e-15)
    assert_allclose(log_softmax([0.0, 4.0, 2.0], temperature=10.0), np.log(expected), rtol=1e-14)


def test_where_by_hand() -> None:
    allowed = np.array([[True, False, False], [True, True, False], [False, False, False]])
    weights = softmax(GRAM_SCORES, where=allowed)
    e4 = math.exp(4.0)
    expected = np.array([[1.0, 0.0, 0.0], [1.0 / (1.0 + e4), e4 / (1.0 + e4), 0.0], [0.0] * 3])
    assert_allclose(weights, expected, rtol=1e-15, atol=0)
    assert_array_equal(weights[~allowed], 0.0)


def test_entropy_by_hand() -> None:
    assert float(entropy([0.5, 0.5])) == math.log(2.0)
    h = entropy([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert_array_equal(h, [0.0, 0.0])
    assert not np.signbit(h).any()  # +0.0, not -0.0
    # Not renormalised: -(0.25 log 0.25) = 0.25 log 4.
    assert_allclose(entropy([0.25, 0.0]), 0.25 * math.log(4.0), rtol=1e-15)


def test_jacobian_and_vjp_by_hand() -> None:
    assert_array_equal(softmax_jacobian([0.5, 0.5]), [[0.25, -0.25], [-0.25, 0.25]])
    assert_array_equal(softmax_jacobian([[0.0, 1.0]]) + 0.0, [[[0.0, 0.0], [0.0, 0.0]]])
    # p = [0.25, 0.75], g = [1, 0]: inner = 0.25, out = [0.25 * 0.75, 0.75 * -0.25].
    assert_array_equal(softmax_vjp([0.25, 0.75], [1.0, 0.0]), [0.1875, -0.1875])
    jac = softmax_jacobian([0.25, 0.75])
    assert jac.shape == (2, 2)
    assert_array_equal(jac, [[0.1875, -0.1875], [-0.1875, 0.1875]])


# ---------------------------------------------------------------------------
# 2. The loop reference: hand-picked 3-d arrays along every axis, then hypothesis
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 4.0])
def test_cube_matches_reference_along_every_axis(axis: int, temperature: float) -> None:
    kwargs: dict[str, Any] = {"axis": axis, "temperature": temperature}
    weights = softmax(CUBE, **kwargs)
    assert weights.shape == CUBE.shape
    assert_close(weights, ref.softmax(CUBE, **kwargs), tol=REF_TINY)
    assert_close(log_softmax(CUBE, **kwargs), ref.log_softmax(CUBE, **kwargs))
    lse = logsumexp(CUBE, axis=axis)
    assert lse.shape == reduced_shape(CUBE.shape, axis)
    assert_close(lse, ref.logsumexp(CUBE, axis=axis))
    lse_keep = logsumexp(CUBE, axis=axis, keepdims=True)
    assert lse_keep.shape == np.sum(CUBE, axis=axis, keepdims=True).shape
    assert_close(lse_keep, ref.logsumexp(CUBE, axis=axis, keepdims=True))
    p = ref.softmax(CUBE, axis=axis)
    assert_close(entropy(p, axis=axis), ref.entropy(p, axis=axis))
    grad = np.cos(np.arange(CUBE.size, dtype=np.float64)).reshape(CUBE.shape)
    assert_close(softmax_vjp(p, grad, axis=axis), ref.softmax_vjp(p, grad, axis=axis))


def test_cube_jacobian_matches_reference() -> None:
    p = ref.softmax(CUBE)
    jac = softmax_jacobian(p)
    assert jac.shape == (2, 3, 4, 4)
    assert_close(jac, ref.softmax_jacobian(p))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_cube_where_matches_reference(axis: int) -> None:
    where = np.array([[True, False, True, True], [False, False, False, False], [True] * 4])
    weights = softmax(CUBE, axis=axis, where=where[None] if axis != 2 else where)
    expected = ref.softmax(CUBE, axis=axis, where=where[None] if axis != 2 else where)
    assert_close(weights, expected, tol=REF_TINY)


@given(scores_and_axis(neg_inf=True), temperatures, st.data())
def test_softmax_matches_reference_float64(
    drawn: tuple[AnyArray, int], temperature: float, data: st.DataObject
) -> None:
    x, axis = drawn
    weights = softmax(x, axis=axis, temperature=temperature)
    assert weights.shape == x.shape
    assert weights.dtype == np.float64
    expected = ref.softmax(x, axis=axis, temperature=temperature)
    assert_close(weights, expected, tol=REF_TINY)
    where = data.draw(masks_for(x.shape), label="where")
    masked = softmax(x, axis=axis, temperature=temperature, where=where)
    expected_masked = ref.softmax(x, axis=axis, temperature=temperature, where=where)
    assert_close(masked, expected_masked, tol=REF_TINY)


@given(scores_and_axis(neg_inf=True), temperatures)
def test_log_softmax_and_logsumexp_match_reference_float64(
    drawn: tuple[AnyArray, int], temperature: float
) -> None:
    x, axis = drawn
    assert_close(
        log_softmax(x, axis=axis, temperature=temperature),
        ref.log_softmax(x, axis=axis, temperature=temperature),
    )
    assert_close(logsumexp(x, axis=axis), ref.logsumexp(x, axis=axis))


@given(scores_and_axis(bound=50.0), st.data())
def test_entropy_jacobian_vjp_match_reference_float64(
    drawn: tuple[AnyArray, int], data: st.DataObject
) -> None:
    x, axis = drawn
    p = probabilities(x, axis)
    assert_close(entropy(p, axis=axis), ref.entropy(p, axis=axis))
    raw = np.abs(x)  # entropy does not renormalise: any non-negative array
    assert_close(entropy(raw, axis=axis), ref.entropy(raw, axis=axis))
    grad = data.draw(hnp.arrays(np.float64, x.shape, elements=elements(np.float64, 10.0)))
    assert_close(softmax_vjp(p, grad, axis=axis), ref.softmax_vjp(p, grad, axis=axis))
    p_last = np.moveaxis(p, axis, -1)
    assert_close(softmax_jacobian(p_last), ref.softmax_jacobian(p_last))


@given(st.sampled_from(LOW_DTYPES).flatmap(scores_and_axis))
def test_low_precision_matches_float64_reference(drawn: tuple[AnyArray, int]) -> None:
    x, axis = drawn
    weights = softmax(x, axis=axis)
    assert weights.dtype == x.dtype
    assert_close(weights, ref.softmax(x, axis=axis), dtype=x.dtype)
    lse = logsumexp(x, axis=axis)
    assert lse.dtype == x.dtype
    assert_close(lse, ref.logsumexp(x, axis=axis), dtype=x.dtype)
    p = probabilities(x, axis).astype(x.dtype)
    assert_close(entropy(p, axis=axis), ref.entropy(p, axis=axis), dtype=x.dtype)


@given(st.sampled_from(LOW_DTYPES).flatmap(lambda dt: scores_and_axis(dt, 3e4)))
def test_low_precision_log_softmax_matches_float64_reference(drawn: tuple[AnyArray, int]) -> None:
    x, axis = drawn
    out = log_softmax(x, axis=axis)
    assert out.dtype == x.dtype
    assert_close(out, ref.log_softmax(x, axis=axis), dtype=x.dtype)


# ---------------------------------------------------------------------------
# 3. scipy.special
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, -2])
def test_cube_matches_scipy(axis: int) -> None:
    finite = np.where(np.isneginf(CUBE), -5.0, CUBE)
    assert_close(softmax(finite, axis=axis), scipy.special.softmax(finite, axis=axis))
    assert_close(log_softmax(finite, axis=axis), scipy.special.log_softmax(finite, axis=axis))
    assert_close(logsumexp(finite, axis=axis), scipy.special.logsumexp(finite, axis=axis))


@given(scores_and_axis(bound=1e3))
def test_matches_scipy_special(drawn: tuple[AnyArray, int]) -> None:
    x, axis = drawn
    assert_close(softmax(x, axis=axis), scipy.special.softmax(x, axis=axis))
    assert_close(log_softmax(x, axis=axis), scipy.special.log_softmax(x, axis=axis))
    assert_close(logsumexp(x, axis=axis), scipy.special.logsumexp(x, axis=axis))
    assert_close(
        logsumexp(x, axis=axis, keepdims=True),
        scipy.special.logsumexp(x, axis=axis, keepdims=True),
    )
    p = softmax(x, axis=axis)
    assert_close(entropy(p, axis=axis), scipy.special.entr(p).sum(axis=axis))


# ---------------------------------------------------------------------------
# 4. Derivatives: complex step (exact to rounding) and torch autograd
# ---------------------------------------------------------------------------


def test_complex_step_reference_is_exact_on_a_hand_case() -> None:
    # At x = [0, 0]: p = [1/2, 1/2], J = [[1/4, -1/4], [-1/4, 1/4]] exactly.
    assert_allclose(ref.softmax_jacobian_complex_step([0.0, 0.0]), [[0.25, -0.25], [-0.25, 0.25]])


@pytest.mark.parametrize("row", [GRAM_SCORES[0], GRAM_SCORES[1], CREATURE_SCORES, CUBE[1, 1]])
def test_jacobian_matches_complex_step_on_examples(row: AnyArray) -> None:
    p = softmax(row)
    expected = np.array(ref.softmax_jacobian_complex_step([float(v) for v in row]))
    assert_allclose(softmax_jacobian(p), expected, rtol=1e-10, atol=1e-10)
    grad = np.linspace(-1.0, 2.0, row.size)
    assert_allclose(softmax_vjp(p, grad), grad @ expected, rtol=1e-10, atol=1e-10)


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5),
        elements=elements(np.float64, 30.0),
    ),
    temperatures,
    st.data(),
)
def test_jacobian_and_vjp_match_complex_step(
    x: AnyArray, temperature: float, data: st.DataObject
) -> None:
    p = softmax(x, temperature=temperature)
    jac = softmax_jacobian(p)
    assert jac.shape == (*x.shape, x.shape[-1])
    grad = data.draw(hnp.arrays(np.float64, x.shape, elements=elements(np.float64, 10.0)))
    vjp = softmax_vjp(p, grad)
    for index in np.ndindex(x.shape[:-1]):
        row = [float(v) for v in x[index]]
        # d softmax(x / T) / dx = J(p) / T
        expected = np.array(ref.softmax_jacobian_complex_step(row, temperature=temperature))
        assert_allclose(jac[index] / temperature, expected, rtol=1e-10, atol=1e-10)
        assert_allclose(vjp[index] / temperature, grad[index] @ expected, rtol=1e-10, atol=1e-10)


@pytest.mark.crosscheck
def test_matches_torch_float64() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(20240601)
    x = rng.normal(scale=3.0, size=(2, 3, 5))
    x[1, 2, 0] = -np.inf
    t = torch.from_numpy(x)
    for axis in (0, 1, 2, -1):
        assert_close(softmax(x, axis=axis), torch.softmax(t, dim=axis).numpy())
        assert_close(log_softmax(x, axis=axis), torch.log_softmax(t, dim=axis).numpy())
        assert_close(logsumexp(x, axis=axis), torch.logsumexp(t, dim=axis).numpy())
        # vjp by reverse-mode autograd: d<g, softmax(x)>/dx.
        finite = np.where(np.isneginf(x), -4.0, x)
        xt = torch.tensor(finite, dtype=torch.float64, requires_grad=True)
        g = rng.normal(size=x.shape)
        (expected_vjp,) = torch.autograd.grad(
            torch.softmax(xt, dim=axis), xt, grad_outputs=torch.from_numpy(g)
        )
        p = softmax(finite, axis=axis)
        assert_allclose(softmax_vjp(p, g, axis=axis), expected_vjp.numpy(), rtol=1e-10, atol=1e-10)
    # The full Jacobian of one row, by torch.autograd.functional.jacobian.
    for row in (GRAM_SCORES[0], GRAM_SCORES[1], CREATURE_SCORES, rng.normal(size=7)):
        expected_jac = torch.autograd.functional.jacobian(
            lambda r: torch.softmax(r, dim=-1), torch.from_numpy(np.array(row))
        )
        assert_allclose(
            softmax_jacobian(softmax(row)), expected_jac.numpy(), rtol=1e-10, atol=1e-10
        )
    # Temperature is softmax(x / T).
    assert_close(softmax(x, temperature=2.5), torch.softmax(t / 2.5, dim=-1).numpy())


# ---------------------------------------------------------------------------
# 5. Properties
# ---------------------------------------------------------------------------


any_dtype_scores = st.sampled_from(FLOAT_DTYPES).flatmap(scores_and_axis)


@given(any_dtype_scores, temperatures)
def test_rows_sum_to_one_and_weights_in_unit_interval(
    drawn: tuple[AnyArray, int], temperature: float
) -> None:
    x, axis = drawn
    weights = softmax(x, axis=axis, temperature=temperature)
    assert weights.dtype == x.dtype
    assert weights.shape == x.shape
    # 0 <= w <= 1 exactly (e_i <= sum e, so the rounded quotient is <= 1).
    assert (weights >= 0).all()
    assert (weights <= 1).all()
    sums = weights.astype(np.float64).sum(axis=axis)
    assert_close(sums, 1.0, dtype=x.dtype)


@given(any_dtype_scores, st.integers(-64, 64))
def test_adding_a_constant_changes_nothing(drawn: tuple[AnyArray, int], shift: int) -> None:
    x, axis = drawn
    # Make x + c exact in every dtype (multiples of 1/16 below 64), so only softmax can differ.
    x = (np.round(np.clip(x.astype(np.float64), -64, 64) * 16) / 16).astype(x.dtype)
    shifted = (x.astype(np.float64) + shift).astype(x.dtype)
    assert_array_equal(shifted.astype(np.float64), x.astype(np.float64) + shift)
    assert_close(softmax(shifted, axis=axis), softmax(x, axis=axis), dtype=x.dtype)
    assert_close(log_softmax(shifted, axis=axis), log_softmax(x, axis=axis), dtype=x.dtype)
    # LSE(x + c) = LSE(x) + c, with LSE(x) in float64 (c added to a rounded float16 LSE
    # would cancel digits that the package does not lose).
    expected_lse = ref.logsumexp(x, axis=axis) + shift
    assert_close(logsumexp(shifted, axis=axis), expected_lse, dtype=x.dtype)


@given(any_dtype_scores, temperatures)
def test_monotone_larger_score_never_gets_smaller_weight(
    drawn: tuple[AnyArray, int], temperature: float
) -> None:
    x, axis = drawn
    weights = np.moveaxis(softmax(x, axis=axis, temperature=temperature), axis, -1)
    rows = np.moveaxis(x, axis, -1)
    # x_i > x_j  =>  w_i >= w_j, for every pair in every row.
    bigger = rows[..., :, None] > rows[..., None, :]
    not_smaller = weights[..., :, None] >= weights[..., None, :]
    assert not (bigger & ~not_smaller).any()
    # Equal scores get bit-identical weights.
    equal = rows[..., :, None] == rows[..., None, :]
    same = weights[..., :, None] == weights[..., None, :]
    assert not (equal & ~same).any()


@given(
    st.sampled_from(FLOAT_DTYPES).flatmap(lambda dt: scores_and_axis(dt, 100.0)),
    st.sampled_from([1e-4, 1e-6, 1e-30]),
)
def test_temperature_to_zero_gives_argmax_one_hot(
    drawn: tuple[AnyArray, int], temperature: float
) -> None:
    x, axis = drawn
    # A unique maximum per row, at least 1/2 above the rest: exp(-0.5 / 1e-4) = 0.
    top = np.argmax(x, axis=axis, keepdims=True)
    np.put_along_axis(x, top, np.max(x, axis=axis, keepdims=True) + 1, axis=axis)
    ordered = np.sort(x.astype(np.float64), axis=axis)
    if x.shape[axis] > 1:
        gap = np.take(ordered, -1, axis=axis) - np.take(ordered, -2, axis=axis)
        assume(bool((gap >= 0.5).all()))
    one_hot = np.zeros(x.shape, dtype=x.dtype)
    np.put_along_axis(one_hot, top, 1.0, axis=axis)
    assert_array_equal(softmax(x, axis=axis, temperature=temperature), one_hot)


@given(any_dtype_scores, st.sampled_from([1e20, 1e100, 1e300]))
def test_temperature_to_infinity_gives_uniform(
    drawn: tuple[AnyArray, int], temperature: float
) -> None:
    x, axis = drawn
    x = np.clip(x, -1e3, 1e3)  # |x - m| / T rounds every exponent to exp(0) = 1
    weights = softmax(x, axis=axis, temperature=temperature)
    assert_array_equal(weights, uniform(x.shape, x.shape[axis], x.dtype.type))


@given(st.sampled_from(FLOAT_DTYPES).flatmap(lambda dt: scores_and_axis(dt, neg_inf=True)))
def test_neg_inf_entries_get_exactly_zero(drawn: tuple[AnyArray, int]) -> None:
    x, axis = drawn
    weights = softmax(x, axis=axis)
    holes = np.isneginf(x)
    assert_array_equal(weights[holes], 0.0)
    assert_close(weights.astype(np.float64).sum(axis=axis), 1.0, dtype=x.dtype)
    assert np.isneginf(log_softmax(x, axis=axis)[holes]).all()
    # -inf entries contribute nothing to logsumexp.
    assert_close(logsumexp(x, axis=axis), ref.logsumexp(x, axis=axis), dtype=x.dtype)


@given(st.sampled_from(FLOAT_DTYPES).flatmap(scores_and_axis), st.data())
def test_where_false_is_exactly_zero_and_empty_rows_are_zero(
    drawn: tuple[AnyArray, int], data: st.DataObject
) -> None:
    x, axis = drawn
    where = data.draw(masks_for(x.shape), label="where")
    weights = softmax(x, axis=axis, where=where)
    assert weights.dtype == x.dtype
    full = np.broadcast_to(where, x.shape)
    assert_array_equal(weights[~full], 0.0)
    any_allowed = full.any(axis=axis)
    sums = weights.astype(np.float64).sum(axis=axis)
    assert_array_equal(sums[~any_allowed], 0.0)
    assert_close(sums[any_allowed], 1.0, dtype=x.dtype)
    # Entries that are not allowed are not read: changing them changes nothing.
    scrambled = np.where(full, x, np.array(np.nan, dtype=x.dtype))
    assert_array_equal(softmax(scrambled, axis=axis, where=where), weights)


@given(any_dtype_scores)
def test_entropy_between_zero_and_log_n(drawn: tuple[AnyArray, int]) -> None:
    x, axis = drawn
    p = softmax(x, axis=axis)
    h = entropy(p, axis=axis)
    assert h.dtype == x.dtype
    assert h.shape == reduced_shape(x.shape, axis)
    n = x.shape[axis]
    assert (h >= 0).all()
    rtol, atol = astuple(against_reference(x.dtype))
    assert (h.astype(np.float64) <= math.log(n) * (1 + rtol) + atol).all()


@given(any_dtype_scores)
def test_jacobian_rows_sum_to_zero_and_symmetric(drawn: tuple[AnyArray, int]) -> None:
    x, _ = drawn
    p = softmax(x)
    jac = softmax_jacobian(p)
    assert jac.dtype == x.dtype
    assert jac.shape == (*x.shape, x.shape[-1])
    assert_array_equal(jac, np.swapaxes(jac, -1, -2))
    # Row sums are p_i (1 - sum_j p_j) ~ 0; measured against the scale of the entries.
    rtol, atol = astuple(against_reference(x.dtype))
    row_sums = jac.astype(np.float64).sum(axis=-1)
    assert_allclose(row_sums, 0.0, rtol=0, atol=max(atol, rtol) * x.shape[-1])


@given(any_dtype_scores, st.data())
def test_vjp_equals_grad_times_jacobian(drawn: tuple[AnyArray, int], data: st.DataObject) -> None:
    x, axis = drawn
    p = softmax(x, axis=axis)
    grad = data.draw(hnp.arrays(x.dtype, x.shape, elements=elements(x.dtype.type, 10.0)))
    vjp = softmax_vjp(p, grad, axis=axis)
    assert vjp.dtype == x.dtype
    assert vjp.shape == x.shape
    p_last = np.moveaxis(p, axis, -1).astype(np.float64)
    g_last = np.moveaxis(grad, axis, -1).astype(np.float64)
    jac = ref.softmax_jacobian(p_last)
    expected = np.moveaxis(np.einsum("...i,...ij->...j", g_last, jac), -1, axis)
    rtol, atol = astuple(against_reference(x.dtype))
    # Entries are bounded by max|g| = 10: compare on that scale.
    assert_allclose(vjp, expected, rtol=rtol, atol=10 * max(atol, rtol))


@given(any_dtype_scores, temperatures)
def test_log_softmax_is_log_of_softmax(drawn: tuple[AnyArray, int], temperature: float) -> None:
    x, axis = drawn
    log_w = log_softmax(x, axis=axis, temperature=temperature)
    assert log_w.dtype == x.dtype
    w = softmax(x, axis=axis, temperature=temperature).astype(np.float64)
    not_tiny = w > 1e-3
    with np.errstate(divide="ignore"):
        expected = np.log(w)
    rtol, atol = astuple(against_reference(x.dtype))
    # Where w >= 1e-3, log w is at most 7 in size and its error ~ the relative error of w.
    assert_allclose(log_w[not_tiny], expected[not_tiny], rtol=rtol, atol=10 * max(atol, rtol))
    assert (log_w <= 0).all()


@given(st.sampled_from(FLOAT_DTYPES), hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
def test_dtype_is_preserved(dtype: FloatDType, shape: tuple[int, ...]) -> None:
    x = np.linspace(-2.0, 2.0, math.prod(shape)).reshape(shape).astype(dtype)
    p = softmax(x)
    for out in (
        p,
        log_softmax(x),
        logsumexp(x),
        logsumexp(x, keepdims=True),
        entropy(p),
        softmax_jacobian(p),
        softmax_vjp(p, x),
        softmax(x, where=x > 0),
        softmax(x, temperature=0.5),
    ):
        assert out.dtype == dtype


@pytest.mark.parametrize(
    "make",
    [
        lambda n: np.arange(n, dtype=np.int64),
        lambda n: np.arange(n, dtype=np.uint8),
        lambda n: np.arange(n, dtype=np.int16),
        lambda n: list(range(n)),
    ],
    ids=["int64", "uint8", "int16", "list"],
)
def test_integer_input_gives_float64(make: Callable[[int], Any]) -> None:
    x = make(4)
    as_float = np.arange(4, dtype=np.float64)
    for fn in (softmax, log_softmax, logsumexp, entropy, softmax_jacobian):
        out = fn(x)
        assert out.dtype == np.float64
        assert_array_equal(out, fn(as_float))
    assert softmax_vjp(x, x).dtype == np.float64


# ---------------------------------------------------------------------------
# 6. Large magnitudes: exact results, no warning (pytest turns warnings into errors)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_huge_float64_scores_are_exact(temperature: float) -> None:
    kw: dict[str, Any] = {"temperature": temperature}
    assert_array_equal(softmax([1e308, -1e308], **kw), [1.0, 0.0])
    assert_array_equal(softmax([-1e308, 1e308], **kw), [0.0, 1.0])
    assert_array_equal(softmax([1e308, 1e308], **kw), [0.5, 0.5])
    assert_array_equal(softmax([-1e308, -1e308], **kw), [0.5, 0.5])
    assert_array_equal(softmax([F64_MAX, -F64_MAX, 0.0], **kw), [1.0, 0.0, 0.0])
    assert_array_equal(softmax([-F64_MAX, -np.inf, -F64_MAX], **kw), [0.5, 0.0, 0.5])
    assert_allclose(log_softmax([1e308, 1e308], **kw), [-math.log(2.0)] * 2, rtol=1e-15)
    assert_allclose(log_softmax([-1e308, -1e308], **kw), [-math.log(2.0)] * 2, rtol=1e-15)
    # -2e308 is below -max: its correctly rounded log weight is -inf.
    assert_array_equal(log_softmax([1e308, -1e308], **kw), [0.0, -np.inf])


def test_huge_float64_logsumexp_is_exact() -> None:
    assert float(logsumexp([F64_MAX, F64_MAX])) == F64_MAX  # max + log 2 rounds to max
    assert float(logsumexp([1e308, 1e308])) == 1e308 + math.log(2.0)
    assert float(logsumexp([-1e308, -1e308])) == -1e308 + math.log(2.0)
    assert float(logsumexp([F64_MAX, -F64_MAX])) == F64_MAX
    assert float(logsumexp([-np.inf, -np.inf])) == -np.inf
    assert_array_equal(logsumexp(np.full((2, 3), -np.inf)), [-np.inf, -np.inf])


@pytest.mark.parametrize(("dtype", "big"), [(np.float16, F16_MAX), (np.float32, 3.4e38)])
def test_huge_low_precision_scores_are_exact(dtype: FloatDType, big: float) -> None:
    x = np.array([big, -big], dtype=dtype)
    assert_array_equal(softmax(x), np.array([1.0, 0.0], dtype=dtype))
    assert_array_equal(softmax(x[::-1], temperature=0.5), np.array([0.0, 1.0], dtype=dtype))
    assert_array_equal(
        softmax(np.array([big, big], dtype=dtype)), np.array([0.5, 0.5], dtype=dtype)
    )
    assert_array_equal(
        softmax(np.array([-big, -big, -big, -big], dtype=dtype)), np.full(4, 0.25, dtype=dtype)
    )
    lse = logsumexp(np.array([big, big], dtype=dtype))
    assert lse.dtype == dtype
    assert lse == np.array(big, dtype=dtype)  # big + log 2 rounds to big
    assert_close(log_softmax(np.array([big, big], dtype=dtype)), [-math.log(2.0)] * 2, dtype=dtype)


@pytest.mark.parametrize(("dtype", "big"), [(np.float16, F16_MAX), (np.float32, 3.4e38)])
def test_huge_low_precision_log_softmax_rounds_to_minus_inf_without_warning(
    dtype: FloatDType, big: float
) -> None:
    # log softmax([big, -big]) = [0, -2 big]; -2 big is below -max of the dtype, so the
    # correctly rounded result is -inf -- as in float64 for [1e308, -1e308] -- and no
    # "overflow encountered in cast" RuntimeWarning may escape.
    out = log_softmax(np.array([big, -big], dtype=dtype))
    assert out.dtype == dtype
    assert_array_equal(out, np.array([0.0, -np.inf], dtype=dtype))


# ---------------------------------------------------------------------------
# 7. Extreme temperatures in float16/float32 (computed in float32)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1e-30, 1e-50, 1e-300, 5e-324])
def test_tiny_temperature_gives_one_hot_in_every_dtype(
    dtype: FloatDType, temperature: float
) -> None:
    # A valid temperature (finite, > 0) that underflows to 0 in float32 must still give
    # the argmax one-hot, not 0/0 = NaN with a divide-by-zero RuntimeWarning.
    x = np.array([[1.0, 3.0, 2.0], [-np.inf, 0.0, -1.0]], dtype=dtype)
    expected = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    assert_array_equal(softmax(x, temperature=temperature), expected)
    assert_array_equal(
        softmax(x, temperature=temperature, where=np.array([True, True, False])), expected
    )
    # log softmax(x / T) = (x - max) / T - log(1 + 0): huge and negative, or -inf once it
    # is below the dtype's range; never NaN.
    log_w = log_softmax(x, temperature=temperature)
    assert log_w.dtype == dtype
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        expected_log = ((x64 - x64.max(axis=-1, keepdims=True)) / temperature).astype(dtype)
    assert_array_equal(np.isneginf(log_w), np.isneginf(expected_log))
    finite = np.isfinite(expected_log)
    assert_close(log_w[finite], expected_log[finite], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1e39, 1e100, 1e300, F64_MAX])
def test_huge_temperature_gives_uniform_over_allowed_entries_in_every_dtype(
    dtype: FloatDType, temperature: float
) -> None:
    # A temperature that overflows to inf in float32 must not turn -inf / inf into NaN.
    x = np.array([[-np.inf, 1.0, 2.0], [0.0, 5.0, -3.0]], dtype=dtype)
    expected = np.vstack([np.array([0.0, 0.5, 0.5], dtype=dtype), uniform((3,), 3, dtype)])
    assert_array_equal(softmax(x, temperature=temperature), expected)
    where = np.array([[True, True, True], [True, False, True]])
    expected_where = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]).astype(dtype)
    assert_array_equal(softmax(x, temperature=temperature, where=where), expected_where)
    log_w = log_softmax(x, temperature=temperature)
    assert_array_equal(np.isneginf(log_w), np.isneginf(x))
    assert_close(log_w[1], np.full(3, -math.log(3.0)).astype(dtype), dtype=dtype)


# ---------------------------------------------------------------------------
# 8. Bad inputs (docs/guarantees.md): exception type, and the message names the argument
# ---------------------------------------------------------------------------

Fn = Callable[..., Any]

X_FUNCTIONS: list[tuple[str, Fn]] = [
    ("x", softmax),
    ("x", log_softmax),
    ("x", logsumexp),
    ("p", entropy),
    ("p", softmax_jacobian),
    ("p", lambda a: softmax_vjp(a, np.full((2, 3), 1 / 3))),
    ("grad", lambda a: softmax_vjp(np.full((2, 3), 1 / 3), a)),
]
X_IDS = ["softmax", "log_softmax", "logsumexp", "entropy", "jacobian", "vjp-p", "vjp-grad"]


@pytest.mark.parametrize(("name", "fn"), X_FUNCTIONS[:6], ids=X_IDS[:6])
@pytest.mark.parametrize("zero_d", [1.0, np.float64(2.0), np.array(3.0), 4])
def test_zero_d_input_is_value_error(name: str, fn: Fn, zero_d: object) -> None:
    with pytest.raises(ValueError, match=rf"^{name} needs at least one dimension"):
        fn(zero_d)


def test_zero_d_grad_is_a_shape_error() -> None:
    with pytest.raises(ValueError, match=r"^p, grad must have the same shape.*grad \(\)"):
        softmax_vjp([0.5, 0.5], 1.0)


@pytest.mark.parametrize("fn", [softmax, log_softmax, logsumexp], ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_nan_is_value_error_with_index(fn: Fn, axis: int) -> None:
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, np.nan]])
    with pytest.raises(ValueError, match=r"^x must not contain NaN.*index \(1, 2\)"):
        fn(x, axis=axis)


@pytest.mark.parametrize("fn", [softmax, log_softmax, logsumexp], ids=lambda f: f.__name__)
def test_nan_next_to_inf_is_reported_as_nan(fn: Fn) -> None:
    x = np.array([[1.0, np.inf, 3.0], [4.0, np.nan, -np.inf]])
    with pytest.raises(ValueError, match=r"^x must not contain NaN.*index \(1, 1\)"):
        fn(x)


@pytest.mark.parametrize("fn", [softmax, log_softmax, logsumexp], ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [-1, 0])
def test_plus_inf_is_value_error_with_index(fn: Fn, axis: int) -> None:
    x = np.array([[1.0, 2.0, 3.0], [4.0, np.inf, 6.0]])
    with pytest.raises(ValueError, match=r"^x must not contain \+inf.*index \(1, 1\)"):
        fn(x, axis=axis)


@pytest.mark.parametrize("axis", [-1, 0])
def test_row_all_neg_inf_without_where_is_value_error_naming_where(axis: int) -> None:
    x = np.array([[1.0, -np.inf], [2.0, -np.inf]])
    x = x if axis == 0 else x.T
    with pytest.raises(ValueError, match=r"^x has a row whose entries are all -inf.*`where=`"):
        softmax(x, axis=axis)
    with pytest.raises(ValueError, match=r"^x has a row whose entries are all -inf"):
        log_softmax(x, axis=axis)
    # With `where` such a row is simply empty: all zeros. logsumexp gives log 0 = -inf.
    assert_array_equal(
        softmax(x, axis=axis, where=np.ones(x.shape, dtype=bool)).sum(axis=axis), [1.0, 0.0]
    )
    assert np.isneginf(logsumexp(x, axis=axis)).tolist() == [False, True]


@pytest.mark.parametrize(
    ("fn", "name"),
    [
        (entropy, "p"),
        (softmax_jacobian, "p"),
        (lambda a: softmax_vjp(a, np.zeros((2, 3))), "p"),
        (lambda a: softmax_vjp(np.full((2, 3), 1 / 3), a), "grad"),
    ],
    ids=["entropy", "jacobian", "vjp-p", "vjp-grad"],
)
@pytest.mark.parametrize(
    ("value", "what"), [(np.nan, "NaN"), (np.inf, r"\+inf"), (-np.inf, "-inf")]
)
def test_non_finite_weights_are_value_errors(fn: Fn, name: str, value: float, what: str) -> None:
    p = np.full((2, 3), 1 / 3)
    p[1, 0] = value
    with pytest.raises(
        ValueError, match=rf"^{name} must be finite: found {what} at index \(1, 0\)"
    ):
        fn(p)


def test_entropy_of_a_negative_entry_is_value_error() -> None:
    with pytest.raises(
        ValueError, match=r"^p must be non-negative: found -0.25 at index \(1, 2\)"
    ):
        entropy([[0.5, 0.5, 0.0], [0.75, 0.5, -0.25]])
    with pytest.raises(ValueError, match=r"^p must be non-negative"):
        entropy(np.array([-1e-300]))
    assert float(entropy([-0.0, 1.0])) == 0.0  # -0.0 is not negative


@pytest.mark.parametrize("fn", [softmax, log_softmax], ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "temperature",
    [0.0, -0.0, -1.0, -1e-300, np.nan, np.inf, -np.inf, np.float32(np.nan), 10**400],
    ids=["0", "-0", "-1", "-tiny", "nan", "inf", "-inf", "f32-nan", "int-10**400"],
)
def test_bad_temperature_value_is_value_error(fn: Fn, temperature: object) -> None:
    # 10**400 is an int too large for a float: infinite, so a ValueError naming
    # `temperature` (not float()'s bare OverflowError).
    with pytest.raises(ValueError, match=r"^temperature must be finite and > 0"):
        fn([1.0, 2.0], temperature=temperature)


@pytest.mark.parametrize("fn", [softmax, log_softmax], ids=lambda f: f.__name__)
@pytest.mark.parametrize("temperature", ["1.0", None, True, [1.0], np.array([1.0]), 1 + 0j])
def test_bad_temperature_type_is_type_error(fn: Fn, temperature: object) -> None:
    with pytest.raises(TypeError, match=r"^temperature must be a real number"):
        fn([1.0, 2.0], temperature=temperature)


@pytest.mark.parametrize("temperature", [2, np.float32(2.0), np.int64(2), np.float64(2.0)])
def test_numpy_and_int_temperatures_are_accepted(temperature: object) -> None:
    expected = softmax([1.0, 2.0, 4.0], temperature=2.0)
    assert_array_equal(softmax([1.0, 2.0, 4.0], temperature=temperature), expected)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("where", "dtype"),
    [
        ([1, 0, 1], "int64"),
        (np.array([1, 0, 1], dtype=np.uint8), "uint8"),
        (np.array([1.0, 0.0, 1.0]), "float64"),
        (np.array(["a", "b", "c"]), "<U1"),
    ],
)
def test_where_not_bool_is_type_error_naming_dtype(where: object, dtype: str) -> None:
    with pytest.raises(TypeError, match=rf"^where must be bool.*got {dtype}"):
        softmax([[1.0, 2.0, 3.0]], where=where)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("where", "pattern"),
    [
        ("True", r"^where must be a boolean array"),
        (np.ma.array([True, False, True]), r"^where must be a plain boolean array"),
    ],
)
def test_where_of_the_wrong_kind_is_type_error(where: object, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        softmax([1.0, 2.0, 3.0], where=where)  # type: ignore[call-overload]


def test_ragged_where_is_value_error() -> None:
    with pytest.raises(ValueError, match=r"^where must be a rectangular boolean array"):
        softmax([[1.0, 2.0], [3.0, 4.0]], where=[[True, False], [True]])


@pytest.mark.parametrize(
    ("where_shape", "x_shape"), [((2,), (2, 3)), ((3, 3), (2, 3)), ((2, 2, 3), (2, 3))]
)
def test_where_not_broadcastable_is_value_error(
    where_shape: tuple[int, ...], x_shape: tuple[int, ...]
) -> None:
    shapes = rf"^where of shape \({where_shape[0]}.*does not broadcast to x of shape \(2, 3\)"
    with pytest.raises(ValueError, match=shapes):
        softmax(np.zeros(x_shape), where=np.ones(where_shape, dtype=bool))


def test_where_broadcasts_from_a_row_and_a_scalar() -> None:
    x = GRAM_SCORES
    row = np.array([True, True, False])
    assert_array_equal(softmax(x, where=row), softmax(x, where=np.tile(row, (3, 1))))
    assert_array_equal(softmax(x, where=np.array(False)), np.zeros((3, 3)))
    assert_array_equal(softmax(x, where=True), softmax(x))
    column = np.array([[True], [False], [True]])
    assert_array_equal(softmax(x, where=column)[1], [0.0, 0.0, 0.0])


def test_numpy_integer_axis_is_accepted() -> None:
    assert_array_equal(softmax(CUBE, axis=np.int64(1)), softmax(CUBE, axis=1))  # type: ignore[call-overload]


def test_vjp_shape_mismatch_is_value_error() -> None:
    with pytest.raises(
        ValueError, match=r"^p, grad must have the same shape, got p \(2, 3\), grad \(3,\)"
    ):
        softmax_vjp(np.full((2, 3), 1 / 3), np.ones(3))


def test_vjp_dtype_mismatch_is_type_error() -> None:
    with pytest.raises(
        TypeError, match=r"^p, grad must share one floating dtype.*p float64, grad float32"
    ):
        softmax_vjp(np.full(3, 1 / 3), np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match=r"grad float16"):
        softmax_vjp(np.full(3, 1 / 3, dtype=np.float32), np.ones(3, dtype=np.float16))


# ---------------------------------------------------------------------------
# 9. Empty arrays, layouts, and inputs that must not change
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_empty_batch_gives_empty_result_of_the_right_shape(dtype: FloatDType) -> None:
    x = np.zeros((0, 4), dtype=dtype)
    cases: list[tuple[AnyArray, tuple[int, ...]]] = [
        (softmax(x), (0, 4)),
        (softmax(x, where=np.ones(4, dtype=bool)), (0, 4)),
        (log_softmax(x), (0, 4)),
        (logsumexp(x), (0,)),
        (logsumexp(x, keepdims=True), (0, 1)),
        (entropy(x), (0,)),
        (softmax_jacobian(x), (0, 4, 4)),
        (softmax_vjp(x, x), (0, 4)),
        (softmax(np.zeros((2, 0, 3), dtype=dtype), axis=-1), (2, 0, 3)),
    ]
    for out, shape in cases:
        assert out.shape == shape
        assert out.dtype == dtype
    assert softmax(np.zeros((0, 4), dtype=np.int64)).dtype == np.float64


def test_zero_length_axis() -> None:
    x = np.zeros((2, 0))
    assert softmax(x).shape == (2, 0)
    assert log_softmax(x).shape == (2, 0)
    assert_array_equal(logsumexp(x), [-np.inf, -np.inf])  # log of an empty sum
    assert_array_equal(entropy(x), [0.0, 0.0])  # an empty sum
    assert softmax_jacobian(x).shape == (2, 0, 0)


def _contiguous_cases() -> list[tuple[str, AnyArray]]:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.0, 3.0, size=(6, 5, 40))  # non-negative: also valid weights
    return [
        ("fortran", np.asfortranarray(base)),
        ("reversed", base[::-1, :, ::-1]),
        ("strided", base[:, ::2, ::3]),
        ("transposed", base.transpose(2, 0, 1)),
        ("broadcast", np.broadcast_to(base[:1], base.shape)),
    ]


LAYOUTS = _contiguous_cases()
LAYOUT_IDS = [name for name, _ in LAYOUTS]

LAYOUT_FUNCTIONS: list[tuple[str, Callable[[AnyArray, int], AnyArray]]] = [
    ("softmax", lambda a, ax: softmax(a, axis=ax)),
    ("softmax-where", lambda a, ax: softmax(a, axis=ax, where=np.ones(a.shape[-1], dtype=bool))),
    ("softmax-T", lambda a, ax: softmax(a, axis=ax, temperature=0.7)),
    ("log_softmax", lambda a, ax: log_softmax(a, axis=ax)),
    ("logsumexp", lambda a, ax: logsumexp(a, axis=ax)),
    ("entropy", lambda a, ax: entropy(a, axis=ax)),
    ("softmax_vjp", lambda a, ax: softmax_vjp(a, a, axis=ax)),
    ("softmax_jacobian", lambda a, _: softmax_jacobian(a)),
]


@pytest.mark.parametrize(("name", "fn"), LAYOUT_FUNCTIONS, ids=[n for n, _ in LAYOUT_FUNCTIONS])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_memory_layout_does_not_change_results(
    name: str, fn: Callable[[AnyArray, int], AnyArray], layout: tuple[str, AnyArray], axis: int
) -> None:
    _, x = layout
    contiguous = np.ascontiguousarray(x)
    assert_array_equal(fn(x, axis), fn(contiguous, axis), err_msg=name)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_inputs_are_not_modified(dtype: FloatDType) -> None:
    x = CUBE.astype(dtype)
    x_before = x.copy()
    where = np.array([True, False, True, True])
    where_before = where.copy()
    p = softmax(x)
    p_before = p.copy()
    grad = np.linspace(-1.0, 1.0, x.size).reshape(x.shape).astype(dtype)
    grad_before = grad.copy()
    outputs = [
        softmax(x, where=where, temperature=0.5),
        softmax(x, axis=0),
        log_softmax(x, temperature=2.0),
        logsumexp(x, axis=1),
        entropy(p),
        softmax_jacobian(p),
        softmax_vjp(p, grad),
    ]
    assert_array_equal(x, x_before)
    assert_array_equal(where, where_before)
    assert_array_equal(p, p_before)
    assert_array_equal(grad, grad_before)
    for out in outputs:  # results are new arrays: writing to them cannot reach an input
        for arg in (x, where, p, grad):
            assert not np.shares_memory(out, arg)


def test_read_only_input_is_accepted() -> None:
    x = CUBE.copy()
    x.flags.writeable = False
    assert_array_equal(softmax(x), softmax(CUBE))
    assert_array_equal(log_softmax(x), log_softmax(CUBE))
    assert_array_equal(logsumexp(x), logsumexp(CUBE))


def test_logsumexp_rounds_to_the_largest_float16_when_the_exact_result_rounds_to_it() -> None:
    """65504 + log(4) = 65505.4 is below 65520, where float16 rounds to inf: 65504."""
    out = logsumexp(np.full(4, 65504, np.float16))
    assert out.dtype == np.float16
    assert float(out) == 65504.0


def test_logsumexp_beyond_float16_is_a_floating_point_error() -> None:
    """65504 + log(9e6) = 65520.01 rounds past float16's largest value: an error, not inf."""
    x = np.broadcast_to(np.float16(65504), (9_000_000,))  # the smallest n: log(n) >= 16
    with pytest.raises(FloatingPointError, match=r"logsumexp\(x\) overflows float16"):
        logsumexp(x)


def test_logsumexp_rows_of_neg_inf_stay_neg_inf_in_float16() -> None:
    out = logsumexp(np.array([[-np.inf, -np.inf], [0.0, 0.0]], np.float16))
    assert out[0] == -np.inf
    assert float(out[1]) == pytest.approx(math.log(2), rel=1e-3)


def test_python_ints_beyond_int64_are_cast_to_float64() -> None:
    out = softmax([2**70, 1])
    assert out.dtype == np.float64
    assert_array_equal(out, [1.0, 0.0])
    assert_allclose(logsumexp([2**70, 2**70]), 2.0**70, rtol=1e-15)
