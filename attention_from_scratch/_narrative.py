r"""The sentences of an explanation: what ``str()`` of the explanation dataclasses says.

:mod:`attention_from_scratch.explain` computes the numbers of an explanation; this
private module turns them into prose, one paragraph per link of the chain
(:cite:t:`vaswani2017attention`, §3.2.1): why the query attends to the key (the dot
product as ``|q| |k| cos``), where the dot product comes from (embedding features,
head dimensions), how the softmax weighs it against the row (the log-sum-exp and the
strongest competitor), what the scale did, and what the key passes on.

It never imports :mod:`~attention_from_scratch.explain`: it reads an explanation
through the protocols :class:`ScoreFacts` and :class:`QueryFacts`, which name the
fields the sentences need, so any object with those fields can be narrated.

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
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["QueryFacts", "ScoreFacts", "query_narrative", "score_narrative"]

Float64Array = NDArray[np.float64]


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
    def competitor_token(self) -> str | None: ...
    @property
    def competitor_weight(self) -> float: ...
    @property
    def competitor_score(self) -> float: ...
    @property
    def unscaled_weight(self) -> float: ...
    @property
    def value_contribution(self) -> Float64Array: ...


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
    text = _fmt(value)
    return text if text.startswith("-") else f"+{text}"


_WIDTH = 88


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
        One paragraph per reason, wrapped at 88 columns: the opening (dot product as
        ``|q| |k| cos``), the decomposition over embedding features and head dimensions,
        the softmax competition, the scale, the value passed on. A masked pair gets one
        sentence.

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
    >>> print(score_narrative(why).splitlines()[-1])
    It passes on 0.5741 x v('fluffy') = [0, 0, 0, 0.5741] into the output of 'creature'.
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
    lines = [_opening(why, q, k)]
    lines.extend(_decomposition(why, q, k))
    lines.append(_competition(why, k))
    lines.append(_scale_sentence(why))
    lines.append(
        f"It passes on {_fmt(why.weight)} x v({k}) = "
        f"{_vector(why.value_contribution)} into the output of {q}."
    )
    return _paragraphs(lines)


def _opening(why: ScoreFacts, q: str, k: str) -> str:
    weight = _fmt(why.weight)
    rank = f"rank {why.rank} of {why.n_allowed} key{'' if why.n_allowed == 1 else 's'}"
    if why.n_tied:
        rank += f", tied with {why.n_tied} other{'' if why.n_tied == 1 else 's'}"
    # "only a little": below the uniform share 1/n of the keys it may see.
    little = why.n_allowed > 1 and why.weight * why.n_allowed < 1.0 - 1e-12
    if why.n_allowed == 1:
        reason = (
            f"it is the only key {q} may attend to: the softmax gives all the weight to "
            f"a single allowed key, whatever its score (weight {weight}, {rank})."
        )
    elif why.query_norm == 0.0:
        if abs(why.weight * why.n_allowed - 1.0) < 1e-12:
            reason = (
                f"its query is zero: it asks for nothing, so every key scores the same "
                f"and the softmax shares the attention evenly (weight {weight}, {rank})."
            )
        else:
            reason = (
                f"its query is zero: it asks for nothing, so only the bias sets the "
                f"scores (here {_fmt(why.bias)}), which gives weight {weight} ({rank})."
            )
    elif why.raw_score > 0:
        if why.cosine >= 0.7:
            direction = "point the same way"
        elif why.cosine >= 0.3:
            direction = "point partly the same way"
        else:
            direction = "are nearly orthogonal, tilted slightly the same way"
        reason = (
            f"the query of {q} and the key of {k} {direction} (cos "
            f"{_fmt(why.cosine)}): their dot product is {_fmt(why.raw_score)} "
            f"= |q| {_fmt(why.query_norm)} x |k| {_fmt(why.key_norm)} x cos "
            f"{_fmt(why.cosine)}, which gives weight {weight} ({rank})."
        )
        if little and why.competitor_token is not None:
            reason = reason[:-1] + (
                f"; other keys score higher, '{why.competitor_token}' most of all."
            )
    elif why.raw_score < 0:
        reason = (
            f"the query of {q} and the key of {k} point apart (cos {_fmt(why.cosine)}): "
            f"their dot product {_fmt(why.raw_score)} pushes the score down, which "
            f"leaves weight {weight} ({rank})."
        )
    elif why.key_norm == 0.0:
        reason = (
            f"the key of {k} is zero: it offers nothing the query asks for, so their dot "
            f"product is 0 (weight {weight}, {rank})."
        )
    else:
        reason = (
            f"its query and the key of {k} are orthogonal: {k} offers nothing the query "
            f"asks for, so their dot product is 0 (weight {weight}, {rank})."
        )
    if little:
        reason = reason.replace(f"weight {weight}", f"only a small share, weight {weight}", 1)
    return f"{q} attends to {k} because {reason}"


def _decomposition(why: ScoreFacts, q: str, k: str) -> list[str]:
    lines: list[str] = []
    total = _fmt(why.raw_score)
    if why.feature_contributions is not None and why.raw_score != 0.0:
        names = why.feature_names
        flat = why.feature_contributions.ravel()
        magnitude = np.abs(flat)
        if magnitude.size > 3:  # the top 3, ties in index order, without a full sort
            third = np.partition(magnitude, -3)[-3]
            candidates = np.flatnonzero(magnitude >= third)
            order = candidates[np.argsort(-magnitude[candidates], kind="stable")]
        else:
            order = np.argsort(-magnitude, kind="stable")
        parts = []
        for index in order[:3]:
            value = float(flat[index])
            if value == 0.0:
                break
            a, b = divmod(int(index), why.feature_contributions.shape[1])
            if names is None:
                pair = f"feature {a} of {q} meeting feature {b} of {k}"
            else:
                pair = f"the '{names[a]}' feature of {q} meeting the '{names[b]}' feature of {k}"
            parts.append(f"{pair} contributes {_signed(value)}")
        if why.bias_contribution:
            parts.append(f"the projection biases contribute {_signed(why.bias_contribution)}")
        if parts:
            lines.append("In the embedding features: " + "; ".join(parts) + f" (total {total}).")
    dims = np.argsort(-np.abs(why.dim_contributions), kind="stable")
    dim_parts = [
        f"dimension {int(d)} contributes {_signed(float(why.dim_contributions[d]))}"
        for d in dims[:3]
        if why.dim_contributions[d] != 0.0
    ]
    if dim_parts:
        lines.append("In the head's dimensions: " + "; ".join(dim_parts) + f" (total {total}).")
    return lines


def _competition(why: ScoreFacts, k: str) -> str:
    bias = f" plus the bias {_fmt(why.bias)}" if why.bias else ""
    text = (
        f"Scaled by {_scale_name(why)}{bias}, the score is {_fmt(why.score)}. The softmax "
        "weighs it against the row's other scores: weight = exp(score - logsumexp) = "
        f"exp({_fmt(why.score)} - {_fmt(why.logsumexp)}) = {_fmt(why.weight)}"
    )
    if why.competitor_token is None:
        return text + f"; {k} is the only key allowed."
    return (
        text + f"; the strongest competitor is '{why.competitor_token}' (score "
        f"{_fmt(why.competitor_score)}, weight {_fmt(why.competitor_weight)})."
    )


def _scale_name(why: ScoreFacts) -> str:
    d_k = why.dim_contributions.shape[0]
    if d_k and math.isclose(why.scale, 1.0 / math.sqrt(d_k), rel_tol=1e-12):
        return f"1/sqrt(d_k) = 1/sqrt({d_k}) = {_fmt(why.scale)}"
    return _fmt(why.scale)


def _scale_sentence(why: ScoreFacts) -> str:
    unscaled = _fmt(why.unscaled_weight)
    if why.scale == 1.0:
        return "No scale was applied (scale = 1)."
    if _fmt(why.unscaled_weight) == _fmt(why.weight):
        return f"Without the scale the weight would be the same, {unscaled}."
    if abs(why.scale) < 1.0:  # without it, the dot products lie further apart
        spread = (
            f"{_fmt(1.0 / abs(why.scale))} times further apart"
            if why.scale
            else "apart instead of all equal"
        )
        effect = "sharper"
    else:  # a scale above 1 spreads them: without it they lie closer together
        spread = f"{_fmt(abs(why.scale))} times closer together"
        effect = "softer"
    return (
        f"Without the scale the weight would be {unscaled}: the unscaled scores "
        f"lie {spread}, so the softmax is {effect}."
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
    elif row.effective_keys < 1.5:
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
        lines.append(
            f"Without the scale ({_fmt(row.scale)}) the entropy would be {unscaled} nats: "
            "the scale keeps the softmax from saturating."
        )
    elif row.unscaled_entropy > row.entropy + 1e-12:
        lines.append(
            f"Without the scale the entropy would be {unscaled} nats: here the scale "
            "makes the softmax sharper, not softer."
        )
    else:
        lines.append(f"Without the scale the entropy would be the same, {unscaled} nats.")
    return _paragraphs(lines)
