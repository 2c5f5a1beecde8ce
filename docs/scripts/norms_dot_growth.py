"""The spread of q . k against d_k, and its two factors: lengths and angle.

Run by the plot directive of docs/chapters/norms.md at build time; the chapter
shows this code folded under the figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.norms import cosine_similarity, l2_norm

rng = np.random.default_rng(0)
n_pairs = 2000
d_ks = np.unique(np.geomspace(1, 1024, 31).round().astype(int))
spread, spread_scaled, lengths, cosines = [], [], [], []
for d_k in d_ks:
    q = rng.standard_normal((n_pairs, d_k))
    k = rng.standard_normal((n_pairs, d_k))
    length = l2_norm(q) * l2_norm(k)  # |q| |k|
    cos = cosine_similarity(q, k)  # cos(theta)
    scores = length * cos  # q . k
    spread.append(np.std(scores))
    spread_scaled.append(np.std(scores / np.sqrt(d_k)))
    lengths.append(np.mean(length))
    cosines.append(np.std(cos))

fig, (left, right) = plt.subplots(1, 2, figsize=(8.8, 3.6))
left.plot(d_ks, spread, "o", markersize=4, label="std of q·k")
left.plot(d_ks, np.sqrt(d_ks), "--", color="grey", label="sqrt(d_k)")
left.plot(d_ks, spread_scaled, "s", markersize=4, label="std of q·k / sqrt(d_k)")
left.set_xscale("log", base=2)
left.set_yscale("log", base=2)
left.set_xlabel("d_k")
left.set_title("scores")
left.legend()
right.plot(d_ks, lengths, "o", markersize=4, label="mean |q| |k|")
right.plot(d_ks, cosines, "s", markersize=4, label="std of cos(theta)")
right.plot(d_ks, d_ks, "--", color="grey", label="d_k, 1/sqrt(d_k)")
right.plot(d_ks, 1 / np.sqrt(d_ks), "--", color="grey")
right.set_xscale("log", base=2)
right.set_yscale("log", base=2)
right.set_xlabel("d_k")
right.set_title("lengths and angle")
right.legend()
fig.tight_layout()
