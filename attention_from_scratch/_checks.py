"""Input validation shared by every public function (private).

Every public routine validates its inputs once, here, at the public boundary,
and then works on plain floating-point arrays. The policy is the one written in
``docs/guarantees.md``: an error names the argument and shows the offending shape,
dtype or index; nothing returns NaN silently.

The rules, in one place:

* ``None``, strings, object arrays, masked arrays -> :class:`TypeError`;
* ragged nested lists -> :class:`ValueError`;
* ``bool`` -> :class:`TypeError` (a boolean array passed as data is probably a mask);
* complex -> :class:`TypeError`;
* integers -> cast to ``float64`` (the SciPy rule), Python ints beyond int64 too;
* ``float16``/``float32``/``float64`` -> kept as they are;
* NaN or an infinity -> :class:`ValueError` naming the argument and the first bad index;
* a finite input whose exact result does not fit the dtype -> :class:`FloatingPointError`
  advising a wider dtype or rescaling (never ``inf`` with a ``RuntimeWarning``);
* arithmetic runs on C-contiguous arrays in the working dtype (:func:`as_working`), so a
  result never depends on the memory layout of its input.
"""

from __future__ import annotations

import math
import operator
from typing import Any, SupportsIndex, TypeVar

import numpy as np
from numpy.lib.array_utils import normalize_axis_index
from numpy.typing import NDArray

from attention_from_scratch.arrays import BoolArray, F, Float64Like, FloatArray, IntArray

T = TypeVar("T")

__all__ = [
    "FLOAT_DTYPES",
    "BoolArray",
    "F",
    "Float64Like",
    "FloatArray",
    "IntArray",
    "as_bool_mask",
    "as_float_array",
    "as_generator",
    "as_gradient",
    "as_int_array",
    "as_working",
    "at_least_ndim",
    "batch_index",
    "broadcast_to_shape",
    "check_bool",
    "check_cast",
    "check_embeddings",
    "check_finite",
    "check_index",
    "check_instance",
    "check_qkv",
    "check_row_max",
    "check_same_dtype",
    "check_same_shape",
    "finite_real",
    "finite_result",
    "first_index",
    "float_dtype",
    "frozen",
    "int_index",
    "non_negative_finite",
    "non_negative_int",
    "normalize_axis",
    "overflow_advice",
    "peak",
    "positive_finite",
    "positive_int",
    "read_only",
    "working_dtype",
]


def _describe(x: object) -> str:
    """Name the type of ``x`` for an error message."""
    return type(x).__name__


def as_float_array(x: object, name: str) -> FloatArray:
    """Return ``x`` as a floating-point ndarray, or raise with ``name`` in the message.

    Integer input becomes ``float64``; floating input keeps its dtype and is not copied.
    """
    if x is None:
        msg = f"{name} must be an array of real numbers, got None"
        raise TypeError(msg)
    if isinstance(x, str | bytes):
        msg = f"{name} must be an array of real numbers, got a string {x!r}"
        raise TypeError(msg)
    if isinstance(x, np.ma.MaskedArray):
        msg = (
            f"{name} is a numpy masked array, which is not supported: "
            "fill it (x.filled()) and pass the mask as a boolean `where=`/`mask=`"
        )
        raise TypeError(msg)
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        msg = f"{name} must be a rectangular array of real numbers: {exc}"
        raise ValueError(msg) from None
    kind = arr.dtype.kind
    if kind == "f":
        return arr
    if kind in "iu":
        return arr.astype(np.float64)
    if kind == "b":
        msg = (
            f"{name} must be an array of real numbers, got dtype bool "
            "(is it a mask? masks go in `where=` or `mask=`)"
        )
        raise TypeError(msg)
    if kind == "c":
        msg = f"{name} must be real, got complex dtype {arr.dtype}"
        raise TypeError(msg)
    if kind == "O" and not isinstance(x, np.ndarray) and _python_numbers(arr):
        return _big_ints_as_float64(arr, name)
    msg = f"{name} must be an array of real numbers, got dtype {arr.dtype} ({_describe(x)})"
    raise TypeError(msg)


