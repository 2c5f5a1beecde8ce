"""Benchmarks at the sizes of training: small batched calls, timed in loops.

A transformer trained on this package calls it with small arrays many times: a batch
of 32 sequences of 6 tokens, ``d_model = 16``, 4 heads. At these sizes the arithmetic
is a few microseconds and what a call costs beyond it (checks, guards, results that
own their arrays) decides the speed. Each row compares the package with the same
computation written in plain NumPy in this file, on the same data, and each timed
call is a loop of calls long enough (>= ~5 ms) for a burst of :func:`interleaved` to
mean something; the rows report the time of one call.

- ``multi_head_attention`` with a padding mask and ``w_o`` vs the plain formula;
- ``scaled_dot_product_attention`` on ``(32, 4, 6, 4)`` vs the same data as
  ``(128, 6, 4)`` (what the extra batch axis costs);
- one training step of a pre-LayerNorm encoder block (forward, backward through the
  package's VJPs, an SGD update with ``AttentionParams.map``) vs the same step written
  in plain NumPy, checked once to give the same loss and updated parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from attention_from_scratch.arrays import FloatArray
from attention_from_scratch.norms import layer_norm, layer_norm_stats, layer_norm_vjp
from attention_from_scratch.projections import AttentionParams, linear, linear_vjp
from attention_from_scratch.self_attention import (
    attention_vjp,
    multi_head_attention,
    padding_mask,
    scaled_dot_product_attention,
)
from attention_from_scratch.softmax import log_softmax, log_softmax_vjp

Array = FloatArray

#: The training sizes: batch, tokens, model width, heads, MLP width, vocabulary.
B, N, D_MODEL, HEADS, D_FF, VOCAB = 32, 6, 16, 4, 64, 8
D_K = D_MODEL // HEADS
LEARNING_RATE = 0.1
#: Largest |difference| allowed between the package's step and the plain one.
EQUAL_WORK_TOL = 1e-10


@dataclass(frozen=True)
class Comparison:
    """One row to time: the package's call, the reference, and how many make a timed call."""

    what: str
    ours: Callable[[], object]
    reference: Callable[[], object]
    count: int  # calls per timed call (>= ~5 ms in all)
    goal: str
    accuracy: dict[str, float] = field(default_factory=dict)  # checked once, before timing


# ---------------------------------------------------------------------------
# Plain NumPy pieces (the references)
# ---------------------------------------------------------------------------


def _split(x: Array) -> Array:
    """(B, n, h d) -> (B, h, n, d)."""
    b, n, width = x.shape
    return x.reshape(b, n, HEADS, width // HEADS).transpose(0, 2, 1, 3)


def _merge(x: Array) -> Array:
    """(B, h, n, d) -> (B, n, h d)."""
    b, h, n, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * d)


def _softmax(s: Array) -> Array:
    """Softmax over the last axis: shift by the maximum, exponentiate, normalise."""
    e: Array = np.exp(s - s.max(axis=-1, keepdims=True))
    out: Array = e / e.sum(axis=-1, keepdims=True)
    return out


def plain_multi_head(
    x: Array, w_q: Array, w_k: Array, w_v: Array, w_o: Array, allowed: NDArray[np.bool_]
) -> Array:
    """Projections, heads, masked softmax (-inf where masked), merge, w_o."""
    q, k, v = _split(x @ w_q), _split(x @ w_k), _split(x @ w_v)
    s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])  # (B, h, n, m)
    s = np.where(allowed[:, None], s, -np.inf)  # mask (B, 1, m) -> (B, 1, 1, m)
    return _merge(_softmax(s) @ v) @ w_o


# ---------------------------------------------------------------------------
# 1. multi_head_attention with a padding mask
# ---------------------------------------------------------------------------


