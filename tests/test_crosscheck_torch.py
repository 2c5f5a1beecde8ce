"""Cross-check of :mod:`attention_from_scratch.self_attention` against PyTorch.

torch is not a dependency: every test starts with ``pytest.importorskip("torch")``, so
in an environment without torch they are skipped, and they are marked
``crosscheck`` (``nox -s crosscheck`` or ``pytest -m crosscheck`` in a venv with torch).
Everything is computed in float64 and must agree to 1e-12.

Layout differences handled here:

* torch's ``nn.MultiheadAttention`` stores ``in_proj_weight`` as ``(3 d, d)`` in the
  ``(out, in)`` layout of ``nn.Linear``: it is ``concat(w_q.T, w_k.T, w_v.T)``, and
  ``out_proj.weight`` is ``w_o.T``;
* its ``key_padding_mask`` and boolean ``attn_mask`` use True = "ignore", the
  opposite of this package (and of ``scaled_dot_product_attention``'s bool mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import ArrayLike, NDArray

from attention_from_scratch.projections import AttentionParams, merge_heads, project_qkv
from attention_from_scratch.self_attention import (
    causal_mask,
    multi_head_attention,
    padding_mask,
    scaled_dot_product_attention,
)
from tests.tolerances import assert_close

pytestmark = pytest.mark.crosscheck

F64 = NDArray[np.float64]


def _normal(seed: int, *shape: int) -> F64:
    return np.random.default_rng(seed).normal(size=shape)


def _t(torch: Any, a: ArrayLike) -> Any:
    """A torch tensor holding a copy of ``a`` (float64 stays float64, bool stays bool)."""
    return torch.from_numpy(np.array(a, copy=True))


def _np(tensor: Any) -> NDArray[Any]:
    return np.asarray(tensor.detach().numpy())


def _torch_mha(torch: Any, params: AttentionParams, n_heads: int) -> Any:
    """``nn.MultiheadAttention`` holding ``params`` (transposed to torch's (out, in))."""
    assert params.w_o is not None
    assert params.b_q is not None
    assert params.b_k is not None
    assert params.b_v is not None
    assert params.b_o is not None
    d_model = params.w_q.shape[0]
    mha = torch.nn.MultiheadAttention(
        d_model, n_heads, bias=True, batch_first=True, dtype=torch.float64
    )
    in_proj = np.concatenate([params.w_q.T, params.w_k.T, params.w_v.T])  # (3 d, d)
    with torch.no_grad():
        mha.in_proj_weight.copy_(_t(torch, in_proj))
        mha.in_proj_bias.copy_(_t(torch, np.concatenate([params.b_q, params.b_k, params.b_v])))
        mha.out_proj.weight.copy_(_t(torch, params.w_o.T))
        mha.out_proj.bias.copy_(_t(torch, params.b_o))
    mha.eval()
    return mha


# ---------------------------------------------------------------------------
# scaled_dot_product_attention vs torch.nn.functional.scaled_dot_product_attention
# ---------------------------------------------------------------------------


def test_sdpa_plain_and_scale() -> None:
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q, k, v = _normal(1, 4, 5), _normal(2, 6, 5), _normal(3, 6, 3)
    for scale in (None, 0.3, 2.0):
        ours = scaled_dot_product_attention(q, k, v, scale=scale)
        theirs = sdpa(_t(torch, q), _t(torch, k), _t(torch, v), scale=scale)
        assert_close(ours.output, _np(theirs))


def test_sdpa_bool_mask() -> None:
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q, k, v = _normal(4, 5, 4), _normal(5, 7, 4), _normal(6, 7, 2)
    mask = np.random.default_rng(7).random((5, 7)) < 0.6
    mask[:, 0] = True  # every query may attend to something
    ours = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = sdpa(_t(torch, q), _t(torch, k), _t(torch, v), attn_mask=_t(torch, mask))
    assert_close(ours.output, _np(theirs))


def test_sdpa_float_bias_with_neg_inf() -> None:
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q, k, v = _normal(8, 4, 3), _normal(9, 5, 3), _normal(10, 5, 4)
    bias = _normal(11, 4, 5)
    bias[0, 1] = bias[2, 0] = bias[3, 2] = bias[3, 4] = -np.inf  # no row entirely -inf
    ours = scaled_dot_product_attention(q, k, v, bias=bias)
    theirs = sdpa(_t(torch, q), _t(torch, k), _t(torch, v), attn_mask=_t(torch, bias))
    assert_close(ours.output, _np(theirs))


@pytest.mark.parametrize(("n", "m"), [(5, 5), (3, 6), (6, 3)])
def test_sdpa_is_causal(n: int, m: int) -> None:
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q, k, v = _normal(12, n, 4), _normal(13, m, 4), _normal(14, m, 3)
    ours = scaled_dot_product_attention(q, k, v, is_causal=True)
    theirs = sdpa(_t(torch, q), _t(torch, k), _t(torch, v), is_causal=True)
    assert_close(ours.output, _np(theirs))
    # torch's triangle is our causal_mask, also when n != m
    explicit = sdpa(
        _t(torch, q), _t(torch, k), _t(torch, v), attn_mask=_t(torch, causal_mask(n, m))
    )
    assert_close(_np(explicit), _np(theirs))


def test_sdpa_batch_and_head_dims() -> None:
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q = _normal(15, 2, 3, 4, 5)  # (batch, heads, n, d_k)
    k, v = _normal(16, 2, 3, 6, 5), _normal(17, 2, 3, 6, 2)
    mask = np.random.default_rng(18).random((2, 1, 4, 6)) < 0.7
    mask[..., 0] = True
    ours = scaled_dot_product_attention(q, k, v, mask=mask, scale=0.5)
    theirs = sdpa(_t(torch, q), _t(torch, k), _t(torch, v), attn_mask=_t(torch, mask), scale=0.5)
    assert_close(ours.output, _np(theirs))


def test_sdpa_fully_masked_row_gives_zero() -> None:
    torch = pytest.importorskip("torch")
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    if version < (2, 5):
        pytest.skip("torch < 2.5 returns NaN for a fully masked row")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    q, k, v = _normal(19, 3, 4), _normal(20, 5, 4), _normal(21, 5, 2)
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False
    ours = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = _np(sdpa(_t(torch, q), _t(torch, k), _t(torch, v), attn_mask=_t(torch, mask)))
    np.testing.assert_array_equal(theirs[1], 0.0)
    np.testing.assert_array_equal(ours.output[1], 0.0)
    assert_close(ours.output, theirs)


# ---------------------------------------------------------------------------
# multi_head_attention vs torch.nn.MultiheadAttention
# ---------------------------------------------------------------------------


def test_multi_head_attention_matches_torch_module() -> None:
    torch = pytest.importorskip("torch")
    params = AttentionParams.random(8, 2, n_heads=4, out_proj=True, bias=True, rng=22)
    x = _normal(23, 2, 5, 8)
    ours = multi_head_attention(x, params, n_heads=4)
    mha = _torch_mha(torch, params, 4)
    xt = _t(torch, x)
    out, weights = mha(xt, xt, xt, need_weights=True, average_attn_weights=False)
    assert_close(ours.output, _np(out))
    assert_close(ours.weights, _np(weights))  # (batch, heads, n, m)


def test_multi_head_attention_key_padding_mask() -> None:
    torch = pytest.importorskip("torch")
    params = AttentionParams.random(6, 3, n_heads=2, out_proj=True, bias=True, rng=24)
    x = _normal(25, 3, 5, 6)
    lengths = [5, 3, 1]
    mask = padding_mask(lengths, 5)  # (3, 1, 5), True = a real token
    ours = multi_head_attention(x, params, n_heads=2, mask=mask)
    mha = _torch_mha(torch, params, 2)
    xt = _t(torch, x)
    ignore = _t(torch, ~mask[:, 0, :])  # torch: True = ignore
    out, weights = mha(
        xt, xt, xt, key_padding_mask=ignore, need_weights=True, average_attn_weights=False
    )
    assert_close(ours.output, _np(out))
    assert_close(ours.weights, _np(weights))


def test_multi_head_attention_causal_attn_mask() -> None:
    torch = pytest.importorskip("torch")
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, bias=True, rng=26)
    x = _normal(27, 2, 4, 4)
    ours = multi_head_attention(x, params, n_heads=2, is_causal=True)
    mha = _torch_mha(torch, params, 2)
    xt = _t(torch, x)
    future = _t(torch, ~causal_mask(4))  # torch: True = not allowed
    out, weights = mha(xt, xt, xt, attn_mask=future, need_weights=True, average_attn_weights=False)
    assert_close(ours.output, _np(out))
    assert_close(ours.weights, _np(weights))


