"""Tests for attention_from_scratch.explain: every explained number reconciles exactly.

For every (query, key) pair of the running example and of random single- and
multi-head results, the explanation is checked twice: against its own identities
(contributions sum to the raw score, ``|q| |k| cos`` is the raw score, ``weight =
exp(score - logsumexp)``) and against the loop reference of
:mod:`tests.reference.explain_ref`, to 1e-12 in float64.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import ArrayLike, NDArray

from attention_from_scratch.examples import Example, fluffy_blue_creature, fluffy_creature_purred
from attention_from_scratch.explain import (
    QueryExplanation,
    ScoreExplanation,
    explain_query,
    explain_score,
    heatmap,
)
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import (
    Attention,
    ProjectedAttention,
    multi_head_attention,
    scaled_dot_product_attention,
    self_attention,
)
from tests.reference.attention_ref import multi_head_ref
from tests.reference.explain_ref import (
    PairRef,
    bias_contribution_ref,
    entropy_ref,
    feature_contributions_ref,
    pair_ref,
    softmax_ref,
)
from tests.tolerances import REFERENCE

Float64Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
TOL = REFERENCE.rtol  # float64 against the loop reference (tests/tolerances.py)

# The headline of creature -> fluffy: the sentence, word for word where it matters.
CREATURE_FLUFFY = (
    "'creature' attends to 'fluffy' (0.5741) more than to 'blue' (0.3482) because the key "
    "of 'fluffy' carries the 'texture' feature that the query of 'creature' asks for "
    "('noun' x 'texture': +1 of the 1 raw-score gap); the key of 'blue' points slightly "
    "closer to the query (cos 0.9487 vs 0.8944) but is shorter (|k| 1 vs 1.414)."
)

# The heatmap of the running example, as its docstring prints it.
RUNNING_HEATMAP = (
    "query \\ key   fluffy     blue  creature\n"
    "fluffy       ░ 0.333  ░ 0.333   ░ 0.333\n"
    "blue         ░ 0.333  ░ 0.333   ░ 0.333\n"
    "creature     ▒ 0.574  ░ 0.348     0.078"
)


def _flat(explanation: object) -> str:
    """The narrative with its line wrapping undone (paragraphs wrap at 88 columns)."""
    return " ".join(str(explanation).split())


def _close(actual: Any, expected: Any, magnitude: float = 1.0) -> None:
    """Equal to the REFERENCE tolerance, relative, or absolute on the size of the terms.

    :func:`tests.tolerances.assert_close` with ``tol=REFERENCE`` and ``atol`` scaled by
    ``magnitude``, written out because it is called some 10**5 times per run and numpy's
    version dominates the run time.
    """
    atol = TOL * max(1.0, magnitude)
    if isinstance(actual, float | int) and isinstance(expected, float | int):
        ok = actual == expected or abs(actual - expected) <= TOL * abs(expected) + atol
        assert ok, f"{actual!r} != {expected!r} (rtol {TOL}, atol {atol:.3g})"
        return
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shapes differ: {a.shape} != {e.shape}"
    with np.errstate(invalid="ignore"):  # inf - inf: equal infinities pass by ==
        ok_all = (a == e) | (np.abs(a - e) <= TOL * np.abs(e) + atol)
    assert bool(ok_all.all()), f"{a!r} != {e!r} (rtol {TOL}, atol {atol:.3g})"


def _softmax(scores: list[float]) -> list[float]:
    return softmax_ref(scores, [True] * len(scores))


def _rows(a: ArrayLike) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(a, dtype=np.float64)]


def _check_pair(
    e: ScoreExplanation,
    ref: PairRef,
    weights_row: Float64Array,
    *,
    features: list[list[float]] | None = None,
    bias_part: float | None = None,
) -> None:
    """Every identity of one explanation, and every number against the loop reference."""
    j = e.key
    weights_row = np.asarray(weights_row, dtype=np.float64)
    # The weight is the result's own number, and its rank among the row's weights.
    assert e.weight == weights_row[j]
    assert e.rank == 1 + int(np.sum(weights_row > weights_row[j]))
    assert e.masked is (not ref.allowed)
    text = str(e)
    if e.masked:
        assert e.weight == 0.0
        assert "masked" in text
        assert "because" not in text
        np.testing.assert_array_equal(e.value_contribution, 0.0)
        return
    mag = math.fsum(abs(d) for d in ref.dims)  # size of the terms summed into the raw score
    # The explanation's own identities.
    _close(float(np.sum(e.dim_contributions)), e.raw_score, mag)
    _close(e.query_norm * e.key_norm * e.cosine, e.raw_score, e.query_norm * e.key_norm)
    _close(e.score, e.raw_score * e.scale + e.bias, abs(e.raw_score * e.scale) + abs(e.bias))
    _close(e.weight, math.exp(e.score - e.logsumexp))
    assert -1.0 - TOL <= e.cosine <= 1.0 + TOL
    # Against the loop reference.
    _close(e.raw_score, ref.raw, mag)
    _close(e.score, ref.score, mag * abs(e.scale) + abs(e.bias))
    _close(e.weight, ref.weight)
    _close(e.logsumexp, ref.logsumexp, abs(ref.logsumexp))
    _close(e.unscaled_weight, ref.unscaled_weight)
    _close(e.dim_contributions, ref.dims, mag)
    _close(e.query_norm, ref.query_norm, ref.query_norm)
    _close(e.key_norm, ref.key_norm, ref.key_norm)
    _close(e.value_contribution, ref.value, max((abs(v) for v in ref.value), default=1.0))
    assert e.n_allowed >= 1
    if e.competitor is not None:
        assert e.competitor != j
        others = [t for t in range(len(weights_row)) if t != j and weights_row[t] > 0.0]
        assert weights_row[e.competitor] == max((weights_row[t] for t in others), default=0.0)
        assert e.competitor_weight == weights_row[e.competitor]
    if features is None:
        assert e.feature_contributions is None
        assert e.bias_contribution is None
    else:
        assert e.feature_contributions is not None
        assert e.bias_contribution is not None
        assert bias_part is not None
        fmag = math.fsum(abs(v) for row in features for v in row) + abs(bias_part)
        _close(e.feature_contributions, features, fmag)
        _close(e.bias_contribution, bias_part, fmag)
        _close(float(e.feature_contributions.sum()) + e.bias_contribution, e.raw_score, fmag)
    if e.contrast is None:
        assert e.n_allowed == 1
        assert text.startswith(f"'{e.query_token}' attends to '{e.key_token}' because")
    else:
        _check_contrast(e, weights_row)
        assert text.startswith(f"'{e.query_token}' attends to '{e.key_token}' (")
        assert " because " in text.splitlines()[0] + text.splitlines()[1]


def _check_contrast(e: ScoreExplanation, weights_row: Float64Array) -> None:
    """The contrast with the rival: every gap and every split sums exactly (1e-12)."""
    c = e.contrast
    assert c is not None
    assert c.rival == e.competitor  # by default: the runner-up, or the top key
    assert c.rival_weight == weights_row[c.rival]
    raw_mag = abs(e.raw_score) + abs(c.rival_raw_score)
    _close(c.raw_gap, e.raw_score - c.rival_raw_score, raw_mag)
    _close(c.score_gap, e.score - c.rival_score, abs(e.score) + abs(c.rival_score))
    _close(c.score_gap, c.raw_gap * e.scale + c.bias_gap, raw_mag * abs(e.scale))
    _close(c.bias_gap, e.bias - c.rival_bias, abs(e.bias) + abs(c.rival_bias))
    if c.rival_weight > 0.0 and e.weight > 0.0:
        _close(c.weight_ratio, e.weight / c.rival_weight)
    # Length vs angle: symmetric in the two keys, summing to the raw gap.
    q_size = e.query_norm * (e.key_norm + c.rival_key_norm)
    _close(c.length + c.angle, c.raw_gap, q_size)
    _close(c.rival_key_norm * e.query_norm * c.rival_cosine, c.rival_raw_score, q_size)
    # The headline quotes the term that does most for the winner.
    if c.score_gap != 0.0:
        _check_headline(e)
    # Per dimension and per feature pair.
    dims_mag = float(np.abs(c.dims).sum())
    _close(float(c.dims.sum()), c.raw_gap, dims_mag)
    if c.features is not None:
        assert c.bias_terms is not None
        assert c.query_asks is not None
        assert c.key_x is not None
        assert c.rival_x is not None
        np.testing.assert_array_equal(c.features, c.query_asks * (c.key_x - c.rival_x) + 0.0)
        fmag = float(np.abs(c.features).sum()) + abs(c.bias_terms)
        _close(float(c.features.sum()) + c.bias_terms, c.raw_gap, fmag)
        assert e.feature_contributions is not None
        assert e.bias_contribution is not None


def _check_query(
    qe: QueryExplanation, weights_row: Float64Array, unscaled_row: list[float]
) -> None:
    """A query's row: its weights, stable descending order, entropy and effective keys."""
    weights_row = np.asarray(weights_row, dtype=np.float64)
    np.testing.assert_array_equal(qe.weights, weights_row)
    w = [float(v) for v in weights_row]
    assert qe.order == tuple(sorted(range(len(w)), key=lambda t: -w[t]))  # sorted is stable
    assert all(w[a] >= w[b] for a, b in itertools.pairwise(qe.order))
    _close(qe.entropy, entropy_ref(w))
    _close(qe.effective_keys, math.exp(qe.entropy), qe.effective_keys)
    _close(qe.unscaled_entropy, entropy_ref(unscaled_row))
    assert qe.attends_to_nothing is (not qe.allowed.any())
    np.testing.assert_array_equal(qe.scores[~qe.allowed], -np.inf)
    text = str(qe)
    if qe.attends_to_nothing:
        np.testing.assert_array_equal(qe.weights, 0.0)
        assert "attends to nothing" in text
    else:
        assert text.startswith(f"'{qe.query_token}' looks at ")


