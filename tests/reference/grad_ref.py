"""Complex-step reference gradients for the backward pass of attention.

An independent forward pass of attention written with NumPy *complex* arithmetic
(the package is never imported), and the complex-step derivative built on it. For a
real function ``f`` that is analytic in its argument,

    f(x + i h) = f(x) + i h f'(x) - h^2 f''(x) / 2 - i h^3 f'''(x) / 6 + ...

so ``Im f(x + i h) / h = f'(x) + O(h^2)`` with no subtraction of nearly equal numbers:
with ``h = 1e-30`` the truncation term is ``1e-60`` and the derivative is exact to
rounding (Squire and Trapp, SIAM Review 40(1), 1998). Every operation below is
therefore analytic: products, sums, ``exp`` and division. Masks are fixed boolean
selections (``np.where``), and the softmax (``softmax_ref.softmax_complex``, shared with
the softmax Jacobian's complex step) is shifted by the maximum of the *real*
parts, a constant that cancels exactly.

Conventions, as in the package's design: masks are boolean with True = "may attend";
``is_causal`` allows key ``j`` for query ``i`` when ``j <= i`` (top-left aligned),
AND-ed with the mask; a ``bias`` entry of ``-inf`` forbids its key; a query with no
key allowed gets weights 0 and output 0; weights are ``(in, out)``: ``q = x @ w_q +
b_q``; head ``i`` owns columns ``i*d : (i+1)*d``; query head ``i`` uses key/value head
``i // (n_heads // n_kv_heads)``. Here the key/value heads are *repeated* for their
query heads (``np.repeat``), not grouped by a reshape as in the package.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tests.reference.softmax_ref import softmax_complex

__all__ = [
    "complex_step_gradient",
    "heads_forward",
    "l2_normalize_forward",
    "layer_norm_forward",
    "linear_forward",
    "log_softmax_forward",
    "mha_forward",
    "rms_norm_forward",
    "sdpa_forward",
]

CArray = NDArray[np.complexfloating[Any, Any]]
H_STEP = 1e-30


def _c(a: ArrayLike) -> CArray:
    return np.asarray(a, dtype=np.complex128)


def _allowed(
    n: int,
    m: int,
    mask: ArrayLike | None,
    bias: ArrayLike | None,
    is_causal: bool,
) -> NDArray[np.bool_]:
    """The boolean (..., n, m) selection of allowed keys (broadcastable)."""
    allowed = np.ones((n, m), dtype=bool)
    if mask is not None:
        allowed = allowed & np.asarray(mask, dtype=bool)
    if is_causal:
        allowed = allowed & (np.arange(m)[None, :] <= np.arange(n)[:, None])
    if bias is not None:
        allowed = allowed & ~np.isneginf(np.real(_c(bias)))
    return allowed


def sdpa_forward(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> CArray:
    """``softmax(q k^T * scale + bias, where=mask) @ v`` in complex arithmetic."""
    qc, kc, vc = _c(q), _c(k), _c(v)
    n, m, d_k = qc.shape[-2], kc.shape[-2], qc.shape[-1]
    s = 1.0 / math.sqrt(d_k) if scale is None else float(scale)
    scores = s * np.einsum("...id,...jd->...ij", qc, kc)
    allowed = _allowed(n, m, mask, bias, is_causal)
    if bias is not None:
        bc = _c(bias)
        scores = scores + np.where(np.isneginf(bc.real), 0.0, bc)
    weights = softmax_complex(scores, allowed)
    out: CArray = np.einsum("...ij,...jd->...id", weights, vc)
    return out


def heads_forward(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    w_o: ArrayLike | None = None,
    b_o: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
) -> CArray:
    """Per-head attention from q (..., h, n, d_k), k, v (..., h_kv, m, d), merged, @ w_o."""
    qc, kc, vc = _c(q), _c(k), _c(v)
    h, h_kv = qc.shape[-3], kc.shape[-3]
    group = h // h_kv
    k_rep = np.repeat(kc, group, axis=-3)  # kv head i // g for query head i
    v_rep = np.repeat(vc, group, axis=-3)
    head_mask = None if mask is None else np.asarray(mask, dtype=bool)[..., None, :, :]
    heads = sdpa_forward(qc, k_rep, v_rep, mask=head_mask, is_causal=is_causal)
    # Concat(head_1, ..., head_h): row r of the result is [head_1[r], ..., head_h[r]]
    merged = np.concatenate([heads[..., i, :, :] for i in range(h)], axis=-1)
    if w_o is None:
        return merged
    out: CArray = merged @ _c(w_o)
    if b_o is not None:
        out = out + _c(b_o)
    return out


def mha_forward(
    x: ArrayLike,
    w_q: ArrayLike,
    w_k: ArrayLike,
    w_v: ArrayLike,
    *,
    n_heads: int,
    n_kv_heads: int | None = None,
    w_o: ArrayLike | None = None,
    b_q: ArrayLike | None = None,
    b_k: ArrayLike | None = None,
    b_v: ArrayLike | None = None,
    b_o: ArrayLike | None = None,
    context: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
) -> CArray:
    """Multi-head (grouped-query, cross-) attention from embeddings, in complex arithmetic."""
    h = n_heads
    h_kv = h if n_kv_heads is None else n_kv_heads
    xc = _c(x)
    cc = xc if context is None else _c(context)

    def project(rows: CArray, w: ArrayLike, b: ArrayLike | None, n_h: int) -> CArray:
        out = rows @ _c(w)
        if b is not None:
            out = out + _c(b)
        d = out.shape[-1] // n_h
        # head i = columns i*d : (i+1)*d, stacked on a new head axis before the rows
        return np.stack([out[..., i * d : (i + 1) * d] for i in range(n_h)], axis=-3)

    q = project(xc, w_q, b_q, h)
    k = project(cc, w_k, b_k, h_kv)
    v = project(cc, w_v, b_v, h_kv)
    return heads_forward(q, k, v, w_o=w_o, b_o=b_o, mask=mask, is_causal=is_causal)


def complex_step_gradient(
    f: Callable[..., CArray],
    grad_output: ArrayLike,
    args: dict[str, Any],
    name: str,
    *,
    h: float = H_STEP,
) -> NDArray[np.float64]:
    """The gradient of ``L = sum(grad_output * f(**args))`` with respect to ``args[name]``.

    One complex evaluation per entry: ``dL/dtheta_i = Im L(theta + i h e_i) / h``.
    """
    g = np.asarray(grad_output, dtype=np.float64)
    theta = np.asarray(args[name], dtype=np.float64)
    grad = np.zeros(theta.shape, dtype=np.float64)
    for index in np.ndindex(*theta.shape):
        perturbed = theta.astype(np.complex128)
        perturbed[index] += 1j * h
        loss = np.sum(g * f(**{**args, name: perturbed}))
        grad[index] = float(np.imag(loss)) / h
    return grad


# ---------------------------------------------------------------------------
# The other forwards: norms, linear, log-softmax, one row at a time
# ---------------------------------------------------------------------------


def _rows_of(x: CArray) -> list[tuple[int, ...]]:
    """The indices of every row along the last axis (all leading indices)."""
    return list(np.ndindex(*x.shape[:-1]))


def layer_norm_forward(
    x: ArrayLike, gamma: ArrayLike | None = None, beta: ArrayLike | None = None, *, eps: float
) -> CArray:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` row by row, in complex arithmetic."""
    xc = _c(x)
    out = np.zeros(xc.shape, dtype=np.complex128)
    d = xc.shape[-1]
    for index in _rows_of(xc):
        row = xc[index]
        mean = sum(row[i] for i in range(d)) / d
        var = sum((row[i] - mean) * (row[i] - mean) for i in range(d)) / d
        out[index] = (row - mean) / np.sqrt(var + eps)
    if gamma is not None:
        out = out * _c(gamma)
    if beta is not None:
        out = out + _c(beta)
    return out