def multi_head_comparison() -> Comparison:
    """multi_head_attention (B=32, n=6, d_model=16, 4 heads, padding mask, w_o) vs NumPy."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((B, N, D_MODEL))
    lengths = rng.integers(1, N + 1, size=B)  # some sequences shorter than n
    mask = padding_mask(lengths, N)  # (B, 1, n): broadcasts over the queries (..., n, m)
    params = AttentionParams.random(D_MODEL, D_K, n_heads=HEADS, out_proj=True, rng=rng)
    w_o = params.output_weight

    def ours() -> Array:
        return multi_head_attention(x, params, n_heads=HEADS, mask=mask).output

    def plain() -> Array:
        return plain_multi_head(x, params.w_q, params.w_k, params.w_v, w_o, mask)

    return Comparison(
        f"multi_head_attention (B={B}, n={N}, d_model={D_MODEL}, {HEADS} heads, padding mask, "
        "w_o) float64 vs the plain NumPy formula",
        ours,
        plain,
        count=25,
        goal="<= 2.5",
        accuracy={
            "max |multi_head_attention - plain NumPy| (padding mask, float64)": float(
                np.max(np.abs(ours() - plain()))
            )
        },
    )


# ---------------------------------------------------------------------------
# 2. scaled_dot_product_attention with and without the head axis
# ---------------------------------------------------------------------------


def batch_axes_comparison() -> Comparison:
    """scaled_dot_product_attention on (32, 4, 6, 4) vs the same data as (128, 6, 4)."""
    rng = np.random.default_rng(17)
    q, k, v = (rng.standard_normal((B, HEADS, N, D_K)) for _ in range(3))
    q3, k3, v3 = (a.reshape(B * HEADS, N, D_K) for a in (q, k, v))

    def four_d() -> object:
        return scaled_dot_product_attention(q, k, v)

    def three_d() -> object:
        return scaled_dot_product_attention(q3, k3, v3)

    return Comparison(
        f"scaled_dot_product_attention {(B, HEADS, N, D_K)} float64 vs the same data as "
        f"{(B * HEADS, N, D_K)}",
        four_d,
        three_d,
        count=20,
        goal="<= 1.3",
    )


# ---------------------------------------------------------------------------
# 3. One training step of a pre-LayerNorm encoder block
# ---------------------------------------------------------------------------


@dataclass
class Task:
    """The copy task: each position outputs the token one place to its left."""

    tokens: NDArray[np.intp]  # (B, n)
    target: NDArray[np.intp]  # (B, n)
    onehot: Array  # (B, n, vocab)


def make_task(seed: int = 18) -> tuple[Task, dict[str, Array], AttentionParams]:
    """A batch of the copy task, the block's weights and its attention parameters."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, VOCAB, size=(B, N))
    target = np.roll(tokens, 1, axis=1)
    task = Task(tokens, target, np.eye(VOCAB)[target])
    weights: dict[str, Array] = {
        "embed": 0.5 * rng.standard_normal((VOCAB, D_MODEL)),
        "pos": 0.5 * rng.standard_normal((N, D_MODEL)),
        "gamma_1": 1.0 + 0.1 * rng.standard_normal(D_MODEL),
        "beta_1": 0.1 * rng.standard_normal(D_MODEL),
        "gamma_2": 1.0 + 0.1 * rng.standard_normal(D_MODEL),
        "beta_2": 0.1 * rng.standard_normal(D_MODEL),
        "w_1": 0.3 * rng.standard_normal((D_MODEL, D_FF)),
        "c_1": 0.1 * rng.standard_normal(D_FF),
        "w_2": 0.3 * rng.standard_normal((D_FF, D_MODEL)),
        "c_2": 0.1 * rng.standard_normal(D_MODEL),
        "w_out": 0.3 * rng.standard_normal((D_MODEL, VOCAB)),
    }
    attention = AttentionParams.random(
        D_MODEL, D_K, n_heads=HEADS, out_proj=True, bias=True, rng=rng
    )
    return task, weights, attention


Step = tuple[float, dict[str, Array], AttentionParams]


