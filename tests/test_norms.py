"""Tests of attention_from_scratch.norms against loop references, hand values and properties."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.exceptions import AxisError
from numpy.typing import NDArray

from attention_from_scratch.norms import (
    cosine_similarity,
    l2_norm,
    l2_normalize,
    layer_norm,
    rms_norm,
)
from tests.reference.all_ref import cosine_similarity as ref_cosine
from tests.reference.all_ref import map_vectors as ref_map
from tests.reference.all_ref import reduce_vectors as ref_reduce
from tests.reference.norms_ref import (
    l2_norm_ref,
    l2_normalize_ref,
    layer_norm_ref,
    rms_norm_ref,
)
from tests.tolerances import assert_close

Array = NDArray[Any]

# The running example: fluffy, blue, creature x (noun, adjective, colour, texture).
X = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
Q_CREATURE = np.array([3.0, 1.0, 0.0, 0.0])
K_FLUFFY = np.array([1.0, 1.0, 0.0, 0.0])


def rng_array(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> Array:
    return np.random.default_rng(seed).standard_normal(shape) * scale


# --- hand values on the running example ---


def test_running_example_norms() -> None:
    np.testing.assert_allclose(l2_norm(X), [math.sqrt(2), math.sqrt(2), 1.0], rtol=1e-15)
    np.testing.assert_allclose(l2_norm(X, axis=0), [1.0, math.sqrt(2), 1.0, 1.0], rtol=1e-15)
    assert l2_norm(X, keepdims=True).shape == (3, 1)
    assert l2_norm(X, axis=0, keepdims=True).shape == (1, 4)
    assert float(l2_norm(Q_CREATURE)) == math.sqrt(10)
    assert l2_norm([0.0, 0.0, 0.0]).item() == 0.0


def test_running_example_cosines() -> None:
    fluffy, blue, creature = X
    assert float(cosine_similarity(fluffy, blue)) == pytest.approx(0.5, rel=1e-15)
    assert float(cosine_similarity(fluffy, creature)) == 0.0
    # all pairs by broadcasting: (3, 1, 4) against (1, 3, 4) -> (3, 3)
    cos = cosine_similarity(X[:, None, :], X[None, :, :])
    expected = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(cos, expected, rtol=1e-15, atol=1e-15)


def test_score_is_lengths_times_cosine() -> None:
    # q.k = |q| |k| cos(theta): creature's query against fluffy's key.
    cos = float(cosine_similarity(Q_CREATURE, K_FLUFFY))
    assert cos == pytest.approx(4 / math.sqrt(20), rel=1e-15)
    lengths = float(l2_norm(Q_CREATURE)) * float(l2_norm(K_FLUFFY))
    assert lengths * cos == pytest.approx(float(Q_CREATURE @ K_FLUFFY), rel=1e-15)


def test_hand_values() -> None:
    np.testing.assert_allclose(l2_normalize([3.0, 4.0]), [0.6, 0.8], rtol=1e-15)
    assert float(cosine_similarity([1.0, 2.0], [-2.0, -4.0])) == pytest.approx(-1.0, rel=1e-15)
    assert float(cosine_similarity([1.0, 0.0], [0.0, 5.0])) == 0.0
    sd = math.sqrt(1.25)
    expected = [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]
    np.testing.assert_allclose(layer_norm([1.0, 2.0, 3.0, 4.0], eps=0.0), expected, rtol=1e-15)
    np.testing.assert_allclose(
        rms_norm([3.0, 4.0], eps=0.0), [3 / math.sqrt(12.5), 4 / math.sqrt(12.5)], rtol=1e-15
    )
    np.testing.assert_allclose(
        layer_norm([1.0, 3.0], [2.0, 3.0], [10.0, 20.0], eps=0.0), [8.0, 23.0], rtol=1e-15
    )


# --- huge, tiny and zero vectors ---


def test_l2_norm_huge_and_tiny_to_one_ulp() -> None:
    big = float(l2_norm([3e200, 4e200]))
    tiny = float(l2_norm([3e-200, 4e-200]))
    assert abs(big - 5e200) <= np.spacing(5e200)
    assert abs(tiny - 5e-200) <= np.spacing(5e-200)
    with np.errstate(over="ignore", under="ignore"):
        assert np.linalg.norm([3e200, 4e200]) == np.inf  # what the textbook formula gives
        assert np.linalg.norm([3e-200, 4e-200]) == 0.0


def test_l2_norm_extremes() -> None:
    top = np.finfo(np.float64).max
    assert float(l2_norm([top])) == top
    assert float(l2_norm([-top, 0.0])) == top
    np.testing.assert_allclose(l2_norm([1e308, 1e308]), math.sqrt(2) * 1e308, rtol=1e-15)
    assert float(l2_norm([5e-324])) == 5e-324
    assert float(l2_norm([0.0, -0.0])) == 0.0
    assert not np.signbit(l2_norm([-0.0]))
    np.testing.assert_array_equal(l2_norm(np.zeros((3, 4))), np.zeros(3))
    with pytest.raises(FloatingPointError, match="overflows float64"):
        l2_norm([top, top])


def test_l2_norm_float16_range() -> None:
    # squares of 3e4 overflow float16, the norm 5e4 does not
    x16 = np.array([3e4, 4e4], dtype=np.float16)
    out = l2_norm(x16)
    assert out.dtype == np.float16
    assert float(out) == pytest.approx(5e4, rel=1e-3)
    with pytest.raises(FloatingPointError, match="float16"):
        l2_norm(np.array([65504.0, 65504.0], dtype=np.float16))
    unit = l2_normalize(np.array([65504.0, 65504.0], dtype=np.float16))
    np.testing.assert_allclose(unit.astype(np.float64), [math.sqrt(0.5)] * 2, rtol=1e-3)


def test_equals_textbook_formula_where_it_does_not_overflow() -> None:
    # Scaling by a power of two is exact, so ordinary inputs give identical bits.
    x = rng_array((7, 33), seed=3)
    np.testing.assert_array_equal(l2_norm(x), np.sqrt(np.sum(x * x, axis=-1)))
    expected = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_array_equal(rms_norm(x), expected)


def test_power_of_two_scaling_is_exact() -> None:
    x = rng_array((4, 9), seed=4)
    for k in (-900, -300, 300, 900):
        s = 2.0**k
        np.testing.assert_array_equal(l2_norm(x * s), l2_norm(x) * s)
        np.testing.assert_array_equal(l2_normalize(x * s), l2_normalize(x))
        np.testing.assert_array_equal(rms_norm(x * s, eps=0.0), rms_norm(x, eps=0.0))
        np.testing.assert_array_equal(layer_norm(x * s, eps=0.0), layer_norm(x, eps=0.0))
        np.testing.assert_array_equal(
            cosine_similarity(x * s, x[::-1]), cosine_similarity(x, x[::-1])
        )


def test_normalize_and_cosine_huge_and_tiny() -> None:
    for v in ([3e300, 4e300], [3e-300, 4e-300], [5e-324, 0.0], [-1e308, 1e308]):
        np.testing.assert_allclose(l2_norm(l2_normalize(v)), 1.0, rtol=1e-15)
    np.testing.assert_allclose(l2_normalize([3e300, 4e300]), [0.6, 0.8], rtol=1e-15)
    assert float(cosine_similarity([1e300, 1e300], [1e-300, 1e-300])) == pytest.approx(1.0)
    assert float(cosine_similarity([1e200, 0.0], [-1e-200, 1e-200])) == pytest.approx(
        -math.sqrt(0.5), rel=1e-15
    )


def test_rms_norm_huge_and_tiny() -> None:
    np.testing.assert_allclose(
        rms_norm([3e200, 4e200]), [3 / math.sqrt(12.5), 4 / math.sqrt(12.5)], rtol=1e-15
    )
    # eps dominates a tiny row: x / sqrt(eps)
    np.testing.assert_allclose(rms_norm([1e-200, 2e-200]), [1e-197, 2e-197], rtol=1e-15)
    np.testing.assert_allclose(
        rms_norm([1e-200, 2e-200], eps=0.0), [1 / math.sqrt(2.5), 2 / math.sqrt(2.5)], rtol=1e-15
    )
    np.testing.assert_allclose(
        rms_norm([1e-200, 2e-200], eps=1e-300),
        rms_norm_ref([1e-200, 2e-200], eps=1e-300),
        rtol=1e-14,
    )


def test_layer_norm_huge_and_tiny() -> None:
    top = np.finfo(np.float64).max
    np.testing.assert_allclose(layer_norm([top, -top], eps=0.0), [1.0, -1.0], rtol=1e-15)
    x = np.array([1e-300, 3e-300, 2e-300])
    row_scale = 1e-14 * 3.2e-298  # rounding relative to the row's largest output
    np.testing.assert_allclose(layer_norm(x), layer_norm_ref(x.tolist()), atol=row_scale)
    expected = layer_norm_ref(x.tolist(), eps=0.0)
    np.testing.assert_allclose(layer_norm(x, eps=0.0), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("noise_scale", [1.0, 1e-3])
def test_layer_norm_large_offset_is_exact(noise_scale: float) -> None:
    # x = 1e8 + noise: E[x^2] - E[x]^2 loses every digit, the centred variance none, and
    # the corrected mean removes the rounding error of mean(x) (~7e-9) from every x - mean.
    noise = rng_array((4, 1000), seed=5, scale=noise_scale)
    x = 1e8 + noise
    out = layer_norm(x)
    expected = ref_map(layer_norm_ref, x)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    naive_var = np.mean(x * x, axis=-1) - np.mean(x, axis=-1) ** 2
    true_var = np.var(x, axis=-1)
    assert np.all(np.abs(naive_var - true_var) > 0.1 * true_var)  # the naive formula fails
    small = 1e8 + np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(
        layer_norm(small, eps=0.0), (small - small.mean()) / math.sqrt(1.25)
    )


def test_layer_norm_constant_rows() -> None:
    x = np.array([[0.1, 0.1, 0.1], [7.0, 7.0, 7.0], [1.0, 2.0, 3.0]])
    out = layer_norm(x, beta=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(out[:2], [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    # so large that eps / 4^e underflows to 0: sqrt(0 + 0) = 0, and still 0 / 0 -> 0
    huge = layer_norm(np.array([[1e300, 1e300], [1.0, 3.0]]), beta=np.array([0.5, 0.5]))
    np.testing.assert_array_equal(huge[0], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"^x has a constant row at index \(1,\).*eps > 0"):
        layer_norm(np.array([[1.0, 2.0], [5.0, 5.0]]), eps=0.0)
    with pytest.raises(ValueError, match=r"^x has a zero row at index \(0,\).*eps > 0"):
        rms_norm(np.array([[0.0, 0.0], [5.0, 5.0]]), eps=0.0)


# --- loop references in float64 ---


@pytest.mark.parametrize(("shape", "axis"), [((5,), 0), ((4, 7), -1), ((4, 7), 0), ((2, 3, 6), 1)])
def test_l2_norm_matches_reference(shape: tuple[int, ...], axis: int) -> None:
    x = rng_array(shape, seed=6, scale=3.0)
    np.testing.assert_allclose(
        l2_norm(x, axis=axis), ref_reduce(l2_norm_ref, x, axis), rtol=1e-12, atol=1e-12
    )
    unit = l2_normalize(x, axis=axis)
    np.testing.assert_allclose(unit, ref_map(l2_normalize_ref, x, axis), rtol=1e-12, atol=1e-12)


def test_l2_normalize_eps_matches_reference() -> None:
    x = np.array([[3.0, 4.0], [3e-8, 4e-8], [0.0, 0.0], [1e-300, 0.0], [5e-324, 5e-324]])
    out = l2_normalize(x, eps=1e-6)
    expected = ref_map(partial(l2_normalize_ref, eps=1e-6), x)
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(out[2], [0.0, 0.0])
    np.testing.assert_allclose(out[1], [0.03, 0.04], rtol=1e-12)  # shorter than eps


@pytest.mark.parametrize(
    ("shape_a", "shape_b", "axis"),
    [
        ((4,), (4,), -1),
        ((5, 4), (5, 4), -1),
        ((5, 4), (4,), -1),
        ((3, 1, 6), (1, 2, 6), -1),
        ((6, 3), (6, 1), 0),
    ],
)
def test_cosine_matches_reference(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], axis: int
) -> None:
    a = rng_array(shape_a, seed=7)
    b = rng_array(shape_b, seed=8)
    out = cosine_similarity(a, b, axis=axis)
    expected = ref_cosine(a, b, axis=axis)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", [(6,), (5, 8), (2, 3, 16)])
def test_layer_norm_and_rms_norm_match_reference(shape: tuple[int, ...], affine: bool) -> None:
    x = rng_array(shape, seed=9, scale=2.0) + 0.5
    d = shape[-1]
    gamma = rng_array((d,), seed=10) if affine else None
    beta = rng_array((d,), seed=11) if affine else None
    g = None if gamma is None else gamma.tolist()
    b = None if beta is None else beta.tolist()
    for eps in (1e-5, 0.0, 0.3):
        expected = ref_map(partial(layer_norm_ref, gamma=g, beta=b, eps=eps), x)
        np.testing.assert_allclose(
            layer_norm(x, gamma, beta, eps=eps), expected, rtol=1e-12, atol=1e-12
        )
        expected = ref_map(partial(rms_norm_ref, gamma=g, eps=eps), x)
        np.testing.assert_allclose(rms_norm(x, gamma, eps=eps), expected, rtol=1e-12, atol=1e-12)


# --- dtypes ---


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_dtypes_preserved_and_accurate(dtype: type) -> None:
    x: Array = rng_array((5, 12), seed=12).astype(dtype)
    b: Array = rng_array((5, 12), seed=13).astype(dtype)
    gamma: Array = (rng_array((12,), seed=14) + 1.0).astype(dtype)
    beta: Array = rng_array((12,), seed=15).astype(dtype)
    x64, b64 = x.astype(np.float64), b.astype(np.float64)
    g64, beta64 = gamma.astype(np.float64).tolist(), beta.astype(np.float64).tolist()
    cases: list[tuple[Array, Array]] = [
        (l2_norm(x), ref_reduce(l2_norm_ref, x64)),
        (l2_normalize(x), ref_map(l2_normalize_ref, x64)),
        (cosine_similarity(x, b), ref_cosine(x64, b64)),
        (
            layer_norm(x, gamma, beta),
            ref_map(partial(layer_norm_ref, gamma=g64, beta=beta64), x64),
        ),
        (rms_norm(x, gamma), ref_map(partial(rms_norm_ref, gamma=g64), x64)),
    ]
    for out, expected in cases:
        assert out.dtype == dtype
        assert_close(out, expected, dtype=dtype)


def test_integers_become_float64() -> None:
    x = np.array([[3, 4], [1, 2]])
    for out in (
        l2_norm(x),
        l2_normalize(x),
        cosine_similarity(x, x),
        layer_norm(x),
        rms_norm(x),
    ):
        assert out.dtype == np.float64
    np.testing.assert_allclose(l2_norm(x), [5.0, math.sqrt(5)], rtol=1e-15)


def test_float16_overflow_of_the_result_is_an_error() -> None:
    x16 = np.array([1.0, 2.0, 3.0], dtype=np.float16)
    big = np.full(3, 6e4, dtype=np.float16)
    with pytest.raises(FloatingPointError, match="float16"):
        layer_norm(x16, big)
    with pytest.raises(FloatingPointError, match="float16"):
        rms_norm(x16, big)


def test_empty_batches_and_vectors() -> None:
    empty = np.zeros((0, 4))
    assert l2_norm(empty).shape == (0,)
    assert l2_normalize(empty).shape == (0, 4)
    assert cosine_similarity(empty, empty).shape == (0,)
    assert layer_norm(empty).shape == (0, 4)
    assert rms_norm(empty).shape == (0, 4)
    np.testing.assert_array_equal(l2_norm(np.zeros((3, 0))), np.zeros(3))  # sum of nothing
    with pytest.raises(ValueError, match=r"^x .*zero vector"):
        l2_normalize(np.zeros((3, 0)))


# --- hypothesis properties ---

ANY_FINITE = st.floats(allow_nan=False, allow_infinity=False)
MODERATE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
# |x| in {0} or [1e-200, 1e200]: products with a scalar in [1e-50, 1e50] stay normal
NORMAL = st.one_of(st.just(0.0), st.floats(1e-200, 1e200), st.floats(-1e200, -1e-200))
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6)


def arrays(elements: st.SearchStrategy[float]) -> st.SearchStrategy[Array]:
    return hnp.arrays(np.float64, SHAPES, elements=elements)


def nonzero_rows(x: Array, axis: int = -1) -> bool:
    return bool(np.all(np.any(x != 0, axis=axis)))


@given(arrays(ANY_FINITE))
def test_l2_norm_matches_reference_over_the_whole_range(x: Array) -> None:
    try:
        expected = ref_reduce(l2_norm_ref, x)
    except OverflowError:  # the true norm is beyond the largest float64
        with pytest.raises(FloatingPointError, match="overflows"):
            l2_norm(x)
        return
    np.testing.assert_allclose(l2_norm(x), expected, rtol=1e-13, atol=1e-323)


@given(arrays(NORMAL), st.floats(1e-50, 1e50), st.booleans())
def test_l2_norm_is_homogeneous(x: Array, a: float, negative: bool) -> None:
    scalar = -a if negative else a
    np.testing.assert_allclose(l2_norm(scalar * x), abs(scalar) * l2_norm(x), rtol=1e-13)


@given(arrays(NORMAL), st.integers(-300, 300))
def test_l2_norm_scales_exactly_by_powers_of_two(x: Array, k: int) -> None:
    s = 2.0**k
    np.testing.assert_array_equal(l2_norm(x * s), l2_norm(x) * s)


@given(arrays(ANY_FINITE))
def test_normalized_vectors_have_unit_length(x: Array) -> None:
    assume(nonzero_rows(x))
    unit = l2_normalize(x)
    np.testing.assert_allclose(l2_norm(unit), 1.0, rtol=1e-14)
    np.testing.assert_allclose(unit, ref_map(l2_normalize_ref, x), rtol=1e-13, atol=1e-15)
    assert np.all(np.abs(unit) <= 1.0)


@given(arrays(ANY_FINITE), st.floats(1e-12, 1e3))
def test_normalize_with_eps_is_x_over_max_norm_eps(x: Array, eps: float) -> None:
    out = l2_normalize(x, eps=eps)
    expected = ref_map(partial(l2_normalize_ref, eps=eps), x)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-300)
    assert np.all(l2_norm(out) <= 1.0 + 1e-15)


@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=ANY_FINITE),
    st.data(),
)
def test_cosine_in_range_symmetric_and_matches_reference(a: Array, data: st.DataObject) -> None:
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=ANY_FINITE))
    assume(nonzero_rows(a) and nonzero_rows(b))
    cos = cosine_similarity(a, b)
    assert np.all(np.abs(cos) <= 1.0)
    np.testing.assert_array_equal(cos, cosine_similarity(b, a))
    np.testing.assert_allclose(cos, ref_cosine(a, b), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cosine_similarity(a, a), 1.0, rtol=1e-14)


@given(arrays(ANY_FINITE))
def test_layer_norm_rows_have_mean_0_and_variance_1(x: Array) -> None:
    constant = np.all(x == x[..., :1], axis=-1)
    if constant.any():
        with pytest.raises(ValueError, match="constant row"):
            layer_norm(x, eps=0.0)
        return
    out = layer_norm(x, eps=0.0)
    np.testing.assert_allclose(np.mean(out, axis=-1), 0.0, atol=1e-13)
    np.testing.assert_allclose(np.var(out, axis=-1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(
        out, ref_map(partial(layer_norm_ref, eps=0.0), x), rtol=1e-12, atol=1e-12
    )


@given(arrays(MODERATE), st.floats(1e-8, 1.0))
def test_layer_norm_variance_with_eps(x: Array, eps: float) -> None:
    out = layer_norm(x, eps=eps)
    var = ref_reduce(statistics.pvariance, x)  # exact population variance, rounded once
    np.testing.assert_allclose(np.mean(out, axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.var(out, axis=-1), var / (var + eps), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        out, ref_map(partial(layer_norm_ref, eps=eps), x), rtol=1e-12, atol=1e-12
    )


@given(arrays(ANY_FINITE), st.sampled_from([0.0, 1e-6, 1e-300, 1.0]))
def test_rms_norm_rows_have_mean_square_1(x: Array, eps: float) -> None:
    if eps == 0.0 and not nonzero_rows(x):
        with pytest.raises(ValueError, match="mean square"):
            rms_norm(x, eps=eps)
        return
    out = rms_norm(x, eps=eps)
    np.testing.assert_allclose(
        out, ref_map(partial(rms_norm_ref, eps=eps), x), rtol=1e-12, atol=1e-300
    )
    if eps == 0.0:
        np.testing.assert_allclose(np.mean(out * out, axis=-1), 1.0, rtol=1e-13)
    assert np.all(np.mean(out * out, axis=-1) <= 1.0 + 1e-13)


@given(hnp.arrays(np.float32, SHAPES, elements=st.floats(-1e4, 1e4, width=32)))
def test_float32_agrees_with_float64_reference(x: Array) -> None:
    x64 = x.astype(np.float64)
    assert_close(l2_norm(x), ref_reduce(l2_norm_ref, x64), dtype=np.float32)
    assert_close(rms_norm(x), ref_map(rms_norm_ref, x64), dtype=np.float32)
    assert l2_norm(x).dtype == rms_norm(x).dtype == np.float32


# --- bad inputs ---

ONES = np.ones(4)


def _calls() -> list[tuple[str, str, Callable[[Any], object]]]:
    return [
        ("l2_norm", "x", l2_norm),
        ("l2_normalize", "x", l2_normalize),
        ("cosine a", "a", lambda v: cosine_similarity(v, ONES)),
        ("cosine b", "b", lambda v: cosine_similarity(ONES, v)),
        ("layer_norm", "x", layer_norm),
        ("layer_norm gamma", "gamma", lambda v: layer_norm(ONES, v)),
        ("layer_norm beta", "beta", lambda v: layer_norm(ONES, None, v)),
        ("rms_norm", "x", rms_norm),
        ("rms_norm gamma", "gamma", lambda v: rms_norm(ONES, v)),
    ]


CALLS = _calls()
IDS = [c[0] for c in CALLS]


@pytest.mark.parametrize(("label", "name", "call"), CALLS, ids=IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_value_error_with_index(
    label: str, name: str, call: Callable[[Any], object], bad: float
) -> None:
    del label
    v = np.ones(4)
    v[2] = bad
    with pytest.raises(ValueError, match=rf"^{name} must be finite.*index \(2,\)"):
        call(v)


@pytest.mark.parametrize(
    "call",
    [
        lambda: l2_norm(3.0),
        lambda: l2_normalize(np.float64(3.0)),
        lambda: cosine_similarity(1.0, 2.0),
        lambda: layer_norm(3.0),
        lambda: rms_norm(3.0),
    ],
    ids=["l2_norm", "l2_normalize", "cosine_similarity", "layer_norm", "rms_norm"],
)
def test_zero_dimensional_is_value_error(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="0-d"):
        call()


def test_empty_last_axis_is_value_error() -> None:
    for fn in (layer_norm, rms_norm):
        with pytest.raises(ValueError, match=r"^x has a last axis of length 0"):
            fn(np.zeros((2, 0)))


@pytest.mark.parametrize(
    "call",
    [
        lambda axis: l2_norm(X, axis=axis),
        lambda axis: l2_normalize(X, axis=axis),
        lambda axis: cosine_similarity(X, X, axis=axis),
    ],
    ids=["l2_norm", "l2_normalize", "cosine_similarity"],
)
def test_axis_checks(call: Callable[[Any], object]) -> None:
    for axis in (2, -3):
        with pytest.raises(AxisError):
            call(axis)
    for not_int in (1.0, "0", None, True):
        with pytest.raises(TypeError, match="axis"):
            call(not_int)


def test_gamma_and_beta_shapes_and_dtypes() -> None:
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"^gamma must have shape.*\(4,\).*\(3,\)"):
        layer_norm(x, np.ones(3))
    with pytest.raises(ValueError, match=r"^beta must have shape.*\(4,\).*\(1, 4\)"):
        layer_norm(x, None, np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"^gamma must have shape.*\(4, 1\)"):
        rms_norm(x, np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"^gamma must have shape"):
        rms_norm(x, 2.0)
    with pytest.raises(TypeError, match=r"gamma float32"):
        layer_norm(x, np.ones(4, dtype=np.float32))
    with pytest.raises(TypeError, match=r"gamma float64"):
        rms_norm(x.astype(np.float32), np.ones(4))


@pytest.mark.parametrize(
    ("eps", "error"),
    [
        (-1.0, ValueError),
        (np.nan, ValueError),
        (np.inf, ValueError),
        (True, TypeError),
        ("1e-5", TypeError),
        (None, TypeError),
    ],
)
def test_bad_eps(eps: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="eps"):
        layer_norm(X, eps=eps)  # type: ignore[call-overload]
    with pytest.raises(error, match="eps"):
        rms_norm(X, eps=eps)  # type: ignore[call-overload]
    if eps is not None:
        with pytest.raises(error, match="eps"):
            l2_normalize(X, eps=eps)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="eps"):
        l2_normalize(X, eps=0.0)


def test_zero_vectors() -> None:
    q = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^x has a zero vector at index \(0,\).*eps"):
        l2_normalize(q)
    with pytest.raises(ValueError, match=r"^x has a zero vector at index \(1,\)"):
        l2_normalize(q[::-1].T, axis=0)
    with pytest.raises(ValueError, match=r"^x is a zero vector"):
        l2_normalize([0.0, 0.0])
    with pytest.raises(ValueError, match=r"^a has a zero vector at index \(0,\)"):
        cosine_similarity(q, X)
    with pytest.raises(ValueError, match=r"^b is a zero vector"):
        cosine_similarity(X[0], [0.0, 0.0, 0.0, 0.0])


def test_cosine_dtype_and_shape_mismatch() -> None:
    with pytest.raises(TypeError, match="a float64, b float32"):
        cosine_similarity(X, X.astype(np.float32))
    with pytest.raises(ValueError, match=r"a \(3, 4\), b \(3,\)"):
        cosine_similarity(X, np.ones(3))


# --- inputs are not modified; memory layout does not matter ---


def test_inputs_not_modified() -> None:
    x = rng_array((3, 5), seed=16)
    b = rng_array((3, 5), seed=17)
    gamma, beta = rng_array((5,), seed=18), rng_array((5,), seed=19)
    copies = [a.copy() for a in (x, b, gamma, beta)]
    outputs = [
        l2_norm(x, keepdims=True),
        l2_normalize(x),
        l2_normalize(x, eps=10.0),
        cosine_similarity(x, b),
        layer_norm(x, gamma, beta),
        rms_norm(x, gamma),
    ]
    for original, copy in zip((x, b, gamma, beta), copies, strict=True):
        np.testing.assert_array_equal(original, copy)
    for out in outputs:
        assert not np.shares_memory(out, x)


def test_memory_layout_does_not_matter() -> None:
    base = rng_array((6, 5), seed=20)
    other = rng_array((6, 5), seed=21)
    gamma = rng_array((5,), seed=22)
    for view in (np.asfortranarray(base), base[::-1, ::-1], base.T.copy().T, base[:, ::2]):
        c = np.ascontiguousarray(view)
        o = np.ascontiguousarray(other[: c.shape[0], : c.shape[1]])
        g = np.ascontiguousarray(gamma[: c.shape[1]][::-1])[::-1]
        pairs = [
            (l2_norm(view), l2_norm(c)),
            (l2_norm(view, axis=0), l2_norm(c, axis=0)),
            (l2_normalize(view), l2_normalize(c)),
            (cosine_similarity(view, o), cosine_similarity(c, o)),
            (layer_norm(view, g, g), layer_norm(c, g, g)),
            (rms_norm(view, g), rms_norm(c, g)),
        ]
        for got, expected in pairs:
            np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)


# --- cross-check against torch (only where torch is installed) ---


@pytest.mark.crosscheck
def test_crosscheck_torch() -> None:
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = rng_array((3, 7, 16), seed=23, scale=3.0) + 1.0
    gamma, beta = rng_array((16,), seed=24), rng_array((16,), seed=25)
    t = torch.from_numpy
    expected = functional.layer_norm(t(x), (16,), t(gamma), t(beta), 1e-5).numpy()
    np.testing.assert_allclose(layer_norm(x, gamma, beta), expected, rtol=0, atol=1e-10)
    expected = functional.layer_norm(t(x), (16,), eps=1e-5).numpy()
    np.testing.assert_allclose(layer_norm(x), expected, rtol=0, atol=1e-10)
    expected = functional.rms_norm(t(x), (16,), t(gamma), 1e-6).numpy()
    np.testing.assert_allclose(rms_norm(x, gamma), expected, rtol=0, atol=1e-10)
    expected = functional.rms_norm(t(x), (16,), eps=1e-6).numpy()
    np.testing.assert_allclose(rms_norm(x), expected, rtol=0, atol=1e-10)
    expected = functional.normalize(t(x), dim=-1, eps=1e-12).numpy()
    np.testing.assert_allclose(l2_normalize(x, eps=1e-12), expected, rtol=0, atol=1e-12)
    y = rng_array((3, 7, 16), seed=26)
    expected = functional.cosine_similarity(t(x), t(y), dim=-1).numpy()
    np.testing.assert_allclose(cosine_similarity(x, y), expected, rtol=0, atol=1e-12)
