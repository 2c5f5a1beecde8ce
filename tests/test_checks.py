"""Tests of the private validation helpers in :mod:`attention_from_scratch._checks`.

Every public function relies on these for the input policy of ``docs/guarantees.md``,
so their exception types and messages (which must name the argument) are checked here
once, directly; ``tests/test_reliability.py`` shows that each public argument reaches
them.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.exceptions import AxisError
from numpy.testing import assert_array_equal
from numpy.typing import NDArray

from attention_from_scratch._checks import (
    FLAT_ENTRIES,
    all_finite,
    arrays_finite,
    as_bool_mask,
    as_float_array,
    as_generator,
    as_gradient,
    as_int_array,
    as_working,
    at_least_ndim,
    batch_index,
    broadcast_to_shape,
    check_bool,
    check_finite,
    check_instance,
    check_row_max,
    check_same_dtype,
    check_same_shape,
    finite_real,
    finite_result,
    first_index,
    non_negative_finite,
    non_negative_int,
    normalize_axis,
    overflow_advice,
    positive_finite,
    positive_int,
    working_dtype,
)
from attention_from_scratch.projections import AttentionParams

# ---------------------------------------------------------------------------
# as_float_array
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_arrays_keep_dtype_and_are_not_copied(dtype: type[np.floating[Any]]) -> None:
    x = np.arange(6, dtype=dtype).reshape(2, 3)
    out = as_float_array(x, "x")
    assert out is x


@pytest.mark.parametrize(
    "x",
    [
        np.arange(3, dtype=np.int8),
        np.arange(3, dtype=np.uint64),
        np.arange(3),
        [0, 1, 2],
        (0, 1, 2),
    ],
    ids=["int8", "uint64", "int64", "list", "tuple"],
)
def test_integers_become_float64(x: object) -> None:
    out = as_float_array(x, "x")
    assert out.dtype == np.float64
    assert_array_equal(out, [0.0, 1.0, 2.0])


def test_python_floats_and_scalars_become_arrays() -> None:
    assert as_float_array([0.5, 1.5], "x").dtype == np.float64
    assert as_float_array(2.0, "x").shape == ()
    assert as_float_array(np.float32(2.0), "x").dtype == np.float32


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (None, r"^q must be an array of real numbers, got None"),
        ("abc", r"^q must be an array of real numbers, got a string 'abc'"),
        (b"abc", r"^q must be an array of real numbers, got a string b'abc'"),
        (np.array([True, False]), r"^q must be an array of real numbers, got dtype bool"),
        (np.array([1j]), r"^q must be real, got complex dtype complex128"),
        (np.array([1.0], dtype=object), r"^q must be an array of real numbers, got dtype object"),
        (np.ma.array([1.0, 2.0]), r"^q is a numpy masked array"),
        (np.array(["1"]), r"^q must be an array of real numbers, got dtype <U1"),
        (np.array([1], dtype="timedelta64[s]"), r"^q .*timedelta64"),
        ({"a": 1.0}, r"^q must be an array of real numbers, got dtype object \(dict\)"),
        ([[True, False]], r"^q must be an array of real numbers, got dtype bool"),
        ([[1.0, None]], r"^q must be an array of real numbers, got dtype object \(list\)"),
        ([["1", "2"]], r"^q must be an array of real numbers, got dtype <U1 \(list\)"),
        (np.array(["2024-01-01"], dtype="datetime64[D]"), r"^q .*datetime64"),
        (np.array([object(), object()]), r"^q must be an array of real numbers, got dtype object"),
    ],
    ids=[
        "None",
        "str",
        "bytes",
        "bool",
        "complex",
        "object",
        "masked",
        "unicode",
        "timedelta",
        "dict",
        "bool-list",
        "list-with-None",
        "str-list",
        "datetime",
        "objects",
    ],
)
def test_as_float_array_type_errors_name_the_argument(bad: object, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        as_float_array(bad, "q")


def test_as_float_array_ragged_is_value_error() -> None:
    with pytest.raises(ValueError, match=r"^k must be a rectangular array of real numbers"):
        as_float_array([[1.0], [1.0, 2.0]], "k")


# ---------------------------------------------------------------------------
# as_bool_mask
# ---------------------------------------------------------------------------


def test_bool_masks_pass_through() -> None:
    mask = np.array([[True, False]])
    assert as_bool_mask(mask, "mask") is mask
    assert_array_equal(as_bool_mask([True, False], "mask"), [True, False])
    assert as_bool_mask(np.True_, "mask").shape == ()


@pytest.mark.parametrize(
    ("bad", "error", "pattern"),
    [
        ([1, 0], TypeError, r"^mask must be bool \(True = may attend\), got int64"),
        (np.array([1.0, 0.0]), TypeError, r"^mask must be bool .*got float64"),
        (None, TypeError, r"^mask must be a boolean array, got NoneType"),
        ("True", TypeError, r"^mask must be a boolean array, got str"),
        (np.ma.array([True]), TypeError, r"^mask must be a plain boolean array"),
        ([[True], [True, False]], ValueError, r"^mask must be a rectangular boolean array"),
    ],
    ids=["int", "float", "None", "str", "masked", "ragged"],
)
def test_as_bool_mask_errors_name_the_argument(
    bad: object, error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        as_bool_mask(bad, "mask")


# ---------------------------------------------------------------------------
# first_index, check_finite, check_row_max
# ---------------------------------------------------------------------------


@given(hnp.arrays(np.bool_, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4)))
def test_first_index_is_the_first_true_in_c_order(flags: NDArray[np.bool_]) -> None:
    if not flags.any():
        return
    expected = tuple(int(i) for i in np.argwhere(flags)[0])
    index = first_index(flags)
    assert index == expected
    assert all(type(i) is int for i in index)


def test_check_finite_accepts_finite_arrays() -> None:
    check_finite(np.array([[1.0, -1e308], [0.0, 5e-324]]), "x")
    check_finite(np.zeros((0, 3)), "x")
    check_finite(np.array([-np.inf, 1.0]), "bias", allow_neg_inf=True)


@pytest.mark.parametrize(
    ("value", "what"), [(np.nan, "NaN"), (np.inf, r"\+inf"), (-np.inf, "-inf")]
)
def test_check_finite_reports_value_index_and_shape(value: float, what: str) -> None:
    x = np.zeros((2, 3, 4))
    x[1, 2, 0] = value
    x[1, 2, 3] = value  # only the first one is reported
    pattern = rf"^x must be finite: found {what} at index \(1, 2, 0\), shape \(2, 3, 4\)$"
    with pytest.raises(ValueError, match=pattern):
        check_finite(x, "x")


def test_check_finite_with_allow_neg_inf_still_rejects_nan_and_plus_inf() -> None:
    bias = np.array([-np.inf, 0.0, np.nan, np.inf])
    with pytest.raises(
        ValueError,
        match=r"^bias must be finite \(only -inf is allowed\): found NaN at index \(2,\)",
    ):
        check_finite(bias, "bias", allow_neg_inf=True)
    with pytest.raises(ValueError, match=r"found \+inf at index \(1,\)"):
        check_finite(np.array([-np.inf, np.inf]), "bias", allow_neg_inf=True)


def test_check_row_max() -> None:
    x = np.array([[0.0, 1.0], [-np.inf, 2.0]])
    check_row_max(x.max(axis=-1, keepdims=True), x, "x", allow_empty_rows=False)
    empty = np.array([[0.0, 1.0], [-np.inf, -np.inf]])
    row_max = empty.max(axis=-1, keepdims=True)
    check_row_max(row_max, empty, "x", allow_empty_rows=True)
    with pytest.raises(
        ValueError, match=r"^x has a row whose entries are all -inf.*\(1, 0\).*`where=`"
    ):
        check_row_max(row_max, empty, "x", allow_empty_rows=False)
    with pytest.raises(ValueError, match=r"my hint$"):
        check_row_max(row_max, empty, "x", allow_empty_rows=False, hint="my hint")
    nan = np.array([[0.0, np.inf], [np.nan, -np.inf]])
    with pytest.raises(ValueError, match=r"^s must not contain NaN: found NaN at index \(1, 0\)"):
        check_row_max(nan.max(axis=-1, keepdims=True), nan, "s", allow_empty_rows=True)
    pinf = np.array([[0.0, 1.0], [-np.inf, np.inf]])
    with pytest.raises(ValueError, match=r"^s must not contain \+inf.*index \(1, 1\)"):
        check_row_max(pinf.max(axis=0, keepdims=True), pinf, "s", allow_empty_rows=True)


# ---------------------------------------------------------------------------
# normalize_axis
# ---------------------------------------------------------------------------


@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.just(n), st.integers(-n, n - 1))))
def test_normalize_axis_matches_python_indexing(case: tuple[int, int]) -> None:
    ndim, axis = case
    assert normalize_axis(axis, ndim) == list(range(ndim))[axis]
    assert normalize_axis(np.int64(axis), ndim) == list(range(ndim))[axis]


@pytest.mark.parametrize("axis", [3, -4, 100])
def test_normalize_axis_out_of_range_is_axis_error(axis: int) -> None:
    with pytest.raises(AxisError, match=r"axis"):
        normalize_axis(axis, 3)


@pytest.mark.parametrize(
    ("axis", "what"),
    [
        (1.0, "float"),
        (np.float64(1.0), "float64"),
        ("1", "str"),
        (None, "NoneType"),
        (True, "bool"),
        (np.True_, "bool"),
        (np.array(1.0), "ndarray"),
        (np.array([0, 1]), "ndarray"),
    ],
    ids=["float", "np.float64", "str", "None", "bool", "np.bool", "0d-float-array", "array"],
)
def test_normalize_axis_non_integer_is_type_error_naming_the_argument(
    axis: object, what: str
) -> None:
    with pytest.raises(TypeError, match=rf"^dim must be an int, got {what}"):
        normalize_axis(axis, 3, "dim")


# ---------------------------------------------------------------------------
# Scalars: positive_finite, finite_real, positive_int
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [1, 0.5, 5e-324, 1.7976931348623157e308, np.float32(2.0), np.int8(3), np.uint64(7)]
)
def test_positive_finite_accepts_positive_numbers(value: object) -> None:
    result = positive_finite(value, "temperature")
    assert type(result) is float
    assert result == float(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [0, 0.0, -0.0, -1, -1e-300, float("nan"), float("inf"), -float("inf"), np.float16(np.inf)],
)
def test_positive_finite_rejects_non_positive_or_non_finite(value: object) -> None:
    with pytest.raises(ValueError, match=r"^temperature must be finite and > 0"):
        positive_finite(value, "temperature")


def test_positive_finite_rejects_an_int_too_large_for_a_float() -> None:
    # 10**400 is finite as an int but infinite as a float: a ValueError naming the
    # argument, not float()'s bare OverflowError.
    with pytest.raises(ValueError, match=r"^temperature must be finite"):
        positive_finite(10**400, "temperature")


@pytest.mark.parametrize(
    ("value", "what"),
    [(True, "bool"), ("1", "str"), (None, "NoneType"), ([1.0], "list"), (1j, "complex")],
)
def test_positive_finite_rejects_non_numbers(value: object, what: str) -> None:
    with pytest.raises(TypeError, match=rf"^temperature must be a real number > 0, got {what}"):
        positive_finite(value, "temperature")


def test_finite_real() -> None:
    assert finite_real(-2, "scale") == -2.0
    assert finite_real(np.float32(0.0), "scale") == 0.0
    with pytest.raises(ValueError, match=r"^scale must be finite, got nan"):
        finite_real(float("nan"), "scale")
    with pytest.raises(TypeError, match=r"^scale must be a real number, got bool"):
        finite_real(False, "scale")
    with pytest.raises(ValueError, match=r"^scale must be finite"):
        finite_real(-(10**400), "scale")


def test_positive_int() -> None:
    assert positive_int(3, "n_heads") == 3
    assert type(positive_int(np.int64(2), "n_heads")) is int
    with pytest.raises(ValueError, match=r"^n_heads must be >= 1, got 0"):
        positive_int(0, "n_heads")
    for bad, what in ((True, "bool"), (2.0, "float"), ("2", "str")):
        with pytest.raises(TypeError, match=rf"^n_heads must be a positive int, got {what}"):
            positive_int(bad, "n_heads")


# ---------------------------------------------------------------------------
# Arrays together: dtypes, shapes, broadcasting, working dtype
# ---------------------------------------------------------------------------


def test_check_same_dtype_and_shape() -> None:
    a = np.zeros((2, 3))
    check_same_dtype(q=a, k=a.copy(), v=a.copy())
    check_same_shape(p=a, grad=a.copy())
    with pytest.raises(
        TypeError,
        match=r"^q, k, v must share one floating dtype, got q float64, k float32, v float64$",
    ):
        check_same_dtype(q=a, k=a.astype(np.float32), v=a)
    with pytest.raises(
        ValueError, match=r"^p, grad must have the same shape, got p \(2, 3\), grad \(3, 2\)$"
    ):
        check_same_shape(p=a, grad=a.T)


def test_broadcast_to_shape() -> None:
    out = broadcast_to_shape(np.array([True, False]), (3, 2), "mask", "scores")
    assert out.shape == (3, 2)
    with pytest.raises(
        ValueError, match=r"^mask of shape \(3,\) does not broadcast to scores of shape \(3, 2\)$"
    ):
        broadcast_to_shape(np.ones(3, dtype=bool), (3, 2), "mask", "scores")


@pytest.mark.parametrize(
    ("dtype", "work"),
    [(np.float16, np.float32), (np.float32, np.float32), (np.float64, np.float64)],
)
def test_working_dtype(dtype: type[np.floating[Any]], work: type[np.floating[Any]]) -> None:
    assert working_dtype(np.dtype(dtype)) == np.dtype(work)


@pytest.mark.parametrize(
    ("x", "expected"),
    [([2**70, 1], [2.0**70, 1.0]), ([[-(2**70)], [1.5]], [[-(2.0**70)], [1.5]])],
)
def test_python_ints_beyond_int64_become_float64(x: object, expected: Any) -> None:
    arr = as_float_array(x, "x")
    assert arr.dtype == np.float64
    assert_array_equal(arr, expected)


def test_an_int_beyond_float64_is_a_value_error_naming_it() -> None:
    with pytest.raises(
        ValueError, match=r"x holds an integer too large for float64 at index \(1,\)"
    ):
        as_float_array([1, 10**400], "x")


@pytest.mark.parametrize("x", [[2**70, True], [2**70, None], [2**70, np.float32(1.0)]])
def test_object_arrays_that_are_not_python_numbers_stay_type_errors(x: object) -> None:
    with pytest.raises(TypeError, match="x must be an array of real numbers, got dtype object"):
        as_float_array(x, "x")


@pytest.mark.parametrize(
    ("rng", "error", "message"),
    [
        ("seed", TypeError, "r must be None, an int seed or a numpy.random.Generator, got str"),
        (1.5, TypeError, "got float"),
        (np.bool_(True), TypeError, "got bool"),
        (-1, ValueError, "r must be an int seed >= 0, got -1"),
    ],
)
def test_as_generator_rejects_what_is_not_a_seed(
    rng: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        as_generator(rng, "r")


def test_as_generator_accepts_seeds_and_generators() -> None:
    gen = np.random.default_rng(3)
    assert as_generator(gen, "r") is gen
    assert as_generator(np.int64(3), "r").random() == np.random.default_rng(3).random()
    assert isinstance(as_generator(None, "r"), np.random.Generator)


@pytest.mark.parametrize(
    ("dtype", "advice"),
    [
        (np.float16, "compute in float64 or rescale q and k"),
        (np.float32, "compute in float64 or rescale q and k"),
        (np.float64, "rescale q and k"),
    ],
)
def test_overflow_advice_offers_a_wider_dtype_only_if_there_is_one(
    dtype: type[np.floating[Any]], advice: str
) -> None:
    assert overflow_advice(np.dtype(dtype), "rescale q and k") == advice


def test_finite_result_keeps_neg_inf_results_when_allowed() -> None:
    out = np.array([-np.inf, 1.0, 70000.0], np.float32)
    with pytest.raises(FloatingPointError, match=r"at index \(0,\)"):
        finite_result(out, np.dtype(np.float16), "f(x)")
    with pytest.raises(FloatingPointError, match=r"f\(x\) overflows float16 at index \(2,\)"):
        finite_result(out, np.dtype(np.float16), "f(x)", allow_neg_inf=True)
    kept = finite_result(out[:2], np.dtype(np.float16), "f(x)", allow_neg_inf=True)
    assert_array_equal(kept, [-np.inf, 1.0])


def test_batch_index_of_an_empty_batch_is_an_index_error_naming_the_batch() -> None:
    with pytest.raises(IndexError, match=r"batch is empty \(batch dimensions \(0, 3\)\)"):
        batch_index(None, (0, 3))


# ---------------------------------------------------------------------------
# Dimensions, working copies, results, options, integer arrays
# ---------------------------------------------------------------------------


def test_at_least_ndim() -> None:
    with pytest.raises(ValueError, match=r"^x .*2 dimensions \(n, d\).*shape \(3,\)"):
        at_least_ndim(np.ones(3), 2, "x", "(n, d)")
    with pytest.raises(ValueError, match=r"^x .*a 0-d array"):
        at_least_ndim(np.asarray(1.0), 1, "x", "(d)")


def test_as_working_is_c_contiguous_in_the_working_dtype() -> None:
    work = as_working(np.asfortranarray(np.ones((3, 4), np.float16)))
    assert work.flags.c_contiguous
    assert work.dtype == np.float32
    c64 = np.ones((2, 2))
    assert as_working(c64) is c64


def test_finite_result_reports_overflow_with_advice() -> None:
    with pytest.raises(FloatingPointError, match=r"^y .*index \(0,\).*rescale"):
        finite_result(np.array([7e4], np.float32), np.dtype(np.float16), "y")


def test_non_negative_finite_non_negative_int_and_check_bool() -> None:
    assert non_negative_finite(0, "eps") == 0.0
    with pytest.raises(ValueError, match=r"^eps "):
        non_negative_finite(-1.0, "eps")
    with pytest.raises(TypeError, match=r"^eps "):
        non_negative_finite(True, "eps")
    assert non_negative_int(np.int64(0), "n") == 0
    with pytest.raises(ValueError, match=r"^n "):
        non_negative_int(-1, "n")
    with pytest.raises(TypeError, match=r"^n "):
        non_negative_int(1.0, "n")
    assert check_bool(np.True_, "flag") is True
    with pytest.raises(TypeError, match=r"^flag .*got int"):
        check_bool(1, "flag")


def test_check_instance() -> None:
    params = AttentionParams.random(4, 2, rng=0)
    assert check_instance(params, AttentionParams, "params") is params
    with pytest.raises(TypeError, match=r"^params .*an AttentionParams, got dict"):
        check_instance({}, AttentionParams, "params")


def test_as_int_array() -> None:
    assert as_int_array([], "lengths").dtype.kind == "i"
    assert as_int_array([2, 1], "lengths").tolist() == [2, 1]
    with pytest.raises(ValueError, match=r"^lengths .*rectangular"):
        as_int_array([[1], [1, 2]], "lengths")
    with pytest.raises(TypeError, match=r"^lengths .*masked"):
        as_int_array(np.ma.array([1]), "lengths")


@pytest.mark.parametrize(
    "bad",
    [None, "3", [1.0], [True], np.zeros(0), [1j], np.array([1], dtype=object)],
    ids=["None", "str", "float", "bool", "float-empty", "complex", "object"],
)
def test_as_int_array_rejects_everything_but_integers(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^lengths "):
        as_int_array(bad, "lengths")


# ---------------------------------------------------------------------------
# as_gradient
# ---------------------------------------------------------------------------


def test_as_gradient_accepts_matching_and_converts_integers() -> None:
    g = np.ones((2, 3))
    assert as_gradient(g, (2, 3), np.dtype(np.float64), "y") is g
    assert as_gradient([[1, 2, 3]], (1, 3), np.dtype(np.float64), "y").dtype == np.float64


@pytest.mark.parametrize(
    ("grad", "error", "match"),
    [
        (
            np.ones((3, 2)),
            ValueError,
            r"grad must have the shape of y \(2, 3\), got grad \(3, 2\)",
        ),
        (np.ones((2, 3), np.float32), TypeError, r"dtype of y \(float64\), got grad float32"),
        (np.full((2, 3), np.nan), ValueError, r"grad must be finite: found NaN at index \(0, 0\)"),
        (np.ones((2, 3), bool), TypeError, "grad"),
    ],
)
def test_as_gradient_names_the_argument(grad: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        as_gradient(grad, (2, 3), np.dtype(np.float64), "y")


# --- several results proven finite at once -------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_arrays_finite_finds_any_bad_entry(bad: float) -> None:
    """Small arrays (one flat copy), large ones (summed) and both mixed: any NaN or inf is seen."""
    rng = np.random.default_rng(0)
    mixed = [(16, 16), (16,), (32, 6, 16), (FLAT_ENTRIES,), (FLAT_ENTRIES + 1,)]
    for sizes in ([(16, 16), (16,), (4, 16)], [(FLAT_ENTRIES + 1,), (300, 300)], mixed):
        arrays = [rng.normal(size=size) for size in sizes]
        assert arrays_finite(arrays)
        for which in range(len(arrays)):
            spoiled = [arr.copy() for arr in arrays]
            spoiled[which].flat[-1] = bad
            assert not arrays_finite(spoiled)
    assert arrays_finite([])


def test_arrays_finite_large_overflowing_sum_is_still_finite() -> None:
    """Finite entries whose sum overflows: told apart entry by entry, proven finite."""
    big = np.full(FLAT_ENTRIES + 1, np.finfo(np.float64).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow of the sum is not a warning
        assert arrays_finite([big])
        assert arrays_finite([big[:10]])  # small: one flat copy, all finite
        with np.errstate(over="ignore"):  # all_finite's contract: its caller's errstate
            assert all_finite(big)
        big[-1] = np.inf
        assert not arrays_finite([big])
