"""Train scaled and unscaled attention from the same random start at d_k = 256.

Run by the plot directive of docs/chapters/why_sqrt_dk.md; ``train`` is the loop of
that chapter's doctest, word for word. The task: in each of 64 sequences of 16 random
tokens one token is marked (feature 0 raised by 3); a separate query token must find
it, and its output should be the marked token's embedding. Loss: half the squared
error, averaged over the sequences. W_Q and W_K (32 x 256, entries of variance 1/32, so
queries and keys have unit-variance components) learn by plain gradient descent with
attention_vjp; the values are the embeddings themselves.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.self_attention import attention_vjp, scaled_dot_product_attention

rng = np.random.default_rng(0)
d_model, d_k, n, batch = 32, 256, 16, 64
x = rng.standard_normal((batch, n, d_model))  # 64 sequences of 16 random tokens
marked = rng.integers(n, size=batch)  # the key each query must find
x[np.arange(batch), marked, 0] += 3.0  # the mark: feature 0 raised by 3
x_q = rng.standard_normal((batch, 1, d_model))  # one query token per sequence
target = x[np.arange(batch), marked][:, None, :]  # ... should read the marked token
w_q0 = rng.standard_normal((d_model, d_k)) / np.sqrt(d_model)  # unit-variance q
w_k0 = rng.standard_normal((d_model, d_k)) / np.sqrt(d_model)  # unit-variance k


def train(scale, *, steps=100, learning_rate=0.5):
    """Gradient descent on W_Q, W_K; loss and mean weight on the marked key per step."""
    w_q, w_k = w_q0.copy(), w_k0.copy()  # the same start for every run
    losses, found = [], []
    for _ in range(steps + 1):
        result = scaled_dot_product_attention(x_q @ w_q, x @ w_k, x, scale=scale)
        error = result.output - target  # dL/dO, before the mean over sequences
        losses.append(0.5 * float((error**2).sum(axis=-1).mean()))
        found.append(float(result.weights[np.arange(batch), 0, marked].mean()))
        grads = attention_vjp(result, error / batch)
        w_q -= learning_rate * np.einsum("bqd,bqk->dk", x_q, grads.q)  # dW_Q = X_q^T dQ
        w_k -= learning_rate * np.einsum("bnd,bnk->dk", x, grads.k)  # dW_K = X^T dK
    return losses, found


runs = {"scale 1/sqrt(d_k)": train(None), "no scale": train(1.0)}
fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 3.2), constrained_layout=True)
for label, (losses, found) in runs.items():
    left.plot(losses, label=label)
    right.plot(found, label=label)
left.set_yscale("log")
left.set_xlabel("step of gradient descent")
left.set_ylabel("loss")
right.set_xlabel("step of gradient descent")
right.set_ylabel("mean weight on the marked key")
right.set_ylim(0, 1)
right.axhline(1 / n, color="grey", linestyle=":", linewidth=1)
left.legend()
