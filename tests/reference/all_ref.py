"""One loop reference per public op, with the package's signatures (float64).

The per-module files hold the formulas (``softmax_ref``, ``norms_ref``,
``projections_ref``, ``attention_ref``, ``explain_ref``); this module adds the two
masks, which had none, and wraps the one-vector references so that every public
function of the package has an array-level reference called the same way. The
property tests compare each op against the function of the same name here.

Like the rest of :mod:`tests.reference`, nothing here imports the package: the
attention references take the weight arrays (``w_q=params.w_q``, ...) rather than an
:class:`~attention_from_scratch.projections.AttentionParams`. NumPy only holds inputs
and results; every number is computed in a Python loop.

================================  ==========================================
package op                        reference
================================  ==========================================
softmax.softmax                   :func:`softmax` (``softmax_ref.softmax_row``)
softmax.log_softmax               :func:`log_softmax`
softmax.logsumexp                 :func:`logsumexp`
softmax.entropy                   :func:`entropy`
softmax.softmax_jacobian          :func:`softmax_jacobian`
softmax.softmax_vjp               :func:`softmax_vjp`
norms.l2_norm                     :func:`l2_norm` (exact rationals)
norms.l2_normalize                :func:`l2_normalize`
norms.cosine_similarity           :func:`cosine_similarity`
norms.layer_norm                  :func:`layer_norm`
norms.rms_norm                    :func:`rms_norm`
projections.linear                :func:`linear` (``math.fsum``)
projections.project_qkv           :func:`project_qkv`
projections.split_heads           :func:`split_heads`
projections.merge_heads           :func:`merge_heads`
self_attention.causal_mask        :func:`causal_mask`
self_attention.padding_mask       :func:`padding_mask`
self_attention.scaled_dot_...     :func:`scaled_dot_product_attention`
self_attention.self_attention     :func:`self_attention`
self_attention.multi_head_...     :func:`multi_head_attention`
explain.explain_score             ``explain_ref.pair_ref``
explain.explain_query             ``explain_ref.softmax_ref``/``entropy_ref``
================================  ==========================================
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tests.reference import attention_ref, norms_ref, projections_ref, softmax_ref
from tests.reference.attention_ref import AttentionRef, MultiHeadRef

__all__ = [
    "causal_mask",
    "cosine_similarity",
    "entropy",
    "l2_norm",
    "l2_normalize",
    "layer_norm",
    "linear",
    "log_softmax",
    "logsumexp",
    "map_vectors",
    "merge_heads",
    "multi_head_attention",
    "padding_mask",
    "project_qkv",
    "reduce_vectors",
    "rms_norm",
    "scaled_dot_product_attention",
    "self_attention",
    "softmax",
    "softmax_jacobian",
    "softmax_vjp",
    "split_heads",
]

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# The softmax family already has array-level references with the package's signatures.
softmax = softmax_ref.softmax
log_softmax = softmax_ref.log_softmax
logsumexp = softmax_ref.logsumexp
entropy = softmax_ref.entropy
softmax_jacobian = softmax_ref.softmax_jacobian
softmax_vjp = softmax_ref.softmax_vjp
linear = projections_ref.linear_ref
split_heads = projections_ref.split_heads_ref
merge_heads = projections_ref.merge_heads_ref
scaled_dot_product_attention = attention_ref.attention_ref_batched


# ---------------------------------------------------------------------------
# Masks: two loops each.
# ---------------------------------------------------------------------------


def causal_mask(n_q: int, n_k: int | None = None) -> BoolArray:
    """``M[i][j] = (j <= i)``: query ``i`` sees keys ``0 .. i`` (top-left aligned)."""
    m = n_q if n_k is None else n_k
    out = np.zeros((n_q, m), dtype=bool)
    for i in range(n_q):
        for j in range(m):
            out[i, j] = j <= i
    return out


def padding_mask(lengths: Sequence[int], n: int) -> BoolArray:
    """``M[b][0][j] = (j < lengths[b])``: the real tokens of sequence ``b``."""
    out = np.zeros((len(lengths), 1, n), dtype=bool)
    for b, length in enumerate(lengths):
        for j in range(n):
            out[b, 0, j] = j < int(length)
    return out


# ---------------------------------------------------------------------------
# Norms: the one-vector references of norms_ref applied to every vector.
# ---------------------------------------------------------------------------


def _rows(x: ArrayLike, axis: int) -> tuple[Array, tuple[int, ...]]:
    """The vectors of ``x`` along ``axis`` as rows, and the shape of the other axes."""
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape[:-1]


def reduce_vectors(fn: Callable[[list[float]], float], x: ArrayLike, axis: int = -1) -> Array:
    """``fn`` (a one-vector reference) on every vector along ``axis``; the axis is removed."""
    rows, rest = _rows(x, axis)
    values = [fn([float(v) for v in row]) for row in rows]
    return np.array(values, dtype=np.float64).reshape(rest)


def map_vectors(fn: Callable[[list[float]], list[float]], x: ArrayLike, axis: int = -1) -> Array:
    """``fn`` (a one-vector reference) on every vector along ``axis``; the shape is kept."""
    rows, rest = _rows(x, axis)
    mapped = [fn([float(v) for v in row]) for row in rows]
    width = np.asarray(x).shape[axis]
    out = np.array(mapped, dtype=np.float64).reshape(*rest, width)
    return np.moveaxis(out, -1, axis)


def l2_norm(x: ArrayLike, *, axis: int = -1, keepdims: bool = False) -> Array:
    """``sqrt(sum_i x_i^2)`` of every vector along ``axis``, exactly up to the last rounding."""
    out = reduce_vectors(norms_ref.l2_norm_ref, x, axis)
    return np.expand_dims(out, axis % np.ndim(x)) if keepdims else out


def l2_normalize(x: ArrayLike, *, axis: int = -1, eps: float | None = None) -> Array:
    """``x / max(||x||, eps)`` of every vector along ``axis``."""
    return map_vectors(lambda row: norms_ref.l2_normalize_ref(row, eps), x, axis)


def cosine_similarity(a: ArrayLike, b: ArrayLike, *, axis: int = -1) -> Array:
    """``a . b / (|a| |b|)`` of every pair of vectors of the broadcast ``a``, ``b``."""
    a_b, b_b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    rows_a, rest = _rows(a_b, axis)
    rows_b, _ = _rows(b_b, axis)
    values = [
        norms_ref.cosine_similarity_ref([float(v) for v in ra], [float(v) for v in rb])
        for ra, rb in zip(rows_a, rows_b, strict=True)
    ]
    return np.array(values, dtype=np.float64).reshape(rest)


def _as_list(values: ArrayLike | None) -> list[float] | None:
    return None if values is None else [float(v) for v in np.asarray(values).ravel()]


def layer_norm(
    x: ArrayLike,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    eps: float = 1e-5,
) -> Array:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` over the last axis."""
    g, b = _as_list(gamma), _as_list(beta)
    return map_vectors(lambda row: norms_ref.layer_norm_ref(row, g, b, eps), x, -1)


