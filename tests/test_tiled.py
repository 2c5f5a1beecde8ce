"""Tests of :func:`attention_from_scratch.self_attention.tiled_attention`.

Tiled attention must give the output of dense attention: it is checked against the
loop-based float64 reference of ``tests/reference/attention_ref.py`` (to 1e-12),
against :func:`scaled_dot_product_attention` over hypothesis-drawn sizes, block sizes
(most of which do not divide ``n`` or ``m``), causal masks, batch shapes and dtypes,
for its memory (traced, never timed: timings live in ``benchmarks/``), and for every
bad input that concerns it.
"""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from attention_from_scratch.examples import gram_example
from attention_from_scratch.self_attention import (
    causal_mask,
    scaled_dot_product_attention,
    tiled_attention,
)
from tests.reference.attention_ref import attention_ref, attention_ref_batched
from tests.tolerances import assert_close, tolerance

F64 = NDArray[np.float64]
FloatDType = type[np.floating[Any]]


def _normal(seed: int, *shape: int) -> F64:
    return np.random.default_rng(seed).normal(size=shape)


# ---------------------------------------------------------------------------
# Hand-computed numbers and the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, 512])
def test_gram_example_matches_hand_numbers(block_size: int) -> None:
    x = np.array(gram_example().x)  # Q = K = V = x, scores x x^T / 2
    out = tiled_attention(x, x, x, block_size=block_size)
    # Row 0: weights [0.422319, 0.155362, 0.422319] on the rows of x.
    np.testing.assert_allclose(
        out,
        [
            [0.8446, 0.7330, 0.8446, 0.7330],
            [0.1332, 1.8509, 0.1332, 1.8509],
            [0.5777, 1.2670, 0.5777, 1.2670],
        ],
        atol=5e-5,
    )
    assert_close(out, scaled_dot_product_attention(x, x, x).output)
    assert_close(out, attention_ref(x, x, x).output)


@pytest.mark.parametrize("block_size", [1, 2, 3])
def test_gram_example_causal(block_size: int) -> None:
    x = np.array(gram_example().x)
    out = tiled_attention(x, x, x, block_size=block_size, is_causal=True)
    np.testing.assert_array_equal(out[0], x[0])  # token 0 sees only itself: weight 1
    assert_close(out, attention_ref(x, x, x, is_causal=True).output)


@pytest.mark.parametrize(
    ("n", "m", "d_k", "d_v", "block_size"),
    [(7, 7, 3, 2, 3), (5, 9, 4, 4, 2), (9, 4, 2, 3, 4), (1, 1, 1, 1, 1), (6, 6, 5, 1, 64)],
)
@pytest.mark.parametrize("is_causal", [False, True])
def test_matches_reference(
    n: int, m: int, d_k: int, d_v: int, block_size: int, is_causal: bool
) -> None:
    q, k, v = _normal(1, n, d_k), _normal(2, m, d_k), _normal(3, m, d_v)
    out = tiled_attention(q, k, v, block_size=block_size, is_causal=is_causal)
    assert out.shape == (n, d_v)
    assert out.dtype == np.float64
    assert_close(out, attention_ref(q, k, v, is_causal=is_causal).output)


def test_batch_dimensions_broadcast_as_in_dense_attention() -> None:
    q = _normal(4, 2, 3, 5, 4)  # (batch, heads, n, d_k)
    k = _normal(5, 3, 7, 4)  # shared by the batch
    v = _normal(6, 1, 1, 7, 2)
    out = tiled_attention(q, k, v, block_size=3, is_causal=True)
    assert out.shape == (2, 3, 5, 2)
    assert_close(out, attention_ref_batched(q, k, v, is_causal=True).output)


def test_scale_is_applied() -> None:
    q, k, v = _normal(7, 4, 3), _normal(8, 6, 3), _normal(9, 6, 2)
    out = tiled_attention(q, k, v, block_size=4, scale=0.3)
    assert_close(out, attention_ref(q, k, v, scale=0.3).output)
    # scale 0: every key gets the same weight, the output is the mean of the values
    assert_close(
        tiled_attention(q, k, v, block_size=4, scale=0.0), np.tile(v.mean(axis=0), (4, 1))
    )


