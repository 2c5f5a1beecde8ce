"""The weights of the running example without and with the causal mask.

Run by the plot directive of docs/chapters/masks_heads.md at build time; the chapter
shows this code folded under the figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.self_attention import self_attention

ex = fluffy_blue_creature()
panels = {
    "full": self_attention(ex.x, ex.params).weights,
    "causal (is_causal=True)": self_attention(ex.x, ex.params, is_causal=True).weights,
}
ticks = np.arange(len(ex.tokens))

fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.0), constrained_layout=True)
for ax, (title, weights) in zip(axes, panels.items(), strict=True):
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(ticks, labels=ex.tokens)
    ax.set_yticks(ticks, labels=ex.tokens)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    for i in range(weights.shape[0]):
        for j in range(weights.shape[1]):
            colour = "black" if weights[i, j] > 0.5 else "white"
            ax.text(j, i, f"{weights[i, j]:.4f}", ha="center", va="center", color=colour)
fig.colorbar(image, ax=axes, label="attention weight", shrink=0.9)
