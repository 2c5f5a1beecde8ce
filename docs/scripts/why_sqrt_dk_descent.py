"""Gradient descent on the running example with attention_vjp: the loss curve.

Run by the plot directive of docs/chapters/why_sqrt_dk.md. The task: *creature*
should take in blue's colour and fluffy's texture in equal parts, output
(0, 0, 1/2, 1/2); loss 1/2 |O_creature - t|^2; W_Q and W_K learn, W_V is fixed. Two
starts: small random weights (seed 0), and a saturated start where creature attends
one-hot to itself (scaled score 18).
"""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import attention_vjp, self_attention

ex = fluffy_blue_creature()
target = np.array([0.0, 0.0, 0.5, 0.5])  # half blue's colour, half fluffy's texture


def train(
    w_q: NDArray[np.float64],
    w_k: NDArray[np.float64],
    *,
    steps: int = 100,
    learning_rate: float = 5.0,
) -> list[float]:
    """Plain gradient descent on W_Q and W_K; the loss before each step and at the end."""
    params = AttentionParams(w_q=w_q, w_k=w_k, w_v=ex.params.w_v)
    losses = []
    for _ in range(steps + 1):
        result = self_attention(ex.x, params)
        error = result.output[2] - target  # dL/dO on creature's row
        losses.append(0.5 * float(error @ error))
        grad_output = np.zeros_like(result.output)
        grad_output[2] = error
        grads = attention_vjp(result, grad_output)
        assert grads.params is not None
        params = dataclasses.replace(
            params,
            w_q=params.w_q - learning_rate * grads.params.w_q,
            w_k=params.w_k - learning_rate * grads.params.w_k,
        )
    return losses


rng = np.random.default_rng(0)
small = train(0.1 * rng.standard_normal((4, 4)), 0.1 * rng.standard_normal((4, 4)))
saturated_q, saturated_k = np.zeros((4, 4)), np.zeros((4, 4))
saturated_q[0, 0] = saturated_k[0, 0] = 6.0  # noun . noun = 36, scaled 18
saturated = train(saturated_q, saturated_k)

fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
ax.plot(small, label="small random start")
ax.plot(saturated, label="saturated start (score 18)")
ax.set_yscale("log")
ax.set_xlabel("step of gradient descent")
ax.set_ylabel("loss")
ax.legend()
