"""Input validation shared by every public function (private).

Every public routine validates its inputs once, here, at the public boundary,
and then works on plain floating-point arrays. The policy is the one written in
``RELIABILITY.md``: an error names the argument and shows the offending shape,
dtype or index; nothing returns NaN silently.

The rules, in one place:

* ``None``, strings, object arrays, masked arrays -> :class:`TypeError`;
* ragged nested lists -> :class:`ValueError`;
* ``bool`` -> :class:`TypeError` (a boolean array passed as data is probably a mask);
* complex -> :class:`TypeError`;
* integers -> cast to ``float64`` (the SciPy rule);
* ``float16``/``float32``/``float64`` -> kept as they are.
"""

from __future__ import annotations

import operator
from typing import Any, SupportsIndex, TypeVar

import numpy as np
from numpy.lib.array_utils import normalize_axis_index
from numpy.typing import NDArray

F = TypeVar("F", bound=np.floating[Any])
FloatArray = NDArray[np.floating[Any]]
BoolArray = NDArray[np.bool_]

__all__ = [
    "BoolArray",
    "F",
    "FloatArray",
    "as_bool_mask",
    "as_float_array",
    "broadcast_to_shape",
    "check_finite",
    "check_row_max",
    "check_same_dtype",
    "check_same_shape",
    "finite_real",
    "first_index",
    "normalize_axis",
    "positive_finite",
    "positive_int",
    "working_dtype",
]


def _describe(x: object) -> str:
    """Name the type of ``x`` for an error message."""
    return type(x).__name__


def as_float_array(x: object, name: str) -> FloatArray:
    """Return ``x`` as a floating-point ndarray, or raise with ``name`` in the message.

    Integer input becomes ``float64``; floating input keeps its dtype and is not copied.
    """
    if x is None:
        msg = f"{name} must be an array of real numbers, got None"
        raise TypeError(msg)
    if isinstance(x, str | bytes):
        msg = f"{name} must be an array of real numbers, got a string {x!r}"
        raise TypeError(msg)
    if isinstance(x, np.ma.MaskedArray):
        msg = (
            f"{name} is a numpy masked array, which is not supported: "
            "fill it (x.filled()) and pass the mask as a boolean `where=`/`mask=`"
        )
        raise TypeError(msg)
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        msg = f"{name} must be a rectangular array of real numbers: {exc}"
        raise ValueError(msg) from None
    kind = arr.dtype.kind
    if kind == "f":
        return arr
    if kind in "iu":
        return arr.astype(np.float64)
    if kind == "b":
        msg = (
            f"{name} must be an array of real numbers, got dtype bool "
            "(is it a mask? masks go in `where=` or `mask=`)"
        )
        raise TypeError(msg)
    if kind == "c":
        msg = f"{name} must be real, got complex dtype {arr.dtype}"
        raise TypeError(msg)
    msg = f"{name} must be an array of real numbers, got dtype {arr.dtype} ({_describe(x)})"
    raise TypeError(msg)


def as_bool_mask(mask: object, name: str) -> BoolArray:
    """Return ``mask`` as a boolean ndarray; any other dtype is a :class:`TypeError`."""
    if mask is None or isinstance(mask, str | bytes):
        msg = f"{name} must be a boolean array, got {_describe(mask)}"
        raise TypeError(msg)
    if isinstance(mask, np.ma.MaskedArray):
        msg = f"{name} must be a plain boolean array, got a numpy masked array"
        raise TypeError(msg)
    try:
        arr = np.asarray(mask)
    except ValueError as exc:
        msg = f"{name} must be a rectangular boolean array: {exc}"
        raise ValueError(msg) from None
    if arr.dtype != np.bool_:
        msg = f"{name} must be bool (True = may attend), got {arr.dtype}"
        raise TypeError(msg)
    return arr


def first_index(flags: NDArray[np.bool_]) -> tuple[int, ...]:
    """Index of the first True entry of ``flags`` (C order) as a tuple of ints."""
    flat = int(np.argmax(flags.ravel()))
    return tuple(int(i) for i in np.unravel_index(flat, flags.shape))


def check_finite(arr: FloatArray, name: str, *, allow_neg_inf: bool = False) -> None:
    """Raise :class:`ValueError` at the first NaN or infinite entry of ``arr``.

    With ``allow_neg_inf=True`` entries equal to ``-inf`` are accepted (an additive
    bias that forbids a key).
    """
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad = ~finite
    if allow_neg_inf:
        bad &= ~np.isneginf(arr)
        if not bad.any():
            return
    index = first_index(bad)
    value = arr[index]
    what = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
    allowed = " (only -inf is allowed)" if allow_neg_inf else ""
    msg = f"{name} must be finite{allowed}: found {what} at index {index}, shape {arr.shape}"
    raise ValueError(msg)


