r"""Explaining an attention score: "this token attends to that one because ...".

An attention weight is the end of a short chain of exact identities, and each link
is a reason a learner can read (:cite:t:`vaswani2017attention`, §3.2.1):

.. math::

   w_{ij} = \exp\bigl(s_{ij} - \operatorname{LSE}_l\, s_{il}\bigr), \qquad
   s_{ij} = \frac{q_i \cdot k_j}{\sqrt{d_k}} + b_{ij}, \qquad
   q_i \cdot k_j = \lVert q_i \rVert \, \lVert k_j \rVert \cos\theta_{ij}
                 = \sum_{d} q_{id} k_{jd}
                 = x_i W_Q W_K^\top x_j^\top + (\text{bias terms}) .

* the **softmax competition**: a weight is large when its score beats the other scores
  of the row (their log-sum-exp);
* the **dot product**: the score is large when the query is long, the key is long, or
  they point the same way; it splits over the head's dimensions (the "neuron view" of
  :cite:t:`vig2019multiscale`);
* the **embedding features**: through the bilinear form :math:`W_Q W_K^\top`, the score
  splits over pairs (query feature, key feature) -- "the *noun* feature of *creature*
  meeting the *adjective* feature of *fluffy* contributes 3 of 4";
* the **scale**: the weight the same key would get without :math:`1/\sqrt{d_k}`;
* the **value**: what the chosen key actually passes on, ``weight * v_j``.

The routines:

* :func:`explain_score` -> :class:`ScoreExplanation`: every number of that chain for one
  (query, key) pair, and ``str()`` of it, a narrative;
* :func:`explain_query` -> :class:`QueryExplanation`: where one token looks, how sharply
  (entropy, effective number of keys), and what the scale did;
* :func:`heatmap`: the weight matrix as text for a terminal or a doctest.

Every number is exact (computed in float64 from the result's own arrays), none
approximated: the contributions sum to the raw score, ``|q| |k| cos`` equals it, and
``exp(score - logsumexp)`` equals the weight, to rounding. Whenever a narrative lists
the largest terms of a sum, it also states the rest and the total, so the numbers on
screen add up.

An explanation is **contrastive**: it says why the query prefers its key to a rival
(the runner-up, or the top key), and its headline names the term of the gap that does
most for the winner (:class:`Contrast`). For layer 0 of a real model the raw score is
also split by where the embeddings came from, word, position and segment
(:class:`OriginSplit`, set by
:meth:`~attention_from_scratch.pretrained.EncoderRun.explain`).

Every qualitative word of a narrative comes from a stated threshold:

=======================================  ==========================================
words                                    when
=======================================  ==========================================
"point the same way"                     :math:`\cos\theta \ge 0.7`
"point partly the same way"              :math:`0.3 \le \cos\theta < 0.7`
"nearly orthogonal"                      :math:`0 < \cos\theta < 0.3`
"point apart"                            :math:`\cos\theta < 0`
"slightly closer" (of two keys)          their cosines differ by less than 0.1
"saturated" (a row)                      its largest weight is at least 0.99
"almost entirely on one key"             fewer than 1.5 effective keys
"only a small share"                     weight below the uniform share 1 / n
a feature pair heads the "because"       it carries at least half of the gap
=======================================  ==========================================

Sums are listed by their 3 largest terms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from attention_from_scratch._checks import as_float_array, check_finite, check_index
from attention_from_scratch._kernel import scaled_rows
from attention_from_scratch._narrative import query_narrative, score_narrative
from attention_from_scratch._results import Attention, ProjectedAttention, notebook_display
from attention_from_scratch.norms import l2_norm
from attention_from_scratch.softmax import entropy as _entropy
from attention_from_scratch.softmax import logsumexp as _logsumexp
from attention_from_scratch.softmax import softmax as _softmax

__all__ = [
    "Contrast",
    "OriginSplit",
    "QueryExplanation",
    "ScoreExplanation",
    "explain_query",
    "explain_score",
    "heatmap",
]

Result = Attention | ProjectedAttention
Float64Array = NDArray[np.float64]


@dataclass(frozen=True)
class _Row:
    """One query's row of a result, in float64, with everything an explanation needs."""

    query: int
    q: Float64Array  # (d_k,)
    k: Float64Array  # (m, d_k)
    v: Float64Array  # (m, d_v)
    weights: Float64Array  # (m,) as the result computed them
    bias: Float64Array  # (m,) additive bias, 0 where none
    allowed: NDArray[np.bool_]  # (m,) mask AND bias > -inf
    scale: float
    query_tokens: tuple[str, ...]
    key_tokens: tuple[str, ...]
    # What the features go back to; None for a result of scaled_dot_product_attention.
    x_i: Float64Array | None = None  # (d_model,)
    x_keys: Float64Array | None = None  # (m, d_model)
    w_q: Float64Array | None = None  # (d_model, d_k) of this head
    w_k: Float64Array | None = None  # (d_model, d_k) of this head's key/value group
    b_q: Float64Array | None = None  # (d_k,)
    b_k: Float64Array | None = None  # (d_k,)

    @cached_property
    def raw(self) -> Float64Array:
        """(m,) raw dot products q_i . k_j (FloatingPointError if they overflow float64).

        Computed and checked once per row (``scores`` and the unscaled weights reuse it).
        """
        with np.errstate(over="ignore", invalid="ignore"):
            raw: Float64Array = self.k @ self.q  # (m, d_k) @ (d_k,) -> (m,)
        return _finite(raw, "the raw dot products q . k of this query")

    @property
    def scores(self) -> Float64Array:
        """(m,) logits softmax saw: raw * scale + bias."""
        with np.errstate(over="ignore", invalid="ignore"):
            scores: Float64Array = self.raw * self.scale + self.bias
        return _finite(scores, "the scaled scores of this query")


