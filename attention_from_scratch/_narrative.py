r"""The sentences of an explanation: what ``str()`` of the explanation dataclasses says.

:mod:`attention_from_scratch.explain` computes the numbers of an explanation; this
private module turns them into prose, one paragraph per link of the chain
(:cite:t:`vaswani2017attention`, §3.2.1): why the query attends to this key rather
than its rival (the term of the gap that does most for the winner, then the gap's
exact splits), the pair's own dot product as ``|q| |k| cos`` and where it comes from
(embedding features, head dimensions, and for layer 0 of a real model the origins of
the embeddings), how the softmax weighs it against the row (the log-sum-exp and the
ratio to the rival's weight), what the scale did, and what the key passes on.

It never imports :mod:`~attention_from_scratch.explain`: it reads an explanation
through the protocols :class:`ScoreFacts`, :class:`ContrastFacts`,
:class:`OriginFacts` and :class:`QueryFacts`, which name the fields the sentences
need, so any object with those fields can be narrated.

* :func:`score_narrative` -> the ``str()`` of a
  :class:`~attention_from_scratch.explain.ScoreExplanation`;
* :func:`query_narrative` -> the ``str()`` of a
  :class:`~attention_from_scratch.explain.QueryExplanation`.

Numbers are printed with 4 significant digits (never ``-0``), paragraphs wrapped at 88
columns with continuation lines indented by two spaces.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "COS_PARTLY",
    "COS_SAME_WAY",
    "COS_SLIGHTLY",
    "FEATURE_SHARE",
    "ONE_KEY",
    "SATURATED",
    "TOP_TERMS",
    "ContrastFacts",
    "OriginFacts",
    "QueryFacts",
    "ScoreFacts",
    "query_narrative",
    "score_narrative",
]

Float64Array = NDArray[np.float64]

# The thresholds of the qualitative words; the table in explain's docstring and the
# explain chapter state them, and tests/test_explain.py checks both sides of each.
COS_SAME_WAY = 0.7
"""cos >= 0.7: query and key "point the same way"."""
COS_PARTLY = 0.3
"""0.3 <= cos < 0.7: "point partly the same way"; 0 < cos < 0.3: "nearly orthogonal"."""
COS_SLIGHTLY = 0.1
"""Two keys whose cosines with the query differ by less than 0.1: "slightly closer"."""
SATURATED = 0.99
"""A row whose largest weight is 0.99 or more is "saturated" (nearly one-hot)."""
ONE_KEY = 1.5
"""Fewer than 1.5 effective keys: attention "almost entirely on one key"."""
TOP_TERMS = 3
"""A sum is listed by its largest terms, this many, then "the other N" and the total."""
FEATURE_SHARE = 0.5
"""A feature pair heads a contrast when it carries at least half of the gap; else the
length and angle terms do (a real model spreads a gap over many thousand pairs)."""


class ContrastFacts(Protocol):
    """The fields of a contrast with the rival key that the narrative reads.

    :class:`~attention_from_scratch.explain.Contrast` has them all.
    """

    @property
    def rival_token(self) -> str: ...
    @property
    def rival_weight(self) -> float: ...
    @property
    def rival_score(self) -> float: ...
    @property
    def rival_bias(self) -> float: ...
    @property
    def rival_key_norm(self) -> float: ...
    @property
    def rival_cosine(self) -> float: ...
    @property
    def score_gap(self) -> float: ...
    @property
    def weight_ratio(self) -> float: ...
    @property
    def raw_gap(self) -> float: ...
    @property
    def bias_gap(self) -> float: ...
    @property
    def length(self) -> float: ...
    @property
    def angle(self) -> float: ...
    @property
    def dims(self) -> Float64Array: ...
    @property
    def features(self) -> Float64Array | None: ...
    @property
    def bias_terms(self) -> float | None: ...
    @property
    def query_asks(self) -> Float64Array | None: ...
    @property
    def key_x(self) -> Float64Array | None: ...
    @property
    def rival_x(self) -> Float64Array | None: ...


class OriginFacts(Protocol):
    """The fields of a split by embedding origin that the narrative reads.

    :class:`~attention_from_scratch.explain.OriginSplit` has them all.
    """

    @property
    def parts(self) -> tuple[str, ...]: ...
    @property
    def blocks(self) -> Float64Array: ...
    @property
    def constant_terms(self) -> float: ...


class ScoreFacts(Protocol):
    """The fields of one (query, key) explanation that its narrative reads.

    :class:`~attention_from_scratch.explain.ScoreExplanation` has them all; their
    meaning is documented there.
    """

    @property
    def query_token(self) -> str: ...
    @property
    def key_token(self) -> str: ...
    @property
    def masked(self) -> bool: ...
    @property
    def weight(self) -> float: ...
    @property
    def rank(self) -> int: ...
    @property
    def n_tied(self) -> int: ...
    @property
    def n_allowed(self) -> int: ...
    @property
    def raw_score(self) -> float: ...
    @property
    def scale(self) -> float: ...
    @property
    def bias(self) -> float: ...
    @property
    def score(self) -> float: ...
    @property
    def dim_contributions(self) -> Float64Array: ...
    @property
    def query_norm(self) -> float: ...
    @property
    def key_norm(self) -> float: ...
    @property
    def cosine(self) -> float: ...
    @property
    def feature_contributions(self) -> Float64Array | None: ...
    @property
    def bias_contribution(self) -> float | None: ...
    @property
    def feature_names(self) -> tuple[str, ...] | None: ...
    @property
    def logsumexp(self) -> float: ...
    @property
    def unscaled_weight(self) -> float: ...
    @property
    def value_contribution(self) -> Float64Array: ...
    @property
    def unscaled_max_weight(self) -> float: ...
    @property
    def output(self) -> Float64Array: ...
    @property
    def value_share(self) -> float: ...
    @property
    def contrast(self) -> ContrastFacts | None: ...
    @property
    def origins(self) -> OriginFacts | None: ...


class QueryFacts(Protocol):
    """The fields of one query's explanation that its narrative reads.

    :class:`~attention_from_scratch.explain.QueryExplanation` has them all; their
    meaning is documented there.
    """

    @property
    def query_token(self) -> str: ...
    @property
    def key_tokens(self) -> tuple[str, ...]: ...
    @property
    def weights(self) -> Float64Array: ...
    @property
    def scores(self) -> Float64Array: ...
    @property
    def allowed(self) -> NDArray[np.bool_]: ...
    @property
    def order(self) -> tuple[int, ...]: ...
    @property
    def entropy(self) -> float: ...
    @property
    def effective_keys(self) -> float: ...
    @property
    def unscaled_entropy(self) -> float: ...
    @property
    def max_weight(self) -> float: ...
    @property
    def unscaled_max_weight(self) -> float: ...
    @property
    def scale(self) -> float: ...
    @property
    def attends_to_nothing(self) -> bool: ...


def _fmt(value: float) -> str:
    """A number for prose: 4 significant digits, no ``-0``."""
    if value == 0.0:
        return "0"
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.4g}"


def _signed(value: float) -> str:
    """A term of a sum: ``+3``, ``-0.5``; zero is ``0``."""
    text = _fmt(value)
    if text == "0":
        return text
    return text if text.startswith("-") else f"+{text}"


_WIDTH = 88
_DIMENSIONS = ("dimension", "dimensions")


def _paragraphs(lines: list[str]) -> str:
    """One paragraph per line, wrapped at 88 columns, continuation lines indented."""
    return "\n".join(
        textwrap.fill(
            line,
            _WIDTH,
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        for line in lines
    )


def _vector(values: Float64Array) -> str:
    return "[" + ", ".join(_fmt(float(v)) for v in values) + "]"


def _top_terms(values: Float64Array) -> tuple[list[int], int, float]:
    """The indices of the ``TOP_TERMS`` largest nonzero ``|values|`` (ties by index), and
    how many others there are and what they sum to: the listing's remainder."""
    flat = values.ravel()
    magnitude = np.abs(flat)
    if magnitude.size > TOP_TERMS:  # the top terms without a full sort
        cut = np.partition(magnitude, -TOP_TERMS)[-TOP_TERMS]
        candidates = np.flatnonzero(magnitude >= cut)
        order = candidates[np.argsort(-magnitude[candidates], kind="stable")]
    else:
        order = np.argsort(-magnitude, kind="stable")
    top = [int(i) for i in order[:TOP_TERMS] if flat[i] != 0.0]
    rest = np.ones(flat.size, dtype=bool)
    rest[top] = False
    return top, int(rest.sum()), float(flat[rest].sum())