# --- the running example ------------------------------------------------------------


@pytest.mark.parametrize("make", [fluffy_blue_creature, fluffy_creature_purred])
@pytest.mark.parametrize("is_causal", [False, True])
def test_running_example_every_pair(is_causal: bool, make: Callable[[], Example]) -> None:
    """Both hand-made examples, plain and causal: every ordered pair, every identity.

    With the contrast: for every pair with a rival, the gaps and their splits (length
    and angle, dimensions, feature pairs) sum exactly (``_check_contrast``).
    """
    ex = make()
    p = ex.params
    n = len(ex.tokens)
    result = self_attention(ex.x, p, is_causal=is_causal)
    ref = multi_head_ref(ex.x, p.w_q, p.w_k, p.w_v, n_heads=1, is_causal=is_causal)
    q, k, v, x = _rows(ref.q), _rows(ref.k), _rows(ref.v), _rows(ex.x)
    w_q, w_k = _rows(p.w_q), _rows(p.w_k)
    assert result.scale == 0.5
    for i in range(n):
        allowed = [not is_causal or j <= i for j in range(n)]
        _close(result.weights[i], ref.weights[0, i])
        for j in range(n):
            e = explain_score(result, i, j, tokens=ex.tokens, feature_names=ex.feature_names)
            _check_pair(
                e,
                pair_ref(q[i], k, v, j, scale=0.5, allowed=allowed),
                result.weights[i],
                features=feature_contributions_ref(x[i], w_q, w_k, x[j]),
                bias_part=bias_contribution_ref(x[i], w_q, None, x[j], w_k, None),
            )
            assert (e.query_token, e.key_token) == (ex.tokens[i], ex.tokens[j])
            assert e.head is None
            assert e.feature_names == ex.feature_names
            # Tokens name the same pair as indices.
            by_name = explain_score(
                result,
                ex.tokens[i],
                ex.tokens[j],
                tokens=ex.tokens,
                feature_names=ex.feature_names,
            )
            assert (by_name.query, by_name.key, str(by_name)) == (i, j, str(e))
        unscaled = softmax_ref([float(s) for s in np.asarray(q[i]) @ np.asarray(k).T], allowed)
        _check_query(explain_query(result, i, tokens=ex.tokens), result.weights[i], unscaled)


def test_running_example_creature_attends_to_fluffy_by_hand() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    why = explain_score(
        result, "creature", "fluffy", tokens=ex.tokens, feature_names=ex.feature_names
    )
    noun = ex.feature_names.index("noun")
    adjective = ex.feature_names.index("adjective")
    texture = ex.feature_names.index("texture")
    assert (why.query, why.key, why.rank, why.n_allowed) == (2, 0, 1, 3)
    _close(why.weight, _softmax([2.0, 1.5, 0.0])[0])
    assert why.raw_score == 4.0
    assert why.score == 2.0
    assert why.scale == 0.5
    assert why.bias == 0.0
    assert why.feature_contributions is not None
    assert why.feature_contributions[noun, adjective] == 3.0  # noun x adjective
    assert why.feature_contributions[noun, texture] == 1.0  # noun x texture
    assert why.feature_contributions.sum() == 4.0  # nothing else contributes
    assert why.bias_contribution == 0.0
    np.testing.assert_array_equal(why.dim_contributions, [3.0, 1.0, 0.0, 0.0])
    _close(why.unscaled_weight, _softmax([4.0, 3.0, 0.0])[0])
    _close(why.query_norm, math.sqrt(10.0))  # q = [3, 1, 0, 0]
    _close(why.key_norm, math.sqrt(2.0))  # k = [1, 1, 0, 0]
    _close(why.cosine, 4.0 / math.sqrt(20.0))
    _close(why.logsumexp, math.log(math.exp(2.0) + math.exp(1.5) + 1.0))
    assert why.competitor_token == "blue"
    _close(why.competitor_score, 1.5)
    _close(why.value_contribution, [0.0, 0.0, 0.0, why.weight])  # fluffy's value: texture
    text = str(why)
    for word in ("'creature'", "'fluffy'", "'noun'", "'adjective'", "'texture'", "'blue'"):
        assert word in text
    assert "masked" not in text
    # The contrast with the runner-up 'blue', exact.
    c = why.contrast
    assert c is not None
    assert (c.rival, c.rival_token, c.raw_gap, c.score_gap, c.bias_gap) == (
        1,
        "blue",
        1.0,
        0.5,
        0.0,
    )
    _close(c.weight_ratio, math.exp(0.5))
    _close(c.rival_cosine, 3.0 / math.sqrt(10.0))
    assert c.rival_key_norm == 1.0
    # length: |q| (|k_f| - |k_b|) (cos_f + cos_b) / 2, angle: |q| (cos_f - cos_b) (|k_f| + |k_b|) / 2
    root10, root2 = math.sqrt(10.0), math.sqrt(2.0)
    cos_f, cos_b = 4.0 / (root10 * root2), 3.0 / root10
    _close(c.length, root10 * (root2 - 1.0) * (cos_f + cos_b) / 2, 10.0)
    _close(c.angle, root10 * (cos_f - cos_b) * (root2 + 1.0) / 2, 10.0)
    np.testing.assert_array_equal(c.dims, [0.0, 1.0, 0.0, 0.0])
    expected = np.zeros((4, 4))
    expected[noun, texture] = 1.0  # fluffy is a texture and blue is not; both adjectives
    assert c.features is not None
    np.testing.assert_array_equal(c.features, expected)
    assert c.bias_terms == 0.0
    # The headline, word for word: the largest term of the gap, and the honest rest.
    assert _flat(why).startswith(CREATURE_FLUFFY)


