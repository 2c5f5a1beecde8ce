"""One score row under temperatures from 0.1 to 10.

Run by the plot directive of docs/chapters/softmax.md at build time; the chapter
shows this code folded under the figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from attention_from_scratch.softmax import softmax

row = np.array([0.0, 4.0, 2.0])
temperatures = np.geomspace(0.1, 10.0, 200)
weights = np.array([softmax(row, temperature=t) for t in temperatures])

fig, ax = plt.subplots(figsize=(6.4, 3.6))
for j, score in enumerate(row):
    ax.plot(temperatures, weights[:, j], label=f"score {score:g}")
ax.axhline(1 / 3, color="grey", linestyle=":", linewidth=1)
ax.set_xscale("log")
ax.set_xlabel("temperature T")
ax.set_ylabel("softmax weight")
ax.set_ylim(-0.02, 1.02)
ax.legend(loc="center right")
fig.tight_layout()
