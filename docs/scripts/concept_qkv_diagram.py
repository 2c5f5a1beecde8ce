"""The flow of self-attention, drawn: tokens to output through Q, K, V and the softmax.

Run by the plot directive of docs/chapters/concept.md at build time. The shapes are
those of the running example (3 tokens, 4 features, d_k = 4), read from the package.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.self_attention import self_attention

ex = fluffy_blue_creature()
result = self_attention(ex.x, ex.params)
n, d_model = ex.x.shape
d_k, d_v = result.q.shape[-1], result.v.shape[-1]

# name: (x, y, label, colour); x and y are the box centres.
BOXES = {
    "tokens": (0.6, 2.0, "tokens\n" + "\n".join(ex.tokens), "#eeeeee"),
    "x": (2.3, 2.0, f"X\nembeddings\n{n} x {d_model}", "#dddddd"),
    "wq": (4.0, 3.4, "W_Q", "#fde0c5"),
    "wk": (4.0, 2.0, "W_K", "#c9e4f6"),
    "wv": (4.0, 0.6, "W_V", "#d5efcf"),
    "q": (5.7, 3.4, f"Q queries\n{n} x {d_k}", "#fde0c5"),
    "k": (5.7, 2.0, f"K keys\n{n} x {d_k}", "#c9e4f6"),
    "v": (5.7, 0.6, f"V values\n{n} x {d_v}", "#d5efcf"),
    "scores": (7.6, 2.7, f"scores\nQ K^T / sqrt({d_k})\n{n} x {n}", "#f3e6f7"),
    "weights": (9.9, 2.7, f"weights P\nrows sum to 1\n{n} x {n}", "#f3e6f7"),
    "output": (9.9, 0.6, f"output\nP V\n{n} x {d_v}", "#fff3b0"),
}
ARROWS = [
    ("tokens", "x", "look up"),
    ("x", "wq", ""),
    ("x", "wk", ""),
    ("x", "wv", ""),
    ("wq", "q", ""),
    ("wk", "k", ""),
    ("wv", "v", ""),
    ("q", "scores", ""),
    ("k", "scores", "dot products"),
    ("scores", "weights", "softmax"),
    ("weights", "output", ""),
    ("v", "output", "weighted average"),
]
HALF_W, HALF_H = 0.72, 0.45

fig, ax = plt.subplots(figsize=(10.4, 4.0))
for x, y, label, colour in BOXES.values():
    box = FancyBboxPatch(
        (x - HALF_W, y - HALF_H),
        2 * HALF_W,
        2 * HALF_H,
        boxstyle="round,pad=0.05",
        facecolor=colour,
        edgecolor="#555555",
    )
    ax.add_patch(box)
    ax.text(x, y, label, ha="center", va="center", fontsize=9)
for start, end, label in ARROWS:
    (x0, y0, *_), (x1, y1, *_) = BOXES[start], BOXES[end]
    ax.annotate(
        "",
        xy=(x1, y1),
        xytext=(x0, y0),
        arrowprops={"arrowstyle": "->", "color": "#333333", "shrinkA": 30, "shrinkB": 30},
    )
    if label:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.1, label, ha="center", fontsize=8)
ax.set_xlim(-0.2, 10.8)
ax.set_ylim(-0.1, 4.1)
ax.set_aspect("equal")
ax.axis("off")
fig.tight_layout()
