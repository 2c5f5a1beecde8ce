"""Tests of the backward passes: :func:`~attention_from_scratch.self_attention.attention_vjp`,
and (at the end) the vector-Jacobian products of the other forwards: ``layer_norm_vjp``,
``rms_norm_vjp``, ``l2_normalize_vjp``, ``linear_vjp`` and ``log_softmax_vjp``, held to
``1e-7`` against finite differences and ``1e-12`` against the complex step.

Three independent checks of every gradient field, in float64:

* central finite differences of the package's own forward pass (``h = 1e-5``, the
  step that balances the truncation error ``h^2 L''' / 6`` against the rounding error
  ``eps |L| / h``), with the relative error ``||fd - analytic|| / max(||fd||, 1e-3)``
  at most ``1e-6`` for every field (see :func:`fd_error` for the floor);
* the complex-step derivative of the independent complex forward pass of
  ``tests/reference/grad_ref.py``, exact to rounding, to ``1e-9``;
* hand-computed gradients of the running example.

Shapes, masks, biases (with ``-inf``), the causal flag, the scale, head counts
(grouped-query attention), cross-attention, ``w_o`` and the biases of the projections
are drawn by hypothesis; the values themselves come from a seeded generator, so that
no draw is degenerate (equal rows make gradients cancel to rounding noise). Then the
dtypes, fully masked rows, broadcasting, and every bad ``grad_output``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from attention_from_scratch.examples import fluffy_blue_creature, gram_example
from attention_from_scratch.norms import (
    LayerNormGrads,
    RMSNormGrads,
    l2_normalize,
    l2_normalize_vjp,
    layer_norm,
    layer_norm_vjp,
    rms_norm,
    rms_norm_vjp,
)
from attention_from_scratch.projections import (
    AttentionParams,
    LinearGrads,
    linear,
    linear_vjp,
    merge_heads,
)
from attention_from_scratch.self_attention import (
    Attention,
    AttentionGrads,
    ProjectedAttention,
    attention_vjp,
    multi_head_attention,
    scaled_dot_product_attention,
    self_attention,
)
from attention_from_scratch.softmax import log_softmax, log_softmax_vjp
from tests.reference.grad_ref import (
    complex_step_gradient,
    heads_forward,
    l2_normalize_forward,
    layer_norm_forward,
    linear_forward,
    log_softmax_forward,
    mha_forward,
    rms_norm_forward,
    sdpa_forward,
)
from tests.tolerances import DERIVATIVE, assert_close

F64 = NDArray[np.float64]
BoolArr = NDArray[np.bool_]
FD_STEP = 1e-5  # ~ (3 eps)^(1/3): balances truncation h^2 L'''/6 and rounding eps L/h
FD_RTOL = 1e-6
FD_FLOOR = 1e-3  # below this norm the finite-difference check is absolute (1e-9)
PARAM_NAMES = ("w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")


# ---------------------------------------------------------------------------
# Finite differences and comparisons
# ---------------------------------------------------------------------------


def fd_gradient(loss: Callable[[F64], float], theta: NDArray[Any]) -> F64:
    """Central differences ``(L(theta + h e_i) - L(theta - h e_i)) / 2h`` for every entry."""
    base = np.array(theta, dtype=np.float64)
    grad = np.zeros(base.shape, dtype=np.float64)
    for index in np.ndindex(*base.shape):
        plus, minus = base.copy(), base.copy()
        plus[index] += FD_STEP
        minus[index] -= FD_STEP
        grad[index] = (loss(plus) - loss(minus)) / (2.0 * FD_STEP)
    return grad


def fd_error(fd: F64, analytic: NDArray[Any]) -> float:
    """``||fd - analytic|| / max(||fd||, FD_FLOOR)``: the relative error of a whole field.

    Central differences carry rounding noise of about ``eps |L| / h``, measured at most
    1.4e-10 in norm over these tests' draws. A relative error of 1e-6 is only
    meaningful for gradients well above it, so below a norm of ``FD_FLOOR = 1e-3`` the
    check becomes absolute: ``||fd - analytic|| <= 1e-9`` (a gradient that is exactly
    0, such as that of a bias constant along the keys, is measured as noise).
    """
    assert fd.shape == analytic.shape
    assert np.isfinite(analytic).all()
    diff = float(np.linalg.norm(fd - analytic))
    return diff / max(float(np.linalg.norm(fd)), FD_FLOOR)


def assert_fd(loss: Callable[[F64], float], theta: NDArray[Any], analytic: Any, name: str) -> None:
    assert analytic is not None, name
    err = fd_error(fd_gradient(loss, theta), np.asarray(analytic))
    assert err <= FD_RTOL, f"{name}: relative error {err:.3g} against finite differences"


def assert_cs(want: F64, got: Any, name: str) -> None:
    """Against the complex-step reference: agreement to 1e-9."""
    assert got is not None, name
    assert_close(got, want, tol=DERIVATIVE, err_msg=name)


def loss_value(output: NDArray[Any], grad_output: F64) -> float:
    """``L = sum(grad_output * output)``, whose gradient with respect to the output is G."""
    return float(np.sum(grad_output * output))


def _param(params: AttentionParams, name: str) -> NDArray[Any] | None:
    value: NDArray[Any] | None = getattr(params, name)
    return value


# ---------------------------------------------------------------------------
# Strategies: shapes, masks and flags drawn; values from a seed
# ---------------------------------------------------------------------------


@st.composite
def sub_shapes(draw: st.DrawFn, shape: tuple[int, ...], min_dims: int = 0) -> tuple[int, ...]:
    """A shape that broadcasts *to* ``shape``: trailing dims kept or set to 1."""
    ndim = draw(st.integers(min(min_dims, len(shape)), len(shape)))
    tail = shape[len(shape) - ndim :]
    return tuple(draw(st.sampled_from([size, 1])) for size in tail)


@dataclasses.dataclass(frozen=True)
class SdpaCase:
    q: F64
    k: F64
    v: F64
    mask: BoolArr | None
    bias: F64 | None
    is_causal: bool
    scale: float | None
    seed: int

    def run(self, **change: Any) -> Attention:
        args: dict[str, Any] = {"q": self.q, "k": self.k, "v": self.v, "bias": self.bias}
        args.update(change)
        return scaled_dot_product_attention(
            args["q"],
            args["k"],
            args["v"],
            mask=self.mask,
            bias=args["bias"],
            is_causal=self.is_causal,
            scale=self.scale,
        )

    def grad_output(self, shape: tuple[int, ...]) -> F64:
        return np.random.default_rng(self.seed + 1).normal(size=shape)

    def reference_args(self) -> dict[str, Any]:
        return {
            "q": self.q,
            "k": self.k,
            "v": self.v,
            "mask": self.mask,
            "bias": self.bias,
            "is_causal": self.is_causal,
            "scale": self.scale,
        }


@st.composite
def sdpa_cases(draw: st.DrawFn) -> SdpaCase:
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    d_k, d_v = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2))
    q_batch, k_batch, v_batch = (draw(sub_shapes(batch)) for _ in range(3))
    scores_shape = (*np.broadcast_shapes(q_batch, k_batch, v_batch), n, m)
    mask = draw(st.none() | hnp.arrays(np.bool_, sub_shapes(scores_shape)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    bias = None
    if draw(st.booleans()):
        bias_shape = draw(sub_shapes(scores_shape))
        forbidden = draw(hnp.arrays(np.bool_, bias_shape))
        bias = np.where(forbidden, -np.inf, rng.uniform(-1.0, 1.0, bias_shape))
    scale = draw(st.none() | st.floats(-2.0, 2.0))
    return SdpaCase(
        q=rng.uniform(-1.0, 1.0, (*q_batch, n, d_k)),
        k=rng.uniform(-1.0, 1.0, (*k_batch, m, d_k)),
        v=rng.uniform(-1.0, 1.0, (*v_batch, m, d_v)),
        mask=mask,
        bias=bias,
        is_causal=draw(st.booleans()),
        scale=scale,
        seed=seed,
    )


@dataclasses.dataclass(frozen=True)
class MhaCase:
    x: F64
    context: F64 | None
    params: AttentionParams
    n_heads: int
    n_kv_heads: int
    mask: BoolArr | None
    is_causal: bool
    seed: int
    single: bool = False  # self_attention instead of multi_head_attention

    def run(self, **change: Any) -> ProjectedAttention:
        x = change.get("x", self.x)
        context = change.get("context", self.context)
        params = change.get("params", self.params)
        if self.single:
            return self_attention(x, params, mask=self.mask, is_causal=self.is_causal)
        return multi_head_attention(
            x,
            params,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            context=context,
            mask=self.mask,
            is_causal=self.is_causal,
        )

    def with_param(self, name: str, value: F64) -> AttentionParams:
        return dataclasses.replace(self.params, **{name: value})

    def grad_output(self, shape: tuple[int, ...]) -> F64:
        return np.random.default_rng(self.seed + 1).normal(size=shape)

    def reference_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "x": self.x,
            "context": self.context,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "mask": self.mask,
            "is_causal": self.is_causal,
        }
        args.update({name: _param(self.params, name) for name in PARAM_NAMES})
        return args


HEAD_COUNTS = [(1, 1), (2, 1), (2, 2), (3, 3), (4, 1), (4, 2), (4, 4)]


@st.composite
def mha_cases(draw: st.DrawFn, *, single: bool = False) -> MhaCase:
    n_heads, n_kv_heads = (1, 1) if single else draw(st.sampled_from(HEAD_COUNTS))
    d_model = draw(st.integers(1, 3))
    d_k, d_v = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 3))
    cross = not single and draw(st.booleans())
    m = draw(st.integers(1, 3)) if cross else n
    batch = draw(st.sampled_from([(), (2,)]))
    mask = draw(st.none() | hnp.arrays(np.bool_, sub_shapes((*batch, n, m), min_dims=2)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    params = AttentionParams.random(
        d_model,
        d_k,
        d_v,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        out_proj=draw(st.booleans()),
        bias=draw(st.booleans()),
        rng=rng,
    )
    return MhaCase(
        x=rng.uniform(-1.0, 1.0, (*batch, n, d_model)),
        context=rng.uniform(-1.0, 1.0, (*batch, m, d_model)) if cross else None,
        params=params,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        mask=mask,
        is_causal=draw(st.booleans()),
        seed=seed,
        single=single,
    )


def heads_output(
    q: NDArray[Any],
    k: NDArray[Any],
    v: NDArray[Any],
    params: AttentionParams,
    mask: BoolArr | None,
    is_causal: bool,
) -> NDArray[Any]:
    """The multi-head output from per-head q (..., h, n, d_k), k, v (..., h_kv, m, d).

    Built from the package's forward functions, for finite differences with respect to
    the per-head arrays (a key/value head is repeated for its query heads).
    """
    group = q.shape[-3] // k.shape[-3]
    attention = scaled_dot_product_attention(
        q,
        np.repeat(k, group, axis=-3),
        np.repeat(v, group, axis=-3),
        mask=None if mask is None else mask[..., None, :, :],
        is_causal=is_causal,
    )
    merged = merge_heads(attention.output)  # (..., n, h d_v)
    if params.w_o is None:
        return merged
    return linear(merged, params.w_o, params.b_o)


# ---------------------------------------------------------------------------
# The running example, by hand
# ---------------------------------------------------------------------------


def test_running_example_by_hand() -> None:
    """L = sum(output[creature]) = 1 - P_cc: every gradient in closed form."""
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    p_f, p_b, p_c = (float(w) for w in result.weights[2])  # fluffy, blue, creature
    grad_output = np.zeros((3, 4))
    grad_output[2] = 1.0
    grads = attention_vjp(result, grad_output)
    # dS_2 = P * (dP - <dP, P>) with dP_2 = (sum v_f, sum v_b, sum v_c) = (1, 1, 0)
    d_s = np.array([p_f * p_c, p_b * p_c, -p_c * (1.0 - p_c)])
    want_q = np.zeros((3, 4))
    want_q[2] = 0.5 * (d_s[0] * np.array([1.0, 1, 0, 0]) + d_s[1] * np.array([1.0, 0, 0, 0]))
    np.testing.assert_allclose(grads.q, want_q, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(grads.q[2, :2], [0.0358, 0.0223], atol=5e-5)
    # dK_j = 0.5 dS_2j q_2 = 0.5 dS_2j (3, 1, 0, 0): only creature's query is non-zero
    want_k = 0.5 * np.outer(d_s, [3.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(grads.k, want_k, rtol=1e-14, atol=1e-16)
    # dV_j = P_2j (1, 1, 1, 1)
    np.testing.assert_allclose(grads.v, np.outer(result.weights[2], np.ones(4)), rtol=1e-15)
    assert grads.params is not None
    # dW_Q = X^T dQ: only creature (the noun row of X) has a non-zero query gradient
    np.testing.assert_allclose(grads.params.w_q[0], want_q[2], rtol=1e-14, atol=1e-16)
    np.testing.assert_array_equal(grads.params.w_q[1:], 0.0)
    np.testing.assert_allclose(grads.params.w_v, ex.x.T @ grads.v, rtol=1e-14)
    assert grads.params.w_o is None
    assert grads.params.b_q is None
    assert grads.context is None
    assert grads.bias is None
    # The loss is 1 - P_cc; a first-order check: a small step against the gradient lowers it
    step = dataclasses.replace(ex.params, w_q=ex.params.w_q - 0.1 * grads.params.w_q)
    assert self_attention(ex.x, step).output[2].sum() < result.output[2].sum()


def test_gram_example_against_complex_step() -> None:
    ex = gram_example()
    x = ex.x
    result = scaled_dot_product_attention(x, x, x)
    grad_output = np.random.default_rng(0).normal(size=(3, 4))
    grads = attention_vjp(result, grad_output)
    args = {"q": x, "k": x, "v": x}
    for name in "qkv":
        want = complex_step_gradient(sdpa_forward, grad_output, args, name)
        assert_cs(want, getattr(grads, name), name)
    # Q = K = V = x: the gradient with respect to x is the sum of the three
    total = grads.q + grads.k + grads.v
    both = complex_step_gradient(lambda x: sdpa_forward(x, x, x), grad_output, {"x": x}, "x")
    assert_cs(both, total, "x")


# ---------------------------------------------------------------------------
# scaled_dot_product_attention: finite differences and complex step
# ---------------------------------------------------------------------------


@given(sdpa_cases())
def test_sdpa_finite_differences(case: SdpaCase) -> None:
    result = case.run()
    grad_output = case.grad_output(result.output.shape)
    grads = attention_vjp(result, grad_output)
    assert isinstance(grads, AttentionGrads)
    for name in ("q", "k", "v"):
        assert getattr(grads, name).shape == getattr(case, name).shape

        def loss(theta: F64, name: str = name) -> float:
            return loss_value(case.run(**{name: theta}).output, grad_output)

        assert_fd(loss, getattr(case, name), getattr(grads, name), name)
    assert grads.x is None
    assert grads.params is None
    assert grads.context is None
    if case.bias is None:
        assert grads.bias is None
    else:
        assert grads.bias is not None
        assert grads.bias.shape == case.bias.shape

        def loss_bias(theta: F64) -> float:
            return loss_value(case.run(bias=theta).output, grad_output)

        assert_fd(loss_bias, case.bias, grads.bias, "bias")


@given(sdpa_cases())
def test_sdpa_complex_step(case: SdpaCase) -> None:
    result = case.run()
    grad_output = case.grad_output(result.output.shape)
    grads = attention_vjp(result, grad_output)
    args = case.reference_args()
    np.testing.assert_allclose(sdpa_forward(**args).real, result.output, rtol=1e-12, atol=1e-12)
    names = ("q", "k", "v") if case.bias is None else ("q", "k", "v", "bias")
    for name in names:
        want = complex_step_gradient(sdpa_forward, grad_output, args, name)
        assert_cs(want, getattr(grads, name), name)


@given(sdpa_cases())
def test_bias_gradient_rows_sum_to_zero(case: SdpaCase) -> None:
    """Adding a constant to a row of scores changes nothing, so dS sums to 0 per row."""
    full_shape = (*np.broadcast_shapes(case.q.shape[:-2], case.k.shape[:-2], case.v.shape[:-2]),)
    n, m = case.q.shape[-2], case.k.shape[-2]
    bias = np.zeros((*full_shape, n, m)) if case.bias is None else case.bias
    bias = np.broadcast_to(bias, (*full_shape, n, m))
    result = case.run(bias=bias)
    grads = attention_vjp(result, case.grad_output(result.output.shape))
    assert grads.bias is not None
    np.testing.assert_allclose(grads.bias.sum(axis=-1), 0.0, atol=1e-14)


@given(sdpa_cases(), st.floats(-3.0, 3.0))
def test_vjp_is_linear_in_grad_output(case: SdpaCase, a: float) -> None:
    result = case.run()
    g1 = case.grad_output(result.output.shape)
    g2 = np.random.default_rng(case.seed + 2).normal(size=result.output.shape)
    combined = attention_vjp(result, a * g1 + g2)
    one, two = attention_vjp(result, g1), attention_vjp(result, g2)
    for name in ("q", "k", "v"):
        want = a * getattr(one, name) + getattr(two, name)
        np.testing.assert_allclose(getattr(combined, name), want, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------------------
# self_attention and multi_head_attention: every field
# ---------------------------------------------------------------------------


def _check_projected_fd(case: MhaCase) -> None:
    result = case.run()
    grad_output = case.grad_output(result.output.shape)
    grads = attention_vjp(result, grad_output)
    assert grads.q.shape == result.q.shape
    assert grads.k.shape == result.k.shape
    assert grads.v.shape == result.v.shape
    assert grads.params is not None

    def loss_x(theta: F64) -> float:
        return loss_value(case.run(x=theta).output, grad_output)

    assert_fd(loss_x, case.x, grads.x, "x")
    if case.context is None:
        assert grads.context is None
    else:

        def loss_context(theta: F64) -> float:
            return loss_value(case.run(context=theta).output, grad_output)

        assert_fd(loss_context, case.context, grads.context, "context")
    for name in PARAM_NAMES:
        value = _param(case.params, name)
        got = _param(grads.params, name)
        if value is None:
            assert got is None, name
            continue

        def loss_param(theta: F64, name: str = name) -> float:
            return loss_value(case.run(params=case.with_param(name, theta)).output, grad_output)

        assert got is not None
        assert got.shape == value.shape
        assert_fd(loss_param, value, got, name)
    # q, k, v per head: through the package's attention on given heads
    q, k, v = result.q, result.k, result.v
    if not result.has_head_axis:
        q, k, v = q[..., None, :, :], k[..., None, :, :], v[..., None, :, :]
    heads = {"q": q, "k": k, "v": v}
    for name in ("q", "k", "v"):
        analytic = getattr(grads, name)
        if not result.has_head_axis:
            analytic = analytic[..., None, :, :]

        def loss_heads(theta: F64, name: str = name) -> float:
            arrays = {**heads, name: theta}
            out = heads_output(
                arrays["q"], arrays["k"], arrays["v"], case.params, case.mask, case.is_causal
            )
            return loss_value(out, grad_output)

        assert_fd(loss_heads, heads[name], analytic, f"{name} (per head)")


@given(mha_cases())
def test_multi_head_finite_differences(case: MhaCase) -> None:
    _check_projected_fd(case)


@given(mha_cases(single=True))
def test_self_attention_finite_differences(case: MhaCase) -> None:
    _check_projected_fd(case)


@given(mha_cases())
def test_multi_head_complex_step(case: MhaCase) -> None:
    result = case.run()
    grad_output = case.grad_output(result.output.shape)
    grads = attention_vjp(result, grad_output)
    assert grads.params is not None
    args = case.reference_args()
    np.testing.assert_allclose(mha_forward(**args).real, result.output, rtol=1e-12, atol=1e-12)
    names = ["x", *(name for name in PARAM_NAMES if args[name] is not None)]
    if case.context is not None:
        names.append("context")
    for name in names:
        want = complex_step_gradient(mha_forward, grad_output, args, name)
        got = getattr(grads, name) if name in ("x", "context") else _param(grads.params, name)
        assert_cs(want, got, name)
    head_args = {
        "q": result.q,
        "k": result.k,
        "v": result.v,
        "w_o": case.params.w_o,
        "b_o": case.params.b_o,
        "mask": case.mask,
        "is_causal": case.is_causal,
    }
    for name in ("q", "k", "v"):
        want = complex_step_gradient(heads_forward, grad_output, head_args, name)
        assert_cs(want, getattr(grads, name), f"{name} (per head)")


@pytest.mark.parametrize(("n_heads", "n_kv_heads"), [(4, 4), (4, 2), (4, 1)])
def test_gqa_cross_attention_with_biases_complex_step(n_heads: int, n_kv_heads: int) -> None:
    """The full layer: GQA, cross-attention, every bias, w_o, a batch and a padding mask."""
    rng = np.random.default_rng(n_kv_heads)
    params = AttentionParams.random(
        6, 3, 2, n_heads=n_heads, n_kv_heads=n_kv_heads, out_proj=True, bias=True, rng=rng
    )
    x, context = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 5, 6))
    mask = np.ones((2, 1, 5), dtype=bool)
    mask[1, :, 3:] = False  # the second context has 3 tokens and 2 of padding
    result = multi_head_attention(
        x, params, n_heads=n_heads, n_kv_heads=n_kv_heads, context=context, mask=mask
    )
    grad_output = rng.normal(size=result.output.shape)
    grads = attention_vjp(result, grad_output)
    assert grads.params is not None
    assert grads.k.shape == (2, n_kv_heads, 5, 3)
    np.testing.assert_array_equal(grads.k[1, :, 3:], 0.0)  # padding: no gradient
    np.testing.assert_array_equal(grads.v[1, :, 3:], 0.0)
    args: dict[str, Any] = {
        "x": x,
        "context": context,
        "n_heads": n_heads,
        "n_kv_heads": n_kv_heads,
        "mask": mask,
    }
    args.update({name: _param(params, name) for name in PARAM_NAMES})
    for name in ("x", "context", *PARAM_NAMES):
        want = complex_step_gradient(mha_forward, grad_output, args, name)
        got = getattr(grads, name) if name in ("x", "context") else _param(grads.params, name)
        assert_cs(want, got, name)


def test_self_attention_equals_one_head() -> None:
    """self_attention's gradients are multi_head_attention's with the head axis dropped."""
    rng = np.random.default_rng(3)
    params = AttentionParams.random(4, 3, 2, out_proj=True, bias=True, rng=rng)
    x = rng.normal(size=(2, 4, 4))
    single = self_attention(x, params, is_causal=True)
    multi = multi_head_attention(x, params, n_heads=1, is_causal=True)
    grad_output = rng.normal(size=single.output.shape)
    one, many = attention_vjp(single, grad_output), attention_vjp(multi, grad_output)
    assert one.q.shape == (2, 4, 3)
    for name in ("q", "k", "v"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name)[:, 0])
    np.testing.assert_array_equal(one.x, many.x)
    assert one.params is not None
    assert many.params is not None
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(_param(one.params, name), _param(many.params, name))


# ---------------------------------------------------------------------------
# Masks: exact zeros, never NaN
# ---------------------------------------------------------------------------


def test_fully_masked_rows_get_zero_gradients() -> None:
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    mask = rng.random((4, 5)) < 0.6
    mask[1] = False  # query 1 may attend to nothing
    mask[:, 4] = False  # key 4 is never attended to
    result = scaled_dot_product_attention(q, k, v, mask=mask)
    grads = attention_vjp(result, rng.normal(size=(4, 2)))
    for name in ("q", "k", "v"):
        assert np.isfinite(getattr(grads, name)).all()
    np.testing.assert_array_equal(grads.q[1], 0.0)
    np.testing.assert_array_equal(grads.k[4], 0.0)
    np.testing.assert_array_equal(grads.v[4], 0.0)


def test_bias_minus_inf_rows_get_zero_gradients() -> None:
    rng = np.random.default_rng(6)
    q, k, v = rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    bias = rng.normal(size=(3, 4))
    bias[0] = -np.inf  # no mask: the bias alone forbids every key of query 0
    bias[2, 1] = -np.inf
    result = scaled_dot_product_attention(q, k, v, bias=bias, is_causal=True)
    grads = attention_vjp(result, np.ones((3, 2)))
    assert grads.bias is not None
    np.testing.assert_array_equal(grads.q[0], 0.0)
    np.testing.assert_array_equal(grads.bias[0], 0.0)
    np.testing.assert_array_equal(grads.bias[2, 1], 0.0)
    np.testing.assert_array_equal(grads.bias[np.triu_indices(3, 1, 4)], 0.0)  # causal
    assert np.isfinite(grads.k).all()


def test_everything_masked_gives_zeros() -> None:
    rng = np.random.default_rng(7)
    q, k, v = rng.normal(size=(2, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 2))
    result = scaled_dot_product_attention(q, k, v, mask=np.zeros((2, 3), dtype=bool))
    grads = attention_vjp(result, rng.normal(size=(2, 2)))
    for name in ("q", "k", "v"):
        np.testing.assert_array_equal(getattr(grads, name), 0.0)


def test_single_allowed_key_passes_no_gradient_to_scores() -> None:
    """With one key allowed its weight is exactly 1: dS = 0, so dQ = dK = 0 exactly."""
    rng = np.random.default_rng(8)
    q, k, v = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    mask = np.eye(3, dtype=bool)
    grads = attention_vjp(scaled_dot_product_attention(q, k, v, mask=mask), np.ones((3, 2)))
    np.testing.assert_array_equal(grads.q, 0.0)
    np.testing.assert_array_equal(grads.k, 0.0)
    np.testing.assert_array_equal(grads.v, np.ones((3, 2)))


# ---------------------------------------------------------------------------
# Broadcasting and empty arrays
# ---------------------------------------------------------------------------


def test_broadcast_inputs_sum_their_gradients() -> None:
    """A key and value shared by a batch of queries get the sum of the per-batch gradients."""
    rng = np.random.default_rng(9)
    q, k, v = rng.normal(size=(3, 2, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    grad_output = rng.normal(size=(3, 2, 3))
    grads = attention_vjp(scaled_dot_product_attention(q, k, v), grad_output)
    assert grads.k.shape == (5, 4)
    assert grads.v.shape == (5, 3)
    per_batch = [
        attention_vjp(scaled_dot_product_attention(q[b], k, v), grad_output[b]) for b in range(3)
    ]
    np.testing.assert_allclose(grads.k, sum(g.k for g in per_batch), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grads.v, sum(g.v for g in per_batch), rtol=1e-13, atol=1e-15)
    for b in range(3):
        np.testing.assert_allclose(grads.q[b], per_batch[b].q, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "v_shape"),
    [((0, 3), (2, 3), (2, 4)), ((0, 2, 3), (2, 3), (2, 4)), ((2, 0, 3), (2, 2, 3), (1, 2, 4))],
)
def test_empty_inputs(
    q_shape: tuple[int, ...], k_shape: tuple[int, ...], v_shape: tuple[int, ...]
) -> None:
    q, k, v = np.ones(q_shape), np.ones(k_shape), np.ones(v_shape)
    result = scaled_dot_product_attention(q, k, v)
    grads = attention_vjp(result, np.zeros(result.output.shape))
    assert grads.q.shape == q_shape
    assert grads.k.shape == k_shape
    assert grads.v.shape == v_shape
    np.testing.assert_array_equal(grads.k, 0.0)
    np.testing.assert_array_equal(grads.v, 0.0)


def test_empty_batch_multi_head() -> None:
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, bias=True, rng=0)
    result = multi_head_attention(np.zeros((0, 3, 4)), params, n_heads=2)
    grads = attention_vjp(result, np.zeros(result.output.shape))
    assert grads.x is not None
    assert grads.x.shape == (0, 3, 4)
    assert grads.params is not None
    np.testing.assert_array_equal(grads.params.w_q, 0.0)
    np.testing.assert_array_equal(grads.params.b_o, 0.0)


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@given(case=sdpa_cases())
def test_sdpa_low_precision(dtype: type[np.floating[Any]], case: SdpaCase) -> None:
    """float16/32 gradients are the float64 ones of the same values, rounded once."""
    low = {name: getattr(case, name).astype(dtype) for name in ("q", "k", "v")}
    bias = None if case.bias is None else case.bias.astype(dtype)
    result = case.run(**low, bias=bias)
    grad_output = case.grad_output(result.output.shape).astype(dtype)
    grads = attention_vjp(result, grad_output)
    wide = {name: arr.astype(np.float64) for name, arr in low.items()}
    wide_bias = None if bias is None else bias.astype(np.float64)
    exact = attention_vjp(case.run(**wide, bias=wide_bias), grad_output.astype(np.float64))
    names = ("q", "k", "v") if bias is None else ("q", "k", "v", "bias")
    for name in names:
        got = getattr(grads, name)
        assert got.dtype == dtype, name
        want = getattr(exact, name).astype(np.float64)
        assert_close(got, want, dtype=dtype, err_msg=name)


def _float64_twin(result: ProjectedAttention) -> ProjectedAttention:
    """The float64 result with the same stored (float16/32) intermediates as ``result``."""

    def wide(arr: NDArray[Any]) -> F64:
        return arr.astype(np.float64)

    def maybe(arr: NDArray[Any] | None) -> F64 | None:
        return None if arr is None else wide(arr)

    old = result.params
    params = AttentionParams(
        w_q=wide(old.w_q),
        w_k=wide(old.w_k),
        w_v=wide(old.w_v),
        w_o=maybe(old.w_o),
        b_q=maybe(old.b_q),
        b_k=maybe(old.b_k),
        b_v=maybe(old.b_v),
        b_o=maybe(old.b_o),
    )
    group = result.n_heads // result.n_kv_heads
    weights = scaled_dot_product_attention(
        wide(result.q),
        np.repeat(wide(result.k), group, axis=-3),
        np.repeat(wide(result.v), group, axis=-3),
        mask=None if result.mask is None else result.mask[..., None, :, :],
    ).weights
    return dataclasses.replace(
        result,
        output=wide(result.output),
        weights=weights,
        q=wide(result.q),
        k=wide(result.k),
        v=wide(result.v),
        head_outputs=wide(result.head_outputs),
        x=wide(result.x),
        context=None if result.context is None else wide(result.context),
        params=params,
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("cross", [False, True])
def test_multi_head_low_precision(dtype: type[np.floating[Any]], cross: bool) -> None:
    rng = np.random.default_rng(11)
    params = AttentionParams.random(
        6, 2, 3, n_heads=4, n_kv_heads=2, out_proj=True, bias=True, rng=rng, dtype=dtype
    )
    x = rng.uniform(-1, 1, (2, 3, 6)).astype(dtype)
    context = rng.uniform(-1, 1, (2, 4, 6)).astype(dtype) if cross else None
    mask = rng.random((3, 4 if cross else 3)) < 0.7
    result = multi_head_attention(x, params, n_heads=4, n_kv_heads=2, context=context, mask=mask)
    grad_output = rng.normal(size=result.output.shape).astype(dtype)
    grads = attention_vjp(result, grad_output)
    exact = attention_vjp(_float64_twin(result), grad_output.astype(np.float64))
    assert grads.params is not None
    assert exact.params is not None
    fields: dict[str, tuple[Any, Any]] = {
        name: (getattr(grads, name), getattr(exact, name)) for name in ("q", "k", "v", "x")
    }
    if cross:
        fields["context"] = (grads.context, exact.context)
    for name in PARAM_NAMES:
        fields[name] = (_param(grads.params, name), _param(exact.params, name))
    for name, (got, want) in fields.items():
        assert got.dtype == dtype, name
        assert_close(got, want, dtype=dtype, err_msg=name)
    assert grads.params.dtype == dtype


def test_integer_grad_output_is_float64() -> None:
    ex = gram_example()
    result = scaled_dot_product_attention(ex.x, ex.x, ex.x)
    ints = attention_vjp(result, np.ones((3, 4), dtype=np.int64))
    floats = attention_vjp(result, np.ones((3, 4)))
    np.testing.assert_array_equal(ints.q, floats.q)
    assert ints.q.dtype == np.float64


def test_float16_overflow_is_reported() -> None:
    """A float16 gradient beyond 65504 raises instead of returning inf."""
    ones = np.ones((8, 2), dtype=np.float16)
    result = scaled_dot_product_attention(ones, ones[:1], ones[:1])
    with pytest.raises(FloatingPointError, match="float16"):
        attention_vjp(result, np.full((8, 2), 30000.0, dtype=np.float16))


def test_float32_overflow_is_reported_without_warnings() -> None:
    """Gradients summed beyond float32's range raise; no RuntimeWarning escapes."""
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, bias=True, rng=0)
    params32 = AttentionParams(
        **{name: getattr(params, name).astype(np.float32) for name in PARAM_NAMES}
    )
    x = np.ones((8, 4), dtype=np.float32)
    result = multi_head_attention(x, params32, n_heads=2)
    huge = np.full(result.output.shape, 3e38, dtype=np.float32)  # b_o's gradient: 8 * 3e38
    with pytest.raises(FloatingPointError, match="float32"):
        attention_vjp(result, huge)


