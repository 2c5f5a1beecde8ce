"""Scalars: sizes, factors, flags, seeds and types of options (private; see :mod:`attention_from_scratch._checks`)."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

from attention_from_scratch._checks.arrays import describe

T = TypeVar("T")

#: The types a real scalar option may have (bool, a subclass of int, is refused first).
_REALS = (int, float, np.integer, np.floating)

__all__ = [
    "as_generator",
    "check_bool",
    "check_instance",
    "finite_real",
    "non_negative_finite",
    "non_negative_int",
    "positive_finite",
    "positive_int",
]


def _to_float(value: float | np.integer[Any] | np.floating[Any]) -> float:
    """``float(value)``, with ints beyond the float range mapped to +-inf (not OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _finite_number(value: object, name: str, sign: str = "") -> float:
    """``value`` as a finite float; ``sign`` is ``""``, ``"> 0"`` or ``">= 0"``.

    Not a real number (bool included): :class:`TypeError`; not finite, or of the wrong
    sign: :class:`ValueError`. Both messages name the argument.
    """
    if type(value) is float:  # the usual case (eps, a scale): no conversion needed
        result = value
    elif isinstance(value, bool) or not isinstance(value, _REALS):
        wanted = f" {sign}" if sign else ""
        msg = f"{name} must be a real number{wanted}, got {describe(value)}"
        raise TypeError(msg)
    else:
        result = _to_float(value)
    wrong_sign = (sign == "> 0" and result <= 0.0) or (sign == ">= 0" and result < 0.0)
    if not math.isfinite(result) or wrong_sign:
        wanted = f" {sign}" if sign else ""
        msg = f"{name} must be finite{' and' + wanted if sign else ''}, got {result}"
        raise ValueError(msg)
    return result


def positive_finite(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ValueError."""
    return _finite_number(value, name, "> 0")


def finite_real(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number (any sign)."""
    return _finite_number(value, name)


def _int_at_least(value: object, name: str, low: int, kind: str) -> int:
    """``value`` as an int ``>= low``; ``kind`` names what is expected in the TypeError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be {kind}, got {describe(value)}"
        raise TypeError(msg)
    result = int(value)
    if result < low:
        msg = f"{name} must be >= {low}, got {result}"
        raise ValueError(msg)
    return result


def positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1."""
    return _int_at_least(value, name, 1, "a positive int")


def non_negative_finite(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0 (an ``eps``), else raise."""
    return _finite_number(value, name, ">= 0")


def non_negative_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 0 (a size), else raise."""
    return _int_at_least(value, name, 0, "an int")


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` as a bool if it is one (Python or NumPy); any other type raises.

    ``1``, ``"yes"`` or ``None`` are rejected rather than read by their truth value.
    """
    if not isinstance(value, bool | np.bool_):
        msg = f"{name} must be a bool, got {describe(value)}"
        raise TypeError(msg)
    return bool(value)


def as_generator(rng: object, name: str = "rng") -> np.random.Generator:
    """``numpy.random.default_rng(rng)`` for None, an int seed ``>= 0`` or a generator.

    A bit generator or seed sequence is accepted too. Any other type (bool, str, float)
    is a :class:`TypeError`, a negative seed a :class:`ValueError`; both name ``name``.
    """
    kinds = np.random.Generator | np.random.BitGenerator | np.random.SeedSequence
    if rng is None or isinstance(rng, kinds):
        return np.random.default_rng(rng)
    if isinstance(rng, bool) or not isinstance(rng, int | np.integer):
        msg = f"{name} must be None, an int seed or a numpy.random.Generator, got {describe(rng)}"
        raise TypeError(msg)
    if rng < 0:
        msg = f"{name} must be an int seed >= 0, got {int(rng)}"
        raise ValueError(msg)
    return np.random.default_rng(int(rng))


def check_instance(value: object, cls: type[T], name: str) -> T:
    """Return ``value`` if it is an instance of ``cls``, else raise :class:`TypeError`."""
    if not isinstance(value, cls):
        article = "an" if cls.__name__[:1].lower() in "aeiou" else "a"
        msg = f"{name} must be {article} {cls.__name__}, got {describe(value)}"
        raise TypeError(msg)
    return value