def test_running_example_creature_attends_to_blue_by_hand() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    why = explain_score(result, 2, 1, tokens=ex.tokens, feature_names=ex.feature_names)
    noun, adjective = ex.feature_names.index("noun"), ex.feature_names.index("adjective")
    assert why.rank == 2
    assert why.raw_score == 3.0
    assert why.score == 1.5
    assert why.feature_contributions is not None
    expected = np.zeros((4, 4))
    expected[noun, adjective] = 3.0  # blue is an adjective but not a texture
    np.testing.assert_array_equal(why.feature_contributions, expected)
    np.testing.assert_array_equal(why.dim_contributions, [3.0, 0.0, 0.0, 0.0])
    _close(why.weight, _softmax([2.0, 1.5, 0.0])[1])
    _close(why.unscaled_weight, _softmax([4.0, 3.0, 0.0])[1])
    assert why.competitor_token == "fluffy"
    assert why.contrast is not None
    assert (why.contrast.rival_token, why.contrast.raw_gap) == ("fluffy", -1.0)
    assert _flat(why).startswith(
        "'creature' attends to 'blue' (0.3482) less than to 'fluffy' (0.5741) because the "
        "key of 'fluffy' carries the 'texture' feature that the query of 'creature' asks "
        "for ('noun' x 'texture': +1 of the 1 raw-score gap); the key of 'blue' points "
        "slightly closer to the query (cos 0.9487 vs 0.8944) but is shorter (|k| 1 vs 1.414)."
    )


@pytest.mark.parametrize("query", ["fluffy", "blue"])
def test_running_example_adjectives_ask_nothing(query: str) -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    i = ex.tokens.index(query)
    np.testing.assert_allclose(result.weights[i], [1 / 3] * 3, rtol=TOL, atol=TOL)
    for key in ex.tokens:
        why = explain_score(result, query, key, tokens=ex.tokens, feature_names=ex.feature_names)
        _close(why.weight, 1.0 / 3.0)
        assert why.rank == 1  # three-way tie
        assert why.raw_score == 0.0
        assert why.query_norm == 0.0
        assert why.cosine == 0.0
        assert "query is zero" in str(why)
    row = explain_query(result, query, tokens=ex.tokens)
    assert row.order == (0, 1, 2)  # ties keep their order
    _close(row.entropy, math.log(3.0))
    _close(row.effective_keys, 3.0)
    _close(row.unscaled_entropy, math.log(3.0))
    assert "evenly" in str(row)


def test_explain_query_creature() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    row = explain_query(result, "creature", tokens=ex.tokens)
    w = _softmax([2.0, 1.5, 0.0])
    assert (row.query, row.query_token, row.head) == (2, "creature", None)
    assert row.order == (0, 1, 2)
    _close(row.weights, w)
    _close(row.scores, [2.0, 1.5, 0.0])
    _close(row.entropy, -math.fsum(p * math.log(p) for p in w))
    _close(row.effective_keys, math.exp(row.entropy))
    _close(row.unscaled_entropy, entropy_ref(_softmax([4.0, 3.0, 0.0])))
    assert row.unscaled_entropy < row.entropy  # the scale keeps the softmax soft
    text = str(row)
    assert text.startswith("'creature' looks at 'fluffy' 0.5741, 'blue' 0.3482")
    # d_k = 4: the unscaled row (0.72, 0.27, 0.01) is sharper, but not saturated.
    _close(row.unscaled_max_weight, _softmax([4.0, 3.0, 0.0])[0])
    _close(row.max_weight, w[0])
    assert "yet not saturated (largest weight below 0.99)" in _flat(row)
    assert "saturating" not in text


def test_causal_running_example_fluffy_sees_itself_only() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params, is_causal=True)
    np.testing.assert_array_equal(result.weights[0], [1.0, 0.0, 0.0])
    only = explain_score(result, "fluffy", "fluffy", tokens=ex.tokens)
    assert (only.weight, only.rank, only.n_allowed, only.competitor) == (1.0, 1, 1, None)
    assert "only key" in str(only)
    for key in ("blue", "creature"):
        masked = explain_score(result, "fluffy", key, tokens=ex.tokens)
        assert masked.masked
        assert masked.weight == 0.0
        assert "masked" in str(masked)
        assert "because" not in str(masked)
    row = explain_query(result, "fluffy", tokens=ex.tokens)
    assert "with one key" in str(row)
    assert row.entropy == 0.0
    assert row.effective_keys == 1.0
    np.testing.assert_array_equal(row.allowed, [True, False, False])


def test_fully_masked_row_attends_to_nothing() -> None:
    ex = fluffy_blue_creature()
    mask = np.ones((3, 3), dtype=bool)
    mask[1] = False  # 'blue' may see nothing
    result = self_attention(ex.x, ex.params, mask=mask)
    row = explain_query(result, "blue", tokens=ex.tokens)
    assert row.attends_to_nothing
    np.testing.assert_array_equal(row.weights, 0.0)
    assert row.entropy == 0.0
    assert "attends to nothing" in str(row)
    for key in ex.tokens:
        why = explain_score(result, "blue", key, tokens=ex.tokens)
        assert why.masked
        assert why.weight == 0.0
        assert why.n_allowed == 0
        assert why.competitor is None
        assert "masked" in str(why)
        assert "because" not in str(why)
        np.testing.assert_array_equal(why.value_contribution, 0.0)
    # The other rows are untouched.
    _close(explain_score(result, 2, 0).weight, _softmax([2.0, 1.5, 0.0])[0])
    assert not explain_query(result, 0).attends_to_nothing


def test_float32_result_is_explained_in_float64() -> None:
    ex = fluffy_blue_creature()
    x32 = ex.x.astype(np.float32)
    p = ex.params
    params32 = AttentionParams(
        w_q=p.w_q.astype(np.float32), w_k=p.w_k.astype(np.float32), w_v=p.w_v.astype(np.float32)
    )
    result = self_attention(x32, params32)
    why = explain_score(result, 2, 0)
    assert why.weight == float(result.weights[2, 0])
    assert why.raw_score == 4.0
    np.testing.assert_allclose(why.weight, _softmax([2.0, 1.5, 0.0])[0], rtol=1.3e-6, atol=1e-5)
    np.testing.assert_allclose(why.weight, math.exp(why.score - why.logsumexp), rtol=1.3e-6)


# --- heatmap --------------------------------------------------------------------------


def test_heatmap_running_example_exact() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    text = heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens)
    assert text == RUNNING_HEATMAP


