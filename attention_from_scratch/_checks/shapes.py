"""Shapes: dimensions, broadcasting, matching arrays, axes (private; see :mod:`attention_from_scratch._checks`)."""

from __future__ import annotations

import operator
from typing import Any, SupportsIndex

import numpy as np
from numpy.lib.array_utils import normalize_axis_index
from numpy.typing import NDArray

from attention_from_scratch._checks.arrays import as_float_array, describe
from attention_from_scratch._checks.finite import check_finite, peak
from attention_from_scratch.arrays import FloatArray

__all__ = [
    "as_gradient",
    "at_least_ndim",
    "broadcast_to_shape",
    "check_same_dtype",
    "check_same_shape",
    "gradient_peak",
    "normalize_axis",
]


def check_same_dtype(**arrays: FloatArray) -> None:
    """Raise :class:`TypeError` if the named arrays do not share one dtype."""
    values = iter(arrays.values())
    first = next(values).dtype
    if all(arr.dtype == first for arr in values):
        return
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


def broadcast_to_shape(arr: NDArray[Any], shape: tuple[int, ...], name: str, target: str) -> Any:
    """``np.broadcast_to(arr, shape)`` with an error that quotes both shapes."""
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        msg = f"{name} of shape {arr.shape} does not broadcast to {target} of shape {shape}"
        raise ValueError(msg) from None


def at_least_ndim(arr: NDArray[Any], ndim: int, name: str, layout: str) -> None:
    """Raise :class:`ValueError` unless ``arr`` has at least ``ndim`` dimensions.

    ``layout`` says what the dimensions are, e.g. ``"(the vector axis)"`` or
    ``"(..., n, d_model)"``; the message quotes it and the shape seen.
    """
    if arr.ndim >= ndim:
        return
    count = "one dimension" if ndim == 1 else f"{ndim} dimensions"
    got = "a 0-d array" if arr.ndim == 0 else f"shape {arr.shape}"
    msg = f"{name} needs at least {count} {layout}, got {got}"
    raise ValueError(msg)


def normalize_axis(axis: object, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` as a non-negative int for an array of ``ndim`` dimensions.

    Raises :class:`TypeError` if ``axis`` is not an integer and
    :class:`numpy.exceptions.AxisError` if it is out of range.
    """
    if type(axis) is int:  # the usual case, without the slower Protocol check below
        return int(normalize_axis_index(axis, ndim))
    if isinstance(axis, bool):
        msg = f"{name} must be an int, got bool"
        raise TypeError(msg)
    if not isinstance(axis, SupportsIndex):
        msg = f"{name} must be an int, got {describe(axis)}"
        raise TypeError(msg)
    try:
        index = operator.index(axis)  # ndarrays have __index__ but raise for non-integers
    except TypeError:
        msg = f"{name} must be an int, got {describe(axis)}"
        raise TypeError(msg) from None
    return int(normalize_axis_index(index, ndim))


def as_gradient(
    grad: object, shape: tuple[int, ...], dtype: np.dtype[Any], of: str, name: str = "grad"
) -> FloatArray:
    """Validate the upstream gradient ``grad`` of a vector-Jacobian product.

    It must be a real array of exactly ``shape`` and ``dtype``, those of the forward
    pass's output ``of`` (integers become ``float64`` first), and finite.
    """
    arr = _gradient_array(grad, shape, dtype, of, name)
    check_finite(arr, name)
    return arr


def gradient_peak(
    grad: object, shape: tuple[int, ...], dtype: np.dtype[Any], of: str, name: str = "grad"
) -> tuple[FloatArray, float]:
    """:func:`as_gradient`, and ``max |grad|`` found by its finiteness check (:func:`peak`)."""
    arr = _gradient_array(grad, shape, dtype, of, name)
    return arr, peak(arr, name)


def _gradient_array(
    grad: object, shape: tuple[int, ...], dtype: np.dtype[Any], of: str, name: str
) -> FloatArray:
    arr = as_float_array(grad, name)
    if arr.shape != shape:
        msg = f"{name} must have the shape of {of} {shape}, got {name} {arr.shape}"
        raise ValueError(msg)
    if arr.dtype != dtype:
        msg = f"{name} must have the dtype of {of} ({dtype}), got {name} {arr.dtype}"
        raise TypeError(msg)
    return arr