def _python_numbers(arr: NDArray[Any]) -> bool:
    """Whether the object array ``arr`` holds only Python ints and floats, bool excluded.

    numpy makes such an array from a list with an int beyond int64 (``[2**70, 1]``).
    """
    return arr.size > 0 and all(type(value) is int or type(value) is float for value in arr.flat)


def _big_ints_as_float64(arr: NDArray[Any], name: str) -> FloatArray:
    """An object array of Python ints (and floats) as float64, the rule for integers.

    An int beyond the float64 range (about 1.8e308) is a :class:`ValueError` naming it.
    """
    out = np.empty(arr.shape, dtype=np.float64)
    for index, value in np.ndenumerate(arr):
        try:
            out[index] = float(value)
        except OverflowError:
            msg = (
                f"{name} holds an integer too large for float64 at index {index} "
                f"(about 10**{len(str(abs(value))) - 1}, the largest float64 is 1.8e308)"
            )
            raise ValueError(msg) from None
    return out


def as_bool_mask(mask: object, name: str) -> BoolArray:
    """Return ``mask`` as a boolean ndarray; any other dtype is a :class:`TypeError`."""
    if mask is None or isinstance(mask, str | bytes):
        msg = f"{name} must be a boolean array, got {_describe(mask)}"
        raise TypeError(msg)
    if isinstance(mask, np.ma.MaskedArray):
        msg = f"{name} must be a plain boolean array, got a numpy masked array"
        raise TypeError(msg)
    try:
        arr = np.asarray(mask)
    except ValueError as exc:
        msg = f"{name} must be a rectangular boolean array: {exc}"
        raise ValueError(msg) from None
    if arr.dtype != np.bool_:
        msg = f"{name} must be bool (True = may attend), got {arr.dtype}"
        raise TypeError(msg)
    return arr


def first_index(flags: NDArray[np.bool_]) -> tuple[int, ...]:
    """Index of the first True entry of ``flags`` (C order) as a tuple of ints."""
    flat = int(np.argmax(flags.ravel()))
    return tuple(int(i) for i in np.unravel_index(flat, flags.shape))


def check_finite(arr: FloatArray, name: str, *, allow_neg_inf: bool = False) -> None:
    """Raise :class:`ValueError` at the first NaN or infinite entry of ``arr``.

    With ``allow_neg_inf=True`` entries equal to ``-inf`` are accepted (an additive
    bias that forbids a key).
    """
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad = ~finite
    if allow_neg_inf:
        bad &= ~np.isneginf(arr)
        if not bad.any():
            return
    index = first_index(bad)
    value = arr[index]
    what = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
    allowed = " (only -inf is allowed)" if allow_neg_inf else ""
    msg = f"{name} must be finite{allowed}: found {what} at index {index}, shape {arr.shape}"
    raise ValueError(msg)


def check_row_max(
    row_max: FloatArray,
    arr: FloatArray,
    name: str,
    *,
    allow_empty_rows: bool,
    hint: str = "pass `where=` to mark rows that may be empty",
) -> None:
    """Validate an array through the row maxima a stable softmax computes anyway.

    A row maximum is NaN exactly when the row holds a NaN, ``+inf`` exactly when the
    row holds ``+inf``, and ``-inf`` exactly when every entry of the row is ``-inf``.
    Checking the small reduced array avoids a second scan of ``arr``; ``arr`` is only
    searched again, to report the index, when an error is raised.
    """
    if np.isfinite(row_max).all():
        return
    if np.isnan(row_max).any():
        index = first_index(np.isnan(arr))
        msg = f"{name} must not contain NaN: found NaN at index {index}, shape {arr.shape}"
        raise ValueError(msg)
    if np.isposinf(row_max).any():
        index = first_index(np.isposinf(arr))
        msg = (
            f"{name} must not contain +inf (only -inf, meaning 'weight 0', is allowed): "
            f"found +inf at index {index}, shape {arr.shape}"
        )
        raise ValueError(msg)
    if not allow_empty_rows:
        row = first_index(np.isneginf(row_max))
        msg = (
            f"{name} has a row whose entries are all -inf (row max at index {row} of the "
            f"reduced shape {row_max.shape}); its softmax is 0/0. {hint}"
        )
        raise ValueError(msg)