def test_no_queries_gives_empty_output() -> None:
    out = tiled_attention(np.ones((2, 0, 3)), np.ones((2, 4, 3)), np.ones((2, 4, 5)))
    assert out.shape == (2, 0, 5)
    out = tiled_attention(np.ones((0, 3, 3)), np.ones((3, 3)), np.ones((3, 2)), is_causal=True)
    assert out.shape == (0, 3, 2)


def test_large_scores_are_stable() -> None:
    # Scores of order 1e4: exp would overflow without the running maximum.
    q = np.array([[100.0, 0.0], [0.0, 100.0]])
    k = np.array([[100.0, 0.0], [99.0, 1.0], [0.0, 100.0]])
    v = _normal(10, 3, 2)
    out = tiled_attention(q, k, v, block_size=1)
    assert_close(out, attention_ref(q, k, v).output)
    assert_close(out, scaled_dot_product_attention(q, k, v).output)


def test_a_later_larger_score_rescales_the_earlier_blocks() -> None:
    # Row maximum in the last block of keys: the correction exp(m_old - m_new) does work.
    q = np.ones((1, 1))
    k = np.arange(10.0)[:, None]  # scores 0, 1, ..., 9, increasing block after block
    v = np.arange(10.0)[:, None] ** 2
    out = tiled_attention(q, k, v, block_size=3, scale=1.0)
    weights = np.exp(np.arange(10.0) - 9.0) / np.exp(np.arange(10.0) - 9.0).sum()
    assert_close(out, [[float(weights @ v[:, 0])]])


# ---------------------------------------------------------------------------
# Properties: tiled == dense over drawn sizes, blocks, causal masks, dtypes
# ---------------------------------------------------------------------------

moderate = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


@st.composite
def tiled_case(
    draw: st.DrawFn, elements: st.SearchStrategy[float] = moderate
) -> tuple[F64, F64, F64, int]:
    """q (..., n, d_k), k (..., m, d_k), v (..., m, d_v) with broadcasting batch shapes."""
    n, m = draw(st.integers(0, 13)), draw(st.integers(1, 13))
    d_k, d_v = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, base_shape=batch, max_dims=2))
    q_batch, k_batch, v_batch = shapes.input_shapes
    q = draw(hnp.arrays(np.float64, (*q_batch, n, d_k), elements=elements))
    k = draw(hnp.arrays(np.float64, (*k_batch, m, d_k), elements=elements))
    v = draw(hnp.arrays(np.float64, (*v_batch, m, d_v), elements=elements))
    block_size = draw(st.integers(1, 15))  # mostly not a divisor of n or m
    return q, k, v, block_size


@given(tiled_case(), st.booleans())
def test_tiled_equals_dense_float64(case: tuple[F64, F64, F64, int], is_causal: bool) -> None:
    q, k, v, block_size = case
    out = tiled_attention(q, k, v, block_size=block_size, is_causal=is_causal)
    dense = scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    assert out.shape == dense.output.shape
    assert out.dtype == np.float64
    assert_close(out, dense.output)


@given(
    tiled_case(st.floats(-1, 1, width=16)),
    st.booleans(),
    st.sampled_from([np.float16, np.float32, np.float64]),
)
def test_tiled_agrees_with_float64_in_every_dtype(
    case: tuple[F64, F64, F64, int], is_causal: bool, dtype: FloatDType
) -> None:
    q64, k64, v64, block_size = case
    q, k, v = q64.astype(dtype), k64.astype(dtype), v64.astype(dtype)
    out = tiled_attention(q, k, v, block_size=block_size, is_causal=is_causal)
    assert out.dtype == dtype
    # the same values (exactly representable in every dtype), computed in float64
    exact = attention_ref_batched(q, k, v, is_causal=is_causal).output
    assert_close(out, exact, tol=tolerance(dtype))


