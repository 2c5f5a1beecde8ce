"""The attention weights of the running example as a labelled heatmap.

Run by the plot directive of docs/chapters/self_attention.md at build time; the chapter
shows this code folded under the figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.self_attention import self_attention

ex = fluffy_blue_creature()
weights = self_attention(ex.x, ex.params).weights  # (n, m) = (3, 3)
ticks = np.arange(len(ex.tokens))

fig, ax = plt.subplots(figsize=(5.6, 4.4))
image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0)
ax.set_xticks(ticks, labels=ex.tokens)
ax.set_yticks(ticks, labels=ex.tokens)
ax.set_xlabel("key (attended to)")
ax.set_ylabel("query (attending)")
for i in range(weights.shape[0]):
    for j in range(weights.shape[1]):
        colour = "black" if weights[i, j] > 0.5 else "white"
        ax.text(j, i, f"{weights[i, j]:.4f}", ha="center", va="center", color=colour)
fig.colorbar(image, ax=ax, label="attention weight")
ax.set_title("softmax(Q K^T / sqrt(d_k)): fluffy blue creature")
fig.tight_layout()