def _finite(values: Float64Array, what: str) -> Float64Array:
    """``values`` if finite; else a :class:`FloatingPointError` (q and k are finite inputs).

    An explanation works in float64 with the unscaled dot products; for queries and keys
    near the top of the float64 range (``|q| |k|`` beyond 1.8e308) these do not exist as
    numbers even when the scaled scores of the result do.
    """
    if not np.isfinite(values).all():
        msg = (
            f"{what} overflow float64 (beyond {np.finfo(np.float64).max:.4g}); an explanation "
            "needs them as numbers: rescale the inputs"
        )
        raise FloatingPointError(msg)
    return values


def _token_lists(
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None, n: int, m: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Query and key labels: given tokens (one list, or a pair for cross-attention)."""
    if tokens is None:
        return tuple(f"token {i}" for i in range(n)), tuple(f"token {j}" for j in range(m))
    tokens_obj: object = tokens  # typed, but callers may pass anything
    if isinstance(tokens_obj, str):
        msg = "tokens must be a sequence of strings, got a single string"
        raise TypeError(msg)
    if not isinstance(tokens_obj, Iterable):
        msg = f"tokens must be a sequence of strings, got {type(tokens_obj).__name__}"
        raise TypeError(msg)
    items: list[object] = list(tokens_obj)
    pair = [isinstance(t, Iterable) and not isinstance(t, str) for t in items]
    if len(items) == 2 and pair[0] != pair[1]:
        msg = (
            "tokens must be a sequence of strings or a pair (query_tokens, key_tokens) of "
            f"them, got a {type(items[0]).__name__} and a {type(items[1]).__name__}"
        )
        raise TypeError(msg)
    first, second = (items[0], items[1]) if len(items) == 2 else (None, None)
    if isinstance(first, Iterable) and isinstance(second, Iterable) and pair[0]:  # a pair
        query_tokens = tuple(str(t) for t in first)
        key_tokens = tuple(str(t) for t in second)
    else:  # labels, read as text (two ints are two labels, not a pair)
        query_tokens = key_tokens = tuple(str(t) for t in items)
    if len(query_tokens) != n or len(key_tokens) != m:
        msg = (
            f"tokens do not fit the result: {len(query_tokens)} query and {len(key_tokens)} "
            f"key tokens for {n} queries and {m} keys"
        )
        raise ValueError(msg)
    return query_tokens, key_tokens


def _resolve(position: int | str, labels: tuple[str, ...], what: str) -> int:
    """An index, or the index of a token that occurs exactly once."""
    if isinstance(position, str):
        found = [i for i, label in enumerate(labels) if label == position]
        if not found:
            msg = f"unknown {what} token {position!r}; the tokens are {list(labels)}"
            raise ValueError(msg)
        if len(found) > 1:
            msg = (
                f"{what} token {position!r} occurs {len(found)} times (positions {found}); "
                "pass its index instead"
            )
            raise ValueError(msg)
        return found[0]
    if isinstance(position, bool) or not isinstance(position, int | np.integer):
        msg = f"{what} must be an int index or a token string, got {type(position).__name__}"
        raise TypeError(msg)
    return check_index(int(position), len(labels), what)


def _row(
    result: object,
    query: int | str,
    *,
    batch: int | tuple[int, ...] | None,
    head: int | None,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None,
) -> _Row:
    """Extract one query's row of ``result`` (and its head's weights) in float64."""
    if not isinstance(result, Attention | ProjectedAttention):
        msg = (
            "result must come from scaled_dot_product_attention, self_attention or "
            f"multi_head_attention, got {type(result).__name__}"
        )
        raise TypeError(msg)
    view = result.head_view(batch=batch, head=head)  # (n, m) arrays of one sequence, one head
    query_tokens, key_tokens = _token_lists(tokens, *view.weights.shape)
    i = _resolve(query, query_tokens, "query")
    allowed = np.array(view.allowed[i])  # (m,)
    return _Row(
        query=i,
        q=_f64(view.q[i]),
        k=_f64(view.k),
        v=_f64(view.v),
        weights=_f64(view.weights[i]),
        bias=np.where(allowed, _f64(view.bias[i]), 0.0),
        allowed=allowed,
        scale=view.scale,
        query_tokens=query_tokens,
        key_tokens=key_tokens,
        x_i=None if view.x is None else _f64(view.x[i]),
        x_keys=None if view.source is None else _f64(view.source),
        w_q=None if view.w_q is None else _f64(view.w_q),
        w_k=None if view.w_k is None else _f64(view.w_k),
        b_q=None if view.b_q is None else _f64(view.b_q),
        b_k=None if view.b_k is None else _f64(view.b_k),
    )


def _f64(arr: ArrayLike) -> Float64Array:
    return np.asarray(arr, dtype=np.float64)


def _row_logsumexp(scores: Float64Array, allowed: NDArray[np.bool_]) -> float:
    if not allowed.any():
        return -math.inf
    return float(_logsumexp(np.where(allowed, scores, -np.inf)))


def _projection_share(part: Float64Array, whole: Float64Array) -> float:
    """``(part . whole) / (whole . whole)``, 0 for a zero ``whole``, without overflow.

    Both vectors are first divided by a power of two (exact) that brings their largest
    entry into [1/2, 1), as :func:`~attention_from_scratch.norms.l2_norm` does, so
    neither dot product overflows or underflows; the powers go back on at the end.
    """
    w, e_w = scaled_rows(whole, -1, whole, "output")
    if not w.any():
        return 0.0
    p, e_p = scaled_rows(part, -1, part, "value contribution")
    ratio = float(p @ w) / float(w @ w)  # w . w >= 1/4
    try:
        return math.ldexp(ratio, int(e_p[0]) - int(e_w[0]))
    except OverflowError:  # an output cancelled to almost nothing: the share is beyond floats
        return math.copysign(math.inf, ratio)


def _row_weights(scores: Float64Array, allowed: NDArray[np.bool_]) -> Float64Array:
    return np.asarray(_softmax(scores, where=allowed), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Contrast:
    r"""Why the query prefers its key to a rival key: the gap between them, split exactly.

    The rival is the runner-up when the key is the query's top key, else the top key
    (or the key the caller names). Every split sums to ``raw_gap`` to rounding.

    Attributes
    ----------
    rival : int
        Position of the rival key.
    rival_token : str
        Its label.
    rival_weight, rival_score, rival_raw_score, rival_bias : float
        Its weight :math:`w_{ir}`, logit :math:`s_{ir}`, dot product
        :math:`q_i \cdot k_r` and additive bias.
    rival_key_norm, rival_cosine : float
        :math:`\lVert k_r \rVert` and :math:`\cos\theta_{ir}`.
    score_gap : float
        :math:`s_{ij} - s_{ir}` = ``raw_gap * scale + bias_gap``.
    weight_ratio : float
        :math:`w_{ij} / w_{ir} = e^{s_{ij} - s_{ir}}` (inf beyond float64, when the gap
        exceeds about 709).
    raw_gap : float
        :math:`q_i \cdot k_j - q_i \cdot k_r = q_i \cdot (k_j - k_r)`.
    bias_gap : float
        The additive biases' difference :math:`b_{ij} - b_{ir}` (0 without a bias).
    length, angle : float
        ``raw_gap`` split into what the keys' lengths and their directions do,
        symmetric in the two keys:
        :math:`\lVert q\rVert (\lVert k_j\rVert - \lVert k_r\rVert)
        (\cos_j + \cos_r)/2` and :math:`\lVert q\rVert (\cos_j - \cos_r)
        (\lVert k_j\rVert + \lVert k_r\rVert)/2`.
    dims : (d_k,) ndarray
        :math:`q_{id} (k_{jd} - k_{rd})` per head dimension; they sum to ``raw_gap``.
    features : (d_model, d_model) ndarray or None
        :math:`x_i[a] (W_Q W_K^\top)[a, b] (x_j[b] - x_r[b])`: rows are query features,
        columns key features. None unless the result knows ``x`` and ``params``.
    bias_terms : float or None
        The rest of ``raw_gap``: :math:`b_Q W_K^\top (x_j - x_r)^\top` (the terms with
        :math:`b_K` are the same for both keys and cancel); with ``features`` it sums to
        ``raw_gap``.
    query_asks : (d_model, d_model) ndarray or None
        :math:`x_i[a] (W_Q W_K^\top)[a, b]`: how much the query, through its feature
        ``a``, asks for key feature ``b`` (negative: weighs against it);
        ``features = query_asks * (key_x - rival_x)``.
    key_x, rival_x : (d_model,) ndarray or None
        The embeddings :math:`x_j` and :math:`x_r` the two keys came from.
    """

    rival: int
    rival_token: str
    rival_weight: float
    rival_score: float
    rival_raw_score: float
    rival_bias: float
    rival_key_norm: float
    rival_cosine: float
    score_gap: float
    weight_ratio: float
    raw_gap: float
    bias_gap: float
    length: float
    angle: float
    dims: Float64Array
    features: Float64Array | None
    bias_terms: float | None
    query_asks: Float64Array | None
    key_x: Float64Array | None
    rival_x: Float64Array | None


@dataclass(frozen=True, eq=False)
class OriginSplit:
    r"""A raw score split by where the embeddings came from (layer 0 of a real model).

    The input of a BERT-family layer 0 is :math:`\operatorname{LN}(e_\text{word} +
    e_\text{position} + e_\text{segment})`; with each token's mean and standard
    deviation fixed, that is linear in the parts, so :math:`q_i \cdot k_j` splits
    exactly into blocks (query part x key part) plus the terms of the constants (the
    LayerNorm's :math:`\beta` and the projection biases).

    Attributes
    ----------
    parts : tuple of str
        The names of the parts, e.g. ``("word", "position", "segment")``.
    blocks : (P, P) ndarray
        ``blocks[a, b]``: the part of the raw score from part ``a`` of the query token
        meeting part ``b`` of the key token.
    constant_terms : float
        Everything that involves a constant (LayerNorm :math:`\beta`, :math:`b_Q`,
        :math:`b_K`); ``blocks.sum() + constant_terms`` is the raw score.
    """

    parts: tuple[str, ...]
    blocks: Float64Array
    constant_terms: float


@dataclass(frozen=True, eq=False)
class ScoreExplanation:
    r"""Why query ``query`` gives key ``key`` the weight it does: every number, exactly.

    ``str()`` of it is a narrative in plain words that starts
    ``"'creature' attends to 'fluffy' (0.5741) more than to 'blue' (0.3482) because ..."``.

    Attributes
    ----------
    query, key : int
        Positions of the query and key tokens.
    query_token, key_token : str
        Their labels (the tokens, or ``"token i"``).
    head : int or None
        The head explained (None for a result without heads).
    masked : bool
        True when the mask (or a ``-inf`` bias) forbids the pair: then the weight is 0,
        the narrative says "masked", and nothing is decomposed.
    weight : float
        The attention weight :math:`w_{ij}`, as the result computed it.
    rank : int
        1 + the number of keys with a strictly larger weight (1 = most attended).
    n_tied : int
        How many other allowed keys have exactly the same weight.
    n_allowed : int
        How many keys this query may attend to.
    raw_score : float
        :math:`q_i \cdot k_j`.
    scale : float
        The factor applied to the dot products (:math:`1/\sqrt{d_k}` by default).
    bias : float
        The additive bias of this pair (0 without one).
    score : float
        The logit softmax saw, ``raw_score * scale + bias``.
    dim_contributions : (d_k,) ndarray
        :math:`q_{id} k_{jd}` per head dimension; they sum to ``raw_score``.
    query_norm, key_norm, cosine : float
        :math:`\lVert q_i \rVert`, :math:`\lVert k_j \rVert` and
        :math:`\cos\theta_{ij}`; their product is ``raw_score`` (cosine 0 for a zero
        vector).
    feature_contributions : (d_model, d_model) ndarray or None
        :math:`x_i[a] \, (W_Q W_K^\top)[a, b] \, x_j[b]`: rows are query features,
        columns key features. None unless the result knows ``x`` and ``params``.
    bias_contribution : float or None
        The terms of ``raw_score`` that involve ``b_q`` or ``b_k``; with the feature
        contributions it sums to ``raw_score``.
    feature_names : tuple of str or None
        Names of the embedding features.
    logsumexp : float
        :math:`\operatorname{LSE}` of the query's allowed scores: ``weight = exp(score -
        logsumexp)``.
    competitor : int or None
        The strongest other allowed key (None if there is none).
    competitor_weight : float
        Its weight (0 if there is none).
    unscaled_weight : float
        The weight this key would get without the scale (``scale = 1``).
    value_contribution : (d_v,) ndarray
        ``weight * v_j``: what this key adds to the query's output.
    unscaled_max_weight : float
        The largest weight of the query's row without the scale: 0.99 or more is
        *saturated* (see the thresholds in :mod:`~attention_from_scratch.explain`).
    output : (d_v,) ndarray
        The query's output :math:`o_i = \sum_l w_{il} v_l`, recomputed in float64.
    value_share : float
        This key's share of the output by projection,
        :math:`(w_{ij} v_j \cdot o_i) / \lVert o_i \rVert^2`; the shares of all keys
        sum to 1 (0 when the output is zero).
    contrast : Contrast or None
        Why this key and not the rival (the runner-up, or the top key, or ``rival=``):
        the gaps and their exact splits. None when the pair is masked or the query
        may attend to no other key.
    origins : OriginSplit or None
        The raw score split by embedding origin (word, position, segment); set by
        :meth:`~attention_from_scratch.pretrained.EncoderRun.explain` for layer 0 of a
        real model, else None.
    """

    query: int
    key: int
    query_token: str
    key_token: str
    head: int | None
    masked: bool
    weight: float
    rank: int
    n_tied: int
    n_allowed: int
    raw_score: float
    scale: float
    bias: float
    score: float
    dim_contributions: Float64Array
    query_norm: float
    key_norm: float
    cosine: float
    feature_contributions: Float64Array | None
    bias_contribution: float | None
    feature_names: tuple[str, ...] | None
    logsumexp: float
    competitor: int | None
    competitor_token: str | None
    competitor_weight: float
    competitor_score: float
    unscaled_weight: float
    value_contribution: Float64Array
    unscaled_max_weight: float
    output: Float64Array
    value_share: float
    contrast: Contrast | None = None
    origins: OriginSplit | None = None

    def _repr_html_(self) -> str | None:
        """Jupyter: the narrative, escaped, styled like the HTML view."""
        return notebook_display(self)

    def __str__(self) -> str:
        """The narrative: why this query gives this key its weight."""
        return score_narrative(self)


def explain_score(
    result: Result,
    query: int | str,
    key: int | str,
    /,
    *,
    batch: int | tuple[int, ...] | None = None,
    head: int | None = None,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None = None,
    feature_names: Sequence[str] | None = None,
    rival: int | str | None = None,
) -> ScoreExplanation:
    r"""Explain one attention weight: why ``query`` attends to ``key`` as much as it does.

    Parameters
    ----------
    result : Attention or ProjectedAttention
        From :func:`~attention_from_scratch.self_attention.scaled_dot_product_attention`,
        :func:`~attention_from_scratch.self_attention.self_attention` or
        :func:`~attention_from_scratch.self_attention.multi_head_attention`.
    query, key : int or str
        Positions, or tokens (from ``tokens``) that occur exactly once.
    batch : int or tuple of int, optional
        Index into the leading batch dimensions; needed when there are any.
    head : int, optional
        The head; needed when the result has more than one.
    tokens : sequence of str, or a pair of them, optional
        Labels of the tokens; for cross-attention a pair ``(query_tokens, key_tokens)``.
    feature_names : sequence of str, optional
        Names of the ``d_model`` embedding features, used in the narrative.
    rival : int or str, optional
        The key to contrast with (default: the runner-up when ``key`` is the query's
        top key, else the top key). It must be an allowed key other than ``key``.

    Returns
    -------
    ScoreExplanation
        Every number of the explanation; ``str()`` gives the narrative.

    Raises
    ------
    IndexError
        If an index is out of range.
    ValueError
        If a token is unknown (the message lists the tokens) or occurs twice (use an
        index), ``tokens`` or ``feature_names`` do not fit, or ``batch``/``head`` are
        missing for a result that needs them.
    TypeError
        If ``result`` is not an attention result.

    See Also
    --------
    explain_query, heatmap

    Notes
    -----
    In code, ``raw = q[i] @ k[j]``, ``score = raw * scale + bias``,
    ``weight = exp(score - logsumexp(scores[i]))``. The identities:

    .. math::

       w_{ij} = e^{s_{ij} - \operatorname{LSE}_l s_{il}}, \quad
       q_i \cdot k_j = \sum_d q_{id} k_{jd} = \lVert q_i\rVert \lVert k_j\rVert
       \cos\theta_{ij}, \quad
       q_i \cdot k_j = \sum_{a, b} x_{ia} (W_Q W_K^\top)_{ab} x_{jb}
         + x_i W_Q b_K^\top + b_Q W_K^\top x_j^\top + b_Q \cdot b_K .

    The contrast with a rival key :math:`r` splits the gap of the dot products the same
    ways, each summing to it exactly: over dimensions and feature pairs (the
    :math:`b_K` terms cancel), and, symmetrically in the two keys, into a **length**
    and an **angle** term,

    .. math::

       q \cdot k_j - q \cdot k_r
       = \underbrace{\lVert q\rVert (\lVert k_j\rVert - \lVert k_r\rVert)
         \tfrac{\cos_j + \cos_r}{2}}_{\text{length}}
       + \underbrace{\lVert q\rVert (\cos_j - \cos_r)
         \tfrac{\lVert k_j\rVert + \lVert k_r\rVert}{2}}_{\text{angle}},
       \qquad \frac{w_{ij}}{w_{ir}} = e^{s_{ij} - s_{ir}} .

    The narrative's headline names the term that does most for the winner, so it is
    true by construction: the largest feature pair when it carries at least half of
    the gap, else the larger of the length and angle terms (or a bias).

    All of them are computed in float64 from the result's own arrays, so they reconcile
    to rounding; the norms are the overflow-safe ones of
    :func:`~attention_from_scratch.norms.l2_norm` and the log-sum-exp the stable one of
    :func:`~attention_from_scratch.softmax.logsumexp`
    :cite:p:`vaswani2017attention,vig2019multiscale`.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.1; :cite:t:`vig2019multiscale`.

    Examples
    --------
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.explain import explain_score
    >>> from attention_from_scratch.self_attention import self_attention
    >>> ex = fluffy_blue_creature()
    >>> result = self_attention(ex.x, ex.params)
    >>> why = explain_score(result, "creature", "fluffy", tokens=ex.tokens,
    ...                     feature_names=ex.feature_names)
    >>> print(round(why.weight, 4), why.rank, why.raw_score, why.score)
    0.5741 1 4.0 2.0
    >>> print(why.feature_contributions[0])
    [0. 3. 0. 1.]
    >>> print(why.feature_names[0], "x", why.feature_names[1], why.feature_contributions[0, 1])
    noun x adjective 3.0

    Why *fluffy* and not the runner-up *blue*: the raw-score gap of 1 splits into what
    the keys' lengths and directions do, and into feature pairs (only *noun* x
    *texture* is not zero):

    >>> c = why.contrast
    >>> print(c.rival_token, c.raw_gap, c.score_gap, round(c.weight_ratio, 4))
    blue 1.0 0.5 1.6487
    >>> print(round(c.length, 4), round(c.angle, 4), c.features[0, 3])
    1.2071 -0.2071 1.0
    >>> print(str(why).splitlines()[0])
    'creature' attends to 'fluffy' (0.5741) more than to 'blue' (0.3482) because the key of
    """
    row = _row(result, query, batch=batch, head=head, tokens=tokens)
    j = _resolve(key, row.key_tokens, "key")
    m = row.k.shape[0]
    names = None
    if feature_names is not None:
        names = tuple(str(name) for name in feature_names)
        if row.x_i is not None and len(names) != row.x_i.shape[0]:
            msg = f"feature_names has {len(names)} names for d_model = {row.x_i.shape[0]}"
            raise ValueError(msg)
    raw_row, scores = row.raw, row.scores
    weight = float(row.weights[j])
    allowed = row.allowed
    rank = 1 + int(np.sum(row.weights > weight))
    n_tied = int(np.sum((row.weights == weight) & allowed)) - int(bool(allowed[j]))
    dims = row.q * row.k[j]  # q_i * k_j per head dimension, sums to raw
    q_norm, k_norm = float(l2_norm(row.q)), float(l2_norm(row.k[j]))
    raw = float(raw_row[j])
    cosine = _cosine(row.q, row.k[j], q_norm, k_norm)
    features: Float64Array | None = None
    asks: Float64Array | None = None
    bias_part: float | None = None
    if row.x_i is not None and row.x_keys is not None and row.w_q is not None:
        if row.w_k is None:  # pragma: no cover - set together with w_q
            msg = "w_k missing"
            raise RuntimeError(msg)
        with np.errstate(over="ignore", invalid="ignore"):  # reported by _finite
            # what the query asks of each key feature: x_i[a] (W_Q W_K^T)[a, b]
            asks = row.x_i[:, None] * (row.w_q @ row.w_k.T)  # (d_model, d_model)
            features = asks * row.x_keys[j][None, :]  # ... times x_j[b]
        asks = _finite(asks, "the query's asks x_i[a] (W_Q W_K^T)[a, b]")
        features = _finite(features, "the feature contributions x_i[a] (W_Q W_K^T)[a, b] x_j[b]")
        b_q = np.zeros_like(row.q) if row.b_q is None else row.b_q
        b_k = np.zeros_like(row.q) if row.b_k is None else row.b_k
        with np.errstate(over="ignore", invalid="ignore"):  # reported by _finite
            # x_i W_Q b_K^T + b_Q W_K^T x_j^T + b_Q . b_K
            terms = (row.x_i @ row.w_q) @ b_k + b_q @ (row.w_k.T @ row.x_keys[j]) + b_q @ b_k
        bias_part = float(_finite(np.asarray(terms), "the bias terms of q_i . k_j"))
    competitor: int | None = None
    others = allowed.copy()
    others[j] = False
    if others.any():
        candidates = np.where(others, row.weights, -np.inf)
        competitor = int(np.argmax(candidates))
    contrast: Contrast | None = None
    rival_index = competitor
    if rival is not None:
        rival_index = _resolve(rival, row.key_tokens, "rival")
        if not others[rival_index]:
            why_not = "is the key itself" if rival_index == j else "is masked for this query"
            msg = (
                f"rival {row.key_tokens[rival_index]!r} (position {rival_index}) {why_not}: "
                "name another key"
            )
            raise ValueError(msg)
    if rival_index is not None and allowed[j]:
        contrast = _contrast(row, j, rival_index, raw_row, scores, cosine, q_norm, k_norm, asks)
    unscaled = _row_weights(raw_row + row.bias, allowed) if allowed.any() else np.zeros(m)
    passed = weight * row.v[j]  # (d_v,) what this key adds to the output
    output = row.weights @ row.v  # (m,) @ (m, d_v) -> (d_v,)
    share = _projection_share(passed, output)
    return ScoreExplanation(
        query=row.query,
        key=j,
        query_token=row.query_tokens[row.query],
        key_token=row.key_tokens[j],
        head=head,
        masked=not bool(allowed[j]),
        weight=weight,
        rank=rank,
        n_tied=n_tied,
        n_allowed=int(allowed.sum()),
        raw_score=raw,
        scale=row.scale,
        bias=float(row.bias[j]),
        score=float(scores[j]),
        dim_contributions=dims,
        query_norm=q_norm,
        key_norm=k_norm,
        cosine=cosine,
        feature_contributions=features,
        bias_contribution=bias_part,
        feature_names=names,
        logsumexp=_row_logsumexp(scores, allowed),
        competitor=competitor,
        competitor_token=None if competitor is None else row.key_tokens[competitor],
        competitor_weight=0.0 if competitor is None else float(row.weights[competitor]),
        competitor_score=0.0 if competitor is None else float(scores[competitor]),
        unscaled_weight=float(unscaled[j]),
        value_contribution=passed,
        unscaled_max_weight=float(unscaled.max()) if m else 0.0,
        output=output,
        value_share=share,
        contrast=contrast,
    )


def _cosine(q: Float64Array, k: Float64Array, q_norm: float, k_norm: float) -> float:
    """cos of the angle between q and k (0 for a zero vector), clipped to [-1, 1]."""
    if q_norm == 0.0 or k_norm == 0.0:
        return 0.0
    # cos = (q / |q|) . (k / |k|): |q| |k| may underflow (or overflow) where neither does
    return min(1.0, max(-1.0, float((q / q_norm) @ (k / k_norm))))


def _contrast(
    row: _Row,
    j: int,
    r: int,
    raw: Float64Array,
    scores: Float64Array,
    cosine: float,
    q_norm: float,
    k_norm: float,
    asks: Float64Array | None,
) -> Contrast:
    """Key ``j`` against rival ``r`` for the row's query: the gaps, split exactly.

    ``asks`` is ``x_i[a] (W_Q W_K^T)[a, b]`` from :func:`explain_score` (None without
    ``x`` and the weights): the feature split of the gap is it times ``x_j - x_r``.
    """
    r_norm = float(l2_norm(row.k[r]))
    r_cos = _cosine(row.q, row.k[r], q_norm, r_norm)
    raw_gap = float(raw[j] - raw[r])
    score_gap = float(scores[j] - scores[r])
    with np.errstate(over="ignore"):  # a ratio beyond float64 is inf, and says so
        ratio = float(np.exp(score_gap))
    # |q| |k_j| cos_j - |q| |k_r| cos_r, split symmetrically in the two keys
    length = q_norm * (k_norm - r_norm) * (cosine + r_cos) / 2
    angle = q_norm * (cosine - r_cos) * (k_norm + r_norm) / 2
    features = key_x = rival_x = None
    bias_terms: float | None = None
    if asks is not None and row.x_keys is not None and row.w_k is not None:
        key_x, rival_x = row.x_keys[j], row.x_keys[r]
        dx = key_x - rival_x  # (d_model,)
        with np.errstate(over="ignore", invalid="ignore"):  # reported by _finite
            features = asks * dx[None, :] + 0.0  # + 0.0: no -0 in a printed matrix
        features = _finite(features, "the feature contributions to the gap")
        b_q = np.zeros_like(row.q) if row.b_q is None else row.b_q
        with np.errstate(over="ignore", invalid="ignore"):  # reported by _finite
            terms = b_q @ (row.w_k.T @ dx)  # b_Q W_K^T (x_j - x_r)^T
        bias_terms = float(_finite(np.asarray(terms), "the bias terms of the gap"))
    return Contrast(
        rival=r,
        rival_token=row.key_tokens[r],
        rival_weight=float(row.weights[r]),
        rival_score=float(scores[r]),
        rival_raw_score=float(raw[r]),
        rival_bias=float(row.bias[r]),
        rival_key_norm=r_norm,
        rival_cosine=r_cos,
        score_gap=score_gap,
        weight_ratio=ratio,
        raw_gap=raw_gap,
        bias_gap=float(row.bias[j] - row.bias[r]),
        length=length,
        angle=angle,
        dims=row.q * (row.k[j] - row.k[r]),
        features=features,
        bias_terms=bias_terms,
        query_asks=asks,
        key_x=key_x,
        rival_x=rival_x,
    )


@dataclass(frozen=True, eq=False)
class QueryExplanation:
    r"""Where one query looks: its weights in order, how sharp they are, what the scale did.

    Attributes
    ----------
    query : int
        Position of the query token.
    query_token : str
        Its label.
    query_tokens : tuple of str
        Labels of all the queries.
    key_tokens : tuple of str
        Labels of the keys.
    head : int or None
        The head explained.
    weights : (m,) ndarray
        The query's attention weights.
    scores : (m,) ndarray
        The logits softmax saw (``-inf`` where masked).
    allowed : (m,) ndarray of bool
        Which keys the query may attend to.
    order : tuple of int
        Key indices by descending weight (stable: ties keep their order).
    entropy : float
        :math:`-\sum_j w_j \log w_j` in nats: 0 for one key, :math:`\log m` for uniform.
    effective_keys : float
        :math:`e^{H}`, the number of keys the attention is spread over.
    unscaled_entropy : float
        The entropy the row would have without the scale.
    max_weight, unscaled_max_weight : float
        The row's largest weight, with and without the scale (0 when every key is
        masked); 0.99 or more is *saturated*.
    scale : float
        The scale the result applied to the dot products.
    """

    query: int
    query_token: str
    query_tokens: tuple[str, ...]
    key_tokens: tuple[str, ...]
    head: int | None
    weights: Float64Array
    scores: Float64Array
    allowed: NDArray[np.bool_]
    order: tuple[int, ...]
    entropy: float
    effective_keys: float
    unscaled_entropy: float
    max_weight: float
    unscaled_max_weight: float
    scale: float

    @property
    def attends_to_nothing(self) -> bool:
        """Whether every key is masked (then the weights and the output are 0)."""
        return not bool(self.allowed.any())

    def _repr_html_(self) -> str | None:
        """Jupyter: the narrative, escaped, styled like the HTML view."""
        return notebook_display(self)

    def __str__(self) -> str:
        """The narrative: where this token looks and how sharply."""
        return query_narrative(self)


def explain_query(
    result: Result,
    query: int | str,
    /,
    *,
    batch: int | tuple[int, ...] | None = None,
    head: int | None = None,
    tokens: Sequence[str] | tuple[Sequence[str], Sequence[str]] | None = None,
) -> QueryExplanation:
    r"""Explain one query's whole row: which keys it looks at, and how sharply.

    Parameters
    ----------
    result : Attention or ProjectedAttention
        An attention result.
    query : int or str
        Position, or a token that occurs once in ``tokens``.
    batch, head, tokens
        As in :func:`explain_score`.

    Returns
    -------
    QueryExplanation
        The weights, their order, entropy, effective number of keys and the entropy
        without the scale; ``str()`` gives the narrative.

    Raises
    ------
    IndexError, ValueError, TypeError
        As :func:`explain_score`.

    See Also
    --------
    explain_score, attention_from_scratch.softmax.entropy

    Notes
    -----
    In code, ``order = np.argsort(-w, kind="stable")``, ``h = entropy(w)``. The entropy
    :math:`H = -\sum_j w_j \log w_j` is computed with :math:`0 \log 0 = 0`
    (:func:`~attention_from_scratch.softmax.entropy`); :math:`e^H` counts the keys the
    attention is effectively spread over :cite:p:`cover2006elements`. The unscaled
    entropy is that of ``softmax(q_i K^T + b)``: smaller, because without
    :math:`1/\sqrt{d_k}` the softmax saturates :cite:p:`vaswani2017attention`.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.1.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.explain import explain_query
    >>> from attention_from_scratch.self_attention import self_attention
    >>> ex = fluffy_blue_creature()
    >>> row = explain_query(self_attention(ex.x, ex.params), "creature", tokens=ex.tokens)
    >>> print(row.order, round(row.entropy, 4), round(row.unscaled_entropy, 4))
    (0, 1, 2) 0.8845 0.6448
    >>> print(row)
    'creature' looks at 'fluffy' 0.5741, 'blue' 0.3482, 'creature' 0.0777.
    Its attention is spread over about 2.422 of its 3 keys (entropy 0.8845 nats, effective
      keys 2.422).
    Without the scale (0.5) the entropy would be 0.6448 nats instead of 0.8845, and the
      largest weight 0.7214 instead of 0.5741: sharper, yet not saturated (largest weight
      below 0.99).
    """
    row = _row(result, query, batch=batch, head=head, tokens=tokens)
    weights = row.weights
    order = tuple(int(j) for j in np.argsort(-weights, kind="stable"))
    h = float(_entropy(weights))
    if row.allowed.any():
        unscaled = _row_weights(row.raw + row.bias, row.allowed)
        unscaled_h, unscaled_max = float(_entropy(unscaled)), float(unscaled.max())
    else:
        unscaled_h = unscaled_max = 0.0
    return QueryExplanation(
        query=row.query,
        query_token=row.query_tokens[row.query],
        query_tokens=row.query_tokens,
        key_tokens=row.key_tokens,
        head=head,
        weights=weights,
        scores=np.where(row.allowed, row.scores, -np.inf),
        allowed=row.allowed,
        order=order,
        entropy=h,
        effective_keys=math.exp(h),
        unscaled_entropy=unscaled_h,
        max_weight=float(weights.max()) if weights.size else 0.0,
        unscaled_max_weight=unscaled_max,
        scale=row.scale,
    )


_SHADES = " ░▒▓█"


def heatmap(
    weights: ArrayLike,
    /,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> str:
    r"""The weight matrix as text: a shaded cell and the number, one row per query.

    Parameters
    ----------
    weights : (n, m) array_like
        Attention weights in :math:`[0, 1]`.
    row_labels : sequence of str, optional
        Query labels (default ``0 .. n-1``).
    col_labels : sequence of str, optional
        Key labels (default ``0 .. m-1``).

    Returns
    -------
    str
        ``n + 1`` lines: a header of key labels, then each query's label and cells.
        A cell's shade is one of `` ░▒▓█`` by fifths of the weight. Labels stay on
        one line: newlines, tabs and other control characters are escaped (``\n``).

    Raises
    ------
    ValueError
        If ``weights`` is not 2-D, not finite, outside :math:`[0, 1]`, or labels do not
        fit.
    TypeError
        If ``weights`` is bool, complex or not numeric.

    See Also
    --------
    explain_query

    Notes
    -----
    In code, ``shade = " ░▒▓█"[min(int(5 * w), 4)]``. Numbers are printed with 3
    decimals, so rows read as the probabilities they are; the shades make the pattern
    visible at a glance, as a plotted heatmap does :cite:p:`vig2019multiscale`.

    References
    ----------
    :cite:t:`vig2019multiscale`.

    Examples
    --------
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.explain import heatmap
    >>> from attention_from_scratch.self_attention import self_attention
    >>> ex = fluffy_blue_creature()
    >>> result = self_attention(ex.x, ex.params)
    >>> print(heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens))
    query \ key   fluffy     blue  creature
    fluffy       ░ 0.333  ░ 0.333   ░ 0.333
    blue         ░ 0.333  ░ 0.333   ░ 0.333
    creature     ▒ 0.574  ░ 0.348     0.078
    """
    arr = as_float_array(weights, "weights")
    if arr.ndim != 2:
        msg = f"weights must be 2-D (n, m) for a heatmap, got shape {arr.shape}"
        raise ValueError(msg)
    check_finite(arr, "weights")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        msg = f"weights must lie in [0, 1], got values in [{arr.min()}, {arr.max()}]"
        raise ValueError(msg)
    n, m = arr.shape
    rows = [str(i) for i in range(n)] if row_labels is None else [_cell(r) for r in row_labels]
    cols = [str(j) for j in range(m)] if col_labels is None else [_cell(c) for c in col_labels]
    if len(rows) != n or len(cols) != m:
        msg = f"labels do not fit weights of shape {arr.shape}: {len(rows)} rows, {len(cols)} columns"
        raise ValueError(msg)
    corner = "query \\ key"
    first = max([len(corner), *(len(r) for r in rows)])
    widths = [max(7, len(c)) for c in cols]
    header = corner.ljust(first) + "".join(
        "  " + c.rjust(w) for c, w in zip(cols, widths, strict=True)
    )
    lines = [header]
    for label, values in zip(rows, arr.astype(np.float64), strict=True):
        cells = []
        for w, width in zip(values, widths, strict=True):
            shade = _SHADES[min(int(5 * float(w)), 4)]
            cells.append("  " + f"{shade} {float(w) + 0.0:.3f}".rjust(width))  # no -0.000
        lines.append(label.ljust(first) + "".join(cells))
    return "\n".join(line.rstrip() for line in lines)


def _cell(label: object) -> str:
    r"""``label`` as one line of a table: newlines, tabs and other control characters escaped.

    ``"a\nb"`` becomes ``a\nb`` (a backslash and an n), so each row stays one line.
    """
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        for ch in str(label)
    )