@given(tiled_case(), st.integers(1, 15))
def test_block_size_does_not_change_the_result(
    case: tuple[F64, F64, F64, int], other_block: int
) -> None:
    q, k, v, block_size = case
    assert_close(
        tiled_attention(q, k, v, block_size=block_size, is_causal=True),
        tiled_attention(q, k, v, block_size=other_block, is_causal=True),
    )


@given(tiled_case(), st.data())
def test_causal_ignores_the_future(case: tuple[F64, F64, F64, int], data: st.DataObject) -> None:
    q, k, v, block_size = case
    m = k.shape[-2]
    cut = data.draw(st.integers(0, m - 1), label="cut")  # keys cut+1 .. m-1 change
    k2, v2 = k.copy(), v.copy()
    k2[..., cut + 1 :, :] = data.draw(hnp.arrays(np.float64, k2[..., cut + 1 :, :].shape))
    v2[..., cut + 1 :, :] = data.draw(hnp.arrays(np.float64, v2[..., cut + 1 :, :].shape))
    k2 = np.clip(np.nan_to_num(k2), -5, 5)
    v2 = np.clip(np.nan_to_num(v2), -5, 5)
    before = tiled_attention(q, k, v, block_size=block_size, is_causal=True)
    after = tiled_attention(q, k2, v2, block_size=block_size, is_causal=True)
    # Queries 0 .. cut attend to keys 0 .. cut only: their outputs are bit-identical.
    assert np.array_equal(before[..., : cut + 1, :], after[..., : cut + 1, :])


@given(tiled_case(), st.booleans())
def test_output_lies_in_the_convex_hull_of_the_values(
    case: tuple[F64, F64, F64, int], is_causal: bool
) -> None:
    q, k, v, block_size = case
    out = tiled_attention(q, k, v, block_size=block_size, is_causal=is_causal)
    n, m = q.shape[-2], k.shape[-2]
    allowed = causal_mask(n, m) if is_causal else np.ones((n, m), dtype=bool)
    v_all = np.broadcast_to(v, (*out.shape[:-2], m, v.shape[-1]))
    for i in range(n):
        seen = v_all[..., allowed[i], :]  # (..., keys seen by query i, d_v)
        slack = 1e-12 * (1 + np.abs(seen).max())
        assert np.all(out[..., i, :] >= seen.min(axis=-2) - slack)
        assert np.all(out[..., i, :] <= seen.max(axis=-2) + slack)


# ---------------------------------------------------------------------------
# Memory: O(n) instead of O(n^2) (traced allocations, deterministic)
# ---------------------------------------------------------------------------


def _peak_bytes(q: F64, k: F64, v: F64, **kwargs: Any) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        tiled_attention(q, k, v, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_linear_in_n() -> None:
    n, d, block = 2048, 8, 128
    q, k, v = _normal(11, n, d), _normal(12, n, d), _normal(13, n, d)
    peak = _peak_bytes(q, k, v, block_size=block)
    one_matrix = n * n * 8  # what dense attention needs for its scores alone: 32 MiB
    # q scaled and the output (n d each) and a few blocks of scores (block^2 each)
    budget = 4 * n * d * 8 + 8 * block * block * 8
    assert peak <= budget < one_matrix / 8
    # doubling n doubles the O(n d) part only, never to n^2
    q2, k2, v2 = (np.concatenate([a, a]) for a in (q, k, v))
    assert _peak_bytes(q2, k2, v2, block_size=block) <= 4 * 2 * n * d * 8 + 8 * block * block * 8


def test_inputs_are_not_modified() -> None:
    q, k, v = _normal(14, 5, 3), _normal(15, 6, 3), _normal(16, 6, 2)
    copies = [a.copy() for a in (q, k, v)]
    tiled_attention(q, k, v, block_size=2, is_causal=True)
    for before, after in zip(copies, (q, k, v), strict=True):
        np.testing.assert_array_equal(before, after)


def test_non_contiguous_inputs_give_the_same_result() -> None:
    q, k, v = _normal(17, 6, 4), _normal(18, 7, 4), _normal(19, 7, 3)
    expected = tiled_attention(q, k, v, block_size=3)
    strided = tiled_attention(
        np.asfortranarray(q), k[::-1][::-1].copy(order="F"), v[::-1][::-1], block_size=3
    )
    assert_close(strided, expected)  # BLAS may sum in another order for another layout
    reversed_keys = tiled_attention(q, k[::-1], v[::-1], block_size=3)
    assert_close(reversed_keys, expected)  # attention does not depend on the order of the keys


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [0, -1, -512])
def test_block_size_below_one_raises(block_size: int) -> None:
    x = np.ones((2, 2))
    with pytest.raises(ValueError, match="block_size"):
        tiled_attention(x, x, x, block_size=block_size)