def _listing(
    values: Float64Array, label: Callable[[int], str], noun: tuple[str, str], total: float
) -> str:
    """The largest terms of a sum, the rest, and the total: "a +3; b +1; the other 14 0
    (total 4)". Every listed sum states its remainder, so the numbers on screen add up."""
    top, n_rest, rest = _top_terms(values)
    parts = [f"{label(i)} {_signed(float(values.ravel()[i]))}" for i in top]
    if n_rest == 1:
        others = f"the other {noun[0]}" if top else f"the {noun[0]}"
        parts.append(f"{others} {_signed(rest)}")
    elif n_rest:
        others = f"the other {n_rest:,} {noun[1]}" if top else f"all {n_rest:,} {noun[1]}"
        parts.append(f"{others} {_signed(rest)}")
    return "; ".join(parts) + f" (total {_fmt(total)})"


def _pair_label(
    names: tuple[str, ...] | None, width: int, q: str | None = None, k: str | None = None
) -> Callable[[int], str]:
    """Label of the flat index of a (query feature, key feature) pair."""

    def label(index: int) -> str:
        a, b = divmod(index, width)
        if names is None:
            first, second = f"feature {a}", f"feature {b}"
        else:
            first, second = f"'{names[a]}'", f"'{names[b]}'"
        if q is None or k is None:
            return f"{first} x {second}"
        return f"{first} of {q} x {second} of {k}"

    return label