# ---------------------------------------------------------------------------
# Bad input, immutability
# ---------------------------------------------------------------------------


def _gram_result() -> Attention:
    x = gram_example().x
    return scaled_dot_product_attention(x, x, x)


def test_grad_output_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"grad_output \(3, 3\), output \(3, 4\)"):
        attention_vjp(_gram_result(), np.ones((3, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_grad_output_not_finite(bad: float) -> None:
    grad_output = np.ones((3, 4))
    grad_output[1, 2] = bad
    with pytest.raises(ValueError, match=r"grad_output.*\(1, 2\)"):
        attention_vjp(_gram_result(), grad_output)


@pytest.mark.parametrize(
    "bad",
    [
        np.ones((3, 4), dtype=np.float32),
        np.ones((3, 4), dtype=bool),
        np.ones((3, 4), dtype=complex),
        None,
        "grad",
        np.ma.masked_array(np.ones((3, 4))),
    ],
)
def test_grad_output_bad_type(bad: object) -> None:
    with pytest.raises(TypeError, match="grad_output"):
        attention_vjp(_gram_result(), bad)  # type: ignore[call-overload]


def test_grad_output_dtype_names_both() -> None:
    x = gram_example().x.astype(np.float32)
    result = scaled_dot_product_attention(x, x, x)
    with pytest.raises(TypeError, match=r"grad_output float64, output float32"):
        attention_vjp(result, np.ones((3, 4)))
    with pytest.raises(TypeError, match="grad_output"):
        attention_vjp(result, np.ones((3, 4), dtype=np.int64))  # int -> float64 != float32


@pytest.mark.parametrize("bad", [None, np.ones((3, 4)), "result", object()])
def test_result_must_be_an_attention_result(bad: object) -> None:
    with pytest.raises(TypeError, match="result must be an Attention"):
        attention_vjp(bad, np.ones((3, 4)))  # type: ignore[call-overload]


def test_inputs_are_not_modified_and_layout_does_not_matter() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    grad_output = np.asfortranarray(np.random.default_rng(12).normal(size=(3, 4)))
    before = grad_output.copy()
    weights = result.weights.copy()
    grads = attention_vjp(result, grad_output)
    np.testing.assert_array_equal(grad_output, before)
    np.testing.assert_array_equal(result.weights, weights)
    reversed_rows = np.ascontiguousarray(grad_output[::-1])[::-1]  # negative strides
    again = attention_vjp(result, reversed_rows)
    np.testing.assert_array_equal(grads.q, again.q)
    assert grads.params is not None
    assert again.params is not None
    np.testing.assert_array_equal(grads.params.w_k, again.params.w_k)


def test_grads_are_frozen() -> None:
    grads = attention_vjp(_gram_result(), np.ones((3, 4)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        grads.q = np.zeros((3, 4))  # type: ignore[misc]
    ex = fluffy_blue_creature()
    projected = attention_vjp(self_attention(ex.x, ex.params), np.ones((3, 4)))
    assert projected.params is not None
    assert not projected.params.w_q.flags.writeable
    assert math.isfinite(float(projected.params.w_q.sum()))


# ---------------------------------------------------------------------------
# The other backward passes: norms, linear, log-softmax
# ---------------------------------------------------------------------------
#
# Each is checked against central differences of the package's own forward pass
# (relative 1e-7) and against the complex-step derivative of the loop reference of
# tests/reference/grad_ref.py (1e-12). Shapes and options are drawn; values come from
# a seed so that no row is degenerate.

VJP_FD_RTOL = 1e-7
VJP_CS_TOL = 1e-12
VJP_FD_STEP = 1e-3  # fourth-order stencil: truncation h^4 L^(5) / 30, rounding eps L / h


def fd_gradient4(loss: Callable[[F64], float], theta: NDArray[Any]) -> F64:
    """Fourth-order central differences for every entry.

    ``(-L(t + 2h) + 8 L(t + h) - 8 L(t - h) + L(t - 2h)) / 12h``: the truncation error is
    ``h^4 L^(5) / 30``, so ``h = 1e-3`` keeps both it and the rounding error
    (``eps |L| / h``) near ``1e-13``, where the two-point stencil of :func:`fd_gradient`
    bottoms out near ``1e-10`` and fails 1e-7 on sharply curved rows.
    """
    base = np.array(theta, dtype=np.float64)
    grad = np.zeros(base.shape, dtype=np.float64)
    h = VJP_FD_STEP
    for index in np.ndindex(*base.shape):
        values = []
        for step in (2.0, 1.0, -1.0, -2.0):
            moved = base.copy()
            moved[index] += step * h
            values.append(loss(moved))
        grad[index] = (-values[0] + 8.0 * values[1] - 8.0 * values[2] + values[3]) / (12.0 * h)
    return grad


def assert_vjp_fd(
    loss: Callable[[F64], float], theta: NDArray[Any], analytic: Any, key: str
) -> None:
    err = fd_error(fd_gradient4(loss, theta), np.asarray(analytic))
    assert err <= VJP_FD_RTOL, f"{key}: relative error {err:.3g} against finite differences"


def assert_vjp_cs(want: F64, got: Any, key: str) -> None:
    """Relative to the gradient's largest entry (at least 1): 1e-12."""
    got_arr = np.asarray(got, dtype=np.float64)
    err = float(np.max(np.abs(got_arr - want), initial=0.0)) / max(
        1.0, float(np.max(np.abs(want), initial=0.0))
    )
    assert err <= VJP_CS_TOL, f"{key}: error {err:.3g} against the complex step"


def _seeded(seed: int, *shape: int) -> F64:
    return np.random.default_rng(seed).normal(size=shape)


def _spread_rows(seed: int, *shape: int) -> F64:
    """Rows ``linspace(-1, 1, d) + 0.3 noise``: no row nearly constant (d > 1).

    A row of spread ``s`` has curvature ``1/s^2``: rows within ``1e-2`` of constant
    make central differences, not the gradient, wrong by more than ``1e-7``.
    """
    return np.linspace(-1.0, 1.0, shape[-1]) + 0.3 * _seeded(seed, *shape)


shapes_1d_plus = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


@given(
    shapes_1d_plus,
    st.booleans(),
    st.booleans(),
    st.sampled_from([1e-5, 0.0, 0.5]),
    st.integers(0, 99),
)
def test_layer_norm_vjp_against_fd_and_complex_step(
    shape: tuple[int, ...], with_gamma: bool, with_beta: bool, eps: float, seed: int
) -> None:
    d = shape[-1]
    if d == 1 and eps == 0.0:
        eps = 1e-5  # a row of one entry is constant: variance 0
    x = _spread_rows(seed, *shape)
    gamma = _seeded(seed + 1, d) if with_gamma else None
    beta = _seeded(seed + 2, d) if with_beta else None
    g = _seeded(seed + 3, *shape)
    grads = layer_norm_vjp(x, g, gamma, eps=eps)
    assert isinstance(grads, LayerNormGrads)
    assert grads.x.shape == shape
    assert grads.gamma.shape == grads.beta.shape == (d,)

    def loss(xx: F64, gg: F64 | None = gamma, bb: F64 | None = beta) -> float:
        return loss_value(layer_norm(xx, gg, bb, eps=eps), g)

    assert_vjp_fd(loss, x, grads.x, "layer_norm x")
    assert_vjp_fd(
        lambda t: loss(x, t, beta),
        np.ones(d) if gamma is None else gamma,
        grads.gamma,
        "layer_norm gamma",
    )
    assert_vjp_fd(
        lambda t: loss(x, gamma, t),
        np.zeros(d) if beta is None else beta,
        grads.beta,
        "layer_norm beta",
    )
    args = {
        "x": x,
        "gamma": np.ones(d) if gamma is None else gamma,
        "beta": np.zeros(d),
        "eps": eps,
    }
    for name in ("x", "gamma", "beta"):
        want = complex_step_gradient(layer_norm_forward, g, args, name)
        assert_vjp_cs(want, getattr(grads, name), f"layer_norm {name}")
    mean = x.mean(axis=-1)
    np.testing.assert_allclose(grads.mean, mean, rtol=1e-14, atol=1e-15)
    rstd = 1.0 / np.sqrt(((x - mean[..., None]) ** 2).mean(axis=-1) + eps)
    np.testing.assert_allclose(grads.rstd, rstd, rtol=1e-13)


@given(shapes_1d_plus, st.booleans(), st.sampled_from([1e-6, 0.0, 0.5]), st.integers(0, 99))
def test_rms_norm_vjp_against_fd_and_complex_step(
    shape: tuple[int, ...], with_gamma: bool, eps: float, seed: int
) -> None:
    d = shape[-1]
    x = _spread_rows(seed, *shape)
    gamma = _seeded(seed + 1, d) if with_gamma else None
    g = _seeded(seed + 3, *shape)
    grads = rms_norm_vjp(x, g, gamma, eps=eps)
    assert isinstance(grads, RMSNormGrads)

    def loss(xx: F64, gg: F64 | None = gamma) -> float:
        return loss_value(rms_norm(xx, gg, eps=eps), g)

    assert_vjp_fd(loss, x, grads.x, "rms_norm x")
    assert_vjp_fd(
        lambda t: loss(x, t), np.ones(d) if gamma is None else gamma, grads.gamma, "rms_norm gamma"
    )
    args = {"x": x, "gamma": np.ones(d) if gamma is None else gamma, "eps": eps}
    for name in ("x", "gamma"):
        want = complex_step_gradient(rms_norm_forward, g, args, name)
        assert_vjp_cs(want, getattr(grads, name), f"rms_norm {name}")


@given(shapes_1d_plus, st.data(), st.sampled_from([None, 1e-12, 0.7]), st.integers(0, 99))
def test_l2_normalize_vjp_against_fd_and_complex_step(
    shape: tuple[int, ...], data: st.DataObject, eps: float | None, seed: int
) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    last = tuple(np.moveaxis(np.empty(shape), axis, -1).shape)
    x = np.moveaxis(_spread_rows(seed, *last), -1, axis)  # no vector near 0
    if eps == 0.7:  # some vectors shorter than eps: the x / eps branch
        x = x * np.where(np.random.default_rng(seed).random(shape) < 0.5, 0.2, 1.0)
        norms = np.sqrt(np.sum(x * x, axis=axis))
        if np.any(np.abs(norms - eps) < 1e-2):  # too close to the kink for differences
            return
    g = _seeded(seed + 3, *shape)
    got = l2_normalize_vjp(x, g, axis=axis, eps=eps)
    assert_vjp_fd(
        lambda t: loss_value(l2_normalize(t, axis=axis, eps=eps), g), x, got, "l2_normalize x"
    )

    def forward(x: Any) -> Any:
        return l2_normalize_forward(x, axis=axis, eps=eps)

    assert_vjp_cs(complex_step_gradient(forward, g, {"x": x}, "x"), got, "l2_normalize x")


@given(
    hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 99),
)
def test_linear_vjp_against_fd_and_complex_step(
    batch: tuple[int, ...], d_in: int, d_out: int, seed: int
) -> None:
    x = _seeded(seed, *batch, d_in)
    w = _seeded(seed + 1, d_in, d_out)
    b = _seeded(seed + 2, d_out)
    g = _seeded(seed + 3, *batch, d_out)
    grads = linear_vjp(x, w, g)
    assert isinstance(grads, LinearGrads)
    assert_vjp_fd(lambda t: loss_value(linear(t, w, b), g), x, grads.x, "linear x")
    assert_vjp_fd(lambda t: loss_value(linear(x, t, b), g), w, grads.weight, "linear weight")
    assert_vjp_fd(lambda t: loss_value(linear(x, w, t), g), b, grads.bias, "linear bias")
    args = {"x": x, "weight": w, "bias": b}
    for field, name in (("x", "x"), ("weight", "weight"), ("bias", "bias")):
        want = complex_step_gradient(linear_forward, g, args, name)
        assert_vjp_cs(want, getattr(grads, field), f"linear {field}")


@given(shapes_1d_plus, st.data(), st.integers(0, 99))
def test_log_softmax_vjp_against_fd_and_complex_step(
    shape: tuple[int, ...], data: st.DataObject, seed: int
) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = 3.0 * _seeded(seed, *shape)
    g = _seeded(seed + 3, *shape)
    got = log_softmax_vjp(log_softmax(x, axis=axis), g, axis=axis)
    assert_vjp_fd(lambda t: loss_value(log_softmax(t, axis=axis), g), x, got, "log_softmax x")

    def forward(x: Any) -> Any:
        return log_softmax_forward(x, axis=axis)

    assert_vjp_cs(complex_step_gradient(forward, g, {"x": x}, "x"), got, "log_softmax x")


X34 = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
G34 = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, -0.5, 0.25], [0.0, 1.5, 1.0, -2.0]])
W43 = np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 0.5], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])


