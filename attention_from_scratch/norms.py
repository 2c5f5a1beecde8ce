r"""Norms and dot products: the geometry under every attention score.

An attention score is a dot product of a query and a key (:cite:t:`vaswani2017attention`,
§3.2.1, Eq. 1), and a dot product is lengths times an angle:

.. math::

   q \cdot k = \lVert q \rVert \, \lVert k \rVert \cos\theta .

So a score is large when the query and the key point the same way (:math:`\cos\theta`
near 1) *or* when they are long. For random :math:`q, k \in \mathbb{R}^{d_k}` whose
components are independent with mean 0 and variance 1, each product :math:`q_i k_i`
has mean 0 and variance 1, so their sum :math:`q \cdot k` has mean 0 and variance
:math:`d_k`: the typical score grows like :math:`\sqrt{d_k}`. This is exactly what the
:math:`1/\sqrt{d_k}` of Eq. 1 divides away (footnote 4 of §3.2.1), so the softmax sees
scores of spread 1 whatever the head size.

This module measures those lengths and angles, and normalises them:

* :func:`l2_norm` -- the Euclidean length, without overflow or underflow for huge or
  tiny entries (where ``np.linalg.norm`` gives ``inf`` or 0);
* :func:`l2_normalize` -- the unit vector of the same direction;
* :func:`cosine_similarity` -- :math:`\cos\theta`, the score with the lengths divided out;
* :func:`layer_norm` and :func:`rms_norm` -- the normalisations that transformers apply
  to each token's vector before (or after) attention :cite:p:`ba2016layer,zhang2019root`;
* :func:`layer_norm_vjp`, :func:`rms_norm_vjp` and :func:`l2_normalize_vjp` -- their
  backward passes, the gradients that train a model through them.

Every routine keeps the input's floating dtype (``float16`` is computed in ``float32``)
and follows the package's input policy: NaN and infinities are errors naming the
argument and the index, bool and complex input are :class:`TypeError`.

The running example has three tokens with four features ``noun, adjective, colour,
texture``::

    x = [[0, 1, 0, 1],    # fluffy:   an adjective about texture
         [0, 1, 1, 0],    # blue:     an adjective about colour
         [1, 0, 0, 0]]    # creature: a noun

The noun's query is ``q = [3, 1, 0, 0]`` ("seeks an adjective, and a texture") and
fluffy's key is ``k = [1, 1, 0, 0]`` ("is an adjective, is a texture"): their score
``q . k = 4`` is ``|q| |k| cos(theta) = sqrt(10) * sqrt(2) * 0.8944``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from attention_from_scratch._checks import (
    F,
    Float64Like,
    FloatArray,
    IntArray,
    as_float_array,
    as_gradient,
    as_working,
    at_least_ndim,
    check_bool,
    check_finite,
    check_instance,
    check_same_dtype,
    finite_result,
    finite_results,
    first_index,
    fits,
    frozen,
    gradient_peak,
    named_peak,
    non_negative_finite,
    normalize_axis,
    peak,
    positive_finite,
    read_only,
    silenced,
    working_dtype,
)
from attention_from_scratch._kernel import (
    divide_by_root,
    layer_norm_bound,
    layer_norm_grads_rows,
    layer_norm_rows,
    layer_norm_vjp_bound,
    layer_norm_vjp_rows,
    reciprocal_root,
    scaled_rows,
)
from attention_from_scratch._kernel import layer_norm_stats as stats_rows

__all__ = [
    "LayerNormGrads",
    "LayerNormStats",
    "RMSNormGrads",
    "cosine_similarity",
    "l2_norm",
    "l2_normalize",
    "l2_normalize_vjp",
    "layer_norm",
    "layer_norm_stats",
    "layer_norm_vjp",
    "rms_norm",
    "rms_norm_vjp",
]

_VECTOR_AXIS = "(the vector axis)"


# --- private validation specific to this module (the shared rules are in _checks.py) ---


def _non_empty_last_axis(arr: FloatArray, name: str) -> None:
    if arr.shape[-1] == 0:
        msg = f"{name} has a last axis of length 0, nothing to normalise over: shape {arr.shape}"
        raise ValueError(msg)


def _elementwise_param(param: object, name: str, x: FloatArray) -> FloatArray | None:
    """Validate an elementwise weight or bias of shape ``(d,)`` against ``x (..., d)``."""
    arr = _elementwise_array(param, name, x)
    if arr is not None:
        check_finite(arr, name)
    return arr


def _elementwise_peak(
    param: object, name: str, x: FloatArray, absent: float
) -> tuple[FloatArray | None, float]:
    """:func:`_elementwise_param`, and ``max |param|`` (``absent`` when it is None)."""
    arr = _elementwise_array(param, name, x)
    return arr, absent if arr is None else peak(arr, name)


def _elementwise_array(param: object, name: str, x: FloatArray) -> FloatArray | None:
    """The shape and dtype checks of :func:`_elementwise_param` (not whether it is finite)."""
    if param is None:
        return None
    arr = as_float_array(param, name)
    d = x.shape[-1]
    if arr.shape != (d,):
        msg = (
            f"{name} must have shape (d,) = ({d},), the last axis of x {x.shape}, "
            f"got {name} {arr.shape}"
        )
        raise ValueError(msg)
    if arr.dtype != x.dtype:
        check_same_dtype(x=x, **{name: arr})  # raises, naming both
    return arr


def _zero_rows(
    flags: NDArray[np.bool_],
    axis: int,
    name: str,
    shape: tuple[int, ...],
    why: str,
    *,
    what: str = "zero vector",
    broadcast: bool = False,
) -> None:
    """Raise :class:`ValueError` at the first True of ``flags`` (a keepdims reduction).

    The index reported is the vector's: an index into ``shape`` without ``axis``.
    ``broadcast`` says that ``shape`` is the shape ``name`` was broadcast to.
    """
    if not flags.any():
        return
    index = first_index(np.squeeze(flags, axis=axis))
    if index == ():
        msg = f"{name} is a {what} (shape {shape}): {why}"
    else:
        of = f"{name} broadcast to" if broadcast else name
        where = f"vectors along axis {axis} of {of} {shape}"
        msg = f"{name} has a {what} at index {index} ({where}): {why}"
    raise ValueError(msg)


# --- private numerics ---


def _centre(arr: FloatArray, eps: float) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
    """Centred rows, variance and mean of ``x (..., d)`` in the units of ``y = x / 2**e``.

    Returns ``(x - mu, sigma^2, mu)`` divided by ``2**e``, ``4**e``, ``2**e`` (keepdims)
    and ``e``, by the corrected two-pass algorithm of :func:`layer_norm`'s Notes. With
    ``eps = 0`` a constant row (variance 0) raises :class:`ValueError`.
    """
    y, e = scaled_rows(as_working(arr), -1, arr, "x")  # y = x / 2^e, |y| < 1
    mean = np.mean(y, axis=-1, keepdims=True)  # mu = sum(y) / d: (..., d) -> (..., 1)
    np.clip(mean, y.min(axis=-1, keepdims=True), y.max(axis=-1, keepdims=True), out=mean)
    centred = y - mean  # y - mu, with mu rounded
    shift = np.mean(centred, axis=-1, keepdims=True)  # mean(y - mu): mu's rounding error
    centred -= shift
    mean += shift
    var = np.mean(centred * centred, axis=-1, keepdims=True)  # sigma^2 = mean((y - mu)^2)
    if eps == 0.0:
        why = "its variance is 0 and eps is 0 (use eps > 0)"
        _zero_rows(var == 0.0, arr.ndim - 1, "x", arr.shape, why, what="constant row")
    return centred, var, mean, e


def _mean_square(arr: FloatArray, eps: float) -> tuple[FloatArray, FloatArray, IntArray]:
    """``y = x / 2**e``, its mean square along the last axis (keepdims) and ``e``.

    With ``eps = 0`` a row of zeros raises :class:`ValueError`.
    """
    y, e = scaled_rows(as_working(arr), -1, arr, "x")  # y = x / 2^e, |y| < 1
    mean_square = np.mean(y * y, axis=-1, keepdims=True)  # mean(y^2): (..., d) -> (..., 1)
    if eps == 0.0:
        why = "its mean square and eps are both 0 (use eps > 0)"
        _zero_rows(mean_square == 0.0, arr.ndim - 1, "x", arr.shape, why, what="zero row")
    return y, mean_square, e


def _row_sums(arr: FloatArray) -> FloatArray:
    """Sum ``(..., d) -> (d,)`` over every leading axis: the gradient of a shared ``(d,)``."""
    rows: FloatArray = arr.reshape(-1, arr.shape[-1])
    total: FloatArray = np.sum(rows, axis=0)
    return total


def _unit(
    work: FloatArray,
    axis: int,
    original: FloatArray,
    name: str,
    *,
    eps: float | None,
    why: str,
) -> FloatArray:
    """Unit vectors ``x / max(||x||, eps)`` along ``axis``; zero rows raise when ``eps`` is None.

    ``work`` may be ``original`` broadcast to a larger shape (:func:`cosine_similarity`):
    a NaN is then reported at its index in ``original``, a zero vector in ``work``.
    """
    y, e = scaled_rows(work, axis, original, name)  # y = x / 2^e, |y| < 1
    norm_y = np.sqrt(np.sum(y * y, axis=axis, keepdims=True))  # ||y|| in [1/2, sqrt(d)] or 0
    if eps is None:
        broadcast = original.shape != work.shape
        _zero_rows(norm_y == 0.0, axis, name, work.shape, why, broadcast=broadcast)
        out: FloatArray = y / norm_y  # x / ||x|| = y / ||y||
        return out
    eps_w = np.asarray(eps, dtype=work.dtype)
    with np.errstate(over="ignore"):
        eps_y = np.ldexp(eps_w, -e)  # eps / 2^e, exact (inf for rows far below eps)
    out = y / np.maximum(norm_y, eps_y)  # x / max(||x||, eps), in the units of y
    tiny = np.isinf(eps_y)
    if tiny.any():
        rows = np.broadcast_to(tiny, out.shape)
        np.divide(work, eps_w, out=out, where=rows)  # ||x|| << eps: x / eps
    return out


# --- public API ---


@overload
def l2_norm(x: NDArray[F], /, *, axis: int = -1, keepdims: bool = False) -> NDArray[F]: ...
@overload
def l2_norm(
    x: Float64Like, /, *, axis: int = -1, keepdims: bool = False
) -> NDArray[np.float64]: ...
@overload
def l2_norm(x: ArrayLike, /, *, axis: int = -1, keepdims: bool = False) -> FloatArray: ...


def l2_norm(x: ArrayLike, /, *, axis: int = -1, keepdims: bool = False) -> FloatArray:
    r"""Euclidean length of ``x`` along ``axis``, without overflow or underflow.

    The length :math:`\lVert x \rVert` of a query or key vector: one of the three
    factors of an attention score :math:`q \cdot k = \lVert q \rVert \lVert k \rVert
    \cos\theta`. Correct for every finite input whose norm is representable,
    including entries near the largest or smallest floating-point numbers, where the
    textbook ``sqrt(sum(x**2))`` (and ``np.linalg.norm``) return ``inf`` or 0.

    Parameters
    ----------
    x : (..., d, ...) array_like
        Real numbers; integer input is converted to ``float64``.
    axis : int, optional
        The axis holding the vectors' components. Default ``-1``.
    keepdims : bool, optional
        Keep the reduced axis with length 1 (so the result divides ``x``). Default False.

    Returns
    -------
    norm : ndarray
        ``x``'s shape without ``axis`` (or with it of length 1), ``x``'s floating dtype;
        non-negative, exactly 0 for zero vectors (and for vectors of length 0).

    Raises
    ------
    ValueError
        If ``x`` is 0-d or holds NaN or an infinity.
    TypeError
        If ``x`` is bool, complex or not numeric, ``axis`` is not an int or ``keepdims``
        is not a bool.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.
    FloatingPointError
        If a norm is too large for the dtype (e.g. ``[65504, 65504]`` in ``float16``).

    See Also
    --------
    l2_normalize : The unit vector :math:`x / \lVert x \rVert`.
    numpy.linalg.norm : The unscaled textbook formula.

    Notes
    -----
    In code, ``e = exponent(max(abs(x))); y = x / 2**e; 2**e * sqrt(sum(y**2))``. In
    maths, with :math:`s = 2^e` the power of two just above :math:`\max_i |x_i|`,

    .. math::

       \lVert x \rVert = \sqrt{\sum_{i=1}^{d} x_i^2}
                       = s \sqrt{\sum_{i=1}^{d} (x_i / s)^2} .

    Squaring :math:`3 \times 10^{200}` overflows and squaring
    :math:`3 \times 10^{-200}` underflows to 0, although their norms are ordinary
    numbers. Scaling every row by its largest entry first keeps every square in
    :math:`[0, 1)` and the sum in :math:`[1/4, d]`: nothing can overflow, and the
    terms that underflow are too small to change the sum. This is the idea of Blue's
    algorithm and of LAPACK's ``dnrm2`` :cite:p:`blue1978portable,higham2002accuracy`;
    here it is one vectorised pass to find the maxima and one to sum. The scale is a
    power of two, so dividing and multiplying by it are exact: wherever the textbook
    formula does not over- or underflow, the result is identical to it, bit for bit.
    A zero row has maximum 0 and scale :math:`2^0 = 1`, so its norm is exactly 0 with
    no division by zero.

    References
    ----------
    :cite:t:`blue1978portable`; :cite:t:`higham2002accuracy`, §27.8.

    Examples
    --------
    The lengths of the running example's token vectors:

    >>> import numpy as np
    >>> from attention_from_scratch.norms import l2_norm
    >>> x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    >>> print(np.round(l2_norm(x), 4))
    [1.4142 1.4142 1.    ]
    >>> print(round(float(l2_norm([3.0, 1.0, 0.0, 0.0])), 4))  # creature's query, sqrt(10)
    3.1623

    Huge and tiny entries, where ``np.linalg.norm`` gives ``inf`` and ``0``:

    >>> print(f"{float(l2_norm([3e200, 4e200])):.6g} {float(l2_norm([3e-200, 4e-200])):.6g}")
    5e+200 5e-200
    """
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    ax = normalize_axis(axis, arr.ndim)
    keep = check_bool(keepdims, "keepdims")
    work = as_working(arr)  # C order: the sums do not depend on x's memory layout
    y, e = scaled_rows(work, ax, arr, "x")  # y = x / 2^e, |y| < 1
    norm_y = np.sqrt(np.sum(y * y, axis=ax, keepdims=True))  # ||y|| = sqrt(sum y_i^2)
    with np.errstate(over="ignore"):
        norm = np.ldexp(norm_y, e)  # ||x|| = 2^e ||y||, exact unless it overflows
    if not keep:
        norm = np.squeeze(norm, axis=ax)  # (..., 1, ...) -> (..., ...)
    return finite_result(norm, arr.dtype, "l2_norm(x)")


@overload
def l2_normalize(x: NDArray[F], /, *, axis: int = -1, eps: float | None = None) -> NDArray[F]: ...
@overload
def l2_normalize(
    x: Float64Like, /, *, axis: int = -1, eps: float | None = None
) -> NDArray[np.float64]: ...
@overload
def l2_normalize(x: ArrayLike, /, *, axis: int = -1, eps: float | None = None) -> FloatArray: ...


def l2_normalize(x: ArrayLike, /, *, axis: int = -1, eps: float | None = None) -> FloatArray:
    r"""Unit vectors: ``x`` divided by its Euclidean length along ``axis``.

    Keeps each vector's direction and sets its length to 1, so that dot products of
    normalised vectors are cosines. A zero vector has no direction: it is an error,
    unless ``eps`` is given, in which case the result is ``x / max(||x||, eps)`` as in
    ``torch.nn.functional.normalize`` (zeros for a zero vector).

    Parameters
    ----------
    x : (..., d, ...) array_like
        Real numbers; integer input is converted to ``float64``.
    axis : int, optional
        The axis holding the vectors' components. Default ``-1``.
    eps : float, optional
        If given (finite and ``> 0``), the smallest length divided by: vectors shorter
        than ``eps`` are divided by ``eps`` instead and come out shorter than 1.
        Default None: a zero vector raises.

    Returns
    -------
    unit : (..., d, ...) ndarray
        Same shape and floating dtype as ``x``; every vector along ``axis`` has length 1
        (up to rounding), or less than 1 where ``||x|| < eps``.

    Raises
    ------
    ValueError
        If ``x`` is 0-d, holds NaN or an infinity, if ``eps`` is not finite and
        positive, or if ``eps`` is None and ``x`` has a zero vector (the message gives
        its index).
    TypeError
        If ``x`` is bool, complex or not numeric, or ``axis`` is not an int.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.

    See Also
    --------
    l2_norm, cosine_similarity

    Notes
    -----
    In code, ``x / max(l2_norm(x, keepdims=True), eps)``. In maths,

    .. math::

       \hat{x} = \frac{x}{\max(\lVert x \rVert, \varepsilon)}
               = \frac{y}{\max(\lVert y \rVert, \varepsilon / s)},
       \qquad y = x / s ,

    with :math:`s` the power of two of :func:`l2_norm`. The second form is computed:
    :math:`\lVert y \rVert \ge 1/2` for every non-zero vector, so neither the norm nor
    the division can overflow or underflow, for huge or tiny entries alike.

    References
    ----------
    :cite:t:`higham2002accuracy`, §27.8.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.norms import l2_norm, l2_normalize
    >>> x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    >>> print(np.round(l2_normalize(x), 4))
    [[0.     0.7071 0.     0.7071]
     [0.     0.7071 0.7071 0.    ]
     [1.     0.     0.     0.    ]]
    >>> print(l2_norm(l2_normalize(x)))
    [1. 1. 1.]

    The zero query of an adjective has no direction; ``eps`` maps it to zeros:

    >>> print(l2_normalize([0.0, 0.0, 0.0, 0.0], eps=1e-12) + 0.0)
    [0. 0. 0. 0.]
    """
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    ax = normalize_axis(axis, arr.ndim)
    eps_f = None if eps is None else positive_finite(eps, "eps")
    work = as_working(arr)
    why = "it has no direction; pass eps= (as torch.nn.functional.normalize) to get zeros"
    out = _unit(work, ax, arr, "x", eps=eps_f, why=why)  # x / max(||x||, eps)
    return out.astype(arr.dtype, copy=False)


@overload
def cosine_similarity(a: NDArray[F], b: NDArray[F], /, *, axis: int = -1) -> NDArray[F]: ...
@overload
def cosine_similarity(
    a: Float64Like | NDArray[np.float64],
    b: Float64Like | NDArray[np.float64],
    /,
    *,
    axis: int = -1,
) -> NDArray[np.float64]: ...
@overload
def cosine_similarity(a: ArrayLike, b: ArrayLike, /, *, axis: int = -1) -> FloatArray: ...


def cosine_similarity(a: ArrayLike, b: ArrayLike, /, *, axis: int = -1) -> FloatArray:
    r"""Cosine of the angle between ``a`` and ``b`` along ``axis``: a dot product without lengths.

    :math:`\cos\theta = a \cdot b / (\lVert a \rVert \lVert b \rVert)` is 1 for vectors
    pointing the same way, 0 for orthogonal ones and -1 for opposite ones. It is the
    part of an attention score that measures *alignment*; the rest is the lengths.
    ``a`` and ``b`` broadcast against each other.

    Parameters
    ----------
    a : (..., d, ...) array_like
        Real numbers, no zero vector along ``axis``.
    b : (..., d, ...) array_like
        Same floating dtype as ``a`` (after integers become ``float64``), broadcastable
        to ``a``, no zero vector.
    axis : int, optional
        The axis of the broadcast shape holding the components. Default ``-1``.

    Returns
    -------
    cosine : ndarray
        The broadcast shape without ``axis``, ``a``'s dtype; every value in ``[-1, 1]``.

    Raises
    ------
    ValueError
        If ``a`` or ``b`` has a zero vector (the message says which, and where), holds
        NaN or an infinity, if they do not broadcast, or if both are 0-d.
    TypeError
        If ``a`` and ``b`` have different dtypes, or one is bool, complex or not
        numeric, or ``axis`` is not an int.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.

    See Also
    --------
    l2_normalize : The unit vectors whose dot product this is.

    Notes
    -----
    In code, ``sum(l2_normalize(a) * l2_normalize(b))``, clipped to ``[-1, 1]``. In maths,

    .. math::

       \cos\theta = \frac{a \cdot b}{\lVert a \rVert \, \lVert b \rVert}
                  = \frac{a}{\lVert a \rVert} \cdot \frac{b}{\lVert b \rVert} .

    The second form is computed. The first overflows as soon as :math:`a \cdot b` or
    the product of the norms does (entries near :math:`10^{155}` in ``float64``) and
    underflows for tiny entries; unit vectors have components in :math:`[-1, 1]`, so
    their dot product cannot. Rounding can push it a few ulps past 1 for parallel
    vectors, hence the clip, which keeps ``arccos`` of the result defined.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.1; :cite:t:`higham2002accuracy`, §27.8.

    Examples
    --------
    Fluffy and blue share "adjective" but not texture or colour:

    >>> import numpy as np
    >>> from attention_from_scratch.norms import cosine_similarity, l2_norm
    >>> x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    >>> print(round(float(cosine_similarity(x[0], x[1])), 4))
    0.5

    Creature's query against fluffy's key: the score is lengths times cosine.

    >>> q, k = np.array([3.0, 1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0, 0.0])
    >>> cos = float(cosine_similarity(q, k))
    >>> print(round(cos, 4), float(q @ k), round(float(l2_norm(q) * l2_norm(k)) * cos, 10))
    0.8944 4.0 4.0
    """
    a_arr = as_float_array(a, "a")
    b_arr = as_float_array(b, "b")
    check_same_dtype(a=a_arr, b=b_arr)
    try:
        a_b, b_b = np.broadcast_arrays(a_arr, b_arr)  # a, b -> broadcast shape (..., d, ...)
    except ValueError:
        msg = f"a and b do not broadcast: a {a_arr.shape}, b {b_arr.shape}"
        raise ValueError(msg) from None
    if a_b.ndim == 0:
        msg = "a and b need at least one dimension (the vector axis), got two 0-d arrays"
        raise ValueError(msg)
    ax = normalize_axis(axis, a_b.ndim)
    why = "the cosine similarity with a zero vector is undefined"
    unit_a = _unit(as_working(a_b), ax, a_arr, "a", eps=None, why=why)  # a / ||a||
    unit_b = _unit(as_working(b_b), ax, b_arr, "b", eps=None, why=why)  # b / ||b||
    cos = np.sum(unit_a * unit_b, axis=ax)  # (..., d, ...) -> (..., ...)
    out = np.clip(cos, -1.0, 1.0)  # rounding may overshoot |cos| = 1 by an ulp
    return np.asarray(out, dtype=a_arr.dtype)


# --- layer_norm's row statistics, computed once for the forward and the backward pass ---


@dataclass(frozen=True, eq=False)
class LayerNormStats:
    r"""The row statistics of :func:`layer_norm`, computed once by :func:`layer_norm_stats`.

    Pass it as ``stats=`` to :func:`layer_norm` and to :func:`layer_norm_vjp` with the
    same ``x``: neither recomputes the mean and the variance of the rows, and both give
    the same bits as without it. Every array is read-only and has ``x``'s floating
    dtype (float16 is computed in float32); the object never changes once made.
    Equality is identity (``eq=False``).

    Attributes
    ----------
    x : (..., d) ndarray
        The checked input: a read-only copy of the ``x`` the statistics describe.
    x_hat : (..., d) ndarray
        The normalised rows :math:`\hat x = (x - \mu) / \sqrt{\sigma^2 + \varepsilon}`.
    mean : (...) ndarray
        Each row's mean :math:`\mu`.
    rstd : (...) ndarray
        Each row's reciprocal standard deviation :math:`1 / \sqrt{\sigma^2 + \varepsilon}`.
    eps : float
        The ``eps`` added to the variance.

    Notes
    -----
    Make it with :func:`layer_norm_stats`. Besides these, the object keeps (private,
    not part of the API, set by :func:`layer_norm_stats` only) the ndarray that was
    passed to it, so that passing that very object again as ``x`` skips validating it
    (it must not have been modified in between), and :math:`\hat x` and the
    reciprocal standard deviations in the working dtype, with the code path that made
    them, so that the forward and backward passes take up exactly where the
    statistics left off. A ``LayerNormStats`` made otherwise (by its constructor or
    ``dataclasses.replace``) lacks them and is refused as ``stats=``.
    """

    x: FloatArray
    x_hat: FloatArray
    mean: FloatArray
    rstd: FloatArray
    eps: float
    # Set by layer_norm_stats only (not __init__ arguments): an object made otherwise,
    # or by dataclasses.replace, lacks them and is refused as stats=.
    _source: object = field(init=False, repr=False, compare=False)  # the ndarray x, or None
    _x_hat_w: FloatArray = field(init=False, repr=False, compare=False)  # working dtype
    _rstd_w: FloatArray = field(init=False, repr=False, compare=False)  # working, (..., 1)
    _rows: bool = field(init=False, repr=False, compare=False)  # by the kernel's rows path


def layer_norm_stats(x: ArrayLike, /, *, eps: float = 1e-5) -> LayerNormStats:
    r"""The row statistics of :func:`layer_norm`, to hand from the forward to the backward pass.

    A training step normalises ``x`` and later differentiates through the
    normalisation: :func:`layer_norm_vjp` needs the very :math:`\hat x` and
    :math:`1 / \sqrt{\sigma^2 + \varepsilon}` the forward pass used. Computing them
    once here and passing the result as ``stats=`` to both :func:`layer_norm` and
    :func:`layer_norm_vjp` validates ``x`` once and reduces its rows once, as
    ``torch.nn.functional.layer_norm`` keeps its mean and ``rstd`` for the backward
    pass.

    Parameters
    ----------
    x : (..., d) array_like
        Real numbers, ``d >= 1``; integer input is converted to ``float64``.
    eps : float, optional
        Added to the variance before the square root; finite and ``>= 0``.
        Default ``1e-5`` (torch's).

    Returns
    -------
    LayerNormStats
        ``x`` and ``x_hat`` ``(..., d)``, ``mean`` and ``rstd`` ``(...)``, and ``eps``;
        read-only, ``x``'s floating dtype (float16 computed in float32).

    Raises
    ------
    ValueError
        As :func:`layer_norm`: if ``x`` is 0-d, has ``d = 0`` or holds NaN or an
        infinity, if ``eps`` is negative or not finite, or if ``eps = 0`` and a row of
        ``x`` is constant.
    TypeError
        If ``x`` is bool, complex or not numeric.
    FloatingPointError
        If a reciprocal standard deviation is too large for the dtype (a constant
        float16 row with ``eps`` below about ``2e-10``), as in :func:`layer_norm_vjp`.

    See Also
    --------
    LayerNormStats, layer_norm, layer_norm_vjp

    Notes
    -----
    In code, ``mu = x.mean(-1); var = ((x - mu)**2).mean(-1); rstd = 1 / sqrt(var + eps);
    x_hat = (x - mu) * rstd``. In maths, for a row :math:`x \in \mathbb{R}^d`,

    .. math::

       \mu = \frac{1}{d} \sum_{i=1}^{d} x_i, \qquad
       \sigma^2 = \frac{1}{d} \sum_{i=1}^{d} (x_i - \mu)^2, \qquad
       r = \frac{1}{\sqrt{\sigma^2 + \varepsilon}}, \qquad
       \hat x_i = (x_i - \mu) \, r .

    These are the lines :func:`layer_norm` runs, by the same code: the variance of the
    centred values, with the rounding error of the mean subtracted once more (the
    corrected two-pass algorithm, :cite:t:`higham2002accuracy`, §1.9, never
    :math:`\overline{x^2} - \mu^2`), all rows at once where no square can overflow and
    ``eps`` is far above any variance that could underflow, otherwise each row scaled
    by a power of two first. :func:`layer_norm`'s Notes say why each step is safe.
    So ``layer_norm(x, gamma, beta, stats=s)`` is ``layer_norm(x, gamma, beta)`` and
    ``layer_norm_vjp(x, grad, gamma, stats=s)`` is ``layer_norm_vjp(x, grad, gamma)``,
    bit for bit.

    References
    ----------
    :cite:t:`ba2016layer`; :cite:t:`higham2002accuracy`, §1.9.

    Examples
    --------
    The running example's three tokens: two rows of two ones, one one-hot row.

    >>> import numpy as np
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.norms import layer_norm, layer_norm_stats, layer_norm_vjp
    >>> ex = fluffy_blue_creature()
    >>> st = layer_norm_stats(ex.x)
    >>> print(st.mean, np.round(st.rstd, 4))
    [0.5  0.5  0.25] [2.     2.     2.3093]
    >>> print(np.round(st.x_hat, 4))
    [[-1.      1.     -1.      1.    ]
     [-1.      1.      1.     -1.    ]
     [ 1.732  -0.5773 -0.5773 -0.5773]]

    The forward and the backward pass both take them, and compute the same as without:

    >>> y = layer_norm(ex.x, stats=st)
    >>> bool(np.array_equal(y, layer_norm(ex.x)))
    True
    >>> grad = np.array([[1.0, 0.0, 0.0, 0.0]] * 3)  # L = sum(y[:, 0])
    >>> grads = layer_norm_vjp(ex.x, grad, stats=st)
    >>> bool(np.array_equal(grads.x, layer_norm_vjp(ex.x, grad).x))
    True
    >>> grads.rstd is st.rstd  # the statistics are handed on, not recomputed
    True
    """
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    _non_empty_last_axis(arr, "x")
    eps_f = non_negative_finite(eps, "eps")
    rows = stats_rows(arr, eps_f)  # as layer_norm: every row at once, or None
    if rows is not None:
        x_hat_r, mean_r, root = rows  # (R, d), (R, 1), (R, 1)
        # finite: root >= sqrt(eps) on this path (the kernel's layer_norm_stats says why)
        rstd_r = 1.0 / root  # 1 / sqrt(sigma^2 + eps), as layer_norm_vjp_rows
        x_hat_w = x_hat_r.reshape(arr.shape)
        rstd_w = rstd_r.reshape(*arr.shape[:-1], 1)
        mean_w = mean_r.reshape(arr.shape[:-1])
    else:  # the scaled lines of layer_norm and layer_norm_vjp
        x_hat_w, rstd_w, mean_w = _scaled_stats(arr, eps_f)
    # |x_hat| <= sqrt(d) and min(x) <= mu <= max(x) (up to rounding): both fit x's dtype.
    # Only rstd can be too large for it (float16, or the scaled path with a tiny eps):
    # that one is checked.
    x_hat = x_hat_w.astype(arr.dtype, copy=False)
    mean_x = mean_w.astype(arr.dtype, copy=False)
    rstd_x = rstd_w[..., 0]
    if rows is None or rstd_x.dtype != arr.dtype:
        rstd_x = finite_result(rstd_x, arr.dtype, "layer_norm_stats: rstd")
    out = LayerNormStats(
        x=read_only(arr), x_hat=frozen(x_hat), mean=frozen(mean_x), rstd=frozen(rstd_x), eps=eps_f
    )
    # frozen: the private fields are set once, here, before the object is returned
    object.__setattr__(out, "_source", x if isinstance(x, np.ndarray) else None)
    object.__setattr__(out, "_x_hat_w", frozen(x_hat_w))
    object.__setattr__(out, "_rstd_w", frozen(rstd_w))
    object.__setattr__(out, "_rows", rows is not None)
    return out


def _given_stats(x: ArrayLike, stats: object, eps: float) -> LayerNormStats:
    """``stats`` checked against ``x`` and ``eps`` (the rule of :func:`layer_norm`'s ``stats``)."""
    st = check_instance(stats, LayerNormStats, "stats")
    if not hasattr(st, "_rows"):
        msg = "stats must be made by layer_norm_stats, got a LayerNormStats made otherwise"
        raise TypeError(msg)
    eps_f = non_negative_finite(eps, "eps")
    if eps_f != st.eps:
        msg = (
            f"eps={eps_f!r} differs from the eps={st.eps!r} the stats were computed "
            f"with: pass eps={st.eps!r} with these stats (the eps of layer_norm_stats)"
        )
        raise ValueError(msg)
    if x is st.x or (st._source is not None and x is st._source):
        return st  # the very array the statistics were computed from: already checked
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    _non_empty_last_axis(arr, "x")
    if arr.shape != st.x.shape:
        msg = f"x has shape {arr.shape}, but stats were computed from an x of shape {st.x.shape}"
        raise ValueError(msg)
    if arr.dtype != st.x.dtype:
        msg = f"x has dtype {arr.dtype}, but stats were computed from an x of dtype {st.x.dtype}"
        raise TypeError(msg)
    if not np.array_equal(arr, st.x):  # one pass: NaN is never equal
        check_finite(arr, "x")  # say so if x holds NaN or an infinity
        index = first_index(arr != st.x)
        msg = (
            f"stats were computed from a different x: x{list(index)} is {float(arr[index])!r}, "
            f"stats.x{list(index)} is {float(st.x[index])!r} (pass the x given to layer_norm_stats)"
        )
        raise ValueError(msg)
    return st


@overload
def layer_norm(
    x: NDArray[F],
    /,
    gamma: NDArray[F] | None = None,
    beta: NDArray[F] | None = None,
    *,
    eps: float = 1e-5,
    stats: LayerNormStats | None = None,
) -> NDArray[F]: ...
@overload
def layer_norm(
    x: Float64Like,
    /,
    gamma: Float64Like | NDArray[np.float64] | None = None,
    beta: Float64Like | NDArray[np.float64] | None = None,
    *,
    eps: float = 1e-5,
    stats: LayerNormStats | None = None,
) -> NDArray[np.float64]: ...
@overload
def layer_norm(
    x: ArrayLike,
    /,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    eps: float = 1e-5,
    stats: LayerNormStats | None = None,
) -> FloatArray: ...


def layer_norm(
    x: ArrayLike,
    /,
    gamma: ArrayLike | None = None,
    beta: ArrayLike | None = None,
    *,
    eps: float = 1e-5,
    stats: LayerNormStats | None = None,
) -> FloatArray:
    r"""Layer normalisation over the last axis: zero mean, unit variance, then scale and shift.

    Each token's vector (each row along the last axis) is centred and divided by its
    standard deviation, then multiplied elementwise by ``gamma`` and shifted by
    ``beta`` :cite:p:`ba2016layer`. Equal to ``torch.nn.functional.layer_norm(x,
    (d,), gamma, beta, eps)``: the variance is the biased one (divided by ``d``).

    Parameters
    ----------
    x : (..., d) array_like
        Real numbers, ``d >= 1``; integer input is converted to ``float64``.
    gamma : (d,) array_like, optional
        Elementwise gain, same dtype as ``x``. Default None (all ones).
    beta : (d,) array_like, optional
        Elementwise bias, same dtype as ``x``. Default None (all zeros).
    eps : float, optional
        Added to the variance before the square root; finite and ``>= 0``.
        Default ``1e-5`` (torch's). With ``stats``, it must equal ``stats.eps`` (as it
        does when both are left at their default).
    stats : LayerNormStats, optional
        The statistics of this ``x`` from :func:`layer_norm_stats`, to keep for
        :func:`layer_norm_vjp`: the rows are not reduced again, and the result is the
        same, bit for bit. ``x`` must be the ``x`` they were computed from: passing
        ``stats.x`` or the very ndarray given to :func:`layer_norm_stats` (unmodified)
        skips validating ``x``; any other ``x`` is validated and compared with
        ``stats.x``. Default None (computed here).

    Returns
    -------
    y : (..., d) ndarray
        Same shape and floating dtype as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is 0-d, has ``d = 0``, holds NaN or an infinity, if ``gamma`` or
        ``beta`` is not of shape ``(d,)`` or not finite, if ``eps`` is negative or not
        finite, or if ``eps = 0`` and a row of ``x`` is constant (variance 0). With
        ``stats``: if ``x`` differs from ``stats.x`` (in shape or values) or ``eps``
        from ``stats.eps``.
    TypeError
        If an input is bool, complex or not numeric, ``gamma``/``beta`` and ``x``
        have different dtypes, or ``stats`` is not a :class:`LayerNormStats` (or was
        computed from an ``x`` of another dtype).
    FloatingPointError
        If ``gamma`` or ``beta`` make a result too large for the dtype.

    See Also
    --------
    rms_norm : The same without centring.
    layer_norm_stats : The row statistics, computed once for this and the backward pass.

    Notes
    -----
    In code, ``mu = x.mean(-1); var = ((x - mu)**2).mean(-1);
    (x - mu) / sqrt(var + eps) * gamma + beta``. In maths, for a row
    :math:`x \in \mathbb{R}^d`,

    .. math::

       \mu = \frac{1}{d} \sum_{i=1}^{d} x_i, \qquad
       \sigma^2 = \frac{1}{d} \sum_{i=1}^{d} (x_i - \mu)^2, \qquad
       y_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \varepsilon}} \, \gamma_i + \beta_i .

    The variance is computed from the centred values :math:`x_i - \mu` (two passes),
    never as :math:`\overline{x^2} - \mu^2`: for :math:`x = 10^8 + \text{noise}` both
    terms are near :math:`10^{16}`, where the spacing of ``float64`` is 2, and their
    difference loses every digit of a variance of order 1. Even the rounded mean
    :math:`\hat\mu` is off by up to half a spacing of :math:`10^8` (about
    :math:`7 \times 10^{-9}`), an error every centred value would share; the mean of
    the centred values :math:`x_i - \hat\mu` is exactly that error, so it is
    subtracted once more (the corrected two-pass algorithm,
    :cite:t:`higham2002accuracy`, §1.9), leaving each centred value accurate to its
    own rounding. :math:`\hat\mu` is clipped into the row's ``[min, max]``, where the
    true mean lies, so that a constant row has centred values and variance exactly 0.
    Each row is first scaled by a power of two as in :func:`l2_norm`, so nothing
    overflows for entries up to the largest float; the scaling is exact, and ``eps``
    is scaled with it. Where it cannot matter (no square overflows, and ``eps`` is far
    above any variance that could underflow, as ``1e-5`` is) the package skips it and
    normalises every row at once (sums in another order, within 2 ulp of each row's
    largest entry of the exact result). With ``stats``, :math:`|\hat x_i| \le \sqrt{d}`
    (Cauchy–Schwarz on a centred row) bounds the result by
    :math:`2 \sqrt{d} \max|\gamma| + \max|\beta|` with rounding; where that is below half
    the largest float, the result is not scanned for overflow.

    References
    ----------
    :cite:t:`ba2016layer`; :cite:t:`higham2002accuracy`, §1.9.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.norms import layer_norm
    >>> x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    >>> print(np.round(layer_norm(x), 4))
    [[-1.      1.     -1.      1.    ]
     [-1.      1.      1.     -1.    ]
     [ 1.732  -0.5773 -0.5773 -0.5773]]

    A large offset does not disturb it (``E[x^2] - E[x]^2`` gives a variance of 2, not 1.25):

    >>> print(np.round(layer_norm(1e8 + np.array([1.0, 2.0, 3.0, 4.0])), 4))
    [-1.3416 -0.4472  0.4472  1.3416]
    """
    if stats is not None:
        return _layer_norm_from(_given_stats(x, stats, eps), gamma, beta)
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    _non_empty_last_axis(arr, "x")
    eps_f = non_negative_finite(eps, "eps")
    g = _elementwise_param(gamma, "gamma", arr)
    b = _elementwise_param(beta, "beta", arr)
    fast = layer_norm_rows(arr, g, b, eps_f)  # the lines below, rows side by side
    if fast is not None:  # (None: the rows need the scaling by powers of two)
        return finite_result(fast, arr.dtype, "layer_norm(x)")
    dtype: np.dtype[Any] = working_dtype(arr.dtype)
    centred, var, _, e = _centre(arr, eps_f)  # (x - mu) / 2^e, sigma^2 / 4^e
    out = divide_by_root(centred, var, e, eps_f)  # (x - mu) / sqrt(sigma^2 + eps)
    with np.errstate(over="ignore"):
        if g is not None:
            out *= g.astype(dtype, copy=False)  # * gamma
        if b is not None:
            out += b.astype(dtype, copy=False)  # + beta
    return finite_result(out, arr.dtype, "layer_norm(x)")


def _layer_norm_from(
    stats: LayerNormStats, gamma: ArrayLike | None, beta: ArrayLike | None
) -> FloatArray:
    """``x_hat * gamma + beta`` from kept statistics: :func:`layer_norm`'s last lines.

    ``|x_hat| <= sqrt(d)`` (the Cauchy-Schwarz inequality on a centred row): where
    ``2 sqrt(d) max|gamma| + max|beta|`` fits the dtype, so does every result, and it
    is not scanned for overflow.
    """
    arr = stats.x
    g = _elementwise_array(gamma, "gamma", arr)
    b = _elementwise_array(beta, "beta", arr)
    top = named_peak({"gamma": g, "beta": b})  # both validated in one pass
    peak_g, peak_b = (1.0 if g is None else top), (0.0 if b is None else top)
    x_hat = stats._x_hat_w  # working dtype, read-only: not written to
    proven = fits(layer_norm_bound(arr.shape[-1], peak_g, peak_b), arr.dtype)
    with silenced(proven):  # otherwise reported by finite_result
        out = np.array(x_hat) if g is None else x_hat * g.astype(x_hat.dtype, copy=False)
        if b is not None:
            out += b.astype(x_hat.dtype, copy=False)  # + beta
    if proven:
        return out.astype(arr.dtype, copy=False)
    return finite_result(out, arr.dtype, "layer_norm(x)")


@overload
def rms_norm(
    x: NDArray[F], /, gamma: NDArray[F] | None = None, *, eps: float = 1e-6
) -> NDArray[F]: ...
@overload
def rms_norm(
    x: Float64Like, /, gamma: Float64Like | NDArray[np.float64] | None = None, *, eps: float = 1e-6
) -> NDArray[np.float64]: ...
@overload
def rms_norm(
    x: ArrayLike, /, gamma: ArrayLike | None = None, *, eps: float = 1e-6
) -> FloatArray: ...


def rms_norm(x: ArrayLike, /, gamma: ArrayLike | None = None, *, eps: float = 1e-6) -> FloatArray:
    r"""Root-mean-square normalisation over the last axis: unit mean square, then scale.

    Each row is divided by the root of its mean square, without centring, then
    multiplied elementwise by ``gamma`` :cite:p:`zhang2019root`. Equal to
    ``torch.nn.functional.rms_norm(x, (d,), gamma, eps)``.

    Parameters
    ----------
    x : (..., d) array_like
        Real numbers, ``d >= 1``; integer input is converted to ``float64``.
    gamma : (d,) array_like, optional
        Elementwise gain, same dtype as ``x``. Default None (all ones).
    eps : float, optional
        Added to the mean square before the square root; finite and ``>= 0``.
        Default ``1e-6``.

    Returns
    -------
    y : (..., d) ndarray
        Same shape and floating dtype as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is 0-d, has ``d = 0``, holds NaN or an infinity, if ``gamma`` is not
        of shape ``(d,)`` or not finite, if ``eps`` is negative or not finite, or if
        ``eps = 0`` and a row of ``x`` is all zeros.
    TypeError
        If an input is bool, complex or not numeric, or ``gamma`` and ``x`` have
        different dtypes.
    FloatingPointError
        If ``gamma`` makes a result too large for the dtype.

    See Also
    --------
    layer_norm : The same with centring and a bias.
    l2_norm : ``rms(x) = l2_norm(x) / sqrt(d)``.

    Notes
    -----
    In code, ``x / sqrt(mean(x**2, -1) + eps) * gamma``. In maths,

    .. math::

       y_i = \frac{x_i}{\sqrt{\frac{1}{d} \sum_{j=1}^{d} x_j^2 + \varepsilon}} \, \gamma_i .

    The row is scaled by a power of two :math:`s` as in :func:`l2_norm`, and the
    formula is evaluated as :math:`(x_i / s) / \sqrt{\overline{(x/s)^2} +
    \varepsilon / s^2}`. Powers of two scale exactly, so this is the formula above bit
    for bit wherever that formula does not overflow, and it stays correct where it
    would (entries beyond :math:`10^{154}` in ``float64``, :math:`10^{19}` in
    ``float32``).

    References
    ----------
    :cite:t:`zhang2019root`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.norms import rms_norm
    >>> x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    >>> print(np.round(rms_norm(x), 4))
    [[0.     1.4142 0.     1.4142]
     [0.     1.4142 1.4142 0.    ]
     [2.     0.     0.     0.    ]]
    >>> print(np.round(rms_norm([3e200, 4e200]), 4))
    [0.8485 1.1314]
    """
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    _non_empty_last_axis(arr, "x")
    eps_f = non_negative_finite(eps, "eps")
    g = _elementwise_param(gamma, "gamma", arr)
    dtype: np.dtype[Any] = working_dtype(arr.dtype)
    y, mean_square, e = _mean_square(arr, eps_f)  # x / 2^e, mean(x^2) / 4^e
    out = divide_by_root(y, mean_square, e, eps_f)  # x / sqrt(mean(x^2) + eps)
    if g is not None:
        with np.errstate(over="ignore"):
            out *= g.astype(dtype, copy=False)  # * gamma
    return finite_result(out, arr.dtype, "rms_norm(x)")


# --- backward passes ---


@dataclass(frozen=True, eq=False)
class LayerNormGrads:
    r"""Gradients of a loss through :func:`layer_norm`, and the statistics it used.

    Returned by :func:`layer_norm_vjp`. Every array is read-only and has ``x``'s
    floating dtype. Equality is identity (``eq=False``).

    Attributes
    ----------
    x : (..., d) ndarray
        :math:`\partial L / \partial x`.
    gamma : (d,) ndarray
        :math:`\partial L / \partial \gamma`, summed over every row (also when
        ``gamma`` was None: the gradient a gain of ones would receive).
    beta : (d,) ndarray
        :math:`\partial L / \partial \beta`: the upstream gradient summed over every row.
    mean : (...) ndarray
        Each row's mean :math:`\mu`.
    rstd : (...) ndarray
        Each row's reciprocal standard deviation :math:`1 / \sqrt{\sigma^2 + \varepsilon}`.
    """

    x: FloatArray
    gamma: FloatArray
    beta: FloatArray
    mean: FloatArray
    rstd: FloatArray


@dataclass(frozen=True, eq=False)
class RMSNormGrads:
    r"""Gradients of a loss through :func:`rms_norm`.

    Returned by :func:`rms_norm_vjp`. Every array is read-only and has ``x``'s
    floating dtype. Equality is identity (``eq=False``).

    Attributes
    ----------
    x : (..., d) ndarray
        :math:`\partial L / \partial x`.
    gamma : (d,) ndarray
        :math:`\partial L / \partial \gamma`, summed over every row (also when
        ``gamma`` was None).
    """

    x: FloatArray
    gamma: FloatArray


def _norm_inputs(
    x: ArrayLike, grad: ArrayLike, gamma: ArrayLike | None, eps: float, of: str
) -> tuple[FloatArray, FloatArray, FloatArray | None, float]:
    """The checks of :func:`layer_norm_vjp` and :func:`rms_norm_vjp`: x, grad, gamma, eps."""
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    _non_empty_last_axis(arr, "x")
    g_arr = as_gradient(grad, arr.shape, arr.dtype, of)
    eps_f = non_negative_finite(eps, "eps")
    gam = _elementwise_param(gamma, "gamma", arr)
    return arr, g_arr, gam, eps_f  # x is checked finite by _scaled, on the way


def _normalised_vjp(
    x_hat: FloatArray, rstd: FloatArray, g_hat: FloatArray, *, centred: bool
) -> FloatArray:
    """``dx`` of ``x_hat = (x - [mu]) * rstd`` from ``g_hat = dL/dx_hat`` (keepdims ``rstd``)."""
    # dx = rstd (g - [mean(g)] - x_hat mean(g x_hat))
    inner = g_hat - x_hat * np.mean(g_hat * x_hat, axis=-1, keepdims=True)
    if centred:
        inner -= np.mean(g_hat, axis=-1, keepdims=True)
    out: FloatArray = rstd * inner
    return out


def _scaled_stats(arr: FloatArray, eps: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``x_hat``, ``rstd`` (..., 1) and ``mean`` (...) by the scaled lines, working dtype.

    Each row divided by a power of two first (:func:`_centre`), so that no square
    over- or underflows: the statistics :func:`layer_norm_vjp` and
    :func:`layer_norm_stats` use where the kernel's rows-at-once lines decline.
    """
    centred, var, mean, e = _centre(arr, eps)  # in the units of y = x / 2^e
    x_hat = divide_by_root(centred, var, e, eps)  # (x - mu) / sqrt(sigma^2 + eps)
    rstd = reciprocal_root(var, e, eps)  # 1 / sqrt(sigma^2 + eps): (..., 1)
    with np.errstate(over="ignore"):
        mean_x = np.ldexp(mean, e)[..., 0]  # mu = 2^e mean(y)
    return x_hat, rstd, mean_x


def _scaled_grads(
    x_hat: FloatArray, rstd: FloatArray, g_arr: FloatArray, gam: FloatArray | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``dx, dgamma, dbeta`` of :func:`layer_norm` from the scaled lines' ``x_hat`` and ``rstd``."""
    g = as_working(g_arr)  # dL/dy
    with np.errstate(over="ignore", invalid="ignore"):  # reported by finite_result
        g_hat = g if gam is None else g * gam.astype(g.dtype)  # dL/dx_hat = dL/dy * gamma
        d_x = _normalised_vjp(x_hat, rstd, g_hat, centred=True)
        d_gamma = _row_sums(g * x_hat)  # sum over rows of dL/dy * x_hat
        d_beta = _row_sums(g)  # sum over rows of dL/dy
    return d_x, d_gamma, d_beta


def layer_norm_vjp(
    x: ArrayLike,
    grad: ArrayLike,
    /,
    gamma: ArrayLike | None = None,
    *,
    eps: float = 1e-5,
    stats: LayerNormStats | None = None,
) -> LayerNormGrads:
    r"""Backward pass of :func:`layer_norm`: gradients for ``x``, ``gamma`` and ``beta``.

    Given the input ``x`` of ``y = layer_norm(x, gamma, beta, eps=eps)`` and the
    gradient ``grad`` of a loss with respect to ``y``, returns the gradients with
    respect to ``x``, ``gamma`` and ``beta`` (``beta`` itself is not needed: it only
    shifts ``y``), and the row statistics the forward pass computed.

    Parameters
    ----------
    x : (..., d) array_like
        The input of the forward pass, ``d >= 1``; finite.
    grad : (..., d) array_like
        :math:`\partial L / \partial y`: ``x``'s shape and dtype, finite.
    gamma : (d,) array_like, optional
        The gain of the forward pass. Default None (all ones).
    eps : float, optional
        The ``eps`` of the forward pass; finite and ``>= 0``. Default ``1e-5``.
        With ``stats``, it must equal ``stats.eps``.
    stats : LayerNormStats, optional
        The statistics the forward pass used, from :func:`layer_norm_stats`: ``x_hat``
        and ``rstd`` are taken from them instead of recomputed (the same bits), and
        returned ``mean`` and ``rstd`` are theirs. ``x`` must be the ``x`` they were
        computed from, by the rule of :func:`layer_norm`'s ``stats``. Default None.

    Returns
    -------
    LayerNormGrads
        ``x`` ``(..., d)``, ``gamma`` and ``beta`` ``(d,)``, ``mean`` and ``rstd``
        ``(...)``; read-only, ``x``'s floating dtype (float16 computed in float32).

    Raises
    ------
    ValueError
        As :func:`layer_norm` (with ``stats`` too), and if ``grad``'s shape differs
        from ``x``'s or it is not finite.
    TypeError
        If an input is bool, complex or not numeric, the dtypes differ, or ``stats``
        is not a :class:`LayerNormStats`.
    FloatingPointError
        If a gradient is too large for the dtype.

    See Also
    --------
    layer_norm, layer_norm_stats, rms_norm_vjp

    Notes
    -----
    In code, ``x_hat = (x - mu) * rstd; g = grad * gamma; dx = rstd * (g - g.mean(-1)
    - x_hat * (g * x_hat).mean(-1))``. With :math:`\hat x_i = (x_i - \mu) r`,
    :math:`r = (\sigma^2 + \varepsilon)^{-1/2}` and :math:`g_i = \gamma_i \,
    \partial L / \partial y_i`, differentiating :math:`\mu` and :math:`\sigma^2`
    (:math:`\partial \hat x_i / \partial x_j = r (\delta_{ij} - 1/d - \hat x_i \hat x_j / d)`)
    gives

    .. math::

       \frac{\partial L}{\partial x_j} = r \Bigl(g_j - \frac{1}{d} \sum_i g_i
           - \hat x_j \, \frac{1}{d} \sum_i g_i \hat x_i \Bigr), \qquad
       \frac{\partial L}{\partial \gamma} = \sum_{\text{rows}}
           \frac{\partial L}{\partial y} \circ \hat x, \qquad
       \frac{\partial L}{\partial \beta} = \sum_{\text{rows}} \frac{\partial L}{\partial y} .

    Without ``stats``, the statistics are recomputed exactly as the forward pass
    computes them (corrected two-pass variance, scaled by a power of two where a square
    could over- or underflow), so :math:`\hat x` is the forward pass's bit for bit;
    with ``stats`` (:func:`layer_norm_stats`) they are the forward pass's. The two means
    subtracted make :math:`dx` sum to zero over each row and be orthogonal to
    :math:`\hat x`, as the exact gradient is. With ``stats``, :math:`|\hat x| \le
    \sqrt{d}`, :math:`r \le 1/\sqrt{\varepsilon}` and the largest :math:`|g|` and
    :math:`|\gamma|` bound every gradient; where the bounds fit the dtype, none is
    scanned for overflow.

    References
    ----------
    :cite:t:`ba2016layer`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.norms import layer_norm_vjp
    >>> x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    >>> grads = layer_norm_vjp(x, np.array([[1.0, 0.0, 0.0, 0.0]] * 3))  # L = sum(y[:, 0])
    >>> print(np.round(grads.x, 3) + 0.0)  # creature's one-hot row: y is scale-free
    [[ 1.  0. -1.  0.]
     [ 1.  0.  0. -1.]
     [ 0.  0.  0.  0.]]
    >>> print(np.round(grads.mean, 3), np.round(grads.rstd, 3))
    [0.5  0.5  0.25] [2.    2.    2.309]
    >>> print(np.round(grads.gamma, 3) + 0.0, grads.beta)
    [-0.268  0.     0.     0.   ] [3. 0. 0. 0.]
    """
    of = "x (and of y = layer_norm(x))"
    if stats is not None:
        st = _given_stats(x, stats, eps)
        g_given, peak_g = gradient_peak(grad, st.x.shape, st.x.dtype, of)
        gam, peak_gamma = _elementwise_peak(gamma, "gamma", st.x, 1.0)
        return _layer_norm_vjp_from(st, g_given, gam, (peak_g, peak_gamma))
    arr, g_arr, gam, eps_f = _norm_inputs(x, grad, gamma, eps, of)
    fast = layer_norm_vjp_rows(arr, g_arr, gam, eps_f)  # the lines below, rows side by side
    if fast is not None:  # (None: the rows need the scaling by powers of two)
        d_x, d_gamma, d_beta, mean_x, rstd_x = fast
    else:
        x_hat, rstd, mean_x = _scaled_stats(arr, eps_f)
        d_x, d_gamma, d_beta = _scaled_grads(x_hat, rstd, g_arr, gam)
        rstd_x = rstd[..., 0]
    results = finite_results(
        (d_x, d_gamma, d_beta, mean_x, rstd_x),
        arr.dtype,
        [f"layer_norm_vjp: {what}" for what in ("dL/dx", "dL/dgamma", "dL/dbeta", "mean", "rstd")],
    )
    return LayerNormGrads(*(frozen(result) for result in results))


def _layer_norm_vjp_from(
    stats: LayerNormStats,
    g_arr: FloatArray,
    gam: FloatArray | None,
    peaks: tuple[float, float] = (math.inf, 1.0),
) -> LayerNormGrads:
    """:func:`layer_norm_vjp` from kept statistics: its lines after the statistics.

    ``peaks`` are ``max |grad|`` and ``max |gamma|`` (1 without one): where
    the kernel's ``layer_norm_vjp_bound`` fits the dtype, nothing can overflow and
    nothing is scanned.
    """
    x_hat = stats._x_hat_w  # x's shape, working dtype
    rstd = stats._rstd_w  # (..., 1), working dtype
    d = x_hat.shape[-1]
    proven = fits(layer_norm_vjp_bound(d, x_hat.size // d, stats.eps, *peaks), stats.x.dtype)
    if stats._rows:  # made by the kernel: its backward lines
        d_x, d_gamma, d_beta = layer_norm_grads_rows(
            x_hat.reshape(-1, d), rstd.reshape(-1, 1), g_arr, gam, proven=proven
        )
        d_x = d_x.reshape(x_hat.shape)
    else:  # the scaled lines of layer_norm_vjp
        d_x, d_gamma, d_beta = _scaled_grads(x_hat, rstd, g_arr, gam)
    if proven:
        results = [out.astype(stats.x.dtype, copy=False) for out in (d_x, d_gamma, d_beta)]
    else:
        results = finite_results(
            (d_x, d_gamma, d_beta),
            stats.x.dtype,
            [f"layer_norm_vjp: {what}" for what in ("dL/dx", "dL/dgamma", "dL/dbeta")],
        )
    d_x, d_gamma, d_beta = (frozen(result) for result in results)
    return LayerNormGrads(d_x, d_gamma, d_beta, mean=stats.mean, rstd=stats.rstd)


def rms_norm_vjp(
    x: ArrayLike, grad: ArrayLike, /, gamma: ArrayLike | None = None, *, eps: float = 1e-6
) -> RMSNormGrads:
    r"""Backward pass of :func:`rms_norm`: gradients for ``x`` and ``gamma``.

    Parameters
    ----------
    x : (..., d) array_like
        The input of the forward pass, ``d >= 1``; finite.
    grad : (..., d) array_like
        :math:`\partial L / \partial y`: ``x``'s shape and dtype, finite.
    gamma : (d,) array_like, optional
        The gain of the forward pass. Default None (all ones).
    eps : float, optional
        The ``eps`` of the forward pass; finite and ``>= 0``. Default ``1e-6``.

    Returns
    -------
    RMSNormGrads
        ``x`` ``(..., d)`` and ``gamma`` ``(d,)``; read-only, ``x``'s floating dtype
        (float16 computed in float32).

    Raises
    ------
    ValueError
        As :func:`rms_norm`, and if ``grad``'s shape differs from ``x``'s or it is
        not finite.
    TypeError
        If an input is bool, complex or not numeric, or the dtypes differ.
    FloatingPointError
        If a gradient is too large for the dtype.

    See Also
    --------
    rms_norm, layer_norm_vjp

    Notes
    -----
    In code, ``x_hat = x * r; g = grad * gamma; dx = r * (g - x_hat * (g * x_hat).mean(-1))``
    with :math:`r = (\overline{x^2} + \varepsilon)^{-1/2}`. From
    :math:`\partial \hat x_i / \partial x_j = r (\delta_{ij} - \hat x_i \hat x_j / d)`,

    .. math::

       \frac{\partial L}{\partial x_j} = r \Bigl(g_j - \hat x_j \,
           \frac{1}{d} \sum_i g_i \hat x_i \Bigr), \qquad
       \frac{\partial L}{\partial \gamma} = \sum_{\text{rows}}
           \frac{\partial L}{\partial y} \circ \hat x .

    :math:`\hat x` and :math:`r` are computed from the row scaled by a power of two, as
    in the forward pass, so nothing overflows for entries up to the largest float.

    References
    ----------
    :cite:t:`zhang2019root`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.norms import rms_norm_vjp
    >>> x = np.array([[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    >>> grads = rms_norm_vjp(x, np.ones((3, 4)))  # L = sum(y)
    >>> print(np.round(grads.x, 4) + 0.0)
    [[1.4142 0.     1.4142 0.    ]
     [1.4142 0.     0.     1.4142]
     [0.     2.     2.     2.    ]]
    >>> print(np.round(grads.gamma, 4))
    [2.     2.8284 1.4142 1.4142]
    """
    arr, g_arr, gam, eps_f = _norm_inputs(x, grad, gamma, eps, "x (and of y = rms_norm(x))")
    y, mean_square, e = _mean_square(arr, eps_f)  # x / 2^e, mean(x^2) / 4^e
    x_hat = divide_by_root(y, mean_square, e, eps_f)  # x / sqrt(mean(x^2) + eps)
    rstd = reciprocal_root(mean_square, e, eps_f)  # 1 / sqrt(mean(x^2) + eps)
    g = as_working(g_arr)  # dL/dy
    with np.errstate(over="ignore", invalid="ignore"):  # reported by finite_result
        g_hat = g if gam is None else g * gam.astype(g.dtype)  # dL/dx_hat
        d_x = _normalised_vjp(x_hat, rstd, g_hat, centred=False)
        d_gamma = _row_sums(g * x_hat)  # sum over rows of dL/dy * x_hat
    dt = arr.dtype
    return RMSNormGrads(
        x=frozen(finite_result(d_x, dt, "rms_norm_vjp: dL/dx")),
        gamma=frozen(finite_result(d_gamma, dt, "rms_norm_vjp: dL/dgamma")),
    )


@overload
def l2_normalize_vjp(
    x: NDArray[F], grad: NDArray[F], /, *, axis: int = -1, eps: float | None = None
) -> NDArray[F]: ...
@overload
def l2_normalize_vjp(
    x: Float64Like | NDArray[np.float64],
    grad: Float64Like | NDArray[np.float64],
    /,
    *,
    axis: int = -1,
    eps: float | None = None,
) -> NDArray[np.float64]: ...
@overload
def l2_normalize_vjp(
    x: ArrayLike, grad: ArrayLike, /, *, axis: int = -1, eps: float | None = None
) -> FloatArray: ...


def l2_normalize_vjp(
    x: ArrayLike, grad: ArrayLike, /, *, axis: int = -1, eps: float | None = None
) -> FloatArray:
    r"""Backward pass of :func:`l2_normalize`: the gradient with respect to ``x``.

    Parameters
    ----------
    x : (..., d, ...) array_like
        The input of the forward pass; finite, no zero vector unless ``eps`` is given.
    grad : (..., d, ...) array_like
        :math:`\partial L / \partial \hat x`: ``x``'s shape and dtype, finite.
    axis : int, optional
        The axis of the vectors' components. Default ``-1``.
    eps : float, optional
        The ``eps`` of the forward pass (finite, ``> 0``). Default None.

    Returns
    -------
    grad_x : (..., d, ...) ndarray
        :math:`\partial L / \partial x`; ``x``'s shape and floating dtype.

    Raises
    ------
    ValueError
        As :func:`l2_normalize` (a zero vector without ``eps``), and if ``grad``'s
        shape differs from ``x``'s or it is not finite.
    TypeError
        If an input is bool, complex or not numeric, or the dtypes differ.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.
    FloatingPointError
        If the gradient is too large for the dtype (vectors near the smallest float).

    See Also
    --------
    l2_normalize

    Notes
    -----
    In code, ``u = x / norm; (grad - u * (grad * u).sum()) / norm``. With
    :math:`u = x / \lVert x \rVert`, :math:`\partial u_i / \partial x_j =
    (\delta_{ij} - u_i u_j) / \lVert x \rVert`, so

    .. math::

       \frac{\partial L}{\partial x} = \frac{g - u \, (g \cdot u)}{\lVert x \rVert},

    the part of :math:`g` orthogonal to :math:`u`, divided by the length: moving
    :math:`x` along itself does not change its direction. Where :math:`\lVert x \rVert
    < \varepsilon` the forward pass is :math:`x / \varepsilon` and the gradient is
    :math:`g / \varepsilon` (at :math:`\lVert x \rVert = \varepsilon` the first branch
    is taken, as in torch). The vector is scaled by a power of two first, as in
    :func:`l2_norm`, so neither :math:`\lVert x \rVert` nor :math:`u` over- or
    underflows.

    References
    ----------
    :cite:t:`higham2002accuracy`, §27.8 (the scaled norm).

    Examples
    --------
    Creature's query ``[3, 1, 0, 0]``; a loss that wants its first component larger:

    >>> import numpy as np
    >>> from attention_from_scratch.norms import l2_normalize_vjp
    >>> print(np.round(l2_normalize_vjp([3.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]), 4))
    [ 0.0316 -0.0949  0.      0.    ]
    """
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 1, "x", _VECTOR_AXIS)
    ax = normalize_axis(axis, arr.ndim)
    g_arr = as_gradient(grad, arr.shape, arr.dtype, "x (and of l2_normalize(x))")
    eps_f = None if eps is None else positive_finite(eps, "eps")
    work = as_working(arr)
    y, e = scaled_rows(work, ax, arr, "x")  # y = x / 2^e, |y| < 1
    norm_y = np.sqrt(np.sum(y * y, axis=ax, keepdims=True))  # ||y||
    if eps_f is None:
        why = "it has no direction; pass eps= (as torch.nn.functional.normalize) to get zeros"
        _zero_rows(norm_y == 0.0, ax, "x", arr.shape, why)
    g = as_working(g_arr)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # set or reported below
        unit = y / norm_y  # u = x / ||x|| = y / ||y||
        along = np.sum(g * unit, axis=ax, keepdims=True)  # g . u
        d_x = np.ldexp(
            (g - unit * along) / norm_y, -e
        )  # (g - u (g . u)) / ||x||, ||x|| = 2^e ||y||
    if eps_f is not None:
        eps_w = np.asarray(eps_f, dtype=work.dtype)
        with np.errstate(over="ignore"):
            eps_y = np.ldexp(eps_w, -e)  # eps / 2^e (inf for rows far below eps)
        short = norm_y < eps_y  # ||x|| < eps: the forward pass was x / eps
        if short.any():
            np.divide(g, eps_w, out=d_x, where=np.broadcast_to(short, d_x.shape))  # g / eps
    return finite_result(d_x, arr.dtype, "l2_normalize_vjp(x, grad)")
