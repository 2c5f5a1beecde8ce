"""Indices: which batch entry, head, query or key (private; see :mod:`attention_from_scratch._checks`)."""

from __future__ import annotations

import math

import numpy as np

from attention_from_scratch._checks.arrays import describe

__all__ = ["batch_index", "check_index", "int_index"]


def check_index(i: int, size: int, what: str) -> int:
    """Return ``i`` (which may count from the end) in ``0 .. size - 1``, or raise IndexError."""
    if not -size <= i < size:
        msg = f"index {i} is out of bounds for {what} with size {size}"
        raise IndexError(msg)
    return i % size


def int_index(value: object, size: int, what: str) -> int:
    """Validate an int index (bool, float, str are :class:`TypeError`) of an axis of ``size``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{what} must be an int, got {describe(value)}"
        raise TypeError(msg)
    return check_index(int(value), size, what)


def batch_index(batch: object, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Turn ``batch`` (None, an int or a tuple of ints) into a full index of ``shape``.

    None is allowed only when the leading dimensions ``shape`` hold one entry.
    """
    if batch is None:
        if math.prod(shape) == 0:
            msg = (
                f"the result's batch is empty (batch dimensions {shape}): no batch entry to index"
            )
            raise IndexError(msg)
        if math.prod(shape) > 1:
            msg = f"the result has batch dimensions {shape}: pass batch= (an int or a tuple)"
            raise ValueError(msg)
        return (0,) * len(shape)
    index = tuple(batch) if isinstance(batch, tuple | list) else (batch,)
    if len(index) != len(shape):
        msg = f"batch must index all {len(shape)} batch dimensions {shape}, got {batch!r}"
        raise ValueError(msg)
    out: list[int] = []
    for axis, (i, size) in enumerate(zip(index, shape, strict=True)):
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            msg = f"batch indices must be ints, got {describe(i)}"
            raise TypeError(msg)
        out.append(check_index(int(i), size, f"batch axis {axis}"))
    return tuple(out)
