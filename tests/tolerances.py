"""The tests' one tolerance table and one ``assert_close``.

The table of ``docs/guarantees.md`` ("Tolerances"), written once. Every comparison of
a computed array with a reference goes through :func:`assert_close`, which wraps
:func:`numpy.testing.assert_allclose` (``equal_nan=False``: a NaN is never "close").

======================  ========  ========  ==========================================
name                    rtol      atol      for
======================  ========  ========  ==========================================
``TOLERANCES[f16]``     1e-3      1e-5      float16 results (torch.testing's defaults)
``TOLERANCES[f32]``     1.3e-6    1e-5      float32 results (torch.testing's defaults)
``TOLERANCES[f64]``     1e-7      1e-7      float64 against other float64 results
``REFERENCE``           1e-12     1e-12     float64 against the float64 loop reference
``DERIVATIVE``          1e-9      1e-9      gradients against the complex step / autograd
======================  ========  ========  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "DERIVATIVE",
    "REFERENCE",
    "TOLERANCES",
    "Tolerance",
    "against_reference",
    "assert_close",
    "tolerance",
]


@dataclass(frozen=True)
class Tolerance:
    """``rtol``/``atol`` for :func:`numpy.testing.assert_allclose`."""

    rtol: float
    atol: float

    def check(self, actual: ArrayLike, desired: ArrayLike, err_msg: str = "") -> None:
        """``assert_close(actual, desired, tol=self)``."""
        assert_close(actual, desired, tol=self, err_msg=err_msg)


TOLERANCES: dict[np.dtype[Any], Tolerance] = {
    np.dtype(np.float16): Tolerance(1e-3, 1e-5),
    np.dtype(np.float32): Tolerance(1.3e-6, 1e-5),
    np.dtype(np.float64): Tolerance(1e-7, 1e-7),
}
"""One row per dtype (torch.testing's defaults), as in docs/guarantees.md."""

REFERENCE = Tolerance(1e-12, 1e-12)
"""float64 results against the independent float64 loop reference."""

DERIVATIVE = Tolerance(1e-9, 1e-9)
"""Analytic gradients against the complex-step reference or torch autograd (float64)."""


def tolerance(dtype: Any) -> Tolerance:
    """The table's row for results computed in ``dtype``."""
    return TOLERANCES[np.dtype(dtype)]


def against_reference(dtype: Any) -> Tolerance:
    """How closely results in ``dtype`` must match the float64 loop reference.

    float16 and float32: their row of :data:`TOLERANCES`; float64: :data:`REFERENCE`.
    """
    dt = np.dtype(np.float64 if dtype is None else dtype)
    return REFERENCE if dt == np.float64 else TOLERANCES[dt]


def assert_close(
    actual: ArrayLike | None,
    desired: ArrayLike,
    *,
    dtype: Any = None,
    tol: Tolerance | None = None,
    err_msg: str = "",
) -> None:
    """Assert ``actual`` agrees with ``desired`` (both compared in float64).

    ``tol`` picks the tolerance; otherwise ``dtype`` does: float16 and float32 results
    use their row of :data:`TOLERANCES`; float64 results (and ``dtype=None``) are
    compared with a float64 loop reference, :data:`REFERENCE`. A missing result
    (``None``, such as a gradient that was not computed) is never close.
    """
    assert actual is not None, f"no result to compare {err_msg}"
    if tol is None:
        tol = against_reference(dtype)
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64),
        np.asarray(desired, dtype=np.float64),
        rtol=tol.rtol,
        atol=tol.atol,
        err_msg=err_msg,
    )