def _all_vjps(
    x: NDArray[Any], g: NDArray[Any], w: NDArray[Any], gw: NDArray[Any]
) -> dict[str, Any]:
    """Every new backward pass on one input, as {name: array}."""
    ln = layer_norm_vjp(x, g, np.ones(4, dtype=x.dtype))
    rn = rms_norm_vjp(x, g, np.ones(4, dtype=x.dtype))
    lin = linear_vjp(x, w, gw)
    return {
        "layer_norm x": ln.x,
        "layer_norm gamma": ln.gamma,
        "layer_norm beta": ln.beta,
        "layer_norm mean": ln.mean,
        "layer_norm rstd": ln.rstd,
        "rms_norm x": rn.x,
        "rms_norm gamma": rn.gamma,
        "l2_normalize x": l2_normalize_vjp(x, g),
        "linear x": lin.x,
        "linear weight": lin.weight,
        "linear bias": lin.bias,
        "log_softmax x": log_softmax_vjp(log_softmax(x), g),
    }


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_new_vjps_low_precision_keep_dtype(dtype: type[np.floating[Any]]) -> None:
    gw = G34[:, :3]
    want = _all_vjps(X34, G34, W43, gw)
    got = _all_vjps(X34.astype(dtype), G34.astype(dtype), W43.astype(dtype), gw.astype(dtype))
    rtol = 2e-3 if dtype == np.float16 else 2e-6
    for name, arr in got.items():
        assert arr.dtype == dtype, name
        np.testing.assert_allclose(arr, want[name], rtol=rtol, atol=rtol, err_msg=name)