def test_cross_attention_matches_torch_module() -> None:
    torch = pytest.importorskip("torch")
    params = AttentionParams.random(6, 2, n_heads=3, out_proj=True, bias=True, rng=28)
    x, context = _normal(29, 2, 3, 6), _normal(30, 2, 7, 6)
    ours = multi_head_attention(x, params, n_heads=3, context=context)
    mha = _torch_mha(torch, params, 3)
    ct = _t(torch, context)
    out, weights = mha(_t(torch, x), ct, ct, need_weights=True, average_attn_weights=False)
    assert ours.weights.shape == (2, 3, 3, 7)
    assert_close(ours.output, _np(out))
    assert_close(ours.weights, _np(weights))


@pytest.mark.parametrize("n_kv_heads", [2, 1])
def test_grouped_query_attention_matches_torch_enable_gqa(n_kv_heads: int) -> None:
    torch = pytest.importorskip("torch")
    sdpa = torch.nn.functional.scaled_dot_product_attention
    params = AttentionParams.random(8, 2, n_heads=4, n_kv_heads=n_kv_heads, bias=True, rng=31)
    x = _normal(32, 2, 5, 8)
    ours = multi_head_attention(x, params, n_heads=4, n_kv_heads=n_kv_heads, is_causal=True)
    q, k, v = project_qkv(x, params)
    q_heads = q.reshape(2, 5, 4, 2).swapaxes(1, 2)  # (batch, 4, n, d_k)
    k_heads = k.reshape(2, 5, n_kv_heads, 2).swapaxes(1, 2)  # (batch, n_kv_heads, m, d_k)
    v_heads = v.reshape(2, 5, n_kv_heads, 2).swapaxes(1, 2)
    theirs = sdpa(
        _t(torch, q_heads),
        _t(torch, k_heads),
        _t(torch, v_heads),
        is_causal=True,
        enable_gqa=True,
    )
    assert_close(ours.head_outputs, _np(theirs))
    assert_close(ours.output, merge_heads(_np(theirs)))
