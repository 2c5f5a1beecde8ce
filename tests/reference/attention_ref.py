"""Loop-based float64 reference for :mod:`attention_from_scratch.self_attention`.

Written from Eq. 1 of Vaswani et al. (2017) one query at a time with Python floats
and :mod:`math` (``math.fsum`` for correctly rounded dot products and sums,
``math.exp`` for the softmax). NumPy only holds inputs and results: it converts
the arguments to nested lists, broadcasts leading batch dimensions (a view, no
arithmetic) and stores the answers. The package is never imported; the softmax and the
linear maps are those of ``softmax_ref`` and ``projections_ref``.

Conventions, as in the design contract:

* masks are boolean, True = "may attend"; ``is_causal`` allows key ``j`` for query
  ``i`` when ``j <= i`` (top-left aligned, also when ``n != m``), AND-ed with the mask;
* a ``bias`` entry of ``-inf`` forbids that key;
* a query with no key allowed gets weights 0 and output 0;
* weights are in the paper's ``(in, out)`` layout: ``q = x @ w_q + b_q``; head ``i``
  owns columns ``i*d : (i+1)*d``; with ``g = n_heads / n_kv_heads`` query head ``i``
  uses key/value head ``i // g``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tests.reference.projections_ref import linear_ref
from tests.reference.softmax_ref import softmax_row

__all__ = [
    "AttentionRef",
    "MultiHeadRef",
    "attention_ref",
    "attention_ref_batched",
    "dot",
    "linear_rows",
    "multi_head_ref",
    "multi_head_ref_batched",
    "scores_ref",
]

Array = NDArray[np.float64]
Matrix = list[list[float]]
NEG_INF = -math.inf


def _matrix(a: ArrayLike) -> Matrix:
    """A 2-D array_like as a list of rows of Python floats."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        msg = f"expected a 2-D array, got shape {arr.shape}"
        raise ValueError(msg)
    return [[float(value) for value in row] for row in arr.tolist()]


def _vector(a: ArrayLike | None, size: int) -> list[float]:
    """A 1-D array_like as a list of floats; zeros when ``a`` is None."""
    if a is None:
        return [0.0] * size
    return [float(value) for value in np.asarray(a, dtype=np.float64).ravel().tolist()]


def _bool_matrix(a: ArrayLike | None, n: int, m: int) -> list[list[bool]]:
    """A mask broadcast to (n, m) as lists of bools; all True when ``a`` is None."""
    if a is None:
        return [[True] * m for _ in range(n)]
    arr = np.broadcast_to(np.asarray(a, dtype=bool), (n, m))
    return [[bool(value) for value in row] for row in arr.tolist()]


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    """``sum_c a[c] b[c]``, correctly rounded."""
    return math.fsum(a_c * b_c for a_c, b_c in zip(a, b, strict=True))


def scores_ref(
    q: ArrayLike, k: ArrayLike, *, scale: float | None = None, bias: ArrayLike | None = None
) -> Array:
    """``S[i][j] = scale * sum_c q[i][c] k[j][c] + bias[i][j]`` for one (n, d_k), (m, d_k) pair."""
    qs, ks = _matrix(q), _matrix(k)
    n, m = len(qs), len(ks)
    d_k = len(ks[0])
    s = 1.0 / math.sqrt(d_k) if scale is None else float(scale)
    b = (
        [[0.0] * m for _ in range(n)]
        if bias is None
        else np.broadcast_to(np.asarray(bias, dtype=np.float64), (n, m)).tolist()
    )
    out = np.empty((n, m), dtype=np.float64)
    for i in range(n):
        for j in range(m):
            out[i, j] = s * dot(qs[i], ks[j]) + float(b[i][j])
    return out


@dataclass(frozen=True)
class AttentionRef:
    """Reference scaled dot-product attention of one triple (or a batch of them)."""

    weights: Array  # (..., n, m)
    output: Array  # (..., n, d_v)
    scores: Array  # (..., n, m), before masking