def test_new_vjp_results_are_read_only_and_frozen() -> None:
    for name, arr in _all_vjps(X34, G34, W43, G34[:, :3]).items():
        if name.startswith(("layer_norm", "rms_norm", "linear")):
            assert not arr.flags.writeable, name
    grads = linear_vjp(X34, W43, G34[:, :3])
    with pytest.raises(dataclasses.FrozenInstanceError):
        grads.x = X34  # type: ignore[misc]


def test_new_vjps_integer_input_is_float64_and_inputs_unchanged() -> None:
    x = np.array([[0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]])
    g = np.array([[1, 0, 0, 0]] * 3)
    before = x.copy()
    assert layer_norm_vjp(x, g).x.dtype == np.float64
    assert rms_norm_vjp(x, g).x.dtype == np.float64
    assert l2_normalize_vjp(x, g).dtype == np.float64
    assert linear_vjp(x, np.eye(4, dtype=int), g).weight.dtype == np.float64
    np.testing.assert_array_equal(x, before)


def test_layer_norm_vjp_gradient_is_centred_and_orthogonal() -> None:
    grads = layer_norm_vjp(X34, G34, eps=0.0)
    np.testing.assert_allclose(grads.x.sum(axis=-1), 0.0, atol=1e-15)
    x_hat = layer_norm(X34, eps=0.0)
    np.testing.assert_allclose(np.sum(grads.x * x_hat, axis=-1), 0.0, atol=1e-14)