def test_heatmap_default_labels_and_shades() -> None:
    text = heatmap([[1.0, 0.0], [0.25, 0.75]])
    assert text.splitlines() == [
        "query \\ key        0        1",
        "0            █ 1.000    0.000",
        "1            ░ 0.250  ▓ 0.750",
    ]
    # Shades by fifths of the weight: [0, .2) blank, [.2, .4) light ... [.8, 1] full.
    cells = heatmap([[0.1, 0.3, 0.5, 0.7, 0.9]]).splitlines()[1]
    assert [c for c in cells if c in " ░▒▓█" and c != " "] == ["░", "▒", "▓", "█"]


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.full((1, 2, 2), 0.5), "2-D"),
        (np.array([0.5, 0.5]), "2-D"),
        (np.array([[0.5, 1.5]]), r"\[0, 1\]"),
        (np.array([[-0.1, 1.0]]), r"\[0, 1\]"),
        (np.array([[np.nan, 1.0]]), "weights"),
        (np.array([[np.inf, 1.0]]), "weights"),
    ],
)
def test_heatmap_bad_weights(weights: Float64Array, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        heatmap(weights)


def test_heatmap_bad_labels_and_types() -> None:
    with pytest.raises(ValueError, match="labels"):
        heatmap(np.eye(2), row_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="labels"):
        heatmap(np.eye(2), col_labels=["a"])
    with pytest.raises(TypeError, match="weights"):
        heatmap(np.eye(2, dtype=bool))
    with pytest.raises(TypeError, match="weights"):
        heatmap(np.eye(2) + 0j)


# --- bad inputs ------------------------------------------------------------------------


def _running() -> tuple[ProjectedAttention, tuple[str, ...]]:
    ex = fluffy_blue_creature()
    return self_attention(ex.x, ex.params), ex.tokens


@pytest.mark.parametrize(("query", "key"), [(3, 0), (0, 3), (-4, 0), (0, -4), (99, 99)])
def test_index_out_of_range(query: int, key: int) -> None:
    result, _ = _running()
    with pytest.raises(IndexError, match="out of bounds"):
        explain_score(result, query, key)


def test_negative_indices_count_from_the_end() -> None:
    result, tokens = _running()
    why = explain_score(result, -1, -3, tokens=tokens)
    assert (why.query, why.key, why.query_token, why.key_token) == (2, 0, "creature", "fluffy")
    with pytest.raises(IndexError, match="query"):
        explain_query(result, 3)


def test_unknown_token_lists_the_tokens() -> None:
    result, tokens = _running()
    with pytest.raises(ValueError, match=r"'cat'.*'fluffy', 'blue', 'creature'"):
        explain_score(result, "creature", "cat", tokens=tokens)
    with pytest.raises(ValueError, match=r"'dog'.*'fluffy', 'blue', 'creature'"):
        explain_query(result, "dog", tokens=tokens)
    with pytest.raises(ValueError, match="fluffy"):
        explain_score(result, "fluffy", 0)  # no tokens: labels are "token i"


def test_token_appearing_twice_asks_for_an_index() -> None:
    result, _ = _running()
    with pytest.raises(ValueError, match="index"):
        explain_score(result, "a", "b", tokens=["a", "a", "b"])
    with pytest.raises(ValueError, match="index"):
        explain_score(result, "b", "a", tokens=["a", "a", "b"])
    why = explain_score(result, 1, "b", tokens=["a", "a", "b"])  # the index works
    assert (why.query, why.key, why.query_token) == (1, 2, "a")


def test_tokens_and_feature_names_must_fit() -> None:
    result, _ = _running()
    with pytest.raises(ValueError, match="tokens"):
        explain_score(result, 0, 0, tokens=["a", "b"])
    with pytest.raises(ValueError, match="feature_names"):
        explain_score(result, 0, 0, feature_names=["noun", "adjective"])
    with pytest.raises(TypeError, match="tokens"):
        explain_score(result, 0, 0, tokens="abc")
    with pytest.raises(TypeError, match="query"):
        explain_score(result, 1.0, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        explain_score(result, 0, True)


def test_multi_head_result_needs_head() -> None:
    params = AttentionParams.random(4, 2, n_heads=2, rng=0)
    result = multi_head_attention(np.eye(3, 4), params, n_heads=2)
    with pytest.raises(ValueError, match="head"):
        explain_score(result, 0, 1)
    with pytest.raises(ValueError, match="head"):
        explain_query(result, 0)
    with pytest.raises(IndexError, match="head"):
        explain_score(result, 0, 1, head=2)
    assert explain_score(result, 0, 1, head=1).head == 1
    assert explain_score(result, 0, 1, head=-1).weight == result.weights[1, 0, 1]


def test_batched_result_needs_batch() -> None:
    ex = fluffy_blue_creature()
    x = np.stack([ex.x, ex.x[::-1]])  # (2, 3, 4)
    result = self_attention(x, ex.params)
    with pytest.raises(ValueError, match="batch"):
        explain_score(result, 0, 1)
    with pytest.raises(ValueError, match="batch"):
        explain_query(result, 0)
    with pytest.raises(IndexError, match="batch"):
        explain_score(result, 0, 1, batch=2)
    with pytest.raises(ValueError, match="batch"):
        explain_score(result, 0, 1, batch=(0, 0))
    with pytest.raises(TypeError, match="batch"):
        explain_score(result, 0, 1, batch=(0.5,))  # type: ignore[arg-type]
    # batch=1 is the reversed sentence: creature is first there.
    assert explain_score(result, 0, 2, batch=1).weight == result.weights[1, 0, 2]
    assert explain_score(result, 0, 2, batch=(1,)).weight == result.weights[1, 0, 2]
    # A batch of one needs no index.
    single = self_attention(ex.x[None], ex.params)
    assert explain_score(single, 2, 0).weight == single.weights[0, 2, 0]


@pytest.mark.parametrize("bad", [None, "result", np.eye(3), {"weights": np.eye(3)}])
def test_not_a_result(bad: object) -> None:
    with pytest.raises(TypeError, match="result"):
        explain_score(bad, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="result"):
        explain_query(bad, 0)  # type: ignore[arg-type]


def test_head_needs_a_head_axis() -> None:
    x = np.eye(3)
    result = scaled_dot_product_attention(x, x, x)
    with pytest.raises(ValueError, match="head"):
        explain_score(result, 0, 0, head=0)


# --- scaled_dot_product_attention results ----------------------------------------------


def _check_attention_result(
    result: Attention,
    q: Float64Array,
    k: Float64Array,
    v: Float64Array,
    *,
    mask: BoolArray | None,
    bias: Float64Array | None,
    is_causal: bool,
    scale: float,
    head_axis: bool,
) -> None:
    """Check every pair of every leading index of an Attention against the reference."""
    lead = result.weights.shape[:-2]
    n, m = result.weights.shape[-2:]
    qb = np.broadcast_to(q, (*lead, n, q.shape[-1]))
    kb = np.broadcast_to(k, (*lead, m, k.shape[-1]))
    vb = np.broadcast_to(v, (*lead, m, v.shape[-1]))
    mb = (
        np.ones((*lead, n, m), dtype=bool)
        if mask is None
        else np.broadcast_to(mask, (*lead, n, m))
    )
    bb = None if bias is None else np.broadcast_to(bias, (*lead, n, m))
    for index in itertools.product(*(range(size) for size in lead)):
        kwargs: dict[str, Any] = {}
        if head_axis and len(index) >= 1:
            kwargs["head"] = index[-1]
            if len(index) > 1:
                kwargs["batch"] = index[:-1] if len(index) > 2 else index[0]
        elif index:
            kwargs["batch"] = index
        keys, values = _rows(kb[index]), _rows(vb[index])
        for i in range(n):
            allowed = [bool(mb[index][i, j]) and (not is_causal or j <= i) for j in range(m)]
            bias_row = None if bb is None else [float(b) for b in bb[index][i]]
            weights_row = result.weights[index][i]
            for j in range(m):
                e = explain_score(result, i, j, **kwargs)
                ref = pair_ref(
                    [float(c) for c in qb[index][i]],
                    keys,
                    values,
                    j,
                    scale=scale,
                    allowed=allowed,
                    bias=bias_row,
                )
                _check_pair(e, ref, weights_row)
                if ref.allowed and bias_row is not None:
                    assert e.bias == bias_row[j]
            raw = [
                math.fsum(a * b for a, b in zip(qb[index][i], key, strict=True)) for key in keys
            ]
            b_row = [0.0] * m if bias_row is None else bias_row
            ok = [a and b > -math.inf for a, b in zip(allowed, b_row, strict=True)]
            unscaled = softmax_ref(
                [r + (b if o else 0.0) for r, b, o in zip(raw, b_row, ok, strict=True)], ok
            )
            qe = explain_query(result, i, **kwargs)
            _check_query(qe, weights_row, unscaled)
            np.testing.assert_array_equal(qe.allowed, ok)


def test_attention_with_bias_batch_and_heads() -> None:
    rng = np.random.default_rng(7)
    q = rng.normal(size=(2, 3, 4, 5))  # (batch, head, n, d_k)
    k = rng.normal(size=(2, 3, 4, 5))
    v = rng.normal(size=(2, 3, 4, 2))
    bias = rng.normal(size=(4, 4))
    bias[0, 1] = bias[2, 3] = bias[3, 0] = -np.inf  # -inf forbids the key: masked
    mask = np.ones((2, 1, 4, 4), dtype=bool)
    mask[1, 0, 1, 2] = False
    result = scaled_dot_product_attention(q, k, v, bias=bias, mask=mask)
    _check_attention_result(
        result,
        q,
        k,
        v,
        mask=mask,
        bias=bias,
        is_causal=False,
        scale=1 / math.sqrt(5),
        head_axis=True,
    )
    why = explain_score(result, 0, 1, batch=1, head=2)
    assert why.masked
    assert why.weight == 0.0
    assert "masked" in str(why)
    # batch may also index every leading dimension at once.
    both = explain_score(result, 3, 1, batch=(1, 2))
    same = explain_score(result, 3, 1, batch=1, head=2)
    assert (both.weight, str(both)) == (same.weight, str(same))
    assert both.feature_contributions is None
    assert both.bias_contribution is None


def test_attention_gram_example() -> None:
    x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    result = scaled_dot_product_attention(x, x, x)
    why = explain_score(result, 0, 0)
    _close(why.weight, math.e / (2 * math.e + 1))  # softmax([1, 0, 1])[0]; torch: 0.422319
    np.testing.assert_allclose(why.weight, 0.422319, atol=5e-7)
    assert (why.raw_score, why.score, why.rank) == (2.0, 1.0, 1)
    assert why.feature_contributions is None
    assert "feature" not in str(why)


# --- hypothesis: random results -------------------------------------------------------

_ELEMENTS = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=64)


@dataclass(frozen=True)
class ProjectedCase:
    """A random self-/multi-head/cross-attention input."""

    params: AttentionParams
    n_heads: int
    n_kv_heads: int
    x: Float64Array  # (n, d_model) or (batch, n, d_model)
    context: Float64Array | None  # (m, d_model) or (batch, m, d_model)
    mask: BoolArray | None  # (n, m)
    is_causal: bool
    single: bool  # run self_attention (one head, no head axis)


@st.composite
def projected_cases(draw: st.DrawFn) -> ProjectedCase:
    n_kv_heads = draw(st.integers(1, 4))
    n_heads = n_kv_heads * draw(st.integers(1, 4 // n_kv_heads))  # n_kv_heads divides it
    d_model = draw(st.integers(1, 6))
    params = AttentionParams.random(
        d_model,
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        out_proj=draw(st.booleans()),
        bias=draw(st.booleans()),
        rng=draw(st.integers(0, 2**32 - 1)),
    )
    n = draw(st.integers(1, 5))
    batch = draw(st.sampled_from([(), (1,), (2,)]))
    x = draw(hnp.arrays(np.float64, (*batch, n, d_model), elements=_ELEMENTS))
    cross = draw(st.booleans())
    m = draw(st.integers(1, 5)) if cross else n
    context = (
        draw(hnp.arrays(np.float64, (*batch, m, d_model), elements=_ELEMENTS)) if cross else None
    )
    mask = draw(st.none() | hnp.arrays(np.bool_, (n, m)))
    single = n_heads == 1 and not cross and draw(st.booleans())
    return ProjectedCase(
        params=params,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        x=x,
        context=context,
        mask=mask,
        is_causal=draw(st.booleans()),
        single=single,
    )


@given(projected_cases())
def test_projected_every_pair_reconciles(case: ProjectedCase) -> None:
    p = case.params
    if case.single:
        result = self_attention(case.x, p, mask=case.mask, is_causal=case.is_causal)
    else:
        result = multi_head_attention(
            case.x,
            p,
            n_heads=case.n_heads,
            n_kv_heads=case.n_kv_heads,
            context=case.context,
            mask=case.mask,
            is_causal=case.is_causal,
        )
    n = case.x.shape[-2]
    m = n if case.context is None else case.context.shape[-2]
    h, g = case.n_heads, case.n_heads // case.n_kv_heads
    d_k = p.w_q.shape[1] // h
    d_v = p.w_v.shape[1] // case.n_kv_heads
    query_tokens = [f"q{i}" for i in range(n)]
    key_tokens = [f"k{j}" for j in range(m)]
    tokens: Any = query_tokens if case.context is None else (query_tokens, key_tokens)
    key_labels = query_tokens if case.context is None else key_tokens
    batches: list[int | None] = [None] if case.x.ndim == 2 else list(range(case.x.shape[0]))
    if case.x.ndim == 3 and case.x.shape[0] == 1:
        batches = [None, 0]  # a batch of one needs no index
    weights = result.weights if result.has_head_axis else result.weights[..., None, :, :]
    for b in batches:
        x_b = case.x if case.x.ndim == 2 else case.x[0 if b is None else b]
        c_b = None
        if case.context is not None:
            c_b = case.context if case.context.ndim == 2 else case.context[0 if b is None else b]
        ref = multi_head_ref(
            x_b,
            p.w_q,
            p.w_k,
            p.w_v,
            n_heads=h,
            n_kv_heads=case.n_kv_heads,
            w_o=p.w_o,
            b_q=p.b_q,
            b_k=p.b_k,
            b_v=p.b_v,
            b_o=p.b_o,
            context=c_b,
            mask=case.mask,
            is_causal=case.is_causal,
        )
        xs = _rows(x_b)
        keys_from = xs if c_b is None else _rows(c_b)
        for hq in range(h):
            hk = hq // g  # the key/value head of query head hq
            cols_q, cols_k = slice(hq * d_k, (hq + 1) * d_k), slice(hk * d_k, (hk + 1) * d_k)
            q_rows = _rows(ref.q[:, cols_q])
            k_rows = _rows(ref.k[:, cols_k])
            v_rows = _rows(ref.v[:, hk * d_v : (hk + 1) * d_v])
            w_q, w_k = _rows(p.w_q[:, cols_q]), _rows(p.w_k[:, cols_k])
            b_q = None if p.b_q is None else [float(c) for c in p.b_q[cols_q]]
            b_k = None if p.b_k is None else [float(c) for c in p.b_k[cols_k]]
            head = None if h == 1 else hq  # one head needs no index
            w_b = weights if b is None and case.x.ndim == 2 else weights[0 if b is None else b]
            for i in range(n):
                allowed = [
                    (case.mask is None or bool(case.mask[i, j])) and (not case.is_causal or j <= i)
                    for j in range(m)
                ]
                weights_row = w_b[hq, i]
                _close(weights_row, ref.weights[hq, i])
                for j in range(m):
                    e = explain_score(result, i, j, batch=b, head=head, tokens=tokens)
                    assert (e.query_token, e.key_token) == (query_tokens[i], key_labels[j])
                    _check_pair(
                        e,
                        pair_ref(
                            q_rows[i], k_rows, v_rows, j, scale=1 / math.sqrt(d_k), allowed=allowed
                        ),
                        weights_row,
                        features=feature_contributions_ref(xs[i], w_q, w_k, keys_from[j]),
                        bias_part=bias_contribution_ref(xs[i], w_q, b_q, keys_from[j], w_k, b_k),
                    )
                raw = [
                    math.fsum(a * c for a, c in zip(q_rows[i], kr, strict=True)) for kr in k_rows
                ]
                qe = explain_query(result, i, batch=b, head=head, tokens=tokens)
                _check_query(qe, weights_row, softmax_ref(raw, allowed))
                assert qe.head == head
    # Tokens name the same pair as indices.
    by_name = explain_score(
        result, query_tokens[-1], key_labels[0], batch=batches[-1], head=h - 1, tokens=tokens
    )
    by_index = explain_score(result, n - 1, 0, batch=batches[-1], head=h - 1, tokens=tokens)
    assert (by_name.weight, str(by_name)) == (by_index.weight, str(by_index))


@dataclass(frozen=True)
class AttentionCase:
    """A random scaled_dot_product_attention input with batch/head dims, bias and mask."""

    q: Float64Array
    k: Float64Array
    v: Float64Array
    mask: BoolArray | None
    bias: Float64Array | None
    is_causal: bool
    scale: float | None


@st.composite
def attention_cases(draw: st.DrawFn) -> AttentionCase:
    lead = draw(st.sampled_from([(), (2,), (1, 2), (2, 3)]))
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    d_k, d_v = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    q = draw(hnp.arrays(np.float64, (*lead, n, d_k), elements=_ELEMENTS))
    k = draw(hnp.arrays(np.float64, (*lead, m, d_k), elements=_ELEMENTS))
    v = draw(hnp.arrays(np.float64, (*lead, m, d_v), elements=_ELEMENTS))
    bias_elements = _ELEMENTS | st.just(-math.inf)
    bias = draw(st.none() | hnp.arrays(np.float64, (n, m), elements=bias_elements))
    mask = draw(st.none() | hnp.arrays(np.bool_, st.sampled_from([(n, m), (*lead, n, m)])))
    scale = draw(st.none() | st.floats(0.1, 3.0))
    return AttentionCase(q, k, v, mask, bias, draw(st.booleans()), scale)


@given(attention_cases())
def test_attention_every_pair_reconciles(case: AttentionCase) -> None:
    result = scaled_dot_product_attention(
        case.q,
        case.k,
        case.v,
        mask=case.mask,
        bias=case.bias,
        is_causal=case.is_causal,
        scale=case.scale,
    )
    scale = 1 / math.sqrt(case.q.shape[-1]) if case.scale is None else case.scale
    assert result.scale == scale
    _check_attention_result(
        result,
        case.q,
        case.k,
        case.v,
        mask=case.mask,
        bias=case.bias,
        is_causal=case.is_causal,
        scale=scale,
        head_axis=case.q.ndim == 4,
    )


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5),
        elements=st.floats(0.0, 1.0),
    )
)
def test_heatmap_cells_print_every_weight(weights: Float64Array) -> None:
    lines = heatmap(weights).splitlines()
    assert len(lines) == weights.shape[0] + 1
    for line, row in zip(lines[1:], weights, strict=True):
        numbers = [float(t) for t in line.split()[1:] if t[0].isdigit()]
        np.testing.assert_allclose(numbers, row, atol=5e-4 + 1e-12)