@pytest.mark.parametrize("block_size", [2.0, 2.5, True, "2", None])
def test_block_size_not_an_int_raises(block_size: object) -> None:
    x = np.ones((2, 2))
    with pytest.raises(TypeError, match="block_size"):
        tiled_attention(x, x, x, block_size=block_size)  # type: ignore[arg-type]


def test_numpy_int_block_size_is_accepted() -> None:
    x = np.array(gram_example().x)
    block: Any = np.int64(2)  # typed int; numpy integers are accepted too
    assert_close(tiled_attention(x, x, x, block_size=block), tiled_attention(x, x, x))


@pytest.mark.parametrize(("bad", "what"), [(math.nan, "NaN"), (math.inf, r"\+inf")])
@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_non_finite_input_raises_naming_it(name: str, bad: float, what: str) -> None:
    arrays = {"q": np.ones((3, 2)), "k": np.ones((3, 2)), "v": np.ones((3, 2))}
    arrays[name][1, 0] = bad
    with pytest.raises(
        ValueError, match=rf"^{name} must be finite: found {what} at index \(1, 0\)"
    ):
        tiled_attention(arrays["q"], arrays["k"], arrays["v"])


def test_shape_and_dtype_errors_are_those_of_dense_attention() -> None:
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match="d_k"):
        tiled_attention(x, np.ones((3, 5)), x)
    with pytest.raises(ValueError, match="m = 0"):
        tiled_attention(x, np.ones((0, 4)), np.ones((0, 4)))
    with pytest.raises(TypeError, match="float32"):
        tiled_attention(x, x.astype(np.float32), x)
    with pytest.raises(TypeError, match=r"^q .*bool"):
        tiled_attention(x > 0, x, x)
    with pytest.raises(TypeError, match="is_causal"):
        tiled_attention(x, x, x, is_causal=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        tiled_attention(x, x, x, scale=math.inf)


def test_float32_overflow_raises() -> None:
    big = np.full((2, 4), 1e20, dtype=np.float32)  # q.k / 2 = 2e40 > 3.4e38
    with pytest.raises(FloatingPointError, match="float64"):
        tiled_attention(big, big, big, block_size=1)
    big64 = big.astype(np.float64)  # the same numbers in float64 are fine
    np.testing.assert_allclose(tiled_attention(big64, big64, big64), big64)


@pytest.mark.parametrize("block_size", [1, 2, 512])
def test_overflow_above_the_causal_diagonal_changes_nothing_for_any_block_size(
    block_size: int,
) -> None:
    """q_0 . k_1 overflows float32, but query 0 never sees key 1: dense and tiled agree."""
    q = np.array([[1e19] * 4, [0.0] * 4], np.float32)
    k = np.array([[1.0] * 4, [1e20] * 4], np.float32)
    v = np.array([[1.0], [7.0]], np.float32)
    out = tiled_attention(q, k, v, is_causal=True, block_size=block_size)
    dense = scaled_dot_product_attention(q, k, v, is_causal=True).output
    np.testing.assert_array_equal(out, [[1.0], [4.0]])
    np.testing.assert_array_equal(out, dense)


def test_overflow_below_the_causal_diagonal_is_still_an_error() -> None:
    q = np.full((2, 4), 1e19, np.float32)
    k = np.array([[1.0] * 4, [1e20] * 4], np.float32)
    with pytest.raises(FloatingPointError, match="compute in float64 or rescale q and k"):
        tiled_attention(q, k, np.ones((2, 1), np.float32), is_causal=True, block_size=1)