def score_narrative(why: ScoreFacts, /) -> str:
    """The narrative of one (query, key) explanation: why the query gives the key its weight.

    Parameters
    ----------
    why : ScoreFacts
        A :class:`~attention_from_scratch.explain.ScoreExplanation` (or any object with
        its fields).

    Returns
    -------
    str
        One paragraph per reason, wrapped at 88 columns: the headline (this key
        against the rival, from the term that does most for the winner), the gap's
        exact splits, the dot product (``|q| |k| cos`` and its largest terms over
        features and dimensions, each with its remainder), the origins of the
        embeddings when known, the softmax competition, what the scale did (in
        numbers, "saturated" only past :data:`SATURATED`), and what the key passes on.
        A masked pair gets one sentence.

    See Also
    --------
    attention_from_scratch.explain.explain_score

    Examples
    --------
    >>> from attention_from_scratch._narrative import score_narrative
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.explain import explain_score
    >>> from attention_from_scratch.self_attention import self_attention
    >>> ex = fluffy_blue_creature()
    >>> why = explain_score(self_attention(ex.x, ex.params), "creature", "fluffy",
    ...                     tokens=ex.tokens)
    >>> print(score_narrative(why) == str(why))
    True
    >>> print(score_narrative(why).splitlines()[0])
    'creature' attends to 'fluffy' (0.5741) more than to 'blue' (0.3482) because the key of
    """
    q, k = f"'{why.query_token}'", f"'{why.key_token}'"
    if why.masked:
        return _paragraphs(
            [
                (
                    f"{q} does not attend to {k}: the pair is masked, so its weight is "
                    "exactly 0 and its score plays no part in the softmax."
                )
            ]
        )
    c = why.contrast
    lines = [_alone(why, q, k)] if c is None else [_headline(why, c, q, k), _gap_split(why, c, k)]
    lines.append(_dot_product(why, q, k))
    lines.extend(_decomposition(why, q, k))
    if why.origins is not None:
        lines.append(_origin_sentence(why, why.origins))
    lines.append(_competition(why, k))
    lines.append(_scale_sentence(why))
    lines.append(_value_sentence(why, q, k))
    return _paragraphs(lines)


def _rank(why: ScoreFacts) -> str:
    rank = f"rank {why.rank} of {why.n_allowed} key{'' if why.n_allowed == 1 else 's'}"
    if why.n_tied:
        rank += f", tied with {why.n_tied} other{'' if why.n_tied == 1 else 's'}"
    return rank


def _alone(why: ScoreFacts, q: str, k: str) -> str:
    """The opening when there is no rival: the only key the query may see."""
    return (
        f"{q} attends to {k} because it is the only key {q} may attend to: the softmax "
        f"gives all the weight to a single allowed key, whatever its score (weight "
        f"{_fmt(why.weight)}, {_rank(why)})."
    )