# --- narratives that must not say something false -------------------------------------


def test_zero_key_is_called_zero() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    why = explain_score(result, "creature", "creature", tokens=ex.tokens)
    assert why.key_norm == 0.0
    assert why.rank == 3
    text = str(why)
    assert "The key of 'creature' is zero" in text
    assert "orthogonal" not in text


def test_tiny_vectors_do_not_divide_by_zero() -> None:
    # |q| |k| underflows to 0 although neither norm does: the cosine is still defined.
    q = np.array([[1e-200, 0.0]])
    k = np.array([[2e-200, 0.0], [0.0, 1.0]])
    result = scaled_dot_product_attention(q, k, np.eye(2))
    why = explain_score(result, 0, 0)
    assert why.raw_score == 0.0  # 2e-400 underflows
    assert why.cosine == 1.0
    assert why.query_norm * why.key_norm * why.cosine == why.raw_score


def test_scale_above_one_makes_the_softmax_sharper() -> None:
    x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    result = scaled_dot_product_attention(x, x, x, scale=2.0)
    why = explain_score(result, 0, 1)
    assert why.unscaled_weight > why.weight  # unscaled scores lie closer together
    assert "multiplies every score gap by 2" in _flat(why)
    assert "the row would be softer (largest weight" in _flat(why)
    row = explain_query(result, 0)
    assert row.unscaled_entropy > row.entropy
    text = _flat(row)
    assert "sharper, not softer" in text
    assert "every allowed score is equal" not in text


