"""Loop-based float64 reference for :mod:`attention_from_scratch.explain`.

Every number of an explanation, recomputed for one (query, key) pair from its
definition with Python floats and :mod:`math` (``math.fsum`` for correctly rounded
sums, ``math.exp``/``math.log`` for the softmax, its log-sum-exp and the entropy).
NumPy only holds inputs; the package is never imported. The softmax, log-sum-exp,
entropy and dot product are the ones of ``softmax_ref`` and ``attention_ref``.

The identities an explanation must satisfy (Vaswani et al. 2017, §3.2.1):

* ``raw = q_i . k_j = sum_d q_i[d] k_j[d] = |q_i| |k_j| cos``;
* ``raw = sum_{a,b} x_i[a] (W_Q W_K^T)[a, b] x_j[b] + x_i W_Q b_K^T + b_Q W_K^T x_j^T
  + b_Q . b_K``;
* ``score = raw * scale + bias``, ``weight = exp(score - logsumexp(allowed scores))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tests.reference.attention_ref import dot
from tests.reference.softmax_ref import entropy_row, logsumexp_row, softmax_row

__all__ = [
    "PairRef",
    "bias_contribution_ref",
    "entropy_ref",
    "feature_contributions_ref",
    "logsumexp_ref",
    "pair_ref",
    "softmax_ref",
]

Vector = Sequence[float]
Matrix = Sequence[Sequence[float]]


softmax_ref = softmax_row
"""``w_j = exp(s_j - max) / sum_l exp(s_l - max)`` over the allowed keys, 0 elsewhere."""

entropy_ref = entropy_row
"""``-sum_j w_j log w_j`` in nats, with ``0 log 0 = 0``."""


def logsumexp_ref(scores: Vector, allowed: Sequence[bool]) -> float:
    """``log sum_j exp(s_j)`` over the allowed keys; ``-inf`` when there is none."""
    return logsumexp_row([s for s, ok in zip(scores, allowed, strict=True) if ok])


def feature_contributions_ref(
    x_i: Vector, w_q: Matrix, w_k: Matrix, x_j: Vector
) -> list[list[float]]:
    """``C[a][b] = x_i[a] (sum_d w_q[a][d] w_k[b][d]) x_j[b]``: query feature a, key feature b."""
    d_model = len(x_i)
    return [
        [x_i[a] * dot(w_q[a], w_k[b]) * x_j[b] for b in range(d_model)] for a in range(d_model)
    ]


def bias_contribution_ref(
    x_i: Vector, w_q: Matrix, b_q: Vector | None, x_j: Vector, w_k: Matrix, b_k: Vector | None
) -> float:
    """``x_i W_Q b_K^T + b_Q W_K^T x_j^T + b_Q . b_K``: the terms of ``q_i . k_j`` with a bias."""
    d_k = len(w_q[0])
    bq = [0.0] * d_k if b_q is None else list(b_q)
    bk = [0.0] * d_k if b_k is None else list(b_k)
    q_nobias = [math.fsum(x_i[a] * w_q[a][d] for a in range(len(x_i))) for d in range(d_k)]
    k_nobias = [math.fsum(x_j[b] * w_k[b][d] for b in range(len(x_j))) for d in range(d_k)]
    return math.fsum([dot(q_nobias, bk), dot(bq, k_nobias), dot(bq, bk)])


@dataclass(frozen=True)
class PairRef:
    """Every number of the explanation of one (query, key) pair."""

    raw: float  # q_i . k_j
    score: float  # raw * scale + bias
    weight: float  # softmax of the allowed scores, at j
    logsumexp: float  # of the allowed scores
    unscaled_weight: float  # softmax of raw + bias, at j
    dims: list[float]  # q_i[d] k_j[d]
    query_norm: float
    key_norm: float
    value: list[float]  # weight * v_j
    allowed: bool


def pair_ref(
    q_i: Vector,
    keys: Matrix,
    values: Matrix,
    j: int,
    *,
    scale: float,
    allowed: Sequence[bool],
    bias: Vector | None = None,
) -> PairRef:
    """The explanation numbers of the pair (query ``q_i``, key ``j``), by loops.

    ``bias`` holds the additive bias of the query's row (``-inf`` forbids a key); a key
    is allowed when ``allowed[j]`` and its bias is not ``-inf``.
    """
    m = len(keys)
    b = [0.0] * m if bias is None else [float(v) for v in bias]
    ok = [bool(allowed[t]) and b[t] > -math.inf for t in range(m)]
    b_finite = [b[t] if ok[t] else 0.0 for t in range(m)]
    raw_row = [dot(q_i, keys[t]) for t in range(m)]
    scores = [raw_row[t] * scale + b_finite[t] for t in range(m)]
    weights = softmax_ref(scores, ok)
    unscaled = softmax_ref([raw_row[t] + b_finite[t] for t in range(m)], ok)
    return PairRef(
        raw=raw_row[j],
        score=scores[j],
        weight=weights[j],
        logsumexp=logsumexp_ref(scores, ok),
        unscaled_weight=unscaled[j],
        dims=[q_d * k_d for q_d, k_d in zip(q_i, keys[j], strict=True)],
        query_norm=math.sqrt(math.fsum(v * v for v in q_i)),
        key_norm=math.sqrt(math.fsum(v * v for v in keys[j])),
        value=[weights[j] * v for v in values[j]],
        allowed=ok[j],
    )