@pytest.mark.parametrize("scale", [1e-300, 1e300, 1e-150, 1e150])
def test_norm_vjps_scale_without_overflow(scale: float) -> None:
    """The gradient of a scale-free map at s x is the gradient at x divided by s."""
    x = _spread_rows(0, 3, 4)
    g = _seeded(1, 3, 4)
    np.testing.assert_allclose(
        layer_norm_vjp(scale * x, g, eps=0.0).x * scale,
        layer_norm_vjp(x, g, eps=0.0).x,
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        rms_norm_vjp(scale * x, g, eps=0.0).x * scale, rms_norm_vjp(x, g, eps=0.0).x, rtol=1e-13
    )
    np.testing.assert_allclose(
        l2_normalize_vjp(scale * x, g) * scale, l2_normalize_vjp(x, g), rtol=1e-13
    )


def test_norm_vjps_with_eps_at_extreme_rows() -> None:
    """Rows far below eps: the forward pass is x / sqrt(eps) (or x / eps), and so is dx."""
    x = 1e-200 * _spread_rows(0, 2, 4)
    g = _seeded(1, 2, 4)
    grads = layer_norm_vjp(x, g, eps=1e-5)
    np.testing.assert_allclose(
        grads.x, (g - g.mean(-1, keepdims=True)) / np.sqrt(1e-5), rtol=1e-12
    )
    np.testing.assert_allclose(grads.rstd, 1.0 / np.sqrt(1e-5), rtol=1e-15)
    np.testing.assert_allclose(rms_norm_vjp(x, g, eps=1e-6).x, g / np.sqrt(1e-6), rtol=1e-12)
    np.testing.assert_allclose(l2_normalize_vjp(x, g, eps=1e-12), g / 1e-12, rtol=1e-15)
    zero = np.zeros((2, 4))
    np.testing.assert_array_equal(l2_normalize_vjp(zero, g, eps=0.5), g / 0.5)
    constant = np.full((2, 4), 1e300)  # eps / 4^e underflows: rstd is still 1 / sqrt(eps)
    np.testing.assert_allclose(layer_norm_vjp(constant, g).rstd, 1.0 / np.sqrt(1e-5), rtol=1e-15)


