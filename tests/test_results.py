"""Results own what they keep, and give one 2-D view per (batch, head).

A result, or an explanation built from it, never changes after it was returned: what
it keeps from the caller is copied, and every array it holds is read-only.
"""

from __future__ import annotations

import numpy as np
import pytest

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.explain import explain_score
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import (
    attention_vjp,
    multi_head_attention,
    scaled_dot_product_attention,
    self_attention,
)

GRAM = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])


def test_changing_q_after_the_call_changes_no_score() -> None:
    q2 = GRAM.copy()
    result = scaled_dot_product_attention(q2, GRAM, GRAM)
    q2[:] = 0
    np.testing.assert_array_equal(result.scores, GRAM @ GRAM.T / 2)
    np.testing.assert_array_equal(result.q, GRAM)


def test_changing_x_after_the_call_keeps_the_explanation_reconciled() -> None:
    ex = fluffy_blue_creature()
    x = ex.x.copy()
    result = self_attention(x, ex.params)
    x[2] = 7.0
    explanation = explain_score(result, 2, 0)
    assert explanation.feature_contributions is not None
    assert explanation.raw_score == pytest.approx(4.0, abs=1e-12)
    assert float(explanation.feature_contributions.sum()) == pytest.approx(4.0, abs=1e-12)


def test_changing_the_mask_after_the_call_changes_no_explanation() -> None:
    mask = np.ones((3, 3), dtype=bool)
    result = scaled_dot_product_attention(GRAM, GRAM, GRAM, mask=mask)
    mask[:] = False
    explanation = explain_score(result, 0, 0)
    assert not explanation.masked
    assert explanation.weight == pytest.approx(0.422319, abs=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: scaled_dot_product_attention(GRAM, GRAM, GRAM, mask=np.tri(3, dtype=bool)),
        lambda: self_attention(fluffy_blue_creature().x, fluffy_blue_creature().params),
        lambda: multi_head_attention(
            np.ones((2, 3, 8)), AttentionParams.random(8, 2, n_heads=4, rng=0), n_heads=4
        ),
    ],
    ids=["sdpa", "self_attention", "multi_head"],
)
def test_every_array_of_a_result_is_read_only(make: object) -> None:
    assert callable(make)
    result = make()
    arrays = {
        name: value
        for name, value in vars(result).items()
        if isinstance(value, np.ndarray) and value is not None
    }
    arrays["scores"] = result.scores
    assert {"output", "weights", "q", "k", "v", "scores"} <= set(arrays)
    for name, arr in arrays.items():
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
        assert not arr.flags.writeable, name


def test_a_broadcast_mask_is_kept_without_copying_its_broadcast() -> None:
    mask = np.tri(3, dtype=bool)
    result = scaled_dot_product_attention(np.ones((64, 3, 4)), GRAM, GRAM, mask=mask)
    assert result.mask is not None
    assert result.mask.shape == (64, 3, 3)
    assert result.mask.base is not None
    assert result.mask.base.size == 9  # the (3, 3) mask, copied once


def test_head_view_of_a_grouped_query_result() -> None:
    params = AttentionParams.random(8, 2, n_heads=4, n_kv_heads=2, bias=True, rng=0)
    x = np.random.default_rng(1).normal(size=(2, 5, 8))
    result = multi_head_attention(x, params, n_heads=4, n_kv_heads=2, is_causal=True)
    view = result.head_view(batch=1, head=3)
    assert view.head == 3
    assert view.kv_head == 1
    np.testing.assert_array_equal(view.q, result.q[1, 3])
    np.testing.assert_array_equal(view.k, result.k[1, 1])
    np.testing.assert_array_equal(view.weights, result.weights[1, 3])
    np.testing.assert_array_equal(view.allowed, np.tri(5, dtype=bool))
    assert view.x is not None
    assert view.w_q is not None
    assert view.b_q is not None
    # q = x W_Q + b_Q, restricted to head 3's columns
    np.testing.assert_allclose(view.q, view.x @ view.w_q + view.b_q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(view.scores, view.q @ view.k.T * result.scale, atol=1e-12)


def test_head_view_of_a_plain_result_with_a_head_axis() -> None:
    q = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    bias = np.zeros((4, 4))
    bias[0, 1] = -np.inf
    result = scaled_dot_product_attention(q, q, q, bias=bias)
    view = result.head_view(batch=1, head=2)
    np.testing.assert_array_equal(view.weights, result.weights[1, 2])
    assert not view.allowed[0, 1]
    assert view.allowed.sum() == 15
    with pytest.raises(IndexError, match="head"):
        result.head_view(batch=1, head=3)
    with pytest.raises(ValueError, match="batch"):
        result.head_view(head=0)


def test_gradients_of_a_frozen_result() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    grads = attention_vjp(result, np.ones((3, 4)))
    assert grads.x is not None
    assert grads.x.shape == (3, 4)


def test_scores_are_neg_inf_where_the_bias_forbids_a_key_whose_dot_product_overflows() -> None:
    """q . k_1 overflows float32; with a -inf bias the score is -inf, never NaN."""
    q = np.full((1, 4), 1e19, np.float32)
    k = np.array([[1.0] * 4, [1e20] * 4], np.float32)
    result = scaled_dot_product_attention(
        q, k, np.ones((2, 1), np.float32), bias=np.array([0.0, -np.inf], np.float32)
    )
    np.testing.assert_array_equal(result.scores, np.array([[2e19, -np.inf]], np.float32))


def test_float16_multi_head_scores_are_read_in_float16() -> None:
    params = AttentionParams.random(8, 2, n_heads=2, rng=0, dtype=np.float16)
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float16)
    result = multi_head_attention(x, params, n_heads=2)
    assert result.scores.dtype == np.float16
    q, k = result.q.astype(np.float64), result.k.astype(np.float64)
    expected = q @ np.swapaxes(k, -1, -2) * result.scale
    np.testing.assert_allclose(result.scores, expected, rtol=2e-3, atol=2e-3)


def test_without_a_renderer_nothing_is_displayed() -> None:
    from attention_from_scratch._results import notebook_display

    assert notebook_display(object()) is None


def test_an_explanation_of_a_biased_head_reconciles() -> None:
    params = AttentionParams.random(8, 2, n_heads=2, rng=4)
    x = np.random.default_rng(4).normal(size=(3, 8))
    bias = np.array([[[0.0, 0.5, -1.0]] * 3, [[1.0, 0.0, 0.0]] * 3])  # (h, n, m)
    result = multi_head_attention(x, params, n_heads=2, bias=bias)
    why = explain_score(result, 1, 0, head=1)
    assert why.bias == 1.0
    assert why.score == pytest.approx(why.raw_score * why.scale + 1.0, abs=1e-12)
    assert why.weight == pytest.approx(float(result.weights[1, 1, 0]), abs=1e-15)


def test_gradients_are_read_only() -> None:
    """A result never changes after it is returned: the gradients of attention_vjp too."""
    from attention_from_scratch.examples import fluffy_blue_creature
    from attention_from_scratch.self_attention import (
        attention_vjp,
        scaled_dot_product_attention,
        self_attention,
    )

    ex = fluffy_blue_creature()
    grad = np.ones((3, 4))
    projected = attention_vjp(self_attention(ex.x, ex.params), grad)
    plain = attention_vjp(scaled_dot_product_attention(ex.x, ex.x, ex.x), grad)
    arrays = [projected.q, projected.k, projected.v, projected.x, plain.q, plain.k, plain.v]
    arrays += list(projected.params.arrays().values())
    for arr in arrays:
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0.0
