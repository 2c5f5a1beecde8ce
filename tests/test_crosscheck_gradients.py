"""Cross-check of :func:`attention_from_scratch.self_attention.attention_vjp` against torch.

torch is not a dependency: every test starts with ``pytest.importorskip("torch")`` and
is marked ``crosscheck`` (``nox -s crosscheck``, or ``pytest -m crosscheck`` in a venv
with torch). ``torch.autograd`` differentiates the same computation in float64 --
``torch.nn.functional.scaled_dot_product_attention`` for attention on given ``q``,
``k``, ``v`` (with ``enable_gqa`` for grouped heads), explicit torch operations for the
projections and ``w_o`` with the same weights -- and every gradient must agree to 1e-9.

Layout differences handled here:

* torch's SDPA takes either a boolean ``attn_mask`` or a float one (added to the
  scores), and refuses ``attn_mask`` together with ``is_causal``: the causal triangle
  and the mask are combined here, and a bias with a mask becomes ``where(mask, bias,
  -inf)``;
* the package's weights are ``(in, out)``, so ``x @ w_q`` is written as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import ArrayLike, NDArray

from attention_from_scratch.norms import l2_normalize_vjp, layer_norm_vjp, rms_norm_vjp
from attention_from_scratch.projections import AttentionParams, linear_vjp
from attention_from_scratch.self_attention import (
    attention_vjp,
    causal_mask,
    multi_head_attention,
    scaled_dot_product_attention,
    self_attention,
)
from attention_from_scratch.softmax import log_softmax, log_softmax_vjp
from tests.tolerances import DERIVATIVE, Tolerance, assert_close

pytestmark = pytest.mark.crosscheck

F64 = NDArray[np.float64]
PARAM_NAMES = ("w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")


def _normal(seed: int, *shape: int) -> F64:
    return np.random.default_rng(seed).normal(size=shape)


def _t(torch: Any, a: ArrayLike, *, grad: bool = False) -> Any:
    """A float64 (or bool) torch tensor holding a copy of ``a``."""
    tensor = torch.from_numpy(np.array(a, copy=True))
    if grad:
        tensor.requires_grad_(True)
    return tensor


def _np(tensor: Any) -> NDArray[Any]:
    return np.asarray(tensor.detach().numpy())


def _attn_mask(
    mask: NDArray[np.bool_] | None,
    bias: F64 | None,
    is_causal: bool,
    n: int,
    m: int,
) -> NDArray[Any] | None:
    """The single ``attn_mask`` torch's SDPA takes for mask AND causal, plus bias."""
    allowed = None if mask is None else mask
    if is_causal:
        triangle = causal_mask(n, m)
        allowed = triangle if allowed is None else allowed & triangle
    if bias is None:
        return allowed
    if allowed is None:
        return bias
    return np.where(allowed, bias, -np.inf)


@pytest.mark.parametrize(
    ("case", "is_causal", "scale"),
    [
        ("plain", False, None),
        ("mask", False, None),
        ("mask", True, None),
        ("bias", False, 0.7),
        ("bias", True, None),
        ("mask+bias", True, -1.3),
        ("broadcast", False, None),
    ],
)
def test_sdpa_gradients_match_torch(case: str, is_causal: bool, scale: float | None) -> None:
    torch = pytest.importorskip("torch")
    n, m, d_k, d_v = 4, 5, 3, 2
    q, k, v = _normal(1, 2, 3, n, d_k), _normal(2, 2, 3, m, d_k), _normal(3, 2, 3, m, d_v)
    if case == "broadcast":  # one key/value set shared by every batch entry, q per head
        k, v, q = k[0, 0], v[0, 0], q[:, :1]
    mask = None
    bias = None
    if "mask" in case:
        mask = np.random.default_rng(4).random((n, m)) < 0.6
        mask[1] = False  # a query with no key allowed
    if "bias" in case:
        bias = _normal(5, 3, n, m)
        bias[0, 2, 1] = -np.inf
    result = scaled_dot_product_attention(
        q, k, v, mask=mask, bias=bias, is_causal=is_causal, scale=scale
    )
    grad_output = _normal(6, *result.output.shape)
    grads = attention_vjp(result, grad_output)

    tq, tk, tv = (_t(torch, a, grad=True) for a in (q, k, v))
    attn = _attn_mask(mask, bias, is_causal, n, m)
    t_attn = None
    if attn is not None:
        t_attn = _t(torch, attn, grad=attn.dtype != np.bool_)
    batch = result.output.shape[:-2]
    out = torch.nn.functional.scaled_dot_product_attention(
        tq.expand(*batch, n, d_k),
        tk.expand(*batch, m, d_k),
        tv.expand(*batch, m, d_v),
        attn_mask=t_attn,
        scale=scale,
    )
    assert_close(result.output, _np(out), tol=DERIVATIVE, err_msg="output")
    (out * _t(torch, grad_output)).sum().backward()
    for name, tensor in (("q", tq), ("k", tk), ("v", tv)):
        assert_close(getattr(grads, name), _np(tensor.grad), tol=DERIVATIVE, err_msg=name)
    if bias is not None:
        assert t_attn is not None  # the float attn_mask: the bias, -inf where masked
        assert t_attn.shape == bias.shape
        assert_close(grads.bias, _np(t_attn.grad), tol=DERIVATIVE, err_msg="bias")