def test_scale_one_changes_nothing() -> None:
    x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    result = scaled_dot_product_attention(x, x, x, scale=1.0)
    assert "No scale was applied" in str(explain_score(result, 0, 1))
    text = _flat(explain_query(result, 0))
    assert "would be the same" in text
    assert "every allowed score is equal" not in text


def test_zero_query_with_bias_is_not_uniform() -> None:
    q = np.zeros((1, 2))
    k = np.array([[1.0, 0.0], [0.0, 1.0]])
    result = scaled_dot_product_attention(q, k, k, bias=np.array([[1.0, 0.0]]))
    why = explain_score(result, 0, 0)
    _close(why.weight, _softmax([1.0, 0.0])[0])
    text = _flat(why)
    assert "The query of 'token 0' is zero" in text
    assert "the additive bias favours 'token 0' (bias 1 vs 0: +1 of the 1 score gap)" in text
    assert "only the bias" in text
    assert "evenly" not in text
    assert "every allowed score is equal" not in _flat(explain_query(result, 0))


@given(projected_cases(), st.randoms(use_true_random=False))
def test_permuting_tokens_permutes_explanations(case: ProjectedCase, rnd: Any) -> None:
    """Self-attention is permutation-equivariant, and so is every explained number."""
    x = case.x if case.x.ndim == 2 else case.x[0]
    n = x.shape[0]
    perm = list(range(n))
    rnd.shuffle(perm)
    mask = None if case.mask is None or case.context is not None else case.mask
    kwargs: dict[str, Any] = {"n_heads": case.n_heads, "n_kv_heads": case.n_kv_heads}
    result = multi_head_attention(x, case.params, mask=mask, **kwargs)
    permuted = multi_head_attention(
        x[perm], case.params, mask=None if mask is None else mask[np.ix_(perm, perm)], **kwargs
    )
    tokens = [f"t{i}" for i in range(n)]
    tokens_permuted = [tokens[p] for p in perm]
    for head in range(case.n_heads):
        for a, b in itertools.product(range(n), repeat=2):
            e = explain_score(result, perm[a], perm[b], head=head, tokens=tokens)
            f = explain_score(permuted, a, b, head=head, tokens=tokens_permuted)
            assert (e.query_token, e.key_token) == (f.query_token, f.key_token)
            assert e.masked is f.masked
            for name in ("weight", "raw_score", "score", "logsumexp", "unscaled_weight"):
                _close(getattr(f, name), getattr(e, name), abs(getattr(e, name)))
            _close(
                f.dim_contributions, e.dim_contributions, float(np.abs(e.dim_contributions).sum())
            )
            assert f.feature_contributions is not None
            assert e.feature_contributions is not None
            _close(
                f.feature_contributions,
                e.feature_contributions,
                float(np.abs(e.feature_contributions).sum()),
            )


def test_two_tokens_that_are_not_strings_are_two_labels_not_a_pair() -> None:
    result = scaled_dot_product_attention(np.eye(2), np.eye(2), np.eye(2))
    why = explain_score(result, 0, 1, tokens=[1, 2])  # type: ignore[list-item]
    assert (why.query_token, why.key_token) == ("1", "2")


@pytest.mark.parametrize("tokens", [(["a", "b"], 5), (5, ["a", "b"])])
def test_a_pair_of_tokens_needs_two_sequences(tokens: Any) -> None:
    result = scaled_dot_product_attention(np.eye(2), np.eye(2), np.eye(2))
    with pytest.raises(TypeError, match=r"tokens must be a sequence of strings or a pair"):
        explain_score(result, 0, 1, tokens=tokens)