def _headline(why: ScoreFacts, c: ContrastFacts, q: str, k: str) -> str:
    """This key against the rival, because of the term that does most for the winner."""
    r = f"'{c.rival_token}'"
    if c.score_gap == 0.0:
        if why.query_norm == 0.0 and c.bias_gap == 0.0:
            reason = (
                "its query is zero: it asks for nothing, so every key scores the same "
                f"(the bias aside) and the softmax cannot tell them apart ({_rank(why)})."
            )
        else:
            reason = (
                f"their scores are equal ({_fmt(why.score)}): the softmax cannot tell "
                f"them apart ({_rank(why)})."
            )
        return (
            f"{q} attends to {k} ({_fmt(why.weight)}) exactly as much as to {r} "
            f"({_fmt(c.rival_weight)}) because {reason}"
        )
    won = c.score_gap > 0
    winner, loser = (k, r) if won else (r, k)
    sign = 1.0 if won else -1.0
    comparison = "more" if won else "less"
    opening = (
        f"{q} attends to {k} ({_fmt(why.weight)}) {comparison} than to {r} "
        f"({_fmt(c.rival_weight)}) because "
    )
    # The candidate terms, in score units: they sum to the score gap.
    terms: list[tuple[float, str, int]] = []  # (value for the winner, kind, index)
    gap = abs(c.score_gap)
    if c.features is not None:  # a feature pair, if one carries enough of the gap
        flat = c.features.ravel()
        best = int(np.argmax(flat * sign))
        feature = float(flat[best]) * why.scale * sign
        if feature >= FEATURE_SHARE * gap:
            terms.append((feature, "feature", best))
    if not terms:  # no feature pair stands out: what the lengths and the angles do
        terms.append((c.length * why.scale * sign, "length", 0))
        terms.append((c.angle * why.scale * sign, "angle", 0))
        if c.bias_terms:
            terms.append((c.bias_terms * why.scale * sign, "projection bias", 0))
    if c.bias_gap:
        terms.append((c.bias_gap * sign, "bias", 0))
    value, kind, index = max(terms, key=lambda term: term[0])
    if c.bias_gap == 0.0 and why.scale != 0.0:  # in raw units, as the dot products
        term, gap, unit = value / why.scale, abs(c.raw_gap), "raw-score gap"
    else:
        term, gap, unit = value, abs(c.score_gap), "score gap"
    if term <= gap * (1.0 + 1e-12):
        share = f"({_signed(term)} of the {_fmt(gap)} {unit})"
    else:  # other terms take some of it back
        share = f"({_signed(term)}; with the other terms, a {unit} of {_fmt(gap)})"
    if kind == "feature":
        reason = _feature_reason(why, c, index, winner, loser, q, share.strip("()"))
        rest = _length_angle_clause(why, c, winner, loser, sign)
    elif kind == "projection bias":
        reason = f"the query's projection bias b_Q favours the key of {winner} {share}"
        rest = _length_angle_clause(why, c, winner, loser, sign)
    elif kind == "bias":
        reason = (
            f"the additive bias favours {winner} (bias {_fmt(_pick(why.bias, c.rival_bias, won))} "
            f"vs {_fmt(_pick(c.rival_bias, why.bias, won))}: {share.strip('()')})"
        )
        rest = _length_angle_clause(why, c, winner, loser, sign)
    elif kind == "length":
        norms = _norms(why, c, won)[:-1] + ": " + share[1:]  # (|k| a vs b: +x of the gap)
        reason = f"the key of {winner} is longer {norms}"
        rest = _second_term(why, c, loser, sign, "angle")
    else:
        cosines = _cosines(why, c, won)[:-1] + ": " + share[1:]
        reason = f"the key of {winner} points closer to the query {cosines}"
        rest = _second_term(why, c, loser, sign, "length")
    return opening + reason + (f"; {rest}" if rest else "") + "."


def _pick(mine: float, theirs: float, won: bool) -> float:
    return mine if won else theirs


def _norms(why: ScoreFacts, c: ContrastFacts, won: bool) -> str:
    """(|k| winner vs loser)."""
    first, second = (why.key_norm, c.rival_key_norm) if won else (c.rival_key_norm, why.key_norm)
    return f"(|k| {_fmt(first)} vs {_fmt(second)})"