def package_step(task: Task, w: dict[str, Array], params: AttentionParams) -> Step:
    """Forward, backward through the package's VJPs, and an SGD update."""
    # forward
    h0 = w["embed"][task.tokens] + w["pos"]  # (B, n, d_model)
    stats_1 = layer_norm_stats(h0)  # kept for the backward pass: computed once
    a = layer_norm(h0, w["gamma_1"], w["beta_1"], stats=stats_1)
    att = multi_head_attention(a, params, n_heads=HEADS)
    h1 = h0 + att.output  # residual
    stats_2 = layer_norm_stats(h1)
    m = layer_norm(h1, w["gamma_2"], w["beta_2"], stats=stats_2)
    u = linear(m, w["w_1"], w["c_1"])  # (B, n, d_ff)
    r = np.maximum(u, 0.0)  # ReLU
    h2 = h1 + linear(r, w["w_2"], w["c_2"])  # residual
    log_p = log_softmax(linear(h2, w["w_out"]))  # (B, n, vocab)
    loss = -float(np.mean(np.sum(log_p * task.onehot, axis=-1)))
    # backward
    d_log_p = -task.onehot / task.target.size  # cross-entropy: -1/N at the targets
    out = linear_vjp(h2, w["w_out"], log_softmax_vjp(log_p, d_log_p))
    ff_2 = linear_vjp(r, w["w_2"], out.x)
    ff_1 = linear_vjp(m, w["w_1"], ff_2.x * (u > 0))
    norm_2 = layer_norm_vjp(h1, ff_1.x, w["gamma_2"], stats=stats_2)
    d_h1 = out.x + norm_2.x  # both branches of h1
    att_grads = attention_vjp(att, d_h1)
    assert att_grads.x is not None  # a projected result has them
    assert att_grads.params is not None
    norm_1 = layer_norm_vjp(h0, att_grads.x, w["gamma_1"], stats=stats_1)
    d_h0 = d_h1 + norm_1.x  # both branches of h0
    d_embed = np.zeros_like(w["embed"])
    np.add.at(d_embed, task.tokens, d_h0)
    grads = {
        "embed": d_embed,
        "pos": d_h0.sum(axis=0),
        "gamma_1": norm_1.gamma,
        "beta_1": norm_1.beta,
        "gamma_2": norm_2.gamma,
        "beta_2": norm_2.beta,
        "w_1": ff_1.weight,
        "c_1": ff_1.bias,
        "w_2": ff_2.weight,
        "c_2": ff_2.bias,
        "w_out": out.weight,
    }
    # SGD
    new_w = {name: value - LEARNING_RATE * grads[name] for name, value in w.items()}
    new_params = params.map(lambda p, g: p - LEARNING_RATE * g, att_grads.params)
    return loss, new_w, new_params