def test_tokens_that_are_not_a_sequence_are_a_type_error_naming_tokens() -> None:
    result = scaled_dot_product_attention(np.eye(2), np.eye(2), np.eye(2))
    with pytest.raises(TypeError, match="tokens must be a sequence of strings, got int"):
        explain_score(result, 0, 1, tokens=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch", [None, 0])
def test_explaining_an_empty_batch_is_an_index_error_naming_the_batch(batch: Any) -> None:
    empty = np.ones((0, 2, 2))
    result = scaled_dot_product_attention(empty, empty, empty)
    with pytest.raises(IndexError, match="batch"):
        explain_score(result, 0, 0, batch=batch)


def test_heatmap_labels_with_control_characters_stay_on_one_line() -> None:
    weights = np.array([[0.5, 0.5], [1.0, 0.0]])
    text = heatmap(weights, row_labels=["a\nb", "c\rd"], col_labels=["x\ty", "z"])
    lines = text.split("\n")
    assert len(lines) == 3  # the header and one line per query
    assert lines[0].split() == ["query", "\\", "key", "x\\ty", "z"]
    assert lines[1].startswith("a\\nb ")
    assert lines[2].startswith("c\\rd ")


# --- the contrast: why this key and not the rival ---------------------------------------


def _headline_term(e: ScoreExplanation) -> float:
    """The term the headline must name, recomputed: the largest in the winner's favour.

    Candidates in score units: every feature pair and the projection-bias terms when
    the features are known, else length and angle; and the additive bias gap.
    """
    c = e.contrast
    assert c is not None
    sign = 1.0 if c.score_gap > 0 else -1.0
    candidates: list[float] = []
    if c.features is not None:  # the best feature pair, if it carries half the gap
        best = max(float(v) * e.scale * sign for v in c.features.ravel())
        if best >= 0.5 * abs(c.score_gap):
            candidates.append(best * sign)
    if not candidates:
        candidates = [c.length * e.scale, c.angle * e.scale]
        if c.bias_terms:
            candidates.append(c.bias_terms * e.scale)
    candidates.append(c.bias_gap)
    return max(value * sign for value in candidates)


def _fmt4(value: float) -> str:
    return "0" if value == 0 else f"{value:.4g}"


@given(projected_cases())
def test_headline_names_the_largest_term(case: ProjectedCase) -> None:
    """On random projected results, the headline quotes the term that does most."""
    x = case.x if case.x.ndim == 2 else case.x[0]
    result = multi_head_attention(
        x,
        case.params,
        n_heads=case.n_heads,
        n_kv_heads=case.n_kv_heads,
        mask=case.mask if case.context is None else None,
        is_causal=case.is_causal,
    )
    n = x.shape[0]
    for i, j in itertools.product(range(n), range(n)):
        e = explain_score(result, i, j, head=case.n_heads - 1)
        if e.contrast is not None and e.contrast.score_gap != 0.0:
            _check_headline(e)


def _check_headline(e: ScoreExplanation) -> None:
    """The first sentence quotes the term :func:`_headline_term` recomputes."""
    c = e.contrast
    assert c is not None
    term = _headline_term(e)
    assert term > 0.0  # the terms sum to the gap: one of them is on the winner's side
    first = _flat(e).split(". ")[0]
    if c.bias_gap == 0.0 and e.scale != 0.0:
        value, gap, unit = term / e.scale, abs(c.raw_gap), "raw-score gap"
    else:
        value, gap, unit = term, abs(c.score_gap), "score gap"
    if value <= gap * (1 + 1e-12):
        quoted = f"+{_fmt4(value)} of the {_fmt4(gap)} {unit})"
    else:
        quoted = f"+{_fmt4(value)}; with the other terms, a {unit} of {_fmt4(gap)})"
    assert quoted in first, (quoted, first)


def test_headline_without_features_is_length_or_angle() -> None:
    # k_0 is long and off the query's direction, k_1 short and along it.
    q = np.array([[1.0, 0.0]])
    k = np.array([[3.0, 3.0], [1.0, 0.0]])  # raw 3 and 1: length wins, angle loses
    result = scaled_dot_product_attention(q, k, np.eye(2))
    why = explain_score(result, 0, 0)
    c = why.contrast
    assert c is not None
    root18 = math.sqrt(18.0)
    _close(c.length, 1.0 * (root18 - 1.0) * (1 / math.sqrt(2) + 1.0) / 2, 10.0)
    _close(c.angle, 1.0 * (1 / math.sqrt(2) - 1.0) * (root18 + 1.0) / 2, 10.0)
    assert c.raw_gap == 2.0
    text = _flat(why)
    assert "because the key of 'token 0' is longer (|k| 4.243 vs 1: +2.768; with the other" in text
    assert "the key of 'token 1' points closer to the query (cos 1 vs 0.7071)" in text
    # The loser's view names the same reason.
    assert "because the key of 'token 0' is longer" in _flat(explain_score(result, 0, 1))
    # A key that points closer and is as long: the angle decides.
    k2 = np.array([[1.0, 1.0], [math.sqrt(2.0), 0.0]])
    why2 = explain_score(scaled_dot_product_attention(q, k2, np.eye(2)), 0, 1)
    assert "because the key of 'token 1' points closer to the query" in _flat(why2)


def test_rival_can_be_named() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    why = explain_score(
        result,
        "creature",
        "fluffy",
        tokens=ex.tokens,
        feature_names=ex.feature_names,
        rival="creature",
    )
    c = why.contrast
    assert c is not None
    assert (c.rival_token, c.raw_gap, c.score_gap) == ("creature", 4.0, 2.0)
    assert why.competitor_token == "blue"  # the strongest other key is unchanged
    assert _flat(why).startswith(
        "'creature' attends to 'fluffy' (0.5741) more than to 'creature' (0.0777) because "
        "the key of 'fluffy' carries the 'adjective' feature that the query of 'creature' "
        "asks for ('noun' x 'adjective': +3 of the 4 raw-score gap)"
    )
    with pytest.raises(ValueError, match=r"rival 'fluffy' .* is the key itself"):
        explain_score(result, "creature", "fluffy", tokens=ex.tokens, rival="fluffy")
    causal = self_attention(ex.x, ex.params, is_causal=True)
    with pytest.raises(ValueError, match=r"rival 'creature' .* is masked"):
        explain_score(causal, "blue", "fluffy", tokens=ex.tokens, rival="creature")
    with pytest.raises(IndexError, match="rival"):
        explain_score(result, 2, 0, rival=5)


def test_value_shares_sum_to_one() -> None:
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    result = scaled_dot_product_attention(q, k, v)
    for i in range(4):
        shares = [explain_score(result, i, j).value_share for j in range(5)]
        _close(math.fsum(shares), 1.0, 10.0)
        why = explain_score(result, i, 0)
        _close(why.output, result.output[i])
        passed = [explain_score(result, i, j).value_contribution for j in range(5)]
        _close(np.sum(passed, axis=0), result.output[i])


def test_value_share_and_length_of_huge_values() -> None:
    """Values near the float maximum: the share and the length are those of the values
    scaled down by 2**600 (exact), scaled back; no overflow warning, no NaN."""
    rng = np.random.default_rng(4)
    q, k, v = rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
    small = scaled_dot_product_attention(q, k, v)
    huge = scaled_dot_product_attention(q, k, v * 2.0**600)
    for i, j in itertools.product(range(3), range(4)):
        ref, why = explain_score(small, i, j), explain_score(huge, i, j)
        assert why.value_share == ref.value_share
        length = math.hypot(*ref.value_contribution.tolist()) * 2.0**600
        assert f"a vector of length {length:.4g}" in " ".join(str(why).split())


# --- graded claims: every qualitative word from a documented threshold ---------------


def _with(why: ScoreExplanation, **changes: Any) -> str:
    return _flat(dataclasses.replace(why, **changes))


@pytest.mark.parametrize(
    ("cosine", "words"),
    [
        (0.7, "point the same way"),
        (0.6999, "point partly the same way"),
        (0.3, "point partly the same way"),
        (0.2999, "are nearly orthogonal"),
        (-0.01, "point apart"),
    ],
)
def test_cosine_words_both_sides_of_their_thresholds(cosine: float, words: str) -> None:
    ex = fluffy_blue_creature()
    why = explain_score(self_attention(ex.x, ex.params), 2, 0)
    assert f"x cos {_fmt4(cosine)}: the query of 'token 2' and the key of 'token 0' {words}" in (
        _with(why, cosine=cosine)
    )


@pytest.mark.parametrize(
    ("rival_cosine", "slightly"), [(0.8944 + 0.0999, True), (0.8944 + 0.1001, False)]
)
def test_slightly_closer_below_a_tenth(rival_cosine: float, slightly: bool) -> None:
    ex = fluffy_blue_creature()
    why = explain_score(self_attention(ex.x, ex.params), 2, 0)
    assert why.contrast is not None
    contrast = dataclasses.replace(why.contrast, rival_cosine=rival_cosine)
    text = _with(why, cosine=0.8944, contrast=contrast)
    assert ("points slightly closer" in text) is slightly
    assert "points closer" in text or slightly


@pytest.mark.parametrize(("unscaled_max", "saturated"), [(0.99, True), (0.98999, False)])
def test_saturated_only_past_the_threshold(unscaled_max: float, saturated: bool) -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    why = explain_score(result, 2, 0)
    text = _with(why, unscaled_max_weight=unscaled_max)
    assert ("sharper, saturated (largest weight" in text) is saturated
    assert ("sharper, yet not saturated" in text) is not saturated
    row = explain_query(result, 2)
    row_text = _flat(dataclasses.replace(row, unscaled_max_weight=unscaled_max))
    assert ("the scale keeps it from saturating" in row_text) is saturated
    assert ("yet not saturated" in row_text) is not saturated


def test_saturation_at_large_d_k_is_called_so() -> None:
    """The scale's effect in numbers: d_k = 512, random unit-variance q and k."""
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(1, 512)), rng.normal(size=(8, 512))
    result = scaled_dot_product_attention(q, k, np.eye(8))
    row = explain_query(result, 0)
    assert row.unscaled_max_weight >= 0.99  # raw scores spread by sqrt(512) ~ 22.6
    assert row.max_weight < 0.99
    assert "the softmax would be saturated" in _flat(row)