def normalize_axis(axis: object, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` as a non-negative int for an array of ``ndim`` dimensions.

    Raises :class:`TypeError` if ``axis`` is not an integer and
    :class:`numpy.exceptions.AxisError` if it is out of range.
    """
    if isinstance(axis, bool):
        msg = f"{name} must be an int, got bool"
        raise TypeError(msg)
    if not isinstance(axis, SupportsIndex):
        msg = f"{name} must be an int, got {_describe(axis)}"
        raise TypeError(msg)
    try:
        index = operator.index(axis)  # ndarrays have __index__ but raise for non-integers
    except TypeError:
        msg = f"{name} must be an int, got {_describe(axis)}"
        raise TypeError(msg) from None
    return int(normalize_axis_index(index, ndim))


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
    wanted = f" {sign}" if sign else ""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        msg = f"{name} must be a real number{wanted}, got {_describe(value)}"
        raise TypeError(msg)
    result = _to_float(value)
    wrong_sign = (sign == "> 0" and result <= 0.0) or (sign == ">= 0" and result < 0.0)
    if not np.isfinite(result) or wrong_sign:
        msg = f"{name} must be finite{' and' + wanted if sign else ''}, got {result}"
        raise ValueError(msg)
    return result


def positive_finite(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ValueError."""
    return _finite_number(value, name, "> 0")


def check_same_dtype(**arrays: FloatArray) -> None:
    """Raise :class:`TypeError` if the named arrays do not share one dtype."""
    dtypes = {name: arr.dtype for name, arr in arrays.items()}
    if len(set(dtypes.values())) > 1:
        seen = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        msg = f"{', '.join(dtypes)} must share one floating dtype, got {seen}"
        raise TypeError(msg)


def check_same_shape(**arrays: FloatArray) -> None:
    """Raise :class:`ValueError` if the named arrays do not share one shape."""
    shapes = {name: arr.shape for name, arr in arrays.items()}
    if len(set(shapes.values())) > 1:
        seen = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        msg = f"{', '.join(shapes)} must have the same shape, got {seen}"
        raise ValueError(msg)


def working_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype arithmetic is done in: float16 accumulates in float32."""
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def finite_real(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number (any sign)."""
    return _finite_number(value, name)


def broadcast_to_shape(arr: NDArray[Any], shape: tuple[int, ...], name: str, target: str) -> Any:
    """``np.broadcast_to(arr, shape)`` with an error that quotes both shapes."""
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        msg = f"{name} of shape {arr.shape} does not broadcast to {target} of shape {shape}"
        raise ValueError(msg) from None


def _int_at_least(value: object, name: str, low: int, kind: str) -> int:
    """``value`` as an int ``>= low``; ``kind`` names what is expected in the TypeError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be {kind}, got {_describe(value)}"
        raise TypeError(msg)
    result = int(value)
    if result < low:
        msg = f"{name} must be >= {low}, got {result}"
        raise ValueError(msg)
    return result


def positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1."""
    return _int_at_least(value, name, 1, "a positive int")


# --- added with the reliability policy: checks that several modules had privately ---


def at_least_ndim(arr: NDArray[Any], ndim: int, name: str, layout: str) -> None:
    """Raise :class:`ValueError` unless ``arr`` has at least ``ndim`` dimensions.

    ``layout`` says what the dimensions are, e.g. ``"(the vector axis)"`` or
    ``"(..., n, d_model)"``; the message quotes it and the shape seen.
    """
    if arr.ndim >= ndim:
        return
    count = "one dimension" if ndim == 1 else f"{ndim} dimensions"
    got = "a 0-d array" if arr.ndim == 0 else f"shape {arr.shape}"
    msg = f"{name} needs at least {count} {layout}, got {got}"
    raise ValueError(msg)


def as_working(arr: FloatArray) -> FloatArray:
    """``arr`` as a C-contiguous array in its working dtype (float16 -> float32).

    Reductions and matrix products sum in an order that depends on the memory layout
    (NumPy's pairwise summation runs along the contiguous axis, BLAS picks kernels by
    strides); working on a C-contiguous copy makes every result independent of whether
    the input was Fortran-ordered, reversed or a strided view. No copy is made when
    ``arr`` already is C-contiguous in the working dtype.
    """
    out: FloatArray = np.ascontiguousarray(arr, dtype=working_dtype(arr.dtype))
    return out


def finite_result(
    out: FloatArray, dtype: np.dtype[Any], what: str, *, allow_neg_inf: bool = False
) -> FloatArray:
    """Cast ``out`` to ``dtype``; raise :class:`FloatingPointError` where it is not finite.

    For results computed from finite, validated inputs, a non-finite entry means the
    exact result does not fit ``dtype`` (or an intermediate of the working dtype
    overflowed). The error says where and what to do, instead of returning ``inf``
    with a ``RuntimeWarning``. With ``allow_neg_inf``, entries that already are
    ``-inf`` in ``out`` are results (the log of an empty sum), not overflows.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        result: FloatArray = out.astype(dtype, copy=False)
    finite = np.isfinite(result)
    if allow_neg_inf:
        finite |= np.isneginf(out)
    if not finite.all():
        index = first_index(~finite)
        msg = (
            f"{what} overflows {dtype} at index {index}: the exact result is larger than "
            f"{np.finfo(dtype).max:.4g}; {overflow_advice(dtype, 'rescale', wider='pass')}"
        )
        raise FloatingPointError(msg)
    return result


def overflow_advice(dtype: np.dtype[Any], rescale: str, *, wider: str = "compute in") -> str:
    """What to do when ``dtype`` overflowed: a wider float dtype if there is one, or rescale.

    ``"compute in float64 or rescale q and k"`` for float32, ``"rescale q and k"`` for
    float64 (none is wider); with ``wider="pass"``, ``"pass a wider dtype (float32,
    float64) or rescale"`` for float16.
    """
    dtypes = [str(d) for d in FLOAT_DTYPES if d.itemsize > np.dtype(dtype).itemsize]
    if not dtypes:
        return rescale
    if wider == "pass":
        return f"pass a wider dtype ({', '.join(dtypes)}) or {rescale}"
    return f"{wider} float64 or {rescale}"


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
        msg = f"{name} must be a bool, got {_describe(value)}"
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
        msg = f"{name} must be None, an int seed or a numpy.random.Generator, got {_describe(rng)}"
        raise TypeError(msg)
    if rng < 0:
        msg = f"{name} must be an int seed >= 0, got {int(rng)}"
        raise ValueError(msg)
    return np.random.default_rng(int(rng))


def check_instance(value: object, cls: type[T], name: str) -> T:
    """Return ``value`` if it is an instance of ``cls``, else raise :class:`TypeError`."""
    if not isinstance(value, cls):
        article = "an" if cls.__name__[:1].lower() in "aeiou" else "a"
        msg = f"{name} must be {article} {cls.__name__}, got {_describe(value)}"
        raise TypeError(msg)
    return value


def as_int_array(x: object, name: str) -> IntArray:
    """Return ``x`` as an integer ndarray, or raise with ``name`` in the message.

    ``None``, strings, masked arrays, bool, float, complex and object input are
    :class:`TypeError`; ragged nested lists are :class:`ValueError`. An empty list
    is an empty integer array (an empty batch), not a float one.
    """
    if x is None or isinstance(x, str | bytes):
        msg = f"{name} must be an array of integers, got {_describe(x)}"
        raise TypeError(msg)
    if isinstance(x, np.ma.MaskedArray):
        msg = f"{name} is a numpy masked array, which is not supported: pass a plain array"
        raise TypeError(msg)
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        msg = f"{name} must be a rectangular array of integers: {exc}"
        raise ValueError(msg) from None
    if arr.size == 0 and arr.dtype == np.float64 and not isinstance(x, np.ndarray):
        arr = arr.astype(np.intp)  # [] has no dtype of its own: an empty batch
    if arr.dtype.kind not in "iu":
        msg = f"{name} must be integers, got dtype {arr.dtype}"
        raise TypeError(msg)
    return arr


def frozen(arr: FloatArray) -> FloatArray:
    """``arr`` made read-only in place: for arrays the computation has just made."""
    arr.flags.writeable = False
    return arr


def read_only(arr: NDArray[Any]) -> NDArray[Any]:
    """A C-contiguous copy of ``arr`` that cannot be written to (for frozen results)."""
    out: NDArray[Any] = np.array(arr, order="C", copy=True)
    out.flags.writeable = False
    return out


# --- gradients: the upstream gradient of a backward pass ---


def as_gradient(
    grad: object, shape: tuple[int, ...], dtype: np.dtype[Any], of: str, name: str = "grad"
) -> FloatArray:
    """Validate the upstream gradient ``grad`` of a vector-Jacobian product.

    It must be a real array of exactly ``shape`` and ``dtype``, those of the forward
    pass's output ``of`` (integers become ``float64`` first), and finite.
    """
    arr = as_float_array(grad, name)
    if arr.shape != shape:
        msg = f"{name} must have the shape of {of} {shape}, got {name} {arr.shape}"
        raise ValueError(msg)
    if arr.dtype != dtype:
        msg = f"{name} must have the dtype of {of} ({dtype}), got {name} {arr.dtype}"
        raise TypeError(msg)
    check_finite(arr, name)
    return arr


# --- attention: q, k, v checked together ---


def peak(arr: FloatArray, name: str) -> float:
    """``max |arr|``, validating ``arr`` on the way (0 for an empty array).

    The largest and the smallest entry are NaN or infinite exactly when ``arr`` holds a
    NaN or an infinity, so two reductions, without a temporary array, both bound the
    scores and check that ``arr`` is finite.
    """
    if arr.size == 0:
        return 0.0
    high, low = float(np.max(arr)), float(np.min(arr))
    if not (math.isfinite(high) and math.isfinite(low)):
        check_finite(arr, name)  # raises, naming the first bad index
    return max(high, -low)


def check_qkv(
    q: object, k: object, v: object
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[int, ...], float, float]:
    """Check q, k, v once; return them, the broadcast batch shape, max|q| max|k| and max|v|."""
    q_arr, k_arr, v_arr = as_float_array(q, "q"), as_float_array(k, "k"), as_float_array(v, "v")
    check_same_dtype(q=q_arr, k=k_arr, v=v_arr)
    for name, arr in (("q", q_arr), ("k", k_arr), ("v", v_arr)):
        at_least_ndim(arr, 2, name, "(..., tokens, features)")
    if q_arr.shape[-1] != k_arr.shape[-1]:
        msg = f"q and k must share the last dimension d_k: q {q_arr.shape}, k {k_arr.shape}"
        raise ValueError(msg)
    if k_arr.shape[-2] != v_arr.shape[-2]:
        msg = f"k and v must have the same number of keys m: k {k_arr.shape}, v {v_arr.shape}"
        raise ValueError(msg)
    if k_arr.shape[-2] == 0:
        msg = f"attention needs at least one key (m = 0): k {k_arr.shape}"
        raise ValueError(msg)
    if q_arr.shape[-1] == 0:
        msg = f"q and k have no features (d_k = 0): q {q_arr.shape}, k {k_arr.shape}"
        raise ValueError(msg)
    try:
        batch = np.broadcast_shapes(q_arr.shape[:-2], k_arr.shape[:-2], v_arr.shape[:-2])
    except ValueError:
        msg = (
            "the batch dimensions of q, k and v do not broadcast: "
            f"q {q_arr.shape}, k {k_arr.shape}, v {v_arr.shape}"
        )
        raise ValueError(msg) from None
    peak_qk = peak(q_arr, "q") * peak(k_arr, "k")
    return q_arr, k_arr, v_arr, batch, peak_qk, peak(v_arr, "v")


def check_cast(before: FloatArray, after: FloatArray, name: str) -> None:
    """Raise ValueError if casting ``before`` to ``after``'s dtype made a finite entry infinite."""
    overflowed = np.isinf(after) & np.isfinite(before)
    if overflowed.any():
        index = first_index(overflowed)
        msg = (
            f"{name} does not fit q's dtype {after.dtype}: {float(before[index])!r} at index "
            f"{index} overflows it"
        )
        raise ValueError(msg)


# --- indices: which batch entry, head, query or key ---


def check_index(i: int, size: int, what: str) -> int:
    """Return ``i`` (which may count from the end) in ``0 .. size - 1``, or raise IndexError."""
    if not -size <= i < size:
        msg = f"index {i} is out of bounds for {what} with size {size}"
        raise IndexError(msg)
    return i % size


def int_index(value: object, size: int, what: str) -> int:
    """Validate an int index (bool, float, str are :class:`TypeError`) of an axis of ``size``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{what} must be an int, got {_describe(value)}"
        raise TypeError(msg)
    return check_index(int(value), size, what)


def batch_index(batch: object, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Turn ``batch`` (None, an int or a tuple of ints) into a full index of ``shape``.

    None is allowed only when the leading dimensions ``shape`` hold one entry.
    """
    if batch is None:
        if math.prod(shape) == 0:
            msg = (
                f"the result's batch is empty (batch dimensions {shape}): no batch entry to index"
            )
            raise IndexError(msg)
        if math.prod(shape) > 1:
            msg = f"the result has batch dimensions {shape}: pass batch= (an int or a tuple)"
            raise ValueError(msg)
        return (0,) * len(shape)
    index = tuple(batch) if isinstance(batch, tuple | list) else (batch,)
    if len(index) != len(shape):
        msg = f"batch must index all {len(shape)} batch dimensions {shape}, got {batch!r}"
        raise ValueError(msg)
    out: list[int] = []
    for axis, (i, size) in enumerate(zip(index, shape, strict=True)):
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            msg = f"batch indices must be ints, got {_describe(i)}"
            raise TypeError(msg)
        out.append(check_index(int(i), size, f"batch axis {axis}"))
    return tuple(out)


def check_embeddings(x: object, name: str, w_q: FloatArray) -> FloatArray:
    """Validate ``x`` as ``(..., n, d_model)`` rows in the dtype of the weight ``w_q``.

    ``d_model`` is the number of rows of ``w_q`` (d_model, h d_k); ``x`` must be finite.
    """
    arr = as_float_array(x, name)
    at_least_ndim(arr, 2, name, "(..., n, d_model)")
    if arr.shape[-1] != w_q.shape[0]:
        msg = (
            f"{name}'s last dimension must be d_model = {w_q.shape[0]} (the rows of w_q): "
            f"{name} {arr.shape}, w_q {w_q.shape}"
        )
        raise ValueError(msg)
    if arr.dtype != w_q.dtype:
        msg = (
            f"{name} and params must share one floating dtype, "
            f"got {name} {arr.dtype}, params {w_q.dtype}"
        )
        raise TypeError(msg)
    check_finite(arr, name)
    return arr


# --- dtypes asked for by name ---

#: The floating dtypes the package computes in (float16 is accumulated in float32).
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(
    dtype: object, name: str = "dtype", allowed: tuple[np.dtype[Any], ...] = FLOAT_DTYPES
) -> np.dtype[Any]:
    """``dtype`` as a numpy dtype if it is one of ``allowed``, else :class:`TypeError`."""
    words = ", ".join(str(d) for d in allowed[:-1]) + f" or {allowed[-1]}"
    try:
        dt: np.dtype[Any] = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        msg = f"{name} must be {words}, got {dtype!r}"
        raise TypeError(msg) from None
    if dt not in allowed:
        msg = f"{name} must be {words}, got {dt}"
        raise TypeError(msg)
    return dt