def attention_ref(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> AttentionRef:
    """Attention for one ``q`` (n, d_k), ``k`` (m, d_k), ``v`` (m, d_v), query by query.

    ``P[i] = softmax(S[i])`` over the keys ``j`` with ``mask[i][j]`` (and ``j <= i`` when
    causal); ``O[i][c] = sum_j P[i][j] v[j][c]``.
    """
    vs = _matrix(v)
    m, d_v = len(vs), len(vs[0])
    scores = scores_ref(q, k, scale=scale, bias=bias)
    n = scores.shape[0]
    allowed = _bool_matrix(mask, n, m)
    weights = np.zeros((n, m), dtype=np.float64)
    output = np.zeros((n, d_v), dtype=np.float64)
    for i in range(n):
        row_allowed = [allowed[i][j] and (not is_causal or j <= i) for j in range(m)]
        w = softmax_row([float(s) for s in scores[i]], row_allowed)
        for j in range(m):
            weights[i, j] = w[j]
        for c in range(d_v):
            output[i, c] = math.fsum(w[j] * vs[j][c] for j in range(m))
    return AttentionRef(weights=weights, output=output, scores=scores)


def attention_ref_batched(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> AttentionRef:
    """:func:`attention_ref` over broadcast leading dimensions of q, k, v, mask and bias."""
    qa = np.asarray(q, dtype=np.float64)
    ka = np.asarray(k, dtype=np.float64)
    va = np.asarray(v, dtype=np.float64)
    ma = None if mask is None else np.asarray(mask, dtype=bool)
    ba = None if bias is None else np.asarray(bias, dtype=np.float64)
    n, m, d_v = qa.shape[-2], ka.shape[-2], va.shape[-1]
    extra = [a.shape[:-2] for a in (ma, ba) if a is not None]
    batch = np.broadcast_shapes(qa.shape[:-2], ka.shape[:-2], va.shape[:-2], *extra)
    weights = np.zeros((*batch, n, m), dtype=np.float64)
    output = np.zeros((*batch, n, d_v), dtype=np.float64)
    scores = np.zeros((*batch, n, m), dtype=np.float64)
    qb = np.broadcast_to(qa, (*batch, *qa.shape[-2:]))
    kb = np.broadcast_to(ka, (*batch, *ka.shape[-2:]))
    vb = np.broadcast_to(va, (*batch, *va.shape[-2:]))
    mb = None if ma is None else np.broadcast_to(ma, (*batch, n, m))
    bb = None if ba is None else np.broadcast_to(ba, (*batch, n, m))
    for index in itertools.product(*(range(size) for size in batch)):
        one = attention_ref(
            qb[index],
            kb[index],
            vb[index],
            mask=None if mb is None else mb[index],
            bias=None if bb is None else bb[index],
            is_causal=is_causal,
            scale=scale,
        )
        weights[index] = one.weights
        output[index] = one.output
        scores[index] = one.scores
    return AttentionRef(weights=weights, output=output, scores=scores)


def linear_rows(x: Matrix, w: Matrix, b: Sequence[float] | None = None) -> Matrix:
    """``projections_ref.linear_ref`` on lists of rows: ``y[t][j] = sum_i x[t][i] w[i][j] + b[j]``."""
    return linear_ref(x, w, b).tolist() if x else []


@dataclass(frozen=True)
class MultiHeadRef:
    """Reference multi-head attention of one sequence (or a batch of them)."""

    weights: Array  # (..., h, n, m)
    head_outputs: Array  # (..., h, n, d_v)
    output: Array  # (..., n, d_out)
    q: Array  # (..., n, h d_k)
    k: Array  # (..., m, h_kv d_k)
    v: Array  # (..., m, h_kv d_v)


def multi_head_ref(
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
) -> MultiHeadRef:
    """Multi-head attention of one ``x`` (n, d_model), weights in the (in, out) layout.

    ``q = x w_q + b_q``, ``k = c w_k + b_k``, ``v = c w_v + b_v`` with ``c = context``
    or ``x``; head ``i`` attends with columns ``i*d_k : (i+1)*d_k`` of ``q`` and the
    columns of key/value head ``i // (n_heads / n_kv_heads)``; the head outputs are
    concatenated in head order and multiplied by ``w_o`` (plus ``b_o``) when given.
    """
    h = n_heads
    h_kv = h if n_kv_heads is None else n_kv_heads
    g = h // h_kv
    xs = _matrix(x)
    cs = xs if context is None else _matrix(context)
    wq, wk, wv = _matrix(w_q), _matrix(w_k), _matrix(w_v)
    q = linear_rows(xs, wq, _vector(b_q, len(wq[0])))  # (n, h d_k)
    k = linear_rows(cs, wk, _vector(b_k, len(wk[0])))  # (m, h_kv d_k)
    v = linear_rows(cs, wv, _vector(b_v, len(wv[0])))  # (m, h_kv d_v)
    n, m = len(q), len(k)
    d_k = len(q[0]) // h
    d_v = len(v[0]) // h_kv
    weights = np.zeros((h, n, m), dtype=np.float64)
    head_outputs = np.zeros((h, n, d_v), dtype=np.float64)
    for i in range(h):
        j = i // g  # the key/value head that serves query head i
        q_i = [row[i * d_k : (i + 1) * d_k] for row in q]
        k_j = [row[j * d_k : (j + 1) * d_k] for row in k]
        v_j = [row[j * d_v : (j + 1) * d_v] for row in v]
        one = attention_ref(q_i, k_j, v_j, mask=mask, is_causal=is_causal)
        weights[i] = one.weights
        head_outputs[i] = one.output
    merged = [
        [float(head_outputs[i, t, c]) for i in range(h) for c in range(d_v)] for t in range(n)
    ]  # (n, h d_v): head i in columns i*d_v : (i+1)*d_v
    if w_o is None:
        out_rows = merged
    else:
        wo = _matrix(w_o)
        out_rows = linear_rows(merged, wo, _vector(b_o, len(wo[0])))
    width = len(out_rows[0]) if out_rows else (h * d_v if w_o is None else len(_matrix(w_o)[0]))
    output = np.array(out_rows, dtype=np.float64).reshape(n, width)
    return MultiHeadRef(
        weights=weights,
        head_outputs=head_outputs,
        output=output,
        q=np.array(q, dtype=np.float64).reshape(n, h * d_k),
        k=np.array(k, dtype=np.float64).reshape(m, h_kv * d_k),
        v=np.array(v, dtype=np.float64).reshape(m, h_kv * d_v),
    )


def multi_head_ref_batched(
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
) -> MultiHeadRef:
    """:func:`multi_head_ref` for each sequence of ``x`` (..., n, d_model).

    ``context`` (..., m, d_model) and ``mask`` (..., n, m) broadcast over the leading
    dimensions of ``x``; the mask is shared by every head.
    """
    xa = np.asarray(x, dtype=np.float64)
    ca = xa if context is None else np.asarray(context, dtype=np.float64)
    n, m = xa.shape[-2], ca.shape[-2]
    ma = None if mask is None else np.asarray(mask, dtype=bool)
    extra = [] if ma is None else [ma.shape[:-2]]
    batch = np.broadcast_shapes(xa.shape[:-2], ca.shape[:-2], *extra)
    xb = np.broadcast_to(xa, (*batch, *xa.shape[-2:]))
    cb = np.broadcast_to(ca, (*batch, *ca.shape[-2:]))
    mb = None if ma is None else np.broadcast_to(ma, (*batch, n, m))
    results = [
        multi_head_ref(
            xb[index],
            w_q,
            w_k,
            w_v,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            w_o=w_o,
            b_q=b_q,
            b_k=b_k,
            b_v=b_v,
            b_o=b_o,
            context=None if context is None else cb[index],
            mask=None if mb is None else mb[index],
            is_causal=is_causal,
        )
        for index in itertools.product(*(range(size) for size in batch))
    ]

    def stack(name: str) -> Array:
        arrays = [getattr(r, name) for r in results]
        return np.array(arrays, dtype=np.float64).reshape(*batch, *arrays[0].shape)

    return MultiHeadRef(
        weights=stack("weights"),
        head_outputs=stack("head_outputs"),
        output=stack("output"),
        q=stack("q"),
        k=stack("k"),
        v=stack("v"),
    )
