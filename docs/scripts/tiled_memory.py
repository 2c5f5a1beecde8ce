"""Peak traced memory of dense and tiled attention against n.

Run by the plot directive of docs/chapters/tiled.md at build time; the chapter
shows this code folded under the figure.
"""

from __future__ import annotations

import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.self_attention import (
    scaled_dot_product_attention,
    tiled_attention,
)


def peak_mib(function, *arrays):
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = function(*arrays)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak / 2**20


rng = np.random.default_rng(0)
sizes = [256, 512, 1024, 2048, 3072, 4096]
dense, tiled = [], []
for n in sizes:
    q, k, v = (rng.standard_normal((n, 64)).astype(np.float32) for _ in range(3))
    dense.append(peak_mib(scaled_dot_product_attention, q, k, v))
    tiled.append(peak_mib(tiled_attention, q, k, v))

fig, ax = plt.subplots(figsize=(6.4, 3.6))
ax.plot(sizes, dense, "o-", label="dense (keeps the weights)")
ax.plot(sizes, tiled, "s-", label="tiled, block_size = 512")
ax.plot(
    sizes, [n * n * 4 / 2**20 for n in sizes], ":", color="grey", label="one n x n float32 matrix"
)
ax.set_xlabel("sequence length n (= m)")
ax.set_ylabel("peak traced memory (MiB)")
ax.legend()
fig.tight_layout()
