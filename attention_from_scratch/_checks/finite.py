"""Finite values: NaN and infinities in inputs, overflow in results (private; see :mod:`attention_from_scratch._checks`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attention_from_scratch._checks.arrays import FLOAT_DTYPES, first_index
from attention_from_scratch.arrays import FloatArray

__all__ = [
    "ABS_ENTRIES",
    "FLAT_ENTRIES",
    "MOST_TERMS",
    "all_finite",
    "arrays_finite",
    "arrays_peak",
    "check_cast",
    "check_finite",
    "check_row_max",
    "every",
    "every_finite",
    "finite_result",
    "finite_results",
    "fits",
    "largest",
    "largest_entry",
    "named_peak",
    "overflow_advice",
    "peak",
    "silenced",
    "sum_bound",
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


def arrays_peak(arrays: Sequence[FloatArray]) -> float:
    """``max |entry|`` over every array, NaN if one holds a NaN or an infinity (0 if empty).

    The small arrays are tested together, as :func:`arrays_finite` tests them: one flat
    copy, the largest of its ``|entry|`` (as :func:`peak`); a large one alone. The
    caller names the array at fault when the result is NaN.
    """
    small = [arr.reshape(-1) for arr in arrays if arr.size <= FLAT_ENTRIES]
    flats = [np.concatenate(small)] if small else []
    flats += [arr.reshape(-1) for arr in arrays if arr.size > FLAT_ENTRIES]
    top = 0.0
    for flat in flats:
        high = _max_abs(flat)
        if not math.isfinite(high):
            return math.nan
        top = max(top, high)
    return top


def named_peak(arrays: Mapping[str, FloatArray | None], label: str = "{}") -> float:
    """``max |entry|`` over the arrays present (:func:`arrays_peak`), validating them.

    :class:`ValueError` naming the first array, in the mapping's order, that holds a
    NaN or an infinity (:func:`check_finite`), as ``label.format(key)``: the label is
    only formatted for the error.
    """
    present = {name: arr for name, arr in arrays.items() if arr is not None}
    top = arrays_peak(list(present.values()))
    if not math.isfinite(top):
        for name, arr in present.items():
            check_finite(arr, label.format(name))  # raises for the first that is not finite
    return top


def largest_entry(arr: FloatArray, name: str) -> float:
    """The largest entry of ``arr`` (``-inf`` if empty), which may hold ``-inf`` only.

    One reduction: the maximum is NaN when ``arr`` holds a NaN and ``+inf`` when it
    holds ``+inf``, and then :class:`ValueError` names the first such entry; ``-inf``
    entries (log-probabilities of 0) are allowed.
    """
    top = float(np.maximum.reduce(arr, axis=None)) if arr.size else -math.inf
    if not top < math.inf:  # NaN or +inf
        check_finite(arr, name, allow_neg_inf=True)  # raises, naming the first
    return top


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

    The largest ``|entry|`` is NaN or infinite exactly when ``arr`` holds a NaN or an
    infinity, so the reduction that bounds ``arr`` also checks that it is finite. Up to
    :data:`ABS_ENTRIES` entries it reduces ``|arr|`` (one temporary, two calls); larger
    arrays go through their largest and smallest entry, two reductions without a
    temporary. (The ufuncs' own ``reduce``: ``np.max`` adds a Python wrapper that costs
    as much as the reduction on small arrays.)
    """
    top = _max_abs(arr)
    if not math.isfinite(top):
        check_finite(arr, name)  # raises, naming the first bad index
    return top


def _max_abs(arr: FloatArray) -> float:
    """``max |arr|`` (0 if empty), NaN or ``inf`` if ``arr`` holds a NaN or an infinity."""
    if arr.size == 0:
        return 0.0
    if arr.size <= ABS_ENTRIES:
        return float(np.maximum.reduce(np.abs(arr), axis=None))  # NaN propagates
    high = float(np.maximum.reduce(arr, axis=None))  # NaN if one is NaN, as is low
    return max(high, -float(np.minimum.reduce(arr, axis=None)))


#: Arrays of up to this many entries are bounded by ``max |arr|`` in :func:`peak`:
#: measured, one call of ``abs`` and one reduction beat two reductions up to about
#: 8000 float64 entries (1.8 against 2.9 us at 16 entries, 3.0 against 3.9 at 3072).
ABS_ENTRIES = 1 << 13


def sum_bound(terms: int, *peaks: float) -> float:
    """A bound of ``|fl(sum of terms products)|`` whose factors are bounded by ``peaks``.

    ``|sum_k a_k b_k| <= terms * max|a| * max|b|`` exactly, and the computed sum, in any
    order, is within a factor ``1 + gamma_terms < 2`` of the sum of the magnitudes
    (:cite:t:`higham2002accuracy`, §3.1, with ``terms * u < 1/2``); so twice the product
    bounds the computed value, every partial sum and every product on the way. Bounds
    chain: a bound of a computed array is a peak for the next product. In Python floats:
    a product too large for them is ``inf``, which :func:`fits` refuses (and so is
    ``inf * 0``, which would be NaN).
    """
    if terms > MOST_TERMS:
        return math.inf  # the factor 2 needs terms * u < 1/2: nothing is proven
    bound = 2.0 * terms
    for value in peaks:
        bound *= value
    return math.inf if math.isnan(bound) else bound  # inf * 0: nothing is proven


#: The most terms :func:`sum_bound` bounds: ``terms * u < 1/2`` with the unit roundoff
#: ``u = 2**-24`` of float32, the narrowest dtype the package sums in (float16 sums in
#: float32), with room to spare.
MOST_TERMS = 1 << 22


def fits(bound: float, dtype: np.dtype[Any]) -> bool:
    """Whether computed values bounded by ``bound`` (:func:`sum_bound`) are finite in ``dtype``.

    A result proven finite this way needs no scan for overflow, and its lines need no
    ``np.errstate``: no operation on the way can overflow. Half the largest float leaves
    room for the rounding of ``bound`` itself.
    """
    return bound <= _LARGEST[dtype.char] / 2


def largest(dtype: np.dtype[Any]) -> float:
    """``np.finfo(dtype).max`` of a float dtype, looked up (``np.finfo`` takes a microsecond)."""
    return _LARGEST[dtype.char]


_LARGEST = {np.dtype(t).char: float(np.finfo(t).max) for t in FLOAT_DTYPES}


def silenced(proven: bool = False) -> AbstractContextManager[object]:
    """``np.errstate(over="ignore", invalid="ignore")``, or nothing when ``proven``.

    Lines that may overflow run silenced and report an overflow themselves
    (:func:`finite_result`); lines whose results a bound has proven finite
    (:func:`fits`) cannot overflow, and skip the cost of entering ``np.errstate``.
    """
    return _NOTHING if proven else np.errstate(over="ignore", invalid="ignore")


_NOTHING = nullcontext()


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