@pytest.mark.parametrize(("n_heads", "n_kv_heads"), [(4, 2), (4, 1), (6, 3)])
def test_sdpa_grouped_query_heads_match_torch(n_heads: int, n_kv_heads: int) -> None:
    """Key/value heads shared by several query heads: torch's ``enable_gqa``."""
    torch = pytest.importorskip("torch")
    group = n_heads // n_kv_heads
    q = _normal(7, 2, n_heads, 3, 4)
    k, v = _normal(8, 2, n_kv_heads, 5, 4), _normal(9, 2, n_kv_heads, 5, 3)
    # the package's layout: query head i = j g + r grouped with key/value head j
    result = scaled_dot_product_attention(
        q.reshape(2, n_kv_heads, group, 3, 4), k[:, :, None], v[:, :, None], is_causal=True
    )
    grad_output = _normal(10, *result.output.shape)
    grads = attention_vjp(result, grad_output)
    tq, tk, tv = (_t(torch, a, grad=True) for a in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, is_causal=True, enable_gqa=True
    )
    assert_close(result.output.reshape(out.shape), _np(out), tol=DERIVATIVE, err_msg="output")
    (out * _t(torch, grad_output.reshape(out.shape))).sum().backward()
    assert_close(grads.q.reshape(q.shape), _np(tq.grad), tol=DERIVATIVE, err_msg="q")
    assert_close(grads.k[:, :, 0], _np(tk.grad), tol=DERIVATIVE, err_msg="k")
    assert_close(grads.v[:, :, 0], _np(tv.grad), tol=DERIVATIVE, err_msg="v")


def _torch_layer(
    torch: Any,
    x: Any,
    context: Any,
    weights: dict[str, Any],
    *,
    n_heads: int,
    n_kv_heads: int,
    mask: NDArray[np.bool_] | None,
    is_causal: bool,
) -> tuple[Any, dict[str, Any]]:
    """Multi-head attention from torch operations; returns the output and the head tensors."""

    def project(rows: Any, w: str, b: str, heads: int) -> Any:
        out = rows @ weights[w]
        if b in weights:
            out = out + weights[b]
        *batch, n, width = out.shape
        split = out.reshape(*batch, n, heads, width // heads).transpose(-3, -2)
        split.retain_grad()
        return split  # (..., heads, n, d)

    keys = x if context is None else context
    q = project(x, "w_q", "b_q", n_heads)
    k = project(keys, "w_k", "b_k", n_kv_heads)
    v = project(keys, "w_v", "b_v", n_kv_heads)
    n, m = q.shape[-2], k.shape[-2]
    allowed = _attn_mask(mask, None, is_causal, n, m)
    t_mask = None if allowed is None else _t(torch, allowed)[..., None, :, :]
    heads = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=t_mask, enable_gqa=n_heads != n_kv_heads
    )  # (..., h, n, d_v)
    merged = heads.transpose(-3, -2).reshape(*heads.shape[:-3], n, -1)  # (..., n, h d_v)
    out = merged
    if "w_o" in weights:
        out = merged @ weights["w_o"]
        if "b_o" in weights:
            out = out + weights["b_o"]
    return out, {"q": q, "k": k, "v": v}