def _plain_layer_norm(
    x: Array, gamma: Array, beta: Array, eps: float = 1e-5
) -> tuple[Array, Array, Array]:
    """y, the normalised rows x_hat and 1 / sqrt(var + eps)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + eps)
    x_hat = centred * rstd
    return x_hat * gamma + beta, x_hat, rstd


def _plain_layer_norm_vjp(
    dy: Array, x_hat: Array, rstd: Array, gamma: Array
) -> tuple[Array, Array, Array]:
    """dx, dgamma, dbeta."""
    d_hat = dy * gamma
    dx = rstd * (
        d_hat
        - d_hat.mean(axis=-1, keepdims=True)
        - x_hat * np.mean(d_hat * x_hat, axis=-1, keepdims=True)
    )
    rows = dy.reshape(-1, dy.shape[-1])
    return dx, np.sum((dy * x_hat).reshape(rows.shape), axis=0), rows.sum(axis=0)


def _rows(x: Array) -> Array:
    return x.reshape(-1, x.shape[-1])


def plain_step(
    task: Task, w: dict[str, Array], p: dict[str, Array]
) -> tuple[float, dict[str, Array], dict[str, Array]]:
    """The same step in plain NumPy: forward, hand-written backward, SGD."""
    scale = 1.0 / math.sqrt(D_K)
    # forward
    h0 = w["embed"][task.tokens] + w["pos"]
    a, a_hat, a_rstd = _plain_layer_norm(h0, w["gamma_1"], w["beta_1"])
    q = _split(a @ p["w_q"] + p["b_q"])  # (B, h, n, d_k)
    k = _split(a @ p["w_k"] + p["b_k"])
    v = _split(a @ p["w_v"] + p["b_v"])
    weights = _softmax(q @ k.swapaxes(-1, -2) * scale)  # (B, h, n, n)
    merged = _merge(weights @ v)  # (B, n, h d_v)
    h1 = h0 + merged @ p["w_o"] + p["b_o"]
    m, m_hat, m_rstd = _plain_layer_norm(h1, w["gamma_2"], w["beta_2"])
    u = m @ w["w_1"] + w["c_1"]
    r = np.maximum(u, 0.0)
    h2 = h1 + r @ w["w_2"] + w["c_2"]
    logits = h2 @ w["w_out"]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -float(np.mean(np.sum(log_p * task.onehot, axis=-1)))
    # backward
    d_logits = (np.exp(log_p) - task.onehot) / task.target.size  # softmax - onehot, / N
    g: dict[str, Array] = {"w_out": _rows(h2).T @ _rows(d_logits)}
    d_h2 = d_logits @ w["w_out"].T
    g["w_2"], g["c_2"] = _rows(r).T @ _rows(d_h2), _rows(d_h2).sum(axis=0)
    d_u = (d_h2 @ w["w_2"].T) * (u > 0)
    g["w_1"], g["c_1"] = _rows(m).T @ _rows(d_u), _rows(d_u).sum(axis=0)
    d_m = d_u @ w["w_1"].T
    d_h1_norm, g["gamma_2"], g["beta_2"] = _plain_layer_norm_vjp(d_m, m_hat, m_rstd, w["gamma_2"])
    d_h1 = d_h2 + d_h1_norm
    # attention
    g["w_o"], g["b_o"] = _rows(merged).T @ _rows(d_h1), _rows(d_h1).sum(axis=0)
    d_o = _split(d_h1 @ p["w_o"].T)  # (B, h, n, d_v)
    d_v = weights.swapaxes(-1, -2) @ d_o
    d_w = d_o @ v.swapaxes(-1, -2)
    d_s = weights * (d_w - np.sum(d_w * weights, axis=-1, keepdims=True))
    d_q, d_k = _merge(scale * d_s @ k), _merge(scale * d_s.swapaxes(-1, -2) @ q)
    d_v_m = _merge(d_v)
    a_rows = _rows(a)
    for name, d in (("q", d_q), ("k", d_k), ("v", d_v_m)):
        g[f"w_{name}"], g[f"b_{name}"] = a_rows.T @ _rows(d), _rows(d).sum(axis=0)
    d_a = d_q @ p["w_q"].T + d_k @ p["w_k"].T + d_v_m @ p["w_v"].T
    d_h0_norm, g["gamma_1"], g["beta_1"] = _plain_layer_norm_vjp(d_a, a_hat, a_rstd, w["gamma_1"])
    d_h0 = d_h1 + d_h0_norm
    g["embed"] = np.zeros_like(w["embed"])
    np.add.at(g["embed"], task.tokens, d_h0)
    g["pos"] = d_h0.sum(axis=0)
    # SGD
    new_w = {name: value - LEARNING_RATE * g[name] for name, value in w.items()}
    new_p = {name: value - LEARNING_RATE * g[name] for name, value in p.items()}
    return loss, new_w, new_p


def plain_params(params: AttentionParams) -> dict[str, Array]:
    """The attention parameters as a dict of plain (writeable) arrays."""
    return {name: np.array(value) for name, value in params.arrays().items()}


def step_difference(seed: int = 18) -> float:
    """Largest |difference| between the two steps: loss and every updated parameter."""
    task, weights, attention = make_task(seed)
    loss, new_w, new_att = package_step(task, weights, attention)
    plain_loss, plain_w, plain_att = plain_step(task, weights, plain_params(attention))
    ours = {**new_w, **{f"attention.{k}": v for k, v in new_att.arrays().items()}}
    theirs = {**plain_w, **{f"attention.{k}": v for k, v in plain_att.items()}}
    if ours.keys() != theirs.keys():
        msg = f"the steps update different parameters: {sorted(ours)} vs {sorted(theirs)}"
        raise AssertionError(msg)
    return max(
        abs(loss - plain_loss),
        *(float(np.max(np.abs(ours[name] - theirs[name]))) for name in ours),
    )


def training_step_comparison() -> Comparison:
    """One training step of a pre-LayerNorm encoder block vs the same step in plain NumPy.

    Raises AssertionError if the two steps differ by more than ``EQUAL_WORK_TOL``:
    then they would not do the same work and their timings could not be compared.
    """
    difference = step_difference()
    if not difference <= EQUAL_WORK_TOL:
        msg = f"the two training steps differ by {difference:.3g} > {EQUAL_WORK_TOL}"
        raise AssertionError(msg)
    task, weights, attention = make_task()
    plain_att = plain_params(attention)

    def ours() -> object:
        return package_step(task, weights, attention)

    def plain() -> object:
        return plain_step(task, weights, plain_att)

    return Comparison(
        f"training step of a pre-LN encoder block (B={B}, n={N}, d_model={D_MODEL}, {HEADS} "
        f"heads, d_ff={D_FF}, copy task, cross-entropy, SGD) float64 vs the same in plain NumPy",
        ours,
        plain,
        count=5,
        goal="<= 1.5",
        accuracy={"max |package step - plain NumPy step| (loss, updated parameters)": difference},
    )


#: The rows of this module, named for ``main``'s list, built (and checked) when run.
COMPARISONS: list[tuple[str, Callable[[], Comparison]]] = [
    ("multi-head attention at training size", multi_head_comparison),
    ("batch axes at training size", batch_axes_comparison),
    ("training step", training_step_comparison),
]
