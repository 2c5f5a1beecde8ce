"""attention_from_scratch: scaled dot-product self-attention derived from its parts.

A typed, literate NumPy package that builds attention (Vaswani et al., 2017) from
softmax, norms and linear projections, and explains every attention score.

Functions live in the module that owns them and are imported from there::

    from attention_from_scratch.softmax import softmax

The package imports its submodules (all but ``pretrained``, whose dependencies are
optional and which loads on first use), so ``import attention_from_scratch as afs;
afs.softmax.softmax(x)`` works too. Importing ``view`` also lets results and
explanations display themselves in Jupyter. Functions are never re-exported here: the
function ``softmax`` would shadow the module ``softmax``.
"""

from __future__ import annotations

from attention_from_scratch import (
    arrays,
    examples,
    explain,
    norms,
    projections,
    self_attention,
    softmax,
    view,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "arrays",
    "examples",
    "explain",
    "norms",
    "projections",
    "self_attention",
    "softmax",
    "view",
]
