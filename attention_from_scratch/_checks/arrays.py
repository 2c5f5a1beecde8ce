"""Arrays: what may be passed as data, in which dtype, laid out how (private; see :mod:`attention_from_scratch._checks`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from attention_from_scratch.arrays import BoolArray, FloatArray, IntArray

__all__ = [
    "FLOAT_DTYPES",
    "as_bool_mask",
    "as_float_array",
    "as_int_array",
    "as_working",
    "describe",
    "first_index",
    "float_dtype",
    "frozen",
    "read_only",
    "working_dtype",
]


def describe(x: object) -> str:
    """Name the type of ``x`` for an error message."""
    return type(x).__name__


def as_float_array(x: object, name: str) -> FloatArray:
    """Return ``x`` as a floating-point ndarray, or raise with ``name`` in the message.

    Integer input becomes ``float64``; floating input keeps its dtype and is not copied.
    """
    if type(x) is np.ndarray and x.dtype.kind == "f":  # the usual case, checked first
        return x
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
    if kind == "O" and not isinstance(x, np.ndarray) and _python_numbers(arr):
        return _big_ints_as_float64(arr, name)
    msg = f"{name} must be an array of real numbers, got dtype {arr.dtype} ({describe(x)})"
    raise TypeError(msg)


def _python_numbers(arr: NDArray[Any]) -> bool:
    """Whether the object array ``arr`` holds only Python ints and floats, bool excluded.

    numpy makes such an array from a list with an int beyond int64 (``[2**70, 1]``).
    """
    return arr.size > 0 and all(type(value) is int or type(value) is float for value in arr.flat)


def _big_ints_as_float64(arr: NDArray[Any], name: str) -> FloatArray:
    """An object array of Python ints (and floats) as float64, the rule for integers.

    An int beyond the float64 range (about 1.8e308) is a :class:`ValueError` naming it.
    """
    out = np.empty(arr.shape, dtype=np.float64)
    for index, value in np.ndenumerate(arr):
        try:
            out[index] = float(value)
        except OverflowError:
            msg = (
                f"{name} holds an integer too large for float64 at index {index} "
                f"(about 10**{len(str(abs(value))) - 1}, the largest float64 is 1.8e308)"
            )
            raise ValueError(msg) from None
    return out


def as_bool_mask(mask: object, name: str) -> BoolArray:
    """Return ``mask`` as a boolean ndarray; any other dtype is a :class:`TypeError`."""
    if mask is None or isinstance(mask, str | bytes):
        msg = f"{name} must be a boolean array, got {describe(mask)}"
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


def as_int_array(x: object, name: str) -> IntArray:
    """Return ``x`` as an integer ndarray, or raise with ``name`` in the message.

    ``None``, strings, masked arrays, bool, float, complex and object input are
    :class:`TypeError`; ragged nested lists are :class:`ValueError`. An empty list
    is an empty integer array (an empty batch), not a float one.
    """
    if x is None or isinstance(x, str | bytes):
        msg = f"{name} must be an array of integers, got {describe(x)}"
        raise TypeError(msg)
    if isinstance(x, np.ma.MaskedArray):
        msg = f"{name} is a numpy masked array, which is not supported: pass a plain array"
        raise TypeError(msg)
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        msg = f"{name} must be a rectangular array of integers: {exc}"
        raise ValueError(msg) from None
    if arr.size == 0 and arr.dtype == np.float64 and not isinstance(x, np.ndarray):
        arr = arr.astype(np.intp)  # [] has no dtype of its own: an empty batch
    if arr.dtype.kind not in "iu":
        msg = f"{name} must be integers, got dtype {arr.dtype}"
        raise TypeError(msg)
    return arr


def first_index(flags: NDArray[np.bool_]) -> tuple[int, ...]:
    """Index of the first True entry of ``flags`` (C order) as a tuple of ints."""
    flat = int(np.argmax(flags.ravel()))
    return tuple(int(i) for i in np.unravel_index(flat, flags.shape))


def working_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype arithmetic is done in: float16 accumulates in float32."""
    if dtype.char == "e":  # float16 (its one-letter code: cheaper than dtype == np.float16)
        return _FLOAT32
    return dtype


_FLOAT32 = np.dtype(np.float32)


def as_working(arr: FloatArray) -> FloatArray:
    """``arr`` as a C-contiguous array in its working dtype (float16 -> float32).

    Reductions and matrix products sum in an order that depends on the memory layout
    (NumPy's pairwise summation runs along the contiguous axis, BLAS picks kernels by
    strides); working on a C-contiguous copy makes every result independent of whether
    the input was Fortran-ordered, reversed or a strided view. No copy is made when
    ``arr`` already is C-contiguous in the working dtype.
    """
    out: FloatArray = np.ascontiguousarray(arr, dtype=working_dtype(arr.dtype))
    return out


#: The floating dtypes the package computes in (float16 is accumulated in float32).
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(
    dtype: object, name: str = "dtype", allowed: tuple[np.dtype[Any], ...] = FLOAT_DTYPES
) -> np.dtype[Any]:
    """``dtype`` as a numpy dtype if it is one of ``allowed``, else :class:`TypeError`."""
    words = ", ".join(str(d) for d in allowed[:-1]) + f" or {allowed[-1]}"
    try:
        dt: np.dtype[Any] = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        msg = f"{name} must be {words}, got {dtype!r}"
        raise TypeError(msg) from None
    if dt not in allowed:
        msg = f"{name} must be {words}, got {dt}"
        raise TypeError(msg)
    return dt


def frozen(arr: FloatArray) -> FloatArray:
    """``arr`` made read-only in place: for arrays the computation has just made.

    ``setflags`` does what ``arr.flags.writeable = False`` does, without building the
    flags object (half the time; this runs for every array a result holds).
    """
    arr.setflags(write=False)
    return arr


def read_only(arr: NDArray[Any]) -> NDArray[Any]:
    """A C-contiguous copy of ``arr`` that cannot be written to (for frozen results)."""
    out: NDArray[Any] = np.array(arr, order="C", copy=True)
    out.setflags(write=False)
    return out
