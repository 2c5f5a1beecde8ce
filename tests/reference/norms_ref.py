"""Loop references for :mod:`attention_from_scratch.norms`, in exact rational arithmetic.

Each function takes one vector (a sequence of floats) and follows the textbook
formula with Python loops. Sums of squares, means and variances are computed exactly
with :class:`fractions.Fraction`, so there is no overflow, underflow or cancellation to
worry about; the only roundings are the final square root and the conversions back to
``float``. That makes these references independent of the scaling tricks of the
vectorised code, and accurate to an ulp or two for any finite input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction


def _exact(values: Sequence[float]) -> list[Fraction]:
    return [Fraction(float(v)) for v in values]


def sqrt_fraction(q: Fraction) -> float:
    """``sqrt(q)`` rounded to float, for any ``q >= 0`` (even beyond the float range)."""
    if q == 0:
        return 0.0
    # q = r * 4^k with r of order 1: float(r) neither overflows nor underflows.
    k = (q.numerator.bit_length() - q.denominator.bit_length()) // 2
    r = q / Fraction(4) ** k
    return math.ldexp(math.sqrt(float(r)), k)


def _signed_root_ratio(c: Fraction, q: Fraction) -> float:
    """``c / sqrt(q) = sign(c) sqrt(c^2 / q)``, with one rounding (even when sqrt(q) is subnormal)."""
    magnitude = sqrt_fraction(c * c / q)
    return -magnitude if c < 0 else magnitude


def l2_norm_ref(x: Sequence[float]) -> float:
    """sqrt(sum_i x_i^2)."""
    total = Fraction(0)
    for xi in _exact(x):
        total += xi * xi
    return sqrt_fraction(total)


def l2_normalize_ref(x: Sequence[float], eps: float | None = None) -> list[float]:
    """x / max(||x||, eps); raises ZeroDivisionError for a zero vector without eps.

    ``x_i / ||x|| = sign(x_i) sqrt(x_i^2 / sum_j x_j^2)`` is evaluated exactly up to the
    final square root, so even a subnormal vector gets its exact unit vector.
    """
    values = _exact(x)
    total = Fraction(0)
    for xi in values:
        total += xi * xi
    if eps is not None and total < Fraction(eps) ** 2:  # ||x|| < eps: x / eps
        return [float(xi / Fraction(eps)) for xi in values]
    if total == 0:
        msg = "zero vector"
        raise ZeroDivisionError(msg)
    return [_signed_root_ratio(xi, total) for xi in values]


def cosine_similarity_ref(a: Sequence[float], b: Sequence[float]) -> float:
    """a.b / (|a| |b|) = sign(a.b) sqrt((a.b)^2 / (|a|^2 |b|^2)), exactly up to the sqrt."""
    dot = Fraction(0)
    norm_a2 = Fraction(0)
    norm_b2 = Fraction(0)
    for ai, bi in zip(_exact(a), _exact(b), strict=True):
        dot += ai * bi
        norm_a2 += ai * ai
        norm_b2 += bi * bi
    magnitude = sqrt_fraction(dot * dot / (norm_a2 * norm_b2))
    return -magnitude if dot < 0 else magnitude


def layer_norm_ref(
    x: Sequence[float],
    gamma: Sequence[float] | None = None,
    beta: Sequence[float] | None = None,
    eps: float = 1e-5,
) -> list[float]:
    """(x_i - mean) / sqrt(var + eps) * gamma_i + beta_i, var = mean((x - mean)^2)."""
    values = _exact(x)
    d = len(values)
    mean = Fraction(0)
    for xi in values:
        mean += xi
    mean /= d
    var = Fraction(0)
    for xi in values:
        var += (xi - mean) ** 2
    var /= d
    denominator = var + Fraction(eps)
    out = []
    for i, xi in enumerate(values):
        g = 1.0 if gamma is None else float(gamma[i])
        b = 0.0 if beta is None else float(beta[i])
        out.append(_signed_root_ratio(xi - mean, denominator) * g + b)
    return out


def rms_norm_ref(
    x: Sequence[float], gamma: Sequence[float] | None = None, eps: float = 1e-6
) -> list[float]:
    """x_i / sqrt(mean(x^2) + eps) * gamma_i."""
    values = _exact(x)
    mean_square = Fraction(0)
    for xi in values:
        mean_square += xi * xi
    mean_square /= len(values)
    denominator = mean_square + Fraction(eps)
    out = []
    for i, xi in enumerate(values):
        g = 1.0 if gamma is None else float(gamma[i])
        out.append(_signed_root_ratio(xi, denominator) * g)
    return out
