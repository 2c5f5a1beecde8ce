"""Saturation of attention with and without the 1/sqrt(d_k) scale, against d_k.

Run by the plot directive of docs/chapters/why_sqrt_dk.md. For d_k = 4, 8, ..., 1024:
2000 rows (125 sequences of 16 tokens) of random unit-variance queries and keys,
attended with the scale 1/sqrt(d_k) and without it (scale=1), from the same draws.
Measured per row with the package: the largest weight, the entropy, and the norm of
the gradient that reaches the scores through the softmax for a random unit dL/dP.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.norms import l2_norm, l2_normalize
from attention_from_scratch.self_attention import scaled_dot_product_attention
from attention_from_scratch.softmax import entropy, softmax_vjp


def saturation(d_k: int, *, scaled: bool) -> tuple[float, float, float, float]:
    """Mean largest weight, mean entropy, mean and median |dL/dS| over 2000 rows."""
    rng = np.random.default_rng(d_k)  # the same draws with and without scale
    q = rng.standard_normal((125, 16, d_k))  # unit-variance components
    k = rng.standard_normal((125, 16, d_k))
    v = np.zeros((125, 16, 1))  # the values play no part here
    weights = scaled_dot_product_attention(q, k, v, scale=None if scaled else 1.0).weights
    grad_weights = l2_normalize(rng.standard_normal(weights.shape))  # unit dL/dP rows
    grad_scores = l2_norm(softmax_vjp(weights, grad_weights))  # |dL/dS| per row
    return (
        float(weights.max(axis=-1).mean()),
        float(entropy(weights).mean()),
        float(grad_scores.mean()),
        float(np.median(grad_scores)),
    )


d_ks = 2 ** np.arange(2, 11)  # 4, 8, ..., 1024
curves = {
    scaled: np.array([saturation(int(d_k), scaled=scaled) for d_k in d_ks])
    for scaled in (True, False)
}

fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.4), constrained_layout=True)
styles = {True: ("C0", "with 1/sqrt(d_k)"), False: ("C1", "unscaled")}
for scaled, (colour, label) in styles.items():
    values = curves[scaled]
    axes[0].plot(d_ks, values[:, 0], "o-", color=colour, label=label)
    axes[1].plot(d_ks, values[:, 1], "o-", color=colour, label=label)
    axes[2].plot(d_ks, values[:, 2], "o-", color=colour, label=f"{label}, mean")
    axes[2].plot(d_ks, values[:, 3], "s--", color=colour, label=f"{label}, median")
axes[1].axhline(np.log(16), color="grey", linestyle=":", linewidth=1)
axes[0].set_ylim(0, 1.02)
axes[1].set_ylim(0, 2.9)
axes[2].set_yscale("log")
titles = ("largest weight", "entropy of a row (nats)", "|dL/dS| for a unit dL/dP")
for ax, title in zip(axes, titles, strict=True):
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d_k")
    ax.set_title(title)
axes[0].legend()
axes[2].legend(fontsize="small")
