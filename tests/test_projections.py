"""Tests for attention_from_scratch.projections against loop references and by hand."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from attention_from_scratch.projections import (
    AttentionParams,
    linear,
    merge_heads,
    project_qkv,
    split_heads,
)
from tests.reference import all_ref
from tests.reference.projections_ref import (
    glorot_variance,
    linear_ref,
    merge_heads_ref,
    sample_variance,
    split_heads_ref,
)
from tests.tolerances import assert_close

FLOATS = [np.float16, np.float32, np.float64]

# The running example, written out.
X = np.array([[0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=np.float64)
W_Q = np.array([[3, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.float64)
W_K = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float64)
W_V = np.diag([0.0, 0.0, 1.0, 1.0])


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _names_all(exc: pytest.ExceptionInfo[BaseException], *parts: str) -> None:
    message = str(exc.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# ---------------------------------------------------------------- running example


def test_running_example_by_hand() -> None:
    params = AttentionParams(w_q=W_Q, w_k=W_K, w_v=W_V)
    q, k, v = project_qkv(X, params)
    np.testing.assert_array_equal(q, [[0, 0, 0, 0], [0, 0, 0, 0], [3, 1, 0, 0]])
    np.testing.assert_array_equal(k, [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(v, [[0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(q @ k.T, [[0, 0, 0], [0, 0, 0], [4, 3, 0]])


def test_running_example_lists_and_ints() -> None:
    params = AttentionParams(w_q=W_Q.astype(int), w_k=W_K.tolist(), w_v=W_V)
    assert params.dtype == np.float64
    q, _, _ = project_qkv(X.astype(np.int64), params)
    assert q.dtype == np.float64
    np.testing.assert_array_equal(q[2], [3, 1, 0, 0])


# ----------------------------------------------------------------------- linear


@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (2, 1, 3)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_matches_reference(batch: tuple[int, ...], with_bias: bool) -> None:
    rng = _rng(1)
    x = rng.normal(size=(*batch, 5))
    w = rng.normal(size=(5, 7))
    b = rng.normal(size=7) if with_bias else None
    y = linear(x, w, b)
    assert y.shape == (*batch, 7)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, linear_ref(x, w, b), rtol=1e-12, atol=1e-12)


def test_linear_bias_by_hand() -> None:
    y = linear(X, W_Q, [0.5, 0.0, -1.0, 2.0])
    np.testing.assert_array_equal(y, [[0.5, 0, -1, 2], [0.5, 0, -1, 2], [3.5, 1, -1, 2]])


def test_linear_bias_keyword() -> None:
    np.testing.assert_array_equal(linear(X, W_Q, bias=np.ones(4)), X @ W_Q + 1.0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_dtype_preserved(dtype: Any) -> None:
    rng = _rng(2)
    x = rng.uniform(-1, 1, size=(2, 3, 8)).astype(dtype)
    w = rng.uniform(-1, 1, size=(8, 6)).astype(dtype)
    b = rng.uniform(-1, 1, size=6).astype(dtype)
    y = linear(x, w, b)
    assert y.dtype == dtype
    assert_close(y, linear_ref(x, w, b), dtype=dtype)


def test_linear_float16_accumulates_in_float32() -> None:
    # In float16, 2048 + 1 rounds back to 2048 (spacing 2); in float32 the sum is 2050.
    x = np.array([2048.0, 1.0, 1.0], dtype=np.float16)
    w = np.ones((3, 1), dtype=np.float16)
    y = linear(x, w)
    assert y.dtype == np.float16
    assert float(y[0]) == 2050.0


def test_linear_empty_batch_and_one_dimensional() -> None:
    y = linear(np.zeros((0, 4)), W_Q)
    assert y.shape == (0, 4)
    np.testing.assert_array_equal(linear(X[2], W_Q), [3, 1, 0, 0])


def test_linear_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match="x") as exc:
        linear(np.ones((3, 4)), np.ones((5, 2)))
    _names_all(exc, "(3, 4)", "(5, 2)")


def test_linear_hints_at_torch_convention() -> None:
    with pytest.raises(ValueError, match=re.escape("weight.T")) as exc:
        linear(np.ones((3, 4)), np.ones((2, 4)))
    _names_all(exc, "(3, 4)", "(2, 4)")


@pytest.mark.parametrize("weight", [np.ones(4), np.ones((4, 4, 1)), np.float64(1.0)])
def test_linear_weight_must_be_2d(weight: Any) -> None:
    with pytest.raises(ValueError, match="weight"):
        linear(np.ones((3, 4)), weight)


def test_linear_zero_dim_x() -> None:
    with pytest.raises(ValueError, match="x"):
        linear(np.float64(1.0), np.ones((1, 1)))


@pytest.mark.parametrize("bias", [np.ones(3), np.ones((1, 4)), np.ones((4, 1))])
def test_linear_bias_shape(bias: NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="bias") as exc:
        linear(np.ones((3, 4)), np.ones((4, 4)), bias)
    _names_all(exc, str(bias.shape), "(4, 4)")


def test_linear_dtype_mismatch() -> None:
    with pytest.raises(TypeError, match="float32") as exc:
        linear(np.ones((3, 4), dtype=np.float32), np.ones((4, 2)))
    _names_all(exc, "x", "weight", "float64")
    with pytest.raises(TypeError, match="bias"):
        linear(np.ones((3, 4)), np.ones((4, 2)), np.ones(2, dtype=np.float16))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "weight", "bias"])
def test_linear_non_finite(bad: float, where: str) -> None:
    x, w, b = np.ones((3, 4)), np.ones((4, 2)), np.ones(2)
    arrays = {"x": x, "weight": w, "bias": b}
    arrays[where] = arrays[where].copy()
    arrays[where].flat[1] = bad
    with pytest.raises(ValueError, match=where) as exc:
        linear(arrays["x"], arrays["weight"], arrays["bias"])
    assert "index" in str(exc.value)


def test_linear_layouts_give_identical_results() -> None:
    rng = _rng(3)
    x = rng.normal(size=(6, 5))
    w = rng.normal(size=(5, 4))
    b = rng.normal(size=4)
    expected = linear(x, w, b)
    np.testing.assert_array_equal(linear(np.asfortranarray(x), np.asfortranarray(w), b), expected)
    reversed_x = np.ascontiguousarray(x[::-1])[::-1]  # negative strides, same values
    assert reversed_x.strides[0] < 0
    np.testing.assert_array_equal(linear(reversed_x, w[::-1][::-1], b[::-1][::-1]), expected)
    np.testing.assert_array_equal(linear(x[::2], w), linear(np.ascontiguousarray(x[::2]), w))


def test_linear_does_not_modify_inputs() -> None:
    rng = _rng(4)
    x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=2)
    x16, w16, b16 = x.astype(np.float16), w.astype(np.float16), b.astype(np.float16)
    originals: tuple[NDArray[Any], ...] = (x, w, b, x16, w16, b16)
    copies = [a.copy() for a in originals]
    linear(x, w, b)
    linear(x16, w16, b16)
    for before, after in zip(copies, originals, strict=True):
        np.testing.assert_array_equal(before, after)
        assert after.dtype == before.dtype


finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
    d_out=st.integers(1, 4),
    a=finite,
    b=finite,
    data=st.data(),
)
def test_linear_is_linear(
    shape: tuple[int, ...], d_out: int, a: float, b: float, data: st.DataObject
) -> None:
    x = data.draw(hnp.arrays(np.float64, shape, elements=finite))
    y = data.draw(hnp.arrays(np.float64, shape, elements=finite))
    w = data.draw(hnp.arrays(np.float64, (shape[-1], d_out), elements=finite))
    lhs = linear(a * x + b * y, w)
    rhs = a * linear(x, w) + b * linear(y, w)
    scale = (np.abs(a * x) + np.abs(b * y)) @ np.abs(w)  # bound on the rounding error
    np.testing.assert_array_less(np.abs(lhs - rhs), 1e-13 * (1.0 + scale) * (shape[-1] + 2))


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
    d_out=st.integers(1, 4),
    with_bias=st.booleans(),
    data=st.data(),
)
def test_linear_matches_reference_property(
    shape: tuple[int, ...], d_out: int, with_bias: bool, data: st.DataObject
) -> None:
    elements = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
    x = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    w = data.draw(hnp.arrays(np.float64, (shape[-1], d_out), elements=elements))
    b = data.draw(hnp.arrays(np.float64, (d_out,), elements=elements)) if with_bias else None
    scale = np.abs(x) @ np.abs(w) + (0.0 if b is None else np.abs(b))
    err = np.abs(linear(x, w, b) - linear_ref(x, w, b))
    np.testing.assert_array_less(err, 1e-14 * (shape[-1] + 1) * scale + 1e-300)


# --------------------------------------------------------------- AttentionParams


def test_params_fields_and_properties() -> None:
    params = AttentionParams(w_q=W_Q, w_k=W_K, w_v=W_V)
    assert params.d_model == 4
    assert params.dtype == np.float64
    for name in ("w_o", "b_q", "b_k", "b_v", "b_o"):
        assert getattr(params, name) is None
    np.testing.assert_array_equal(params.w_q, W_Q)
    assert params.w_q is not W_Q  # a copy


def test_params_immutable() -> None:
    params = AttentionParams.random(4, 4, out_proj=True, bias=True, rng=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.w_q = np.eye(4)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.b_o = None  # type: ignore[misc]
    for field in dataclasses.fields(params):
        arr = getattr(params, field.name)
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1.0


def test_params_copies_inputs_and_leaves_them_writeable() -> None:
    w_q = W_Q.copy()
    params = AttentionParams(w_q=w_q, w_k=W_K, w_v=W_V)
    assert w_q.flags.writeable
    w_q[0, 0] = 100.0
    assert params.w_q[0, 0] == 3.0


def test_params_equality_is_identity() -> None:
    a = AttentionParams(w_q=W_Q, w_k=W_K, w_v=W_V)
    b = AttentionParams(w_q=W_Q, w_k=W_K, w_v=W_V)
    assert a == a  # noqa: PLR0124
    assert a != b
    assert len({a, b}) == 2  # hashable


def test_params_gqa_and_output_shapes_accepted() -> None:
    # n_heads = 4, n_kv_heads = 2, d_k = 4, d_v = 3, d_model = 16
    params = AttentionParams(
        w_q=np.ones((16, 16)),
        w_k=np.ones((16, 8)),
        w_v=np.ones((16, 6)),
        w_o=np.ones((12, 16)),
        b_q=np.ones(16),
        b_k=np.ones(8),
        b_v=np.ones(6),
        b_o=np.ones(16),
    )
    assert params.d_model == 16


SHAPE_ERRORS: list[tuple[dict[str, tuple[int, ...]], str, tuple[str, ...]]] = [
    ({"w_k": (5, 4)}, "w_k", ("w_q (4, 4)", "w_k (5, 4)")),
    ({"w_v": (3, 4)}, "w_v", ("w_q (4, 4)", "w_v (3, 4)")),
    ({"w_q": (4, 6)}, "w_q", ("w_q (4, 6)", "w_k (4, 4)")),
    ({"w_o": (4, 5)}, "w_o", ("w_o (4, 5)", "w_q (4, 4)")),
    ({"w_o": (8, 4)}, "w_o", ("w_o (8, 4)", "w_v (4, 4)")),
    ({"b_q": (3,)}, "b_q", ("b_q (3,)", "w_q (4, 4)")),
    ({"b_k": (5,)}, "b_k", ("b_k (5,)", "w_k (4, 4)")),
    ({"b_v": (2,)}, "b_v", ("b_v (2,)", "w_v (4, 4)")),
    ({"w_o": (4, 4), "b_o": (3,)}, "b_o", ("b_o (3,)", "w_o (4, 4)")),
    ({"b_o": (4,)}, "b_o", ("b_o (4,)", "w_o")),
    ({"w_q": (4,)}, "w_q", ("(4,)",)),
    ({"w_o": (4, 4, 1)}, "w_o", ("(4, 4, 1)",)),
    ({"b_q": (4, 1)}, "b_q", ("(4, 1)",)),
    ({"w_k": (4, 0)}, "w_k", ("(4, 0)",)),
    ({"w_q": (0, 4), "w_k": (0, 4), "w_v": (0, 4)}, "w_q", ("(0, 4)",)),
]


@pytest.mark.parametrize(("shapes", "name", "parts"), SHAPE_ERRORS)
def test_params_shape_errors(
    shapes: dict[str, tuple[int, ...]], name: str, parts: tuple[str, ...]
) -> None:
    arrays: dict[str, Any] = {"w_q": np.ones((4, 4)), "w_k": np.ones((4, 4)), "w_v": np.eye(4)}
    arrays.update({key: np.ones(shape) for key, shape in shapes.items()})
    with pytest.raises(ValueError, match=name) as exc:
        AttentionParams(**arrays)
    _names_all(exc, *parts)


def test_params_gqa_output_rows_checked() -> None:
    # group = 16 / 8 = 2, so w_o needs 2 * 6 = 12 rows, not 6.
    with pytest.raises(ValueError, match="w_o") as exc:
        AttentionParams(
            w_q=np.ones((16, 16)), w_k=np.ones((16, 8)), w_v=np.ones((16, 6)), w_o=np.ones((6, 16))
        )
    _names_all(exc, "w_o (6, 16)", "w_v (16, 6)", "12")


@pytest.mark.parametrize("name", ["w_k", "w_v", "w_o", "b_q", "b_o"])
def test_params_dtype_mismatch(name: str) -> None:
    arrays: dict[str, Any] = {
        "w_q": np.eye(4),
        "w_k": np.eye(4),
        "w_v": np.eye(4),
        "w_o": np.eye(4),
        "b_q": np.ones(4),
        "b_o": np.ones(4),
    }
    arrays[name] = arrays[name].astype(np.float32)
    with pytest.raises(TypeError, match=name) as exc:
        AttentionParams(**arrays)
    _names_all(exc, "float32", "float64")


@pytest.mark.parametrize("name", ["w_q", "w_k", "w_v", "w_o", "b_v", "b_o"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_params_non_finite(name: str, bad: float) -> None:
    arrays: dict[str, Any] = {
        "w_q": np.eye(4),
        "w_k": np.eye(4),
        "w_v": np.eye(4),
        "w_o": np.eye(4),
        "b_v": np.ones(4),
        "b_o": np.ones(4),
    }
    arrays[name] = arrays[name].copy()
    arrays[name].flat[2] = bad
    with pytest.raises(ValueError, match=name):
        AttentionParams(**arrays)


def test_params_bool_bias_rejected() -> None:
    with pytest.raises(TypeError, match="b_k"):
        AttentionParams(w_q=np.eye(4), w_k=np.eye(4), w_v=np.eye(4), b_k=np.ones(4, dtype=bool))


# ------------------------------------------------------------ AttentionParams.random


@pytest.mark.parametrize(("n_heads", "n_kv"), [(1, 1), (2, 2), (2, 1), (4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("d_v", [None, 3])
@pytest.mark.parametrize("out_proj", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_random_shapes(
    n_heads: int, n_kv: int, d_v: int | None, out_proj: bool, bias: bool, dtype: Any
) -> None:
    d_model, d_k = 8, 2
    dv = d_k if d_v is None else d_v
    p = AttentionParams.random(
        d_model,
        d_k,
        d_v,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        out_proj=out_proj,
        bias=bias,
        rng=0,
        dtype=dtype,
    )
    assert p.w_q.shape == (d_model, n_heads * d_k)
    assert p.w_k.shape == (d_model, n_kv * d_k)
    assert p.w_v.shape == (d_model, n_kv * dv)
    assert p.dtype == dtype
    if out_proj:
        assert p.w_o is not None
        assert p.w_o.shape == (n_heads * dv, d_model)
    else:
        assert p.w_o is None
    if bias:
        assert p.b_q is not None
        assert p.b_k is not None
        assert p.b_v is not None
        assert p.b_q.shape == (n_heads * d_k,)
        assert p.b_k.shape == (n_kv * d_k,)
        assert p.b_v.shape == (n_kv * dv,)
        assert np.all(p.b_q != 0)  # small but not zero, so tests see the biases
        assert (p.b_o is not None) == out_proj
    else:
        assert (p.b_q, p.b_k, p.b_v, p.b_o) == (None, None, None, None)
    for field in dataclasses.fields(p):
        arr = getattr(p, field.name)
        if arr is not None:
            assert arr.dtype == dtype
            assert not arr.flags.writeable


def test_random_gqa_shapes_from_the_book() -> None:
    p = AttentionParams.random(16, 4, n_heads=4, n_kv_heads=2, rng=0)
    assert p.w_q.shape == (16, 16)
    assert p.w_k.shape == (16, 8)
    assert p.w_v.shape == (16, 8)


def test_random_glorot_variance() -> None:
    d_model, d_k, n_heads, n_kv = 512, 64, 8, 2
    p = AttentionParams.random(
        d_model, d_k, n_heads=n_heads, n_kv_heads=n_kv, out_proj=True, bias=True, rng=12345
    )
    assert p.w_o is not None
    assert p.b_q is not None
    cases = [
        (p.w_q, d_model, n_heads * d_k),
        (p.w_k, d_model, n_kv * d_k),
        (p.w_v, d_model, n_kv * d_k),
        (p.w_o, n_heads * d_k, d_model),
    ]
    for w, fan_in, fan_out in cases:
        expected = glorot_variance(fan_in, fan_out)
        assert abs(sample_variance(w) / expected - 1.0) < 0.05
        assert abs(float(np.mean(w))) < 0.05 * np.sqrt(expected)
        # uniform on [-a, a], a = sqrt(6 / (fan_in + fan_out))
        assert float(np.max(np.abs(w))) <= np.sqrt(6.0 / (fan_in + fan_out))
    # biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1 / (3 fan_in)
    assert abs(sample_variance(p.b_q) * 3 * d_model - 1.0) < 0.2
    assert float(np.max(np.abs(p.b_q))) <= 1 / np.sqrt(d_model)


def test_random_seed_reproducible() -> None:
    a = AttentionParams.random(8, 4, n_heads=2, out_proj=True, bias=True, rng=7)
    b = AttentionParams.random(8, 4, n_heads=2, out_proj=True, bias=True, rng=7)
    c = AttentionParams.random(8, 4, n_heads=2, out_proj=True, bias=True, rng=8)
    g = AttentionParams.random(
        8, 4, n_heads=2, out_proj=True, bias=True, rng=np.random.default_rng(7)
    )
    for field in dataclasses.fields(a):
        np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name))
        np.testing.assert_array_equal(getattr(a, field.name), getattr(g, field.name))
    assert not np.array_equal(a.w_q, c.w_q)


def test_random_same_weights_with_or_without_bias_and_in_every_dtype() -> None:
    plain = AttentionParams.random(8, 4, out_proj=True, rng=3)
    biased = AttentionParams.random(8, 4, out_proj=True, bias=True, rng=3)
    single = AttentionParams.random(8, 4, out_proj=True, rng=3, dtype=np.float32)
    for name in ("w_q", "w_k", "w_v", "w_o"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(biased, name))
        np.testing.assert_array_equal(
            getattr(plain, name).astype(np.float32), getattr(single, name)
        )


def test_random_unseeded_differs() -> None:
    assert not np.array_equal(AttentionParams.random(8, 4).w_q, AttentionParams.random(8, 4).w_q)


def test_random_n_kv_heads_must_divide() -> None:
    with pytest.raises(ValueError, match="n_kv_heads") as exc:
        AttentionParams.random(16, 4, n_heads=4, n_kv_heads=3)
    _names_all(exc, "4", "3")


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"d_model": 0}, ValueError, "d_model"),
        ({"d_model": -2}, ValueError, "d_model"),
        ({"d_model": 4.0}, TypeError, "d_model"),
        ({"d_model": True}, TypeError, "d_model"),
        ({"d_k": 0}, ValueError, "d_k"),
        ({"d_k": "4"}, TypeError, "d_k"),
        ({"d_v": 0}, ValueError, "d_v"),
        ({"n_heads": 0}, ValueError, "n_heads"),
        ({"n_heads": 2.5}, TypeError, "n_heads"),
        ({"n_kv_heads": 0}, ValueError, "n_kv_heads"),
        ({"dtype": np.int32}, TypeError, "dtype"),
        ({"dtype": np.complex128}, TypeError, "dtype"),
        ({"dtype": "banana"}, TypeError, "dtype"),
        ({"rng": True}, TypeError, "rng"),
    ],
)
def test_random_bad_arguments(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    args: dict[str, Any] = {"d_model": 4, "d_k": 2}
    args.update(kwargs)
    with pytest.raises(error, match=name):
        AttentionParams.random(**args)


def test_random_numpy_integer_sizes() -> None:
    p = AttentionParams.random(
        np.int64(6),  # type: ignore[arg-type]
        np.int32(2),  # type: ignore[arg-type]
        n_heads=np.int64(3),  # type: ignore[arg-type]
        rng=0,
    )
    assert p.w_q.shape == (6, 6)


# ------------------------------------------------------------------ project_qkv


def _qkv_ref(
    x: NDArray[Any], p: AttentionParams, context: NDArray[Any] | None = None
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """``all_ref.project_qkv`` with ``p``'s arrays."""
    weights = {name: getattr(p, name) for name in ("w_q", "w_k", "w_v", "b_q", "b_k", "b_v")}
    return all_ref.project_qkv(x, context=context, **weights)