def _cosines(why: ScoreFacts, c: ContrastFacts, won: bool) -> str:
    """(cos winner vs loser)."""
    first, second = (why.cosine, c.rival_cosine) if won else (c.rival_cosine, why.cosine)
    return f"(cos {_fmt(first)} vs {_fmt(second)})"


def _closer(why: ScoreFacts, c: ContrastFacts) -> str:
    """ "slightly closer" when the cosines differ by less than :data:`COS_SLIGHTLY`."""
    return "slightly closer" if abs(why.cosine - c.rival_cosine) < COS_SLIGHTLY else "closer"


def _feature_reason(
    why: ScoreFacts, c: ContrastFacts, index: int, winner: str, loser: str, q: str, share: str
) -> str:
    """The feature pair that does most for the winner, in words.

    Its term is ``asks[a, b] * (x_key[b] - x_rival[b])``: when the query asks for
    feature ``b`` (``asks > 0``) the winner carries more of it; when the query weighs
    against it, the loser does.
    """
    if c.features is None or c.query_asks is None or c.key_x is None or c.rival_x is None:
        msg = "no features"  # pragma: no cover - only called with features
        raise RuntimeError(msg)
    a, b = divmod(index, c.features.shape[1])
    names = why.feature_names
    qa = f"feature {a}" if names is None else f"'{names[a]}'"
    kb = f"feature {b}" if names is None else f"'{names[b]}'"
    what = kb if names is None else f"the {kb} feature"
    pair = f"({qa} x {kb}: {share})"
    won = c.score_gap > 0
    x_winner, x_loser = (c.key_x[b], c.rival_x[b]) if won else (c.rival_x[b], c.key_x[b])
    if c.query_asks[a, b] > 0:  # the winner carries more of what the query asks for
        more = "more of " if x_loser != 0.0 else ""
        return f"the key of {winner} carries {more}{what} that the query of {q} asks for {pair}"
    more = "more of " if x_winner != 0.0 else ""
    return f"the key of {loser} carries {more}{what} that the query of {q} weighs against {pair}"


def _length_angle_clause(
    why: ScoreFacts, c: ContrastFacts, winner: str, loser: str, sign: float
) -> str:
    """What the keys' lengths and directions do, told from the two keys' side."""
    won = sign > 0
    length, angle = c.length * sign, c.angle * sign  # for the winner
    if length > 0 and angle < 0:
        return (
            f"the key of {loser} points {_closer(why, c)} to the query "
            f"{_cosines(why, c, not won)} but is shorter {_norms(why, c, not won)}"
        )
    if length < 0 and angle > 0:
        return (
            f"the key of {loser} is longer {_norms(why, c, not won)} but points further "
            f"from the query {_cosines(why, c, not won)}"
        )
    if length > 0 and angle > 0:
        return (
            f"the key of {winner} is also longer {_norms(why, c, won)} and points closer "
            f"to the query {_cosines(why, c, won)}"
        )
    if length < 0 and angle < 0:
        return (
            f"the key of {loser} is longer {_norms(why, c, not won)} and points closer to "
            f"the query {_cosines(why, c, not won)}, yet loses on the other terms"
        )
    if length == 0.0 and angle != 0.0:
        better = winner if angle > 0 else loser
        return (
            f"the two keys are equally long (|k| {_fmt(why.key_norm)}), and the key of "
            f"{better} points closer to the query {_cosines(why, c, (angle > 0) == won)}"
        )
    if angle == 0.0 and length != 0.0:
        longer = winner if length > 0 else loser
        return (
            f"the two keys point equally close to the query (cos {_fmt(why.cosine)}), and "
            f"the key of {longer} is longer {_norms(why, c, (length > 0) == won)}"
        )
    return ""