def check_row_max(
    row_max: FloatArray,
    arr: FloatArray,
    name: str,
    *,
    allow_empty_rows: bool,
    hint: str = "pass `where=` to mark rows that may be empty",
) -> None:
    """Validate an array through the row maxima a stable softmax computes anyway.

    A row maximum is NaN exactly when the row holds a NaN, ``+inf`` exactly when the
    row holds ``+inf``, and ``-inf`` exactly when every entry of the row is ``-inf``.
    Checking the small reduced array avoids a second scan of ``arr``; ``arr`` is only
    searched again, to report the index, when an error is raised.
    """
    if np.isfinite(row_max).all():
        return
    if np.isnan(row_max).any():
        index = first_index(np.isnan(arr))
        msg = f"{name} must not contain NaN: found NaN at index {index}, shape {arr.shape}"
        raise ValueError(msg)
    if np.isposinf(row_max).any():
        index = first_index(np.isposinf(arr))
        msg = (
            f"{name} must not contain +inf (only -inf, meaning 'weight 0', is allowed): "
            f"found +inf at index {index}, shape {arr.shape}"
        )
        raise ValueError(msg)
    if not allow_empty_rows:
        row = first_index(np.isneginf(row_max))
        msg = (
            f"{name} has a row whose entries are all -inf (row max at index {row} of the "
            f"reduced shape {row_max.shape}); its softmax is 0/0. {hint}"
        )
        raise ValueError(msg)


def normalize_axis(axis: object, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` as a non-negative int for an array of ``ndim`` dimensions.

    Raises :class:`TypeError` if ``axis`` is not an integer and
    :class:`numpy.exceptions.AxisError` if it is out of range.
    """
    if isinstance(axis, bool):
        msg = f"{name} must be an int, got bool"
        raise TypeError(msg)
    if not isinstance(axis, SupportsIndex):
        msg = f"{name} must be an int, got {_describe(axis)}"
        raise TypeError(msg)
    try:
        index = operator.index(axis)  # ndarrays have __index__ but raise for non-integers
    except TypeError:
        msg = f"{name} must be an int, got {_describe(axis)}"
        raise TypeError(msg) from None
    return int(normalize_axis_index(index, ndim))


def _to_float(value: float | np.integer[Any] | np.floating[Any]) -> float:
    """``float(value)``, with ints beyond the float range mapped to +-inf (not OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def positive_finite(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        msg = f"{name} must be a real number > 0, got {_describe(value)}"
        raise TypeError(msg)
    result = _to_float(value)
    if not np.isfinite(result) or result <= 0.0:
        msg = f"{name} must be finite and > 0, got {result}"
        raise ValueError(msg)
    return result


def check_same_dtype(**arrays: FloatArray) -> None:
    """Raise :class:`TypeError` if the named arrays do not share one dtype."""
    dtypes = {name: arr.dtype for name, arr in arrays.items()}
    if len(set(dtypes.values())) > 1:
        seen = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        msg = f"{', '.join(dtypes)} must share one floating dtype, got {seen}"
        raise TypeError(msg)


def check_same_shape(**arrays: FloatArray) -> None:
    """Raise :class:`ValueError` if the named arrays do not share one shape."""
    shapes = {name: arr.shape for name, arr in arrays.items()}
    if len(set(shapes.values())) > 1:
        seen = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        msg = f"{', '.join(shapes)} must have the same shape, got {seen}"
        raise ValueError(msg)


def working_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype arithmetic is done in: float16 accumulates in float32."""
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def finite_real(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number (any sign)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        msg = f"{name} must be a real number, got {_describe(value)}"
        raise TypeError(msg)
    result = _to_float(value)
    if not np.isfinite(result):
        msg = f"{name} must be finite, got {result}"
        raise ValueError(msg)
    return result


def broadcast_to_shape(arr: NDArray[Any], shape: tuple[int, ...], name: str, target: str) -> Any:
    """``np.broadcast_to(arr, shape)`` with an error that quotes both shapes."""
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        msg = f"{name} of shape {arr.shape} does not broadcast to {target} of shape {shape}"
        raise ValueError(msg) from None


def positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be a positive int, got {_describe(value)}"
        raise TypeError(msg)
    result = int(value)
    if result < 1:
        msg = f"{name} must be >= 1, got {result}"
        raise ValueError(msg)
    return result