@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
@pytest.mark.parametrize("bias", [False, True])
def test_project_qkv_matches_reference(batch: tuple[int, ...], bias: bool) -> None:
    p = AttentionParams.random(6, 2, 3, n_heads=4, n_kv_heads=2, bias=bias, rng=5)
    x = _rng(6).normal(size=(*batch, 5, 6))
    q, k, v = project_qkv(x, p)
    assert q.shape == (*batch, 5, 8)
    assert k.shape == (*batch, 5, 4)
    assert v.shape == (*batch, 5, 6)
    for got, want in zip((q, k, v), _qkv_ref(x, p), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_project_qkv_biases_by_hand() -> None:
    p = AttentionParams(
        w_q=W_Q,
        w_k=W_K,
        w_v=W_V,
        b_q=np.array([1.0, 0, 0, 0]),
        b_k=np.array([0, 0, 0, 2.0]),
        b_v=np.array([0, 0.5, 0, 0]),
    )
    q, k, v = project_qkv(X, p)
    np.testing.assert_array_equal(q, [[1, 0, 0, 0], [1, 0, 0, 0], [4, 1, 0, 0]])
    np.testing.assert_array_equal(k, [[1, 1, 0, 2], [1, 0, 0, 2], [0, 0, 0, 2]])
    np.testing.assert_array_equal(v, [[0, 0.5, 0, 1], [0, 0.5, 1, 0], [0, 0.5, 0, 0]])


def test_project_qkv_context() -> None:
    p = AttentionParams.random(4, 3, 2, bias=True, rng=9)
    rng = _rng(10)
    x = rng.normal(size=(2, 3, 4))
    context = rng.normal(size=(2, 7, 4))
    q, k, v = project_qkv(x, p, context=context)
    assert (q.shape, k.shape, v.shape) == ((2, 3, 3), (2, 7, 3), (2, 7, 2))
    for got, want in zip((q, k, v), _qkv_ref(x, p, context), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # Queries do not depend on the context; self-attention is context=x.
    q_self, k_self, v_self = project_qkv(x, p)
    np.testing.assert_array_equal(q, q_self)
    k_same, v_same = project_qkv(x, p, context=x)[1:]
    np.testing.assert_array_equal(k_same, k_self)
    np.testing.assert_array_equal(v_same, v_self)


def test_project_qkv_running_example_cross_attention() -> None:
    params = AttentionParams(w_q=W_Q, w_k=W_K, w_v=W_V)
    q, k, v = project_qkv(X, params, context=X[:2])
    np.testing.assert_array_equal(q @ k.T, [[0, 0], [0, 0], [4, 3]])
    np.testing.assert_array_equal(v, [[0, 0, 0, 1], [0, 0, 1, 0]])


@pytest.mark.parametrize("dtype", FLOATS)
def test_project_qkv_dtype_preserved(dtype: Any) -> None:
    p = AttentionParams.random(8, 4, bias=True, rng=11, dtype=dtype)
    x = _rng(12).uniform(-1, 1, size=(2, 3, 8)).astype(dtype)
    outputs = project_qkv(x, p)
    for got, want in zip(outputs, _qkv_ref(x, p), strict=True):
        assert got.dtype == dtype
        assert_close(got, want, dtype=dtype)


def test_project_qkv_empty_batch() -> None:
    p = AttentionParams.random(4, 2, rng=0)
    q, k, v = project_qkv(np.zeros((0, 3, 4)), p)
    assert (q.shape, k.shape, v.shape) == ((0, 3, 2), (0, 3, 2), (0, 3, 2))


def test_project_qkv_d_model_mismatch() -> None:
    p = AttentionParams.random(4, 2, rng=0)
    with pytest.raises(ValueError, match="x") as exc:
        project_qkv(np.ones((3, 5)), p)
    _names_all(exc, "(3, 5)", "(4, 2)")
    with pytest.raises(ValueError, match="context") as exc:
        project_qkv(np.ones((3, 4)), p, context=np.ones((2, 6)))
    _names_all(exc, "(2, 6)", "(4, 2)")


@pytest.mark.parametrize("x", [np.ones(4), np.float64(1.0)])
def test_project_qkv_needs_2d(x: NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="x"):
        project_qkv(x, AttentionParams.random(4, 2, rng=0))


def test_project_qkv_dtype_mismatch() -> None:
    p32 = AttentionParams.random(4, 2, rng=0, dtype=np.float32)
    with pytest.raises(TypeError, match="x") as exc:
        project_qkv(np.ones((3, 4)), p32)
    _names_all(exc, "float64", "float32")
    with pytest.raises(TypeError, match="x"):  # integers become float64 first
        project_qkv(np.ones((3, 4), dtype=np.int32), p32)
    with pytest.raises(TypeError, match="context"):
        project_qkv(np.ones((3, 4), dtype=np.float32), p32, context=np.ones((3, 4)))


def test_project_qkv_params_type() -> None:
    with pytest.raises(TypeError, match="params"):
        project_qkv(np.ones((3, 4)), {"w_q": np.eye(4)})  # type: ignore[call-overload]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["x", "context"])
def test_project_qkv_non_finite(bad: float, where: str) -> None:
    p = AttentionParams.random(4, 2, rng=0)
    x, context = np.ones((3, 4)), np.ones((2, 4))
    target = x if where == "x" else context
    target[1, 2] = bad
    with pytest.raises(ValueError, match=where) as exc:
        project_qkv(x, p, context=context)
    _names_all(exc, "(1, 2)")


def test_project_qkv_layouts_and_inputs_untouched() -> None:
    p = AttentionParams.random(5, 3, bias=True, rng=13)
    x = _rng(14).normal(size=(4, 6, 5))
    before = x.copy()
    expected = project_qkv(x, p)
    np.testing.assert_array_equal(x, before)
    variants = [np.asfortranarray(x), np.ascontiguousarray(x[::-1])[::-1]]
    for variant in variants:
        for got, want in zip(project_qkv(variant, p), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    strided = np.ascontiguousarray(x[:, ::-1, :])
    for got, want in zip(project_qkv(x[:, ::-1, :], p), project_qkv(strided, p), strict=True):
        np.testing.assert_array_equal(got, want)


def test_project_qkv_outputs_are_fresh_arrays() -> None:
    p = AttentionParams(w_q=np.eye(4), w_k=np.eye(4), w_v=np.eye(4))
    q, k, v = project_qkv(X, p)
    for arr in (q, k, v):
        assert arr.flags.writeable
        assert not np.may_share_memory(arr, X)
        assert not np.may_share_memory(arr, p.w_q)


# ----------------------------------------------------------- split / merge heads


def test_split_heads_by_hand() -> None:
    x = np.arange(12.0).reshape(2, 6)  # n = 2 tokens, 3 heads of width 2
    heads = split_heads(x, 3)
    assert heads.shape == (3, 2, 2)
    np.testing.assert_array_equal(heads[0], [[0, 1], [6, 7]])
    np.testing.assert_array_equal(heads[2], [[4, 5], [10, 11]])
    np.testing.assert_array_equal(merge_heads(heads), x)


@pytest.mark.parametrize("shape", [(3, 8), (2, 3, 8), (2, 1, 3, 8), (0, 8), (3, 0)])
@pytest.mark.parametrize("n_heads", [1, 2, 4, 8])
def test_split_merge_match_reference(shape: tuple[int, ...], n_heads: int) -> None:
    x = _rng(15).normal(size=shape)
    heads = split_heads(x, n_heads)
    np.testing.assert_array_equal(heads, split_heads_ref(x, n_heads))
    np.testing.assert_array_equal(merge_heads(heads), merge_heads_ref(heads))
    np.testing.assert_array_equal(merge_heads(heads), x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_split_merge_dtype(dtype: Any) -> None:
    x = _rng(16).normal(size=(3, 4)).astype(dtype)
    assert split_heads(x, 2).dtype == dtype
    assert merge_heads(split_heads(x, 2)).dtype == dtype


def test_split_heads_int_input() -> None:
    heads = split_heads(np.arange(8).reshape(2, 4), 2)
    assert heads.dtype == np.float64


def test_split_merge_never_views() -> None:
    x = _rng(17).normal(size=(3, 4))
    for h in (1, 2):
        heads = split_heads(x, h)
        assert not np.may_share_memory(heads, x)
        assert heads.flags.c_contiguous
        merged = merge_heads(heads)
        assert not np.may_share_memory(merged, heads)
    one_token = _rng(18).normal(size=(2, 1, 3))  # h = 2, n = 1: swapaxes is a no-op
    assert not np.may_share_memory(merge_heads(one_token), one_token)


def test_split_merge_layouts() -> None:
    x = _rng(19).normal(size=(2, 5, 6))
    expected = split_heads(x, 3)
    np.testing.assert_array_equal(split_heads(np.asfortranarray(x), 3), expected)
    np.testing.assert_array_equal(split_heads(np.ascontiguousarray(x[::-1])[::-1], 3), expected)
    np.testing.assert_array_equal(merge_heads(np.asfortranarray(expected)), x)
    np.testing.assert_array_equal(
        merge_heads(expected[:, ::-1])[:, :, :], merge_heads_ref(expected[:, ::-1])
    )


def test_split_merge_do_not_modify_inputs() -> None:
    x = _rng(20).normal(size=(2, 3, 4))
    before = x.copy()
    heads = split_heads(x, 2)
    heads_before = heads.copy()
    merge_heads(heads)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(heads, heads_before)


@given(
    batch=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
    n=st.integers(0, 4),
    n_heads=st.integers(1, 5),
    d=st.integers(0, 4),
    dtype=st.sampled_from(FLOATS),
    data=st.data(),
)
def test_split_merge_round_trip(
    batch: tuple[int, ...], n: int, n_heads: int, d: int, dtype: Any, data: st.DataObject
) -> None:
    elements = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=16)
    x = data.draw(hnp.arrays(dtype, (*batch, n, n_heads * d), elements=elements))
    heads = split_heads(x, n_heads)
    assert heads.shape == (*batch, n_heads, n, d)
    np.testing.assert_array_equal(heads, split_heads_ref(x, n_heads))
    back = merge_heads(heads)
    assert back.dtype == x.dtype
    assert back.tobytes() == x.tobytes()  # bit-identical
    again = split_heads(back, n_heads)
    assert again.tobytes() == heads.tobytes()


@given(shape=hnp.array_shapes(min_dims=3, max_dims=5, min_side=1, max_side=3), data=st.data())
def test_merge_split_round_trip(shape: tuple[int, ...], data: st.DataObject) -> None:
    elements = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    y = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    merged = merge_heads(y)
    assert merged.shape == (*shape[:-3], shape[-2], shape[-3] * shape[-1])
    np.testing.assert_array_equal(merged, merge_heads_ref(y))
    assert split_heads(merged, shape[-3]).tobytes() == y.tobytes()


def test_split_heads_not_divisible() -> None:
    with pytest.raises(ValueError, match="n_heads") as exc:
        split_heads(np.ones((3, 10)), 4)
    _names_all(exc, "(3, 10)", "10", "4")


@pytest.mark.parametrize(
    ("n_heads", "error"),
    [
        (0, ValueError),
        (-2, ValueError),
        (2.0, TypeError),
        (True, TypeError),
        ("2", TypeError),
        (None, TypeError),
    ],
)
def test_split_heads_bad_n_heads(n_heads: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="n_heads"):
        split_heads(np.ones((3, 4)), n_heads)


def test_split_heads_accepts_numpy_int() -> None:
    assert split_heads(np.ones((3, 4)), np.int64(2)).shape == (2, 3, 2)  # type: ignore[call-overload]


@pytest.mark.parametrize("x", [np.ones(4), np.float64(1.0)])
def test_split_heads_needs_2d(x: NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="x"):
        split_heads(x, 1)


@pytest.mark.parametrize("x", [np.ones((3, 4)), np.ones(4)])
def test_merge_heads_needs_3d(x: NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="x") as exc:
        merge_heads(x)
    _names_all(exc, str(x.shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_split_merge_non_finite(bad: float) -> None:
    x = np.ones((2, 3, 4))
    x[1, 2, 3] = bad
    with pytest.raises(ValueError, match="x") as exc:
        split_heads(x, 2)
    _names_all(exc, "(1, 2, 3)")
    with pytest.raises(ValueError, match="x"):
        merge_heads(x)


def test_gqa_heads_through_split() -> None:
    p = AttentionParams.random(16, 4, n_heads=4, n_kv_heads=2, rng=0)
    x = _rng(21).normal(size=(5, 16))
    q, k, _ = project_qkv(x, p)
    assert split_heads(q, 4).shape == (4, 5, 4)
    assert split_heads(k, 2).shape == (2, 5, 4)
    # head i of q is x @ (columns i*4:(i+1)*4 of w_q)
    for i in range(4):
        np.testing.assert_allclose(
            split_heads(q, 4)[i],
            linear_ref(x, p.w_q[:, 4 * i : 4 * (i + 1)]),
            rtol=1e-12,
            atol=1e-12,
        )


@pytest.mark.parametrize(
    ("rng", "error", "message"),
    [
        ("seed", TypeError, "rng must be None, an int seed or a numpy.random.Generator, got str"),
        (1.5, TypeError, "rng must be None, an int seed or a numpy.random.Generator, got float"),
        (True, TypeError, "rng must be None, an int seed or a numpy.random.Generator, got bool"),
        (-1, ValueError, "rng must be an int seed >= 0, got -1"),
    ],
)
def test_random_rng_errors_name_rng(rng: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        AttentionParams.random(4, 2, rng=rng)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "weight", "bias", "expected"),
    [
        ([[1e308, 1e308, -1e308]], np.ones((3, 1)), None, [[1e308]]),  # 2e308 on the way
        ([[1e308, 1e308, -1e308]], np.ones((3, 1)), np.array([-1e308]), [[0.0]]),
        ([[1e308, 1e308, -1e308], [1.0, 2.0, 3.0]], np.ones((3, 1)), None, [[1e308], [6.0]]),
        ([[1e200, 1e200]], np.array([[1e120], [-1e120]]), None, [[0.0]]),  # products overflow
        ([1e308, 1e308, -1e308], np.ones((3, 2)), np.array([0.0, 1.0]), [1e308, 1e308]),  # 1-D x
    ],
)
def test_linear_returns_the_exact_result_when_only_intermediates_overflow(
    x: Any, weight: NDArray[np.float64], bias: NDArray[np.float64] | None, expected: Any
) -> None:
    out = linear(x, weight, bias)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_exact_results_near_the_top_keep_the_dtype(dtype: type[np.floating[Any]]) -> None:
    top = float(np.finfo(dtype).max) * 0.9
    x = np.array([[top, top, -top]], dtype)
    out = linear(x, np.ones((3, 2), dtype))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.full((1, 2), top, dtype))


def test_linear_whose_exact_result_overflows_float64_advises_rescaling_only() -> None:
    with pytest.raises(FloatingPointError, match="overflows float64") as info:
        linear([[1e308, 1e308]], np.ones((2, 1)))
    assert "rescale" in str(info.value)
    assert "wider" not in str(info.value)  # nothing is wider than float64


# ---------------------------------------------------------------------------
# AttentionParams.arrays, .map, .output_weight
# ---------------------------------------------------------------------------


def _sgd_params() -> tuple[AttentionParams, AttentionParams]:
    params = AttentionParams.random(6, 2, n_heads=3, out_proj=True, bias=True, rng=1)
    grads = AttentionParams.random(6, 2, n_heads=3, out_proj=True, bias=True, rng=2)
    return params, grads


def test_arrays_lists_present_fields_in_order() -> None:
    params = AttentionParams.random(4, 2, out_proj=True, rng=0)
    arrays = params.arrays()
    assert list(arrays) == ["w_q", "w_k", "w_v", "w_o"]
    assert arrays["w_q"] is params.w_q
    full, _ = _sgd_params()
    assert list(full.arrays()) == ["w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o"]


def test_map_is_a_gradient_step_field_by_field() -> None:
    params, grads = _sgd_params()
    stepped = params.map(lambda w, g: w - 0.25 * g, grads)
    assert isinstance(stepped, AttentionParams)
    for name, arr in stepped.arrays().items():
        np.testing.assert_array_equal(arr, params.arrays()[name] - 0.25 * grads.arrays()[name])
        assert not arr.flags.writeable, name
    with pytest.raises(dataclasses.FrozenInstanceError):
        stepped.w_q = params.w_q  # type: ignore[misc]


def test_map_keeps_none_fields_and_dtype() -> None:
    params = AttentionParams.random(4, 2, rng=0, dtype=np.float32)
    grads = AttentionParams.random(4, 2, rng=1, dtype=np.float32)
    stepped = params.map(lambda w, g: w - 0.1 * g, grads)
    assert stepped.w_o is None
    assert stepped.b_q is None
    assert stepped.dtype == np.float32


def test_map_result_does_not_share_memory_with_fn_output() -> None:
    params, grads = _sgd_params()
    buffers: list[NDArray[Any]] = []

    def fn(w: NDArray[Any], g: NDArray[Any]) -> NDArray[Any]:
        out: NDArray[Any] = w - g
        buffers.append(out)
        return out

    stepped = params.map(fn, grads)
    buffers[0][...] = 0.0
    assert stepped.w_q.any()
    assert params.map(_keep, grads).w_q is params.w_q  # unchanged: not copied


def test_map_does_not_revalidate_the_whole_set(monkeypatch: pytest.MonkeyPatch) -> None:
    params, grads = _sgd_params()

    def fail(_self: AttentionParams, _arrays: object) -> None:
        msg = "shapes checked again"
        raise AssertionError(msg)

    monkeypatch.setattr(AttentionParams, "_check_shapes", fail)
    params.map(lambda w, g: w - g, grads)


def _keep(w: NDArray[Any], _g: NDArray[Any]) -> NDArray[Any]:
    return w


_NOT_PARAMS: Any = "grads"
_MAP_CASES: dict[str, tuple[Callable[[AttentionParams, AttentionParams], object], type, str]] = {
    "grads-type": (
        lambda p, _g: p.map(_keep, _NOT_PARAMS),
        TypeError,
        "grads must be an AttentionParams",
    ),
    "grads-missing": (
        lambda p, _g: p.map(_keep, AttentionParams.random(6, 2, n_heads=3, rng=0)),
        ValueError,
        "w_o is None in grads",
    ),
    "params-missing": (
        lambda _p, g: AttentionParams.random(6, 2, n_heads=3, rng=0).map(_keep, g),
        ValueError,
        "w_o is None in params",
    ),
    "grads-shape": (
        lambda p, _g: p.map(_keep, AttentionParams.random(6, 4, n_heads=2, out_proj=True, rng=0)),
        ValueError,
        r"grads.w_q must have the shape of w_q \(6, 6\), got \(6, 8\)",
    ),
    "grads-dtype": (
        lambda p, _g: p.map(
            _keep,
            AttentionParams.random(
                6, 2, n_heads=3, out_proj=True, bias=True, rng=0, dtype=np.float32
            ),
        ),
        TypeError,
        "grads.w_q float32",
    ),
    "fn-shape": (lambda p, g: p.map(lambda w, _d: w[:1], g), ValueError, r"keep w_q's shape"),
    "fn-dtype": (lambda p, g: p.map(lambda w, _d: w.astype(np.float32), g), TypeError, "fn"),
    "fn-finite": (
        lambda p, g: p.map(lambda w, _d: w / 0.0, g),
        ValueError,
        r"fn\(params.w_q, grads.w_q\) must be finite",
    ),
    "fn-bool": (lambda p, g: p.map(lambda w, _d: w > 0, g), TypeError, "fn"),
}


@pytest.mark.parametrize("case", list(_MAP_CASES))
def test_map_routes_bad_input(case: str) -> None:
    make, error, match = _MAP_CASES[case]
    params, grads = _sgd_params()
    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(error, match=match):
        make(params, grads)


def test_output_weight() -> None:
    params = AttentionParams.random(4, 2, out_proj=True, rng=0)
    assert params.output_weight is params.w_o
    with pytest.raises(ValueError, match="no output projection w_o"):
        _ = AttentionParams.random(4, 2, rng=0).output_weight