@pytest.mark.parametrize(
    ("n_heads", "n_kv_heads", "cross", "out_proj", "bias", "is_causal"),
    [
        (4, 4, False, True, True, False),
        (4, 2, False, True, True, True),
        (4, 1, True, True, True, False),
        (2, 2, True, False, True, False),
        (3, 1, False, True, False, True),
    ],
)
def test_multi_head_gradients_match_torch(
    n_heads: int, n_kv_heads: int, cross: bool, out_proj: bool, bias: bool, is_causal: bool
) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(n_heads * 10 + n_kv_heads)
    params = AttentionParams.random(
        8, 2, 3, n_heads=n_heads, n_kv_heads=n_kv_heads, out_proj=out_proj, bias=bias, rng=rng
    )
    x = rng.normal(size=(2, 4, 8))
    context = rng.normal(size=(2, 6, 8)) if cross else None
    m = 6 if cross else 4
    mask = rng.random((2, 4, m)) < 0.7
    mask[0, 1] = False  # a query with no key allowed in the first sequence
    result = multi_head_attention(
        x,
        params,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        context=context,
        mask=mask,
        is_causal=is_causal,
    )
    grad_output = rng.normal(size=result.output.shape)
    grads = attention_vjp(result, grad_output)
    assert grads.params is not None

    tx = _t(torch, x, grad=True)
    tc = None if context is None else _t(torch, context, grad=True)
    weights = {
        name: _t(torch, value, grad=True)
        for name in PARAM_NAMES
        if (value := getattr(params, name)) is not None
    }
    out, heads = _torch_layer(
        torch,
        tx,
        tc,
        weights,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        mask=mask,
        is_causal=is_causal,
    )
    assert_close(result.output, _np(out), tol=DERIVATIVE, err_msg="output")
    (out * _t(torch, grad_output)).sum().backward()
    assert_close(grads.x, _np(tx.grad), tol=DERIVATIVE, err_msg="x")
    if tc is None:
        assert grads.context is None
    else:
        assert_close(grads.context, _np(tc.grad), tol=DERIVATIVE, err_msg="context")
    for name in PARAM_NAMES:
        if name in weights:
            assert_close(
                getattr(grads.params, name), _np(weights[name].grad), tol=DERIVATIVE, err_msg=name
            )
        else:
            assert getattr(grads.params, name) is None, name
    for name in ("q", "k", "v"):
        assert_close(
            getattr(grads, name),
            _np(heads[name].grad),
            tol=DERIVATIVE,
            err_msg=f"{name} (per head)",
        )


