"""Array types: the aliases the package's signatures are written with.

Code that builds on the package (a transformer, a training loop) can annotate its own
functions with the same names, so that mypy sees exactly what the package promises::

    from attention_from_scratch.arrays import F, FloatArray
    from numpy.typing import NDArray

    def step(w: NDArray[F], grad: NDArray[F], lr: float) -> NDArray[F]: ...

The dtype-preserving functions are overloaded in one pattern: ``NDArray[F] ->
NDArray[F]`` for a known floating dtype, ``Float64Like -> NDArray[np.float64]`` for
Python numbers, lists and integer arrays (which become ``float64``), and ``ArrayLike ->
FloatArray`` for the rest. This module holds only types; it is the lowest layer of the
package and imports nothing from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["BoolArray", "F", "Float64Like", "FloatArray", "IntArray"]

#: A floating dtype that a function keeps -- ``float16``, ``float32`` or ``float64``
#: (``NDArray[F]`` in, ``NDArray[F]`` out).
F = TypeVar("F", bound=np.floating[Any])

#: An array of some floating dtype, known only at run time.
FloatArray = NDArray[np.floating[Any]]

#: A boolean array -- masks, True means "may attend".
BoolArray = NDArray[np.bool_]

#: An array of integers -- lengths, indices.
IntArray = NDArray[np.integer[Any]]

#: Inputs that become ``float64`` -- Python numbers, nested sequences of them (up to
#: 4-D) and integer arrays; the functions' ``-> NDArray[np.float64]`` overloads.
Float64Like = (
    float
    | Sequence[float]
    | Sequence[Sequence[float]]
    | Sequence[Sequence[Sequence[float]]]
    | Sequence[Sequence[Sequence[Sequence[float]]]]
    | NDArray[np.integer[Any]]
)