@pytest.mark.parametrize(("effective", "one_key"), [(1.4999, True), (1.5, False)])
def test_almost_one_key_below_one_and_a_half(effective: float, one_key: bool) -> None:
    ex = fluffy_blue_creature()
    row = explain_query(self_attention(ex.x, ex.params), 2)
    text = _flat(dataclasses.replace(row, effective_keys=effective))
    assert ("almost entirely on one key" in text) is one_key


@pytest.mark.parametrize(("weight", "small"), [(1 / 3 - 1e-9, True), (1 / 3, False)])
def test_small_share_below_the_uniform_share(weight: float, small: bool) -> None:
    ex = fluffy_blue_creature()
    why = explain_score(self_attention(ex.x, ex.params), 2, 1)
    assert ("only a small share" in _with(why, weight=weight)) is small


# --- totals that add up on screen ------------------------------------------------------


def _listed_sum(paragraph: str) -> tuple[float, float]:
    """The listed terms' sum and the stated total of one 'a +x; b +y; the other N +z (total t)'."""
    body, total = paragraph.rsplit("(total ", 1)
    numbers = [
        float(t) for t in re.findall(r" ([+-]?[\d.]+(?:e[+-]?\d+)?)(?=;|\s*$)", body.strip())
    ]
    return math.fsum(numbers), float(total.split(")")[0])


def test_every_listing_states_its_remainder() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(5, 8))
    params = AttentionParams.random(8, 4, rng=rng)
    result = self_attention(x, params)
    for i, j in itertools.product(range(5), range(5)):
        flat = _flat(explain_score(result, i, j))
        listings = re.findall(
            r"(?:features|dimensions|entries|\(query x key\)): ([^()]*?\(total [^)]*\))", flat
        )
        # the gap over features and dimensions, the score over both, the value's entries
        assert len(listings) >= 4
        for listing in listings:
            assert "the other " in listing or listing.count(";") < 3
            listed, total = _listed_sum(listing)
            # 4 significant digits per printed term
            assert (
                abs(listed - total)
                <= 5e-4
                * (
                    abs(total)
                    + sum(
                        abs(float(v)) for v in re.findall(r" ([+-][\d.]+(?:e[+-]?\d+)?)", listing)
                    )
                )
                + 1e-12
            ), listing


def test_four_by_four_equal_lengths_the_angle_decides() -> None:
    """The 4x4: creature's keys 'fluffy' and 'the' are equally long; the angle decides."""
    ex = fluffy_creature_purred()
    result = self_attention(ex.x, ex.params)
    why = explain_score(
        result, "creature", "fluffy", tokens=ex.tokens, feature_names=ex.feature_names
    )
    c = why.contrast
    assert c is not None
    assert (c.rival_token, c.raw_gap, c.length) == ("the", 1.0, 0.0)
    _close(c.angle, 1.0)
    assert c.features is not None
    assert (c.features[0, 1], c.features[0, 3], float(c.features.sum())) == (4.0, -3.0, 1.0)
    assert _flat(why).startswith(
        "'creature' attends to 'fluffy' (0.5327) more than to 'the' (0.3231) because the key "
        "of 'fluffy' carries the 'adjective' feature that the query of 'creature' asks for "
        "('noun' x 'adjective': +4; with the other terms, a raw-score gap of 1); the two "
        "keys are equally long (|k| 1.414), and the key of 'fluffy' points closer to the "
        "query (cos 0.8944 vs 0.6708)."
    )
    # The causal mask changes fluffy's answer: 'creature' is later, so 'the' wins.
    causal = self_attention(ex.x, ex.params, is_causal=True)
    masked = explain_score(
        causal, "fluffy", "the", tokens=ex.tokens, feature_names=ex.feature_names
    )
    assert masked.contrast is not None
    assert masked.contrast.rival_token == "fluffy"
    assert _flat(masked).startswith(
        "'fluffy' attends to 'the' (0.6225) more than to 'fluffy' (0.3775) because the key "
        "of 'the' carries the 'determiner' feature that the query of 'fluffy' asks for "
        "('adjective' x 'determiner': +1 of the 1 raw-score gap)"
    )


@pytest.mark.parametrize(("share", "feature_heads"), [(0.5, True), (0.4999, False)])
def test_feature_pair_heads_the_because_from_half_the_gap(
    share: float, feature_heads: bool
) -> None:
    ex = fluffy_blue_creature()
    why = explain_score(
        self_attention(ex.x, ex.params), 2, 0, tokens=ex.tokens, feature_names=ex.feature_names
    )
    assert why.contrast is not None
    features = why.contrast.features
    assert features is not None
    scaled = features * share  # the texture pair now carries `share` of the gap of 1
    contrast = dataclasses.replace(why.contrast, features=scaled)
    text = _with(why, contrast=contrast)
    assert ("carries the 'texture' feature" in text.split(". ")[0]) is feature_heads
    assert ("because the key of 'fluffy' is longer" in text) is not feature_heads
