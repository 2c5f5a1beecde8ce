"""Tests for attention_from_scratch.examples: the running example's numbers, by hand."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from attention_from_scratch.examples import Example, fluffy_blue_creature, gram_example
from attention_from_scratch.projections import AttentionParams, project_qkv
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


@pytest.mark.parametrize("factory", [fluffy_blue_creature, gram_example])
def test_examples_read_only(factory: object) -> None:
    assert callable(factory)
    ex = factory()
    assert isinstance(ex, Example)
    with pytest.raises(ValueError, match="read-only"):
        ex.x[0, 0] = 5.0
    for name in ("w_q", "w_k", "w_v"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(ex.params, name)[0, 0] = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.x = np.zeros((3, 4))  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.tokens = ("x",)  # type: ignore[misc]


def test_examples_are_fresh_and_equal() -> None:
    a, b = fluffy_blue_creature(), fluffy_blue_creature()
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