def _second_term(why: ScoreFacts, c: ContrastFacts, loser: str, sign: float, kind: str) -> str:
    """After a length (or angle) headline, what the other of the two does."""
    won = sign > 0
    value = (c.angle if kind == "angle" else c.length) * sign
    if kind == "angle":
        if value > 0:
            cosines = _cosines(why, c, won)[:-1] + f": {_signed(value)})"
            return f"it also points closer to the query {cosines}"
        if value < 0:
            return (
                f"the key of {loser} points {_closer(why, c)} to the query "
                f"{_cosines(why, c, not won)}, which takes back {_fmt(-value)}"
            )
        return f"both point equally close to the query (cos {_fmt(why.cosine)})"
    if value > 0:
        return f"it is also longer {_norms(why, c, won)[:-1]}: {_signed(value)})"
    if value < 0:
        return (
            f"the key of {loser} is longer {_norms(why, c, not won)}, which takes back "
            f"{_fmt(-value)}"
        )
    return f"both keys are equally long (|k| {_fmt(why.key_norm)})"


def _gap_split(why: ScoreFacts, c: ContrastFacts, k: str) -> str:
    """The raw-score gap and its exact splits, each with its remainder."""
    r = f"'{c.rival_token}'"
    gap = _fmt(c.raw_gap)
    if not c.dims.any() and (c.features is None or not c.features.any()) and not c.bias_terms:
        text = f"The raw-score gap q . (k({k}) - k({r})) is 0: every term of it is 0."
        if c.bias_gap:
            text += f" Only the additive bias separates the scores ({_signed(c.bias_gap)})."
        return text
    text = (
        f"The raw-score gap q . (k({k}) - k({r})) = {gap} splits into length "
        f"{_signed(c.length)} and angle {_signed(c.angle)} (what the keys' lengths and "
        "their directions do)"
    )
    if c.features is not None:
        names = why.feature_names
        label = _pair_label(names, c.features.shape[1])
        text += "; over feature pairs (query x key): " + _listing(
            c.features, label, ("pair", "pairs"), float(c.features.sum())
        )
        if c.bias_terms:
            text += f", plus the projection bias {_signed(c.bias_terms)}"
    text += "; over the head's dimensions: " + _listing(
        c.dims, lambda d: f"dimension {d}", _DIMENSIONS, float(c.dims.sum())
    )
    text += "."
    if c.bias_gap:
        text += (
            f" The additive bias adds {_signed(c.bias_gap)}: score gap = {_fmt(c.raw_gap)} x "
            f"{_fmt(why.scale)} {_signed(c.bias_gap)} = {_fmt(c.score_gap)}."
        )
    return text


def _direction(cosine: float) -> str:
    """The words for a cosine, by the thresholds :data:`COS_SAME_WAY` and :data:`COS_PARTLY`."""
    if cosine >= COS_SAME_WAY:
        return "point the same way"
    if cosine >= COS_PARTLY:
        return "point partly the same way"
    if cosine > 0:
        return "are nearly orthogonal, tilted slightly the same way"
    if cosine < 0:
        return "point apart"
    return "are orthogonal"


def _dot_product(why: ScoreFacts, q: str, k: str) -> str:
    """The pair's own dot product, as |q| |k| cos."""
    weight = f"weight {_fmt(why.weight)}, {_rank(why)}"
    # "only a small share": below the uniform share 1/n of the keys it may see.
    if why.n_allowed > 1 and why.weight * why.n_allowed < 1.0 - 1e-12:
        weight = f"only a small share, {weight}"
    if why.query_norm == 0.0:
        unbiased = why.bias == 0.0 and (why.contrast is None or why.contrast.bias_gap == 0.0)
        scores = "" if unbiased else f" and only the bias ({_fmt(why.bias)}) sets the scores"
        return (
            f"The query of {q} is zero: it asks for nothing, so its dot product with every "
            f"key is 0{scores} ({weight})."
        )
    if why.key_norm == 0.0:
        return (
            f"The key of {k} is zero: it offers nothing the query asks for, so their dot "
            f"product is 0 ({weight})."
        )
    return (
        f"Their own dot product is {_fmt(why.raw_score)} = |q| {_fmt(why.query_norm)} x "
        f"|k| {_fmt(why.key_norm)} x cos {_fmt(why.cosine)}: the query of {q} and the key "
        f"of {k} {_direction(why.cosine)} ({weight})."
    )