def rms_norm_forward(x: ArrayLike, gamma: ArrayLike | None = None, *, eps: float) -> CArray:
    """``x / sqrt(mean(x^2) + eps) * gamma`` row by row, in complex arithmetic."""
    xc = _c(x)
    out = np.zeros(xc.shape, dtype=np.complex128)
    d = xc.shape[-1]
    for index in _rows_of(xc):
        row = xc[index]
        mean_square = sum(row[i] * row[i] for i in range(d)) / d
        out[index] = row / np.sqrt(mean_square + eps)
    if gamma is not None:
        out = out * _c(gamma)
    return out


def l2_normalize_forward(x: ArrayLike, *, axis: int = -1, eps: float | None = None) -> CArray:
    """``x / max(||x||, eps)`` vector by vector; the branch is chosen on the real part.

    ``||x|| = sqrt(sum x_i^2)`` (no ``abs``: analytic), and ``max`` picks the norm where
    its real part is at least ``eps``, as torch's ``clamp_min`` does.
    """
    xc = np.moveaxis(_c(x), axis, -1)
    out = np.zeros(xc.shape, dtype=np.complex128)
    for index in _rows_of(xc):
        row = xc[index]
        norm = np.sqrt(sum(row[i] * row[i] for i in range(row.shape[0])))
        if eps is not None and norm.real < eps:
            norm = complex(eps)
        out[index] = row / norm
    moved: CArray = np.moveaxis(out, -1, axis)
    return moved


def linear_forward(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None) -> CArray:
    """``y_j = sum_i x_i w_ij + b_j`` row by row, in complex arithmetic."""
    xc, wc = _c(x), _c(weight)
    d_in, d_out = wc.shape
    out = np.zeros((*xc.shape[:-1], d_out), dtype=np.complex128)
    for index in _rows_of(xc):
        for j in range(d_out):
            out[(*index, j)] = sum(xc[(*index, i)] * wc[i, j] for i in range(d_in))
    if bias is not None:
        out = out + _c(bias)
    return out


def log_softmax_forward(x: ArrayLike, *, axis: int = -1) -> CArray:
    """``x_i - m - log(sum_j exp(x_j - m))`` along ``axis``, ``m`` the real maximum."""
    xc = np.moveaxis(_c(x), axis, -1)
    out = np.zeros(xc.shape, dtype=np.complex128)
    for index in _rows_of(xc):
        row = xc[index]
        shift = float(np.max(row.real))
        total = sum(np.exp(row[i] - shift) for i in range(row.shape[0]))
        out[index] = row - shift - np.log(total)
    moved: CArray = np.moveaxis(out, -1, axis)
    return moved