def test_self_attention_gradients_match_torch() -> None:
    """One head, no head axis in the result, w_o and every bias, causal."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    params = AttentionParams.random(5, 4, 3, out_proj=True, bias=True, rng=rng)
    x = rng.normal(size=(3, 6, 5))
    result = self_attention(x, params, is_causal=True)
    grad_output = rng.normal(size=result.output.shape)
    grads = attention_vjp(result, grad_output)
    assert grads.params is not None
    tx = _t(torch, x, grad=True)
    weights = {name: _t(torch, getattr(params, name), grad=True) for name in PARAM_NAMES}
    out, heads = _torch_layer(
        torch, tx, None, weights, n_heads=1, n_kv_heads=1, mask=None, is_causal=True
    )
    (out * _t(torch, grad_output)).sum().backward()
    assert_close(grads.x, _np(tx.grad), tol=DERIVATIVE, err_msg="x")
    for name in PARAM_NAMES:
        assert_close(
            getattr(grads.params, name), _np(weights[name].grad), tol=DERIVATIVE, err_msg=name
        )
    for name in ("q", "k", "v"):
        assert_close(
            getattr(grads, name),
            _np(heads[name].grad)[:, 0],
            tol=DERIVATIVE,
            err_msg=f"{name} (no head axis)",
        )


# ---------------------------------------------------------------------------
# The other backward passes against torch.autograd: 1e-12 in float64
# ---------------------------------------------------------------------------

VJP_TOL = 1e-12


def _close12(actual: Any, desired: Any, name: str) -> None:
    assert_close(actual, desired, tol=Tolerance(VJP_TOL, VJP_TOL), err_msg=name)


@pytest.mark.parametrize("eps", [1e-5, 0.0, 0.3])
def test_layer_norm_vjp_matches_torch(eps: float) -> None:
    torch = pytest.importorskip("torch")
    x, g = _normal(20, 2, 3, 5), _normal(21, 2, 3, 5)
    gamma, beta = _normal(22, 5), _normal(23, 5)
    grads = layer_norm_vjp(x, g, gamma, eps=eps)
    tx, tg, tb = _t(torch, x, grad=True), _t(torch, gamma, grad=True), _t(torch, beta, grad=True)
    out = torch.nn.functional.layer_norm(tx, (5,), tg, tb, eps)
    (out * _t(torch, g)).sum().backward()
    _close12(grads.x, _np(tx.grad), "x")
    _close12(grads.gamma, _np(tg.grad), "gamma")
    _close12(grads.beta, _np(tb.grad), "beta")
    mean, rstd = torch.ops.aten.native_layer_norm(_t(torch, x), [5], None, None, eps)[1:]
    _close12(grads.mean, _np(mean)[..., 0], "mean")
    _close12(grads.rstd, _np(rstd)[..., 0], "rstd")


@pytest.mark.parametrize("eps", [1e-6, 0.0, 0.3])
def test_rms_norm_vjp_matches_torch(eps: float) -> None:
    torch = pytest.importorskip("torch")
    x, g, gamma = _normal(24, 2, 3, 5), _normal(25, 2, 3, 5), _normal(26, 5)
    grads = rms_norm_vjp(x, g, gamma, eps=eps)
    tx, tg = _t(torch, x, grad=True), _t(torch, gamma, grad=True)
    out = torch.nn.functional.rms_norm(tx, (5,), tg, eps)
    (out * _t(torch, g)).sum().backward()
    _close12(grads.x, _np(tx.grad), "x")
    _close12(grads.gamma, _np(tg.grad), "gamma")


@pytest.mark.parametrize(("axis", "eps"), [(-1, None), (0, None), (-1, 1.5), (1, 1e-12)])
def test_l2_normalize_vjp_matches_torch(axis: int, eps: float | None) -> None:
    torch = pytest.importorskip("torch")
    x, g = _normal(27, 3, 4, 5), _normal(28, 3, 4, 5)
    x[0] *= 0.1  # shorter than eps = 1.5 along the last axis: the x / eps branch
    got = l2_normalize_vjp(x, g, axis=axis, eps=eps)
    tx = _t(torch, x, grad=True)
    out = torch.nn.functional.normalize(tx, dim=axis, eps=0.0 if eps is None else eps)
    (out * _t(torch, g)).sum().backward()
    _close12(got, _np(tx.grad), "x")


def test_linear_vjp_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x, w, b, g = _normal(29, 2, 3, 4), _normal(30, 4, 6), _normal(31, 6), _normal(32, 2, 3, 6)
    grads = linear_vjp(x, w, g)
    tx, tw, tb = _t(torch, x, grad=True), _t(torch, w.T, grad=True), _t(torch, b, grad=True)
    out = torch.nn.functional.linear(tx, tw, tb)  # torch's weight is (out, in): w.T
    (out * _t(torch, g)).sum().backward()
    _close12(grads.x, _np(tx.grad), "x")
    _close12(grads.weight, _np(tw.grad).T, "weight")
    _close12(grads.bias, _np(tb.grad), "bias")


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_log_softmax_vjp_matches_torch(axis: int) -> None:
    torch = pytest.importorskip("torch")
    x, g = 3.0 * _normal(33, 3, 4, 5), _normal(34, 3, 4, 5)
    x[1, 2, 3] = -np.inf  # weight 0
    got = log_softmax_vjp(log_softmax(x, axis=axis), g, axis=axis)
    tx = _t(torch, x, grad=True)
    out = torch.log_softmax(tx, dim=axis)
    (out * _t(torch, g)).sum().backward()
    _close12(got, _np(tx.grad), "x")