def _decomposition(why: ScoreFacts, q: str, k: str) -> list[str]:
    lines: list[str] = []
    total = why.raw_score
    if why.feature_contributions is not None and total != 0.0:
        label = _pair_label(why.feature_names, why.feature_contributions.shape[1], q, k)
        text = "In the embedding features: " + _listing(
            why.feature_contributions,
            label,
            ("feature pair", "feature pairs"),
            float(why.feature_contributions.sum()),
        )
        if why.bias_contribution:
            text += f"; the projection biases {_signed(why.bias_contribution)}"
            text += f" (dot product {_fmt(total)})"
        lines.append(text + ".")
    if total != 0.0:
        lines.append(
            "In the head's dimensions: "
            + _listing(why.dim_contributions, lambda d: f"dimension {d}", _DIMENSIONS, total)
            + "."
        )
    return lines


def _origin_sentence(why: ScoreFacts, origins: OriginFacts) -> str:
    """Layer 0 of a real model: the dot product by where the embeddings came from.

    Each part meeting itself first (word x word says how much is word identity,
    position x position how much is position), then the cross blocks, the constants and
    the total, so the numbers add up.
    """
    parts, blocks = origins.parts, origins.blocks
    diagonal = [f"{p} x {p} {_signed(float(blocks[a, a]))}" for a, p in enumerate(parts)]
    cross = blocks.copy()
    np.fill_diagonal(cross, 0.0)
    listed = "; ".join(diagonal)
    if cross.size > len(parts):
        a, b = divmod(int(np.argmax(np.abs(cross))), len(parts))
        listed += (
            f"; the {cross.size - len(parts)} cross blocks {_signed(float(cross.sum()))} "
            f"(the largest, {parts[a]} x {parts[b]}, {_signed(float(cross[a, b]))})"
        )
    return (
        "By origin of the embeddings (query part x key part, with each token's LayerNorm "
        f"mean and std fixed): {listed}; the constants (LayerNorm beta, b_Q, b_K) "
        f"{_signed(origins.constant_terms)} (dot product {_fmt(why.raw_score)})."
    )


def _competition(why: ScoreFacts, k: str) -> str:
    bias = f" plus the bias {_fmt(why.bias)}" if why.bias else ""
    text = (
        f"Scaled by {_scale_name(why)}{bias}, the score is {_fmt(why.score)}. The softmax "
        "weighs it against the row's other scores: weight = exp(score - logsumexp) = "
        f"exp({_fmt(why.score)} - {_fmt(why.logsumexp)}) = {_fmt(why.weight)}"
    )
    c = why.contrast
    if c is None:
        return text + f"; {k} is the only key allowed."
    return (
        text + f". Against '{c.rival_token}' (score {_fmt(c.rival_score)}, weight "
        f"{_fmt(c.rival_weight)}) the ratio of the weights is exp({_fmt(why.score)} - "
        f"{_fmt(c.rival_score)}) = {_fmt(c.weight_ratio)}."
    )


def _scale_name(why: ScoreFacts) -> str:
    d_k = why.dim_contributions.shape[0]
    if d_k and math.isclose(why.scale, 1.0 / math.sqrt(d_k), rel_tol=1e-12):
        return f"1/sqrt(d_k) = 1/sqrt({d_k}) = {_fmt(why.scale)}"
    return _fmt(why.scale)


def _saturation(unscaled_max: float) -> str:
    """Whether a row without the scale would be saturated (:data:`SATURATED`)."""
    if unscaled_max >= SATURATED:
        return f"saturated (largest weight {_fmt(unscaled_max)}, at least {SATURATED})"
    return f"yet not saturated (largest weight {_fmt(unscaled_max)}, below {SATURATED})"


def _scale_sentence(why: ScoreFacts) -> str:
    unscaled = _fmt(why.unscaled_weight)
    if why.scale == 1.0:
        return "No scale was applied (scale = 1)."
    if unscaled == _fmt(why.weight):
        return f"Without the scale the weight would be the same, {unscaled}."
    factor = _fmt(why.scale)
    if abs(why.scale) < 1.0:  # without it, the score gaps are wider: a sharper row
        effect = f"sharper, {_saturation(why.unscaled_max_weight)}"
    else:  # a scale above 1 widens the gaps: without it the row is softer
        effect = f"softer (largest weight {_fmt(why.unscaled_max_weight)})"
    return (
        f"The scale multiplies every score gap by {factor}: without it this weight would "
        f"be {unscaled} instead of {_fmt(why.weight)}, and the row would be {effect}."
    )


