"""The matrices of the self-attention chapter as labelled heatmaps.

Run by the plot directive of docs/chapters/self_attention.md at build time:
``inputs`` draws X, Q, K and V of the running example, ``steps`` the raw scores, the
scaled scores, the weights and the output. Rows are tokens; columns are features,
head dimensions or keys, each named.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.self_attention import self_attention

ex = fluffy_blue_creature()
result = self_attention(ex.x, ex.params)
DIMS = [f"dim {i}" for i in range(result.q.shape[-1])]
KEYS = [f"{token}\n(key)" for token in ex.tokens]


def _panel(
    ax: plt.Axes, matrix: NDArray[np.float64], title: str, columns: list[str], fmt: str
) -> None:
    """One labelled heatmap: tokens down, named columns across, every value written."""
    top = max(float(np.abs(matrix).max()), 1e-12)
    signed = bool((matrix < 0).any())  # blue-red around 0 only when there is a sign
    ax.imshow(matrix, cmap="RdBu_r" if signed else "Blues", vmin=-top if signed else 0, vmax=top)
    ax.set_xticks(np.arange(matrix.shape[1]), labels=columns, rotation=30, ha="right")
    ax.set_yticks(np.arange(matrix.shape[0]), labels=ex.tokens)
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(matrix):
        colour = "white" if abs(value) > 0.6 * top else "black"
        ax.text(j, i, format(value + 0.0, fmt), ha="center", va="center", color=colour)


def inputs() -> None:
    """X and the three projections of it."""
    _, grid = plt.subplots(2, 2, figsize=(7.6, 6.4), constrained_layout=True)
    axes = grid.ravel()
    _panel(axes[0], ex.x, "X (embeddings)", list(ex.feature_names), "g")
    _panel(axes[1], result.q, "Q = X W_Q", DIMS, "g")
    _panel(axes[2], result.k, "K = X W_K", DIMS, "g")
    _panel(axes[3], result.v, "V = X W_V", list(ex.feature_names), "g")


def steps() -> None:
    """Raw scores, scaled scores, weights and output."""
    raw = result.q @ result.k.T
    _, grid = plt.subplots(2, 2, figsize=(7.6, 6.6), constrained_layout=True)
    axes = grid.ravel()
    _panel(axes[0], raw, "R = Q K^T", KEYS, "g")
    _panel(axes[1], result.scores, "S = R / sqrt(d_k)", KEYS, "g")
    _panel(axes[2], result.weights, "P = softmax(S)", KEYS, ".3f")
    _panel(axes[3], result.output, "O = P V", list(ex.feature_names), ".3f")
