"""Tests for attention_from_scratch.examples: the running example's numbers, by hand."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from attention_from_scratch.examples import (
    Example,
    fluffy_blue_creature,
    fluffy_creature_purred,
    gram_example,
)
from attention_from_scratch.projections import AttentionParams, project_qkv
from attention_from_scratch.self_attention import self_attention
from tests.reference.projections_ref import linear_ref
from tests.reference.softmax_ref import softmax_row


def test_fluffy_blue_creature_inputs() -> None:
    ex = fluffy_blue_creature()
    assert ex.name == "fluffy blue creature"
    assert ex.tokens == ("fluffy", "blue", "creature")
    assert ex.feature_names == ("noun", "adjective", "colour", "texture")
    np.testing.assert_array_equal(ex.x, [[0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]])
    p = ex.params
    np.testing.assert_array_equal(p.w_q, [[3, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(p.w_k, [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(p.w_v, np.diag([0, 0, 1, 1]))
    assert (p.w_o, p.b_q, p.b_k, p.b_v, p.b_o) == (None, None, None, None, None)
    assert ex.x.dtype == p.dtype == np.float64
    assert "creature" in ex.description


def test_fluffy_blue_creature_projections() -> None:
    ex = fluffy_blue_creature()
    q, k, v = project_qkv(ex.x, ex.params)
    np.testing.assert_array_equal(q, [[0, 0, 0, 0], [0, 0, 0, 0], [3, 1, 0, 0]])
    np.testing.assert_array_equal(k, [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(v, [[0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    # The same by the loop reference.
    np.testing.assert_array_equal(q, linear_ref(ex.x, ex.params.w_q))
    np.testing.assert_array_equal(k, linear_ref(ex.x, ex.params.w_k))
    np.testing.assert_array_equal(v, linear_ref(ex.x, ex.params.w_v))


def test_fluffy_blue_creature_scores() -> None:
    ex = fluffy_blue_creature()
    q, k, v = project_qkv(ex.x, ex.params)
    scores = q @ k.T
    np.testing.assert_array_equal(scores[2], [4, 3, 0])  # creature: fluffy 4, blue 3
    np.testing.assert_array_equal(scores[:2], np.zeros((2, 3)))  # adjectives ask nothing
    # No tie between the adjectives: fluffy (noun x adjective + noun x texture) wins.
    assert scores[2, 0] > scores[2, 1] > scores[2, 2]
    weights = softmax_row([float(s) / math.sqrt(4) for s in scores[2]])
    np.testing.assert_allclose(weights, [0.574097, 0.348207, 0.077696], atol=1e-6)
    assert weights[0] != weights[1]
    # creature's output: 0.3482 [0, 0, 1, 0] + 0.5741 [0, 0, 0, 1]
    output = [math.fsum(weights[j] * float(v) for j, v in enumerate(col)) for col in v.T]
    np.testing.assert_allclose(output, [0, 0, weights[1], weights[0]], rtol=1e-15)


# ------------------------------------------------------------------- the 4x4 example


def _raw_scores_loop(x: Any, w_q: Any, w_k: Any) -> list[list[float]]:
    """q_i . k_j with q = x w_q, k = x w_k, by explicit loops over Python floats."""
    n, d_model = len(x), len(x[0])
    d_k = len(w_q[0])
    q = [
        [math.fsum(float(x[i][f]) * float(w_q[f][c]) for f in range(d_model)) for c in range(d_k)]
        for i in range(n)
    ]
    k = [
        [math.fsum(float(x[i][f]) * float(w_k[f][c]) for f in range(d_model)) for c in range(d_k)]
        for i in range(n)
    ]
    return [[math.fsum(q[i][c] * k[j][c] for c in range(d_k)) for j in range(n)] for i in range(n)]


def _weights_loop(scores: list[list[float]], *, causal: bool) -> list[list[float]]:
    """Row softmax of scores / sqrt(4), keys after the query masked out when causal."""
    n = len(scores)
    return [
        softmax_row([s / math.sqrt(4) for s in row], [not causal or j <= i for j in range(n)])
        for i, row in enumerate(scores)
    ]


FOUR_BY_FOUR_SCORES = [[0, 0, 0, 0], [1, 0, 2, 0], [3, 4, 0, 0], [2, 0, 4, 0]]
FOUR_BY_FOUR_PLAIN = [
    [0.2500, 0.2500, 0.2500, 0.2500],
    [0.2589, 0.1571, 0.4269, 0.1571],
    [0.3231, 0.5327, 0.0721, 0.0721],
    [0.2245, 0.0826, 0.6103, 0.0826],
]
FOUR_BY_FOUR_CAUSAL = [
    [1.0, 0.0, 0.0, 0.0],
    [0.6225, 0.3775, 0.0, 0.0],
    [0.3482, 0.5741, 0.0777, 0.0],
    [0.2245, 0.0826, 0.6103, 0.0826],
]


def test_fluffy_creature_purred_inputs() -> None:
    ex = fluffy_creature_purred()
    assert ex.name == "the fluffy creature purred"
    assert ex.tokens == ("the", "fluffy", "creature", "purred")
    assert ex.feature_names == ("noun", "adjective", "verb", "determiner")
    np.testing.assert_array_equal(ex.x, [[0, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]])
    p = ex.params
    np.testing.assert_array_equal(p.w_q, [[3, 1, 0, 0], [0, 0, 1, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(p.w_k, [[0, 0, 2, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]])
    np.testing.assert_array_equal(p.w_v, np.eye(4))
    assert (p.w_o, p.b_q, p.b_k, p.b_v, p.b_o) == (None, None, None, None, None)
    assert ex.x.dtype == p.dtype == np.float64
    # Every weight a small integer, so every raw score is an integer read by hand.
    for w in (p.w_q, p.w_k, p.w_v):
        assert np.array_equal(w, np.round(w))
        assert np.abs(w).max() <= 3
    assert "creature" in ex.description
    assert "causal" in ex.description


def test_fluffy_creature_purred_projections() -> None:
    ex = fluffy_creature_purred()
    q, k, v = project_qkv(ex.x, ex.params)
    np.testing.assert_array_equal(q, [[0, 0, 0, 0], [0, 0, 1, 0], [3, 1, 0, 0], [0, 0, 2, 0]])
    np.testing.assert_array_equal(k, [[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(v, ex.x)
    np.testing.assert_array_equal(q, linear_ref(ex.x, ex.params.w_q))
    np.testing.assert_array_equal(k, linear_ref(ex.x, ex.params.w_k))
    np.testing.assert_array_equal(v, linear_ref(ex.x, ex.params.w_v))


def test_fluffy_creature_purred_scores() -> None:
    ex = fluffy_creature_purred()
    loop = _raw_scores_loop(ex.x.tolist(), ex.params.w_q.tolist(), ex.params.w_k.tolist())
    assert loop == FOUR_BY_FOUR_SCORES  # integers, exactly
    q, k, _ = project_qkv(ex.x, ex.params)
    np.testing.assert_array_equal(q @ k.T, FOUR_BY_FOUR_SCORES)
    # Two different questions: the noun's query and the verb's are orthogonal.
    assert float(q[2] @ q[3]) == 0.0
    assert ex.tokens[int(np.argmax(loop[2]))] == "fluffy"  # the noun finds its adjective
    assert ex.tokens[int(np.argmax(loop[3]))] == "creature"  # the verb finds its subject
    # creature: fluffy and the have keys of one length, so the angle alone decides.
    assert math.hypot(*k[1]) == math.hypot(*k[0]) == math.sqrt(2)
    cos = [float(q[2] @ k[j]) / (math.hypot(*q[2]) * math.hypot(*k[j])) for j in (1, 0)]
    np.testing.assert_allclose(cos, [4 / math.sqrt(20), 3 / math.sqrt(20)], rtol=1e-15)


@pytest.mark.parametrize(
    ("causal", "expected"), [(False, FOUR_BY_FOUR_PLAIN), (True, FOUR_BY_FOUR_CAUSAL)]
)
def test_fluffy_creature_purred_weights(causal: bool, expected: list[list[float]]) -> None:
    ex = fluffy_creature_purred()
    loop = _weights_loop([[float(s) for s in row] for row in FOUR_BY_FOUR_SCORES], causal=causal)
    result = self_attention(ex.x, ex.params, is_causal=causal)
    np.testing.assert_allclose(result.weights, loop, rtol=0, atol=1e-15)
    np.testing.assert_allclose(loop, expected, rtol=0, atol=5e-5)  # the 4 decimals documented
    # The outputs by loop: v = x, so output_i = sum_j w_ij x_j.
    out = [
        [math.fsum(loop[i][j] * float(ex.x[j][f]) for j in range(4)) for f in range(4)]
        for i in range(4)
    ]
    np.testing.assert_allclose(result.output, out, rtol=0, atol=1e-15)


def test_fluffy_creature_purred_causal_mask_changes_fluffy() -> None:
    ex = fluffy_creature_purred()
    plain = self_attention(ex.x, ex.params).weights
    causal = self_attention(ex.x, ex.params, is_causal=True).weights
    top_plain = [int(j) for j in np.argmax(plain, axis=-1)]
    top_causal = [int(j) for j in np.argmax(causal, axis=-1)]
    # Row 1 (fluffy): its top key is later without the mask, earlier with it.
    assert ex.tokens[top_plain[1]] == "creature"
    assert top_plain[1] > 1
    assert ex.tokens[top_causal[1]] == "the"
    assert top_causal[1] < 1
    # No other row changes its argmax; the last row does not change at all.
    assert [i for i in range(4) if top_plain[i] != top_causal[i]] == [1]
    np.testing.assert_array_equal(plain[3], causal[3])
    # Under the mask, creature's row is the 3x4's creature row: the same scores 3, 4, 0.
    three = fluffy_blue_creature()
    row = self_attention(three.x, three.params).weights[2]
    np.testing.assert_allclose(causal[2, :3], row[[1, 0, 2]], rtol=0, atol=1e-15)


@pytest.mark.parametrize("causal", [False, True])
def test_fluffy_creature_purred_no_ties(causal: bool) -> None:
    """For every query that asks something, the top two keys differ in score and weight."""
    ex = fluffy_creature_purred()
    weights = self_attention(ex.x, ex.params, is_causal=causal).weights
    for i, scores in enumerate(FOUR_BY_FOUR_SCORES):
        if not any(scores):  # 'the' asks nothing: a uniform row, on purpose
            assert ex.tokens[i] == "the"
            continue
        allowed = [s for j, s in enumerate(scores) if not causal or j <= i]
        first, second = sorted(allowed, reverse=True)[:2]
        assert first > second, (i, scores)
        w = sorted(weights[i], reverse=True)
        assert w[0] - w[1] > 0.1, (i, w)


def test_gram_example() -> None:
    ex = gram_example()
    assert ex.tokens == ("a", "b", "c")
    assert ex.feature_names == ("f0", "f1", "f2", "f3")
    x = [[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]]
    np.testing.assert_array_equal(ex.x, x)
    q, k, v = project_qkv(ex.x, ex.params)
    for arr in (q, k, v):
        np.testing.assert_array_equal(arr, x)
    np.testing.assert_array_equal(q @ k.T / 2, [[1, 0, 1], [0, 4, 2], [1, 2, 2]])
    np.testing.assert_allclose(
        softmax_row([1.0, 0.0, 1.0]), [0.422319, 0.155362, 0.422319], atol=1e-6
    )


@pytest.mark.parametrize("factory", [fluffy_blue_creature, fluffy_creature_purred, gram_example])
def test_examples_read_only(factory: object) -> None:
    assert callable(factory)
    ex = factory()
    assert isinstance(ex, Example)
    with pytest.raises(ValueError, match="read-only"):
        ex.x[0, 0] = 5.0
    for name in ("w_q", "w_k", "w_v"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(ex.params, name)[0, 0] = 5.0
    for name in ("w_q", "w_k", "w_v"):
        assert not getattr(ex.params, name).flags.writeable
    assert not ex.x.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.x = np.zeros((3, 4))  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.tokens = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize("factory", [fluffy_blue_creature, fluffy_creature_purred])
def test_examples_are_fresh_and_equal(factory: Any) -> None:
    a, b = factory(), factory()
    assert a is not b
    np.testing.assert_array_equal(a.x, b.x)


def test_example_validation() -> None:
    params = AttentionParams(w_q=np.eye(4), w_k=np.eye(4), w_v=np.eye(4))
    good: dict[str, Any] = {
        "name": "n",
        "tokens": ("a", "b"),
        "feature_names": ("f0", "f1", "f2", "f3"),
        "x": np.ones((2, 4)),
        "params": params,
        "description": "d",
    }
    ex = Example(**good)
    assert ex.x.shape == (2, 4)
    with pytest.raises(ValueError, match="x") as exc:
        Example(**{**good, "tokens": ("a", "b", "c")})
    assert "(2, 4)" in str(exc.value)
    with pytest.raises(ValueError, match="d_model"):
        Example(**{**good, "x": np.ones((2, 3)), "feature_names": ("f0", "f1", "f2")})
    with pytest.raises(TypeError, match="params"):
        Example(**{**good, "params": None})
    with pytest.raises(TypeError, match="x"):
        Example(**{**good, "x": np.ones((2, 4), dtype=np.float32)})
    with pytest.raises(ValueError, match="x"):
        Example(**{**good, "x": np.full((2, 4), np.nan)})