def _value_sentence(why: ScoreFacts, q: str, k: str) -> str:
    """What the key passes on: its size, its share of the output, its largest entries."""
    passed = why.value_contribution
    size = math.hypot(*passed.tolist())  # scaled: the squares do not overflow
    if size == 0.0:
        return f"It passes on {_fmt(why.weight)} x v({k}) = 0: nothing reaches the output of {q}."
    share = _fmt(100.0 * why.value_share)
    return (
        f"It passes on {_fmt(why.weight)} x v({k}), a vector of length {_fmt(size)}: "
        f"{share}% of the output of {q} by projection (the shares of all keys sum to "
        f"100%); its largest entries: "
        + _listing(passed, lambda d: f"dimension {d}", _DIMENSIONS, float(passed.sum()))
        + "."
    )


def query_narrative(row: QueryFacts, /) -> str:
    """The narrative of one query's row: where the token looks and how sharply.

    Parameters
    ----------
    row : QueryFacts
        A :class:`~attention_from_scratch.explain.QueryExplanation` (or any object with
        its fields).

    Returns
    -------
    str
        Three paragraphs: the keys by weight, the spread (entropy, effective number of
        keys) and what the scale did to the entropy; one sentence when every key is
        masked.

    See Also
    --------
    attention_from_scratch.explain.explain_query

    Examples
    --------
    >>> from attention_from_scratch._narrative import query_narrative
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.explain import explain_query
    >>> from attention_from_scratch.self_attention import self_attention
    >>> ex = fluffy_blue_creature()
    >>> row = explain_query(self_attention(ex.x, ex.params), "creature", tokens=ex.tokens)
    >>> print(query_narrative(row).splitlines()[0])
    'creature' looks at 'fluffy' 0.5741, 'blue' 0.3482, 'creature' 0.0777.
    """
    q = f"'{row.query_token}'"
    if row.attends_to_nothing:
        return _paragraphs(
            [
                (
                    f"{q} attends to nothing: every key is masked, so its weights and its "
                    "output are exactly 0."
                )
            ]
        )
    ranked = [j for j in row.order if row.allowed[j]]
    listing = ", ".join(f"'{row.key_tokens[j]}' {_fmt(float(row.weights[j]))}" for j in ranked)
    n_allowed = len(ranked)
    if n_allowed == 1:
        sharpness = "entirely on the one key it may see"
    elif abs(row.effective_keys - n_allowed) < 1e-9 * n_allowed:
        sharpness = f"evenly over all {n_allowed} keys it may see"
    elif row.effective_keys < ONE_KEY:
        sharpness = "almost entirely on one key"
    else:
        sharpness = f"over about {_fmt(row.effective_keys)} of its {n_allowed} keys"
    lines = [
        f"{q} looks at {listing}.",
        (
            f"Its attention is spread {sharpness} (entropy {_fmt(row.entropy)} nats, "
            f"effective keys {_fmt(row.effective_keys)})."
        ),
    ]
    allowed_scores = row.scores[row.allowed]
    unscaled = _fmt(row.unscaled_entropy)
    if allowed_scores.size == 1:
        lines.append("The scale changes nothing here: with one key, the weight is 1.")
    elif allowed_scores.max() == allowed_scores.min():
        lines.append("The scale changes nothing here: every allowed score is equal.")
    elif row.unscaled_entropy < row.entropy - 1e-12:
        without = (
            f"Without the scale ({_fmt(row.scale)}) the entropy would be {unscaled} nats "
            f"instead of {_fmt(row.entropy)}, and the largest weight "
            f"{_fmt(row.unscaled_max_weight)} instead of {_fmt(row.max_weight)}"
        )
        if row.unscaled_max_weight >= SATURATED:
            lines.append(
                f"{without}: the softmax would be saturated (largest weight at least "
                f"{SATURATED}); the scale keeps it from saturating."
            )
        else:
            lines.append(
                f"{without}: sharper, yet not saturated (largest weight below {SATURATED})."
            )
    elif row.unscaled_entropy > row.entropy + 1e-12:
        lines.append(
            f"Without the scale the entropy would be {unscaled} nats: here the scale "
            "makes the softmax sharper, not softer."
        )
    else:
        lines.append(f"Without the scale the entropy would be the same, {unscaled} nats.")
    return _paragraphs(lines)
