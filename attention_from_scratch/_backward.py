"""The backward pass of attention (private; re-exported by ``self_attention``).

Work in progress: filled in by the gradients issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from attention_from_scratch._checks import FloatArray

__all__ = ["AttentionGrads", "attention_vjp"]


@dataclass(frozen=True, eq=False)
class AttentionGrads:
    """Gradients of a loss with respect to the inputs of an attention result."""

    q: FloatArray
    k: FloatArray
    v: FloatArray


def attention_vjp(result: object, grad_output: ArrayLike, /) -> AttentionGrads:
    """Vector-Jacobian product of attention (not written yet)."""
    raise NotImplementedError