def test_log_softmax_vjp_minus_inf_and_huge_grad() -> None:
    log_p = log_softmax([0.0, -np.inf, 1.0])
    got = log_softmax_vjp(log_p, [1.0, 2.0, 3.0])
    p = np.exp(log_p)
    np.testing.assert_allclose(got, np.array([1.0, 2.0, 3.0]) - 6.0 * p, rtol=1e-15)
    assert got[1] == 2.0  # p = 0 exactly
    huge = log_softmax_vjp(np.log([0.5, 0.5]), [1.5e308, 1.5e308])  # the sum overflows
    np.testing.assert_allclose(huge, [0.0, 0.0], atol=1e292)
    small = log_softmax_vjp(np.log([0.5, 0.5]), [1.5e308, -1.5e308])
    np.testing.assert_allclose(small, [1.5e308, -1.5e308], rtol=1e-15)


def test_float16_vjp_overflow_is_reported() -> None:
    x = np.array([[0.0, 1e-3, 2e-3, 3e-3]], dtype=np.float16)
    with pytest.raises(FloatingPointError, match="layer_norm_vjp"):
        layer_norm_vjp(x, np.full((1, 4), 6e4, dtype=np.float16), eps=0.0)
    w = np.full((4, 4), 300.0, dtype=np.float16)
    with pytest.raises(FloatingPointError, match="linear_vjp"):
        linear_vjp(np.ones((1, 4), dtype=np.float16), w, np.full((1, 4), 300.0, dtype=np.float16))