def rms_norm(x: ArrayLike, gamma: ArrayLike | None = None, *, eps: float = 1e-6) -> Array:
    """``x / sqrt(mean(x^2) + eps) * gamma`` over the last axis."""
    g = _as_list(gamma)
    return map_vectors(lambda row: norms_ref.rms_norm_ref(row, g, eps), x, -1)


# ---------------------------------------------------------------------------
# Projections and attention, from the weight arrays.
# ---------------------------------------------------------------------------


def project_qkv(
    x: ArrayLike,
    *,
    w_q: ArrayLike,
    w_k: ArrayLike,
    w_v: ArrayLike,
    b_q: ArrayLike | None = None,
    b_k: ArrayLike | None = None,
    b_v: ArrayLike | None = None,
    context: ArrayLike | None = None,
    **_unused: Any,
) -> tuple[Array, Array, Array]:
    """``q = x w_q + b_q``, ``k = c w_k + b_k``, ``v = c w_v + b_v`` with ``c = context or x``.

    Extra keyword arrays (``w_o``, ``b_o``) are accepted and ignored, so that the same
    ``**weights`` dictionary serves every reference.
    """
    c = x if context is None else context
    return linear(x, w_q, b_q), linear(c, w_k, b_k), linear(c, w_v, b_v)


def multi_head_attention(
    x: ArrayLike,
    *,
    n_heads: int,
    n_kv_heads: int | None = None,
    context: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
    **weights: Any,
) -> MultiHeadRef:
    """Multi-head (grouped-query, cross-) attention of ``x`` (..., n, d_model), by loops."""
    return attention_ref.multi_head_ref_batched(
        x,
        weights["w_q"],
        weights["w_k"],
        weights["w_v"],
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        w_o=weights.get("w_o"),
        b_q=weights.get("b_q"),
        b_k=weights.get("b_k"),
        b_v=weights.get("b_v"),
        b_o=weights.get("b_o"),
        context=context,
        mask=mask,
        is_causal=is_causal,
    )


def self_attention(
    x: ArrayLike, *, mask: ArrayLike | None = None, is_causal: bool = False, **weights: Any
) -> AttentionRef:
    """One-head self-attention: :func:`multi_head_attention` without the head axis.

    ``output`` is the final output (after ``w_o``, ``b_o`` when given), ``weights``
    ``(..., n, n)``; ``scores`` are the scaled logits of the single head.
    """
    full = multi_head_attention(x, n_heads=1, mask=mask, is_causal=is_causal, **weights)
    xs = np.asarray(x, dtype=np.float64)
    q, k, _ = project_qkv(xs, **weights)
    scores = np.zeros(full.weights.shape[:-3] + full.weights.shape[-2:], dtype=np.float64)
    for index in itertools.product(*(range(s) for s in xs.shape[:-2])):
        scores[index] = attention_ref.scores_ref(q[index], k[index])
    return AttentionRef(weights=full.weights[..., 0, :, :], output=full.output, scores=scores)
