"""Loop-based float64 reference for :mod:`attention_from_scratch.softmax`.

Every number is computed one row at a time with Python floats and :mod:`math`
(``math.exp``, ``math.log``, and ``math.fsum`` for a correctly rounded sum), straight
from the textbook formulas. NumPy is used only as a container: to convert the input
to ``float64``, to move the reduced axis last and to walk over the rows with
:func:`numpy.ndindex`. The package is never imported.

The complex-step functions at the end differentiate a complex-valued softmax:
for a real-analytic ``f``, ``Im f(x + i h e_j) / h = df/dx_j + O(h^2)`` with no
subtraction, so with ``h = 1e-200`` the derivative is exact to rounding (it is
forward-mode automatic differentiation in disguise; Squire and Trapp, SIAM Review 40,
1998, "Using complex variables to estimate derivatives of real functions").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "entropy",
    "entropy_row",
    "log_softmax",
    "log_softmax_row",
    "logsumexp",
    "logsumexp_row",
    "softmax",
    "softmax_complex",
    "softmax_jacobian",
    "softmax_jacobian_complex_step",
    "softmax_jacobian_row",
    "softmax_row",
    "softmax_vjp",
    "softmax_vjp_row",
]

Array = NDArray[np.float64]
CArray = NDArray[np.complexfloating[Any, Any]]
NEG_INF = -math.inf


# ---------------------------------------------------------------------------
# One row at a time: plain Python floats.
# ---------------------------------------------------------------------------


def softmax_row(
    row: Sequence[float],
    allowed: Sequence[bool] | None = None,
    *,
    temperature: float = 1.0,
) -> list[float]:
    """``w_i = exp((x_i - m) / T) / sum_j exp((x_j - m) / T)`` over the allowed entries.

    ``m`` is the largest allowed entry. Entries that are not allowed, or ``-inf``, are
    never read and get 0; a row with no allowed finite entry is all zeros (a query
    that attends to nothing). The one loop softmax of the references: attention and
    the explanations use it too.
    """
    n = len(row)
    ok = [True] * n if allowed is None else [bool(a) for a in allowed]
    live = [i for i in range(n) if ok[i] and row[i] != NEG_INF]
    if not live:
        return [0.0] * n
    m = max(row[i] for i in live)
    # Python float subtraction overflows to -inf (no exception); exp(-inf) = 0.
    e = [math.exp((row[i] - m) / temperature) if i in live else 0.0 for i in range(n)]
    total = math.fsum(e)
    return [e_i / total for e_i in e]


def log_softmax_row(row: Sequence[float], *, temperature: float = 1.0) -> list[float]:
    """``log w_i = (x_i - m) / T - log sum_j exp((x_j - m) / T)``."""
    m = max(row)
    if m == NEG_INF:
        msg = "log_softmax of a row that is all -inf is undefined"
        raise ValueError(msg)
    z = [(v - m) / temperature for v in row]
    log_total = math.log(math.fsum(math.exp(z_i) for z_i in z))
    return [z_i - log_total for z_i in z]


def logsumexp_row(row: Sequence[float]) -> float:
    """``log sum_j exp(x_j) = m + log sum_j exp(x_j - m)``; -inf for an empty or -inf row."""
    if not row:
        return NEG_INF
    m = max(row)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(math.fsum(math.exp(v - m) for v in row))


def entropy_row(p: Sequence[float]) -> float:
    """``H(p) = -sum_{p_i > 0} p_i log p_i`` in nats (0 log 0 = 0)."""
    return -math.fsum(p_i * math.log(p_i) for p_i in p if p_i > 0.0) + 0.0


def softmax_jacobian_row(p: Sequence[float]) -> list[list[float]]:
    """``J_ij = dp_i / dx_j = p_i (delta_ij - p_j)``."""
    n = len(p)
    return [[p[i] * ((1.0 if i == j else 0.0) - p[j]) for j in range(n)] for i in range(n)]


def softmax_vjp_row(p: Sequence[float], grad: Sequence[float]) -> list[float]:
    """``dL/dx_j = sum_i g_i J_ij = p_j (g_j - sum_i g_i p_i)``."""
    inner = math.fsum(g_i * p_i for g_i, p_i in zip(grad, p, strict=True))
    return [p_j * (g_j - inner) for p_j, g_j in zip(p, grad, strict=True)]


# ---------------------------------------------------------------------------
# Whole arrays: move the axis last, loop over the rows.
# ---------------------------------------------------------------------------


def _as_f64(x: ArrayLike) -> Array:
    return np.array(x, dtype=np.float64, copy=True)


def _map_rows(x: Array, axis: int, fn: Callable[[list[float]], list[float]]) -> Array:
    """Apply ``fn`` to every 1-d row of ``x`` along ``axis``; same shape out."""
    moved = np.moveaxis(x, axis, -1)
    out = np.empty(moved.shape, dtype=np.float64)
    for index in np.ndindex(moved.shape[:-1]):
        out[index] = fn([float(v) for v in moved[index]])
    return np.moveaxis(out, -1, axis)


def _reduce_rows(
    x: Array, axis: int, fn: Callable[[list[float]], float], *, keepdims: bool = False
) -> Array:
    """Reduce every 1-d row of ``x`` along ``axis`` to one float."""
    moved = np.moveaxis(x, axis, -1)
    out = np.empty(moved.shape[:-1], dtype=np.float64)
    for index in np.ndindex(moved.shape[:-1]):
        out[index] = fn([float(v) for v in moved[index]])
    if keepdims:
        return np.expand_dims(out, axis % x.ndim)
    return out


def softmax(
    x: ArrayLike,
    *,
    axis: int = -1,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
) -> Array:
    """Reference softmax along ``axis``; ``where`` (bool, broadcast to ``x``) as the package."""
    arr = _as_f64(x)
    if where is None:
        return _map_rows(arr, axis, lambda row: softmax_row(row, temperature=temperature))
    mask = np.moveaxis(np.broadcast_to(np.asarray(where, dtype=bool), arr.shape), axis, -1)
    moved = np.moveaxis(arr, axis, -1)
    out = np.empty(moved.shape, dtype=np.float64)
    for index in np.ndindex(moved.shape[:-1]):
        row = [float(v) for v in moved[index]]
        allowed = [bool(a) for a in mask[index]]
        out[index] = softmax_row(row, allowed, temperature=temperature)
    return np.moveaxis(out, -1, axis)


def log_softmax(x: ArrayLike, *, axis: int = -1, temperature: float = 1.0) -> Array:
    """Reference log-softmax along ``axis``."""
    return _map_rows(_as_f64(x), axis, lambda row: log_softmax_row(row, temperature=temperature))


def logsumexp(x: ArrayLike, *, axis: int = -1, keepdims: bool = False) -> Array:
    """Reference log-sum-exp along ``axis``."""
    return _reduce_rows(_as_f64(x), axis, logsumexp_row, keepdims=keepdims)


def entropy(p: ArrayLike, *, axis: int = -1) -> Array:
    """Reference entropy along ``axis``, in nats."""
    return _reduce_rows(_as_f64(p), axis, entropy_row)


def softmax_jacobian(p: ArrayLike) -> Array:
    """Reference Jacobian ``(..., n) -> (..., n, n)`` along the last axis."""
    arr = _as_f64(p)
    n = arr.shape[-1]
    out = np.empty((*arr.shape, n), dtype=np.float64)
    for index in np.ndindex(arr.shape[:-1]):
        out[index] = softmax_jacobian_row([float(v) for v in arr[index]])
    return out


def softmax_vjp(p: ArrayLike, grad: ArrayLike, *, axis: int = -1) -> Array:
    """Reference vector-Jacobian product along ``axis``."""
    p_moved = np.moveaxis(_as_f64(p), axis, -1)
    g_moved = np.moveaxis(_as_f64(grad), axis, -1)
    out = np.empty(p_moved.shape, dtype=np.float64)
    for index in np.ndindex(p_moved.shape[:-1]):
        p_row = [float(v) for v in p_moved[index]]
        g_row = [float(v) for v in g_moved[index]]
        out[index] = softmax_vjp_row(p_row, g_row)
    return np.moveaxis(out, -1, axis)


# ---------------------------------------------------------------------------
# Complex step: derivatives exact to rounding, without automatic differentiation.
# ---------------------------------------------------------------------------


def softmax_complex(scores: CArray, allowed: ArrayLike | None = None) -> CArray:
    """Softmax over the last axis of complex scores, shifted by the largest REAL part.

    The shift is a real constant, so it still cancels exactly and the imaginary
    parts (the derivative) are not disturbed. Entries that are not ``allowed`` (a
    boolean array broadcast against ``scores``) get 0; a row with none allowed is all 0.
    Every operation is analytic (products, sums, ``exp``, division), as the complex
    step needs; rows are computed together, since it evaluates the forward pass once
    per input entry.
    """
    if allowed is None:
        allowed = ~np.isneginf(scores.real)
    shape = np.broadcast_shapes(scores.shape, np.shape(allowed))
    z = np.broadcast_to(scores, shape)
    ok = np.broadcast_to(np.asarray(allowed, dtype=bool), shape)
    real = np.where(ok, z.real, -np.inf)
    row_max = np.max(real, axis=-1, keepdims=True)
    shift = np.where(np.isfinite(row_max), row_max, 0.0)  # empty rows: any finite shift
    shifted = np.where(ok, z - shift, 0.0)  # real part <= 0 where allowed
    e = np.where(ok, np.exp(shifted), 0.0)
    row_sum = np.sum(e, axis=-1, keepdims=True)
    total = np.where(row_sum == 0.0, 1.0, row_sum)  # empty rows: 0 / 1
    weights: CArray = np.asarray(e / total, dtype=np.complex128)
    return weights


def softmax_jacobian_complex_step(
    row: Sequence[float], *, temperature: float = 1.0, h: float = 1e-200
) -> list[list[float]]:
    """``J[i][j] = Im softmax(x + i h e_j)_i / h``: the Jacobian of softmax at the scores ``x``.

    Built column by column; with ``temperature`` it is the Jacobian of
    ``softmax(x / T)`` with respect to ``x``.
    """
    n = len(row)
    jac = [[0.0] * n for _ in range(n)]
    for j in range(n):
        stepped = [complex(v, h if k == j else 0.0) / temperature for k, v in enumerate(row)]
        w = softmax_complex(np.asarray(stepped, dtype=np.complex128))
        for i in range(n):
            jac[i][j] = w[i].imag / h
    return jac