def test_new_vjps_empty_batch() -> None:
    x = np.zeros((0, 4))
    assert layer_norm_vjp(x, x).x.shape == (0, 4)
    np.testing.assert_array_equal(layer_norm_vjp(x, x).gamma, np.zeros(4))
    assert rms_norm_vjp(x, x).gamma.shape == (4,)
    lin = linear_vjp(x, W43, np.zeros((0, 3)))
    np.testing.assert_array_equal(lin.weight, np.zeros((4, 3)))
    assert log_softmax_vjp(x, x).shape == (0, 4)


# One routing case per public argument of the new functions: the shared checks of
# _checks.py are tested once in tests/test_checks.py; here, that each argument reaches
# them and the message names it.
_NAN34 = np.where(X34 == 1.0, np.nan, 0.0)
_BAD_INPUTS: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    ("layer_norm x", lambda: layer_norm_vjp(_NAN34, G34), ValueError, "x must be finite"),
    (
        "layer_norm grad",
        lambda: layer_norm_vjp(X34, G34[:2]),
        ValueError,
        "grad must have the shape",
    ),
    (
        "layer_norm gamma",
        lambda: layer_norm_vjp(X34, G34, np.ones(3)),
        ValueError,
        "gamma must have shape",
    ),
    ("layer_norm eps", lambda: layer_norm_vjp(X34, G34, eps=-1.0), ValueError, "eps"),
    ("rms_norm x", lambda: rms_norm_vjp(X34 > 0, G34), TypeError, "x"),
    (
        "rms_norm grad",
        lambda: rms_norm_vjp(X34, G34.astype(np.float32)),
        TypeError,
        "grad must have the dtype",
    ),
    ("rms_norm gamma", lambda: rms_norm_vjp(X34, G34, np.ones(4, np.float32)), TypeError, "gamma"),
    ("rms_norm eps", lambda: rms_norm_vjp(X34, G34, eps=np.inf), ValueError, "eps"),
    ("l2 x", lambda: l2_normalize_vjp(np.zeros((3, 4)), G34), ValueError, "x has a zero vector"),
    (
        "l2 grad",
        lambda: l2_normalize_vjp(X34, np.where(G34 > 1, np.inf, G34)),
        ValueError,
        "grad must be finite",
    ),
    ("l2 axis", lambda: l2_normalize_vjp(X34, G34, axis=2), np.exceptions.AxisError, "axis"),
    ("l2 eps", lambda: l2_normalize_vjp(X34, G34, eps=0.0), ValueError, "eps"),
    (
        "linear x",
        lambda: linear_vjp(X34[:, :3], W43, G34[:, :3]),
        ValueError,
        "x's last dimension",
    ),
    (
        "linear weight",
        lambda: linear_vjp(X34, W43.ravel(), G34[:, :3]),
        ValueError,
        "weight must be 2-D",
    ),
    (
        "linear grad",
        lambda: linear_vjp(X34, W43, G34),
        ValueError,
        "grad must have the shape of y",
    ),
    (
        "log_softmax log_p",
        lambda: log_softmax_vjp(np.full(3, np.inf), np.ones(3)),
        ValueError,
        "log_p must be finite",
    ),
    (
        "log_softmax grad",
        lambda: log_softmax_vjp(np.zeros(3), np.ones(4)),
        ValueError,
        "grad must have the shape",
    ),
    (
        "log_softmax axis",
        lambda: log_softmax_vjp(np.zeros(3), np.ones(3), axis=1),
        np.exceptions.AxisError,
        "axis",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in _BAD_INPUTS], ids=[c[0] for c in _BAD_INPUTS]
)
def test_new_vjps_route_bad_input(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
