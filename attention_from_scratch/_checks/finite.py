"""Finite values: NaN and infinities in inputs, overflow in results (private; see :mod:`attention_from_scratch._checks`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attention_from_scratch._checks.arrays import FLOAT_DTYPES, first_index
from attention_from_scratch.arrays import FloatArray

__all__ = [
    "FLAT_ENTRIES",
    "all_finite",
    "arrays_finite",
    "check_cast",
    "check_finite",
    "check_row_max",
    "every",
    "every_finite",
    "finite_result",
    "finite_results",
    "overflow_advice",
    "peak",
]


def every(flags: NDArray[np.bool_]) -> bool:
    """``flags.all()``, reduced as one flat run (a view): about half the cost on small arrays.

    ``ndarray.all`` goes through a Python wrapper and reduces over every axis with
    numpy's multi-axis iterator; ``logical_and`` over the flattened flags does not.
    """
    return bool(np.logical_and.reduce(flags.ravel()))


def every_finite(arr: FloatArray) -> bool:
    """Whether every entry of ``arr`` is finite: ``np.isfinite(arr).all()``, via :func:`every`."""
    return every(np.isfinite(arr))


def all_finite(arr: FloatArray) -> bool:
    """Whether every entry of ``arr`` is finite; call it inside ``np.errstate(over="ignore")``.

    A NaN or an infinity makes the sum of all entries NaN or infinite, so a finite sum
    proves every entry finite in one pass without an array of flags; a sum that is not
    finite may be finite entries whose total overflows, told apart entry by entry.
    """
    return math.isfinite(np.add.reduce(arr.ravel())) or every_finite(arr)


def check_finite(arr: FloatArray, name: str, *, allow_neg_inf: bool = False) -> None:
    """Raise :class:`ValueError` at the first NaN or infinite entry of ``arr``.

    With ``allow_neg_inf=True`` entries equal to ``-inf`` are accepted (an additive
    bias that forbids a key).
    """
    finite = np.isfinite(arr)
    if every(finite):
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
    if every_finite(row_max):
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


def finite_result(
    out: FloatArray, dtype: np.dtype[Any], what: str, *, allow_neg_inf: bool = False
) -> FloatArray:
    """Cast ``out`` to ``dtype``; raise :class:`FloatingPointError` where it is not finite.

    For results computed from finite, validated inputs, a non-finite entry means the
    exact result does not fit ``dtype`` (or an intermediate of the working dtype
    overflowed). The error says where and what to do, instead of returning ``inf``
    with a ``RuntimeWarning``. With ``allow_neg_inf``, entries that already are
    ``-inf`` in ``out`` are results (the log of an empty sum), not overflows.
    """
    result: FloatArray = out
    if out.dtype != dtype:
        with np.errstate(over="ignore", invalid="ignore"):  # a value too large: inf, found below
            result = out.astype(dtype)
    finite = np.isfinite(result)
    if allow_neg_inf:
        finite |= np.isneginf(out)
    if not every(finite):
        index = first_index(~finite)
        msg = (
            f"{what} overflows {dtype} at index {index}: the exact result is larger than "
            f"{np.finfo(dtype).max:.4g}; {overflow_advice(dtype, 'rescale', wider='pass')}"
        )
        raise FloatingPointError(msg)
    return result


#: Arrays of up to this many entries are tested together, as one flat copy (:func:`arrays_finite`).
FLAT_ENTRIES = 1 << 10


def arrays_finite(arrays: Sequence[FloatArray]) -> bool:
    """Whether every entry of every array is finite, the arrays tested together.

    Small arrays (up to :data:`FLAT_ENTRIES` entries each: the weights and biases of a
    training step) are copied side by side into one flat array and tested in one pass,
    one call instead of one per array. Larger ones are tested one by one by
    :func:`all_finite`, without a copy: in a training loop a copy of the activations'
    gradients (100 KiB at the benchmark's sizes) costs more in fresh memory pages than
    the calls it saves.
    """
    small = [arr.reshape(-1) for arr in arrays if arr.size <= FLAT_ENTRIES]
    if small and not every_finite(np.concatenate(small)):
        return False
    large = [arr for arr in arrays if arr.size > FLAT_ENTRIES]
    if not large:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return all(all_finite(arr) for arr in large)


def finite_results(
    outs: Sequence[FloatArray], dtype: np.dtype[Any], whats: Sequence[str]
) -> list[FloatArray]:
    """:func:`finite_result` of several arrays, decided by one :func:`arrays_finite`.

    Each array is cast to ``dtype``; when they are all finite, they are returned as
    they are, otherwise each goes through :func:`finite_result`, which raises for the
    first that overflowed (naming it by its ``whats``).
    """
    results = list(outs)
    if any(out.dtype != dtype for out in outs):
        with np.errstate(over="ignore", invalid="ignore"):  # a value too large: inf, found below
            results = [out.astype(dtype, copy=False) for out in outs]
    if arrays_finite(results):
        return results
    return [finite_result(out, dtype, what) for out, what in zip(outs, whats, strict=True)]


def overflow_advice(dtype: np.dtype[Any], rescale: str, *, wider: str = "compute in") -> str:
    """What to do when ``dtype`` overflowed: a wider float dtype if there is one, or rescale.

    ``"compute in float64 or rescale q and k"`` for float32, ``"rescale q and k"`` for
    float64 (none is wider); with ``wider="pass"``, ``"pass a wider dtype (float32,
    float64) or rescale"`` for float16.
    """
    dtypes = [str(d) for d in FLOAT_DTYPES if d.itemsize > np.dtype(dtype).itemsize]
    if not dtypes:
        return rescale
    if wider == "pass":
        return f"pass a wider dtype ({', '.join(dtypes)}) or {rescale}"
    return f"{wider} float64 or {rescale}"


def peak(arr: FloatArray, name: str) -> float:
    """``max |arr|``, validating ``arr`` on the way (0 for an empty array).

    The largest and the smallest entry are NaN or infinite exactly when ``arr`` holds a
    NaN or an infinity, so two reductions, without a temporary array, both bound the
    scores and check that ``arr`` is finite.
    """
    if arr.size == 0:
        return 0.0
    high, low = float(np.max(arr)), float(np.min(arr))
    if not (math.isfinite(high) and math.isfinite(low)):
        check_finite(arr, name)  # raises, naming the first bad index
    return max(high, -low)


def check_cast(before: FloatArray, after: FloatArray, name: str) -> None:
    """Raise ValueError if casting ``before`` to ``after``'s dtype made a finite entry infinite."""
    overflowed = np.isinf(after) & np.isfinite(before)
    if overflowed.any():
        index = first_index(overflowed)
        msg = (
            f"{name} does not fit q's dtype {after.dtype}: {float(before[index])!r} at index "
            f"{index} overflows it"
        )
        raise ValueError(msg)
