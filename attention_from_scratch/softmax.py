r"""Softmax: from attention scores to attention weights.

Scaled dot-product attention (:cite:t:`vaswani2017attention`, §3.2.1, Eq. 1) turns
each query's row of scores into weights that are positive and sum to one:

.. math::

   \operatorname{Attention}(Q, K, V) =
   \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V .

This module is that softmax and everything attention needs around it:

* :func:`softmax` -- the weights, with ``temperature`` and a boolean ``where`` mask;
* :func:`log_softmax` and :func:`logsumexp` -- the same in log space;
* :func:`entropy` -- how spread out a row of weights is, in nats;
* :func:`softmax_jacobian` and :func:`softmax_vjp` -- its derivative, for the
  backward pass of attention; :func:`log_softmax_vjp`, that of :func:`log_softmax`
  (the cross-entropy loss of a model's output).

Every routine is numerically stable (it never overflows for finite input), keeps
the input's floating dtype (``float16`` is accumulated in ``float32``), and follows
the input policy of the package: NaN and ``+inf`` are errors, ``-inf`` means
"weight 0".

The running example for this module is the Gram-matrix example of the book: three
tokens ``x = [[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]]`` attending to each other with
``Q = K = V = x``, whose scaled scores ``x x^T / sqrt(4)`` are::

    [[1, 0, 1],
     [0, 4, 2],
     [1, 2, 2]]
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from attention_from_scratch._checks import (
    BoolArray,
    F,
    Float64Like,
    FloatArray,
    as_bool_mask,
    as_float_array,
    as_working,
    at_least_ndim,
    broadcast_to_shape,
    check_bool,
    check_finite,
    check_row_max,
    check_same_dtype,
    check_same_shape,
    every_finite,
    finite_result,
    fits,
    gradient_peak,
    largest_entry,
    normalize_axis,
    positive_finite,
    silenced,
    sum_bound,
    working_dtype,
)
from attention_from_scratch._kernel import (
    READABLE_ENTRIES,
    THREAD_BYTES,
    kernel_threads,
    max_along,
    report_rows,
    softmax_rows,
    softmax_vjp_rescaled,
    sum_along,
)

__all__ = [
    "entropy",
    "log_softmax",
    "log_softmax_vjp",
    "logsumexp",
    "softmax",
    "softmax_jacobian",
    "softmax_vjp",
]


def _at_least_1d(arr: FloatArray, name: str) -> None:
    at_least_ndim(arr, 1, name, "(the axis to normalise over)")


@overload
def softmax(
    x: NDArray[F], /, *, axis: int = -1, temperature: float = 1.0, where: ArrayLike | None = None
) -> NDArray[F]: ...
@overload
def softmax(
    x: Float64Like, /, *, axis: int = -1, temperature: float = 1.0, where: ArrayLike | None = None
) -> NDArray[np.float64]: ...
@overload
def softmax(
    x: ArrayLike, /, *, axis: int = -1, temperature: float = 1.0, where: ArrayLike | None = None
) -> FloatArray: ...


def softmax(
    x: ArrayLike,
    /,
    *,
    axis: int = -1,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
) -> FloatArray:
    r"""Normalised exponentials of ``x`` along ``axis``: positive weights that sum to 1.

    Turns a row of attention scores into attention weights. A larger score gets a
    larger weight, adding a constant to the row changes nothing, and
    ``temperature`` sharpens (``< 1``) or flattens (``> 1``) the distribution.

    Parameters
    ----------
    x : (..., n, ...) array_like
        Scores (logits). Real numbers; ``-inf`` entries get weight exactly 0.
        Integer input is converted to ``float64``.
    axis : int, optional
        The axis to normalise over. Default ``-1``, the keys of an attention row.
    temperature : float, optional
        Divides the scores before the exponential; finite and ``> 0``. Default 1.
    where : (..., n, ...) array_like of bool, optional
        Broadcastable to ``x``. Entries where it is False get weight exactly 0 and are
        not read; a row with no True entry is all zeros (an attention query that may
        attend to nothing).

    Returns
    -------
    weights : (..., n, ...) ndarray
        Same shape and floating dtype as ``x``; every row along ``axis`` sums to 1
        (or is all zeros when ``where`` allows none of its entries).

    Raises
    ------
    ValueError
        If ``x`` is 0-d, holds NaN or ``+inf`` (where allowed), has a row that is
        entirely ``-inf`` while ``where`` is not given, if ``temperature`` is not
        finite and positive, or if ``where`` does not broadcast to ``x``.
    TypeError
        If ``x`` is bool, complex or not numeric, or ``where`` is not bool.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.

    See Also
    --------
    log_softmax : The logarithm of the softmax, computed without cancellation.
    logsumexp : The normaliser :math:`\log \sum_j e^{x_j}`.

    Notes
    -----
    In code, ``e = np.exp((x - x.max()) / t); weights = e / e.sum()``. In maths, for a
    row :math:`x \in \mathbb{R}^n` and temperature :math:`T`,

    .. math::

       \operatorname{softmax}(x)_i = \frac{e^{x_i / T}}{\sum_{j=1}^{n} e^{x_j / T}}
                                   = \frac{e^{(x_i - m)/T}}{\sum_{j} e^{(x_j - m)/T}},
       \qquad m = \max_j x_j .

    The two forms are equal because the factor :math:`e^{-m/T}` cancels. The second is
    the one computed: every exponent is :math:`\le 0`, so no exponential overflows,
    and the largest term is exactly :math:`e^0 = 1`, so the denominator is at least 1
    and never underflows to 0 :cite:p:`blanchard2021accurately`. The row maximum
    :math:`m` also validates the input at no extra cost: it is NaN when the row holds
    NaN, ``+inf`` when it holds ``+inf`` and ``-inf`` only when the whole row is
    ``-inf``. ``float16`` input is computed in ``float32`` and rounded once at the end.

    Up to 16384 entries these steps run as the three lines they are. For larger
    inputs the package's private kernel computes the same, arranged for speed (equal
    to 2 ulp): the rows go in blocks small enough to stay in the processor's cache
    through every pass (the maximum; ``x - m`` written straight into the output; the
    exponential in place; the sum; the scaling), and the scaling multiplies by
    :math:`1/\sum_j e^{x_j - m}`, one division per row instead of one per entry.

    In attention the temperature is :math:`\sqrt{d_k}`: dividing the dot products by
    it keeps their spread near 1, so the softmax stays soft instead of saturating to
    a one-hot vector :cite:p:`vaswani2017attention`.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.1; :cite:t:`bridle1990probabilistic`.

    Examples
    --------
    Row 0 of the running example's scores: the two equal scores share the weight.

    >>> import numpy as np
    >>> from attention_from_scratch.softmax import softmax
    >>> scores = np.array([[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]])
    >>> print(np.round(softmax(scores), 4))
    [[0.4223 0.1554 0.4223]
     [0.0159 0.8668 0.1173]
     [0.1554 0.4223 0.4223]]
    >>> print(softmax(scores).sum(axis=-1))
    [1. 1. 1.]

    A higher temperature flattens the row, a lower one sharpens it:

    >>> print(np.round(softmax([0.0, 4.0, 2.0], temperature=10.0), 4))
    [0.2693 0.4018 0.3289]
    >>> print(np.round(softmax([0.0, 4.0, 2.0], temperature=0.1), 4) + 0.0)
    [0. 1. 0.]

    ``where`` removes entries; a row with nothing allowed is all zeros:

    >>> allowed = np.array([[True, False, False], [True, True, False], [False] * 3])
    >>> print(np.round(softmax(scores, where=allowed), 4))
    [[1.    0.    0.   ]
     [0.018 0.982 0.   ]
     [0.    0.    0.   ]]
    """
    arr = as_float_array(x, "x")
    _at_least_1d(arr, "x")
    ax = normalize_axis(axis, arr.ndim)
    t = positive_finite(temperature, "temperature")
    mask: BoolArray | None = None
    if where is not None:
        mask = _broadcast_where(where, arr.shape)
    # Put the softmax axis last: each row of `rows` is one softmax of n entries.
    rows = np.moveaxis(arr, ax, -1)  # (..., n), a view
    allowed = None if mask is None else np.moveaxis(mask, ax, -1)  # (..., n)
    if rows.size > READABLE_ENTRIES or rows.size == 0:
        out = _blocked(arr, rows, allowed, t, ax, mask)  # the same, arranged for speed
    else:
        z = as_working(rows)  # (..., n), C order; float16 works in float32
        # m = max_j z_j over the allowed entries: exp(z_j - m) <= 1 never overflows
        m = np.max(z, axis=-1, keepdims=True, where=_everywhere(allowed), initial=-np.inf)
        if not every_finite(m):  # NaN, +inf or a row with nothing allowed: checked
            report_rows(arr, ax, mask, "x", allow_empty_rows=mask is not None)
        m[np.isneginf(m)] = 0.0  # a row with nothing allowed: no shift, its e stays 0
        # e_j = exp((z_j - m) / T), 0 where not allowed (z - m below the range: -inf, e = 0)
        with np.errstate(over="ignore"):
            e = np.exp(
                _over_temperature(z - m, t), where=_everywhere(allowed), out=np.zeros_like(z)
            )
        # p_j = e_j / sum_l e_l   (the sum is >= 1: the maximum gives e = 1)
        total = np.sum(e, axis=-1, keepdims=True)
        out = e / np.where(total == 0.0, 1.0, total)  # a row with nothing allowed: 0
    weights = np.moveaxis(out, -1, ax)  # the axis back in its place
    return weights.astype(arr.dtype, copy=False)  # float16: rounded once, at the end


def _everywhere(allowed: BoolArray | None) -> BoolArray | bool:
    """The ``where=`` of a ufunc: the mask, or True."""
    return True if allowed is None else allowed


def _over_temperature(shifted: FloatArray, t: float) -> FloatArray:
    """``shifted / t``, divided in float64 and rounded once (T = 1: untouched)."""
    if t == 1.0:
        return shifted
    out: FloatArray = np.divide(shifted, t, dtype=np.float64).astype(shifted.dtype)
    return out


def _blocked(
    arr: FloatArray,
    rows: FloatArray,
    allowed: BoolArray | None,
    t: float,
    ax: int,
    mask: BoolArray | None,
) -> FloatArray:
    """:func:`softmax` of the rows (..., n) by the kernel's blocked, in-place passes."""
    n = rows.shape[-1]
    out = np.empty(rows.shape, dtype=working_dtype(arr.dtype))  # float16 works in float32
    if out.size == 0:
        return out
    softmax_rows(
        rows.reshape(-1, n),  # (..., n) -> (rows, n), a view unless x is not contiguous
        out.reshape(-1, n),
        temperature=t,
        where=None if allowed is None else allowed.reshape(-1, n),
        allow_empty_rows=mask is not None,
        report=lambda: report_rows(arr, ax, mask, "x", allow_empty_rows=mask is not None),
        threads=kernel_threads() if out.nbytes >= THREAD_BYTES else 1,  # rows on all cores
    )
    return out


def _broadcast_where(where: object, shape: tuple[int, ...]) -> BoolArray:
    mask: BoolArray = broadcast_to_shape(as_bool_mask(where, "where"), shape, "where", "x")
    return mask


def _shifted(
    arr: FloatArray, axis: int, name: str, *, allow_empty_rows: bool
) -> tuple[FloatArray, FloatArray]:
    """Return ``(z - m, m)`` in the working dtype, with ``m`` the row max (-inf rows: 0).

    Validates ``arr`` through ``m``: NaN or ``+inf`` raise, and so do rows that are all
    ``-inf`` unless ``allow_empty_rows``; those then have ``m == 0`` and ``z - m == -inf``.
    """
    work = np.ascontiguousarray(arr, dtype=working_dtype(arr.dtype))
    row_max = max_along(work, axis)  # (..., 1, ...)
    check_row_max(
        row_max, work, name, allow_empty_rows=allow_empty_rows, hint="log_softmax is -inf - -inf"
    )
    if allow_empty_rows:  # (otherwise check_row_max has refused a row of -inf)
        np.copyto(row_max, 0.0, where=np.isneginf(row_max))
    with np.errstate(over="ignore"):
        shifted = work - row_max
    return shifted, row_max


@overload
def log_softmax(x: NDArray[F], /, *, axis: int = -1, temperature: float = 1.0) -> NDArray[F]: ...
@overload
def log_softmax(
    x: Float64Like, /, *, axis: int = -1, temperature: float = 1.0
) -> NDArray[np.float64]: ...
@overload
def log_softmax(x: ArrayLike, /, *, axis: int = -1, temperature: float = 1.0) -> FloatArray: ...


def log_softmax(
    x: ArrayLike,
    /,
    *,
    axis: int = -1,
    temperature: float = 1.0,
) -> FloatArray:
    r"""Logarithm of :func:`softmax`, computed without taking the log of a rounded 0.

    Parameters
    ----------
    x : (..., n, ...) array_like
        Scores (logits); ``-inf`` entries give ``-inf``.
    axis : int, optional
        The axis to normalise over. Default ``-1``.
    temperature : float, optional
        Divides the scores first; finite and ``> 0``. Default 1.

    Returns
    -------
    log_weights : (..., n, ...) ndarray
        Same shape and dtype as ``x``; ``exp(log_weights)`` sums to 1 along ``axis``.

    Raises
    ------
    ValueError
        If ``x`` is 0-d, holds NaN or ``+inf``, has a row that is entirely ``-inf``,
        or ``temperature`` is not finite and positive.
    TypeError
        If ``x`` is bool, complex or not numeric.

    See Also
    --------
    softmax, logsumexp

    Notes
    -----
    In code, ``z = (x - x.max()) / t; z - np.log(np.exp(z).sum())``. In maths,

    .. math::

       \log \operatorname{softmax}(x)_i = \frac{x_i - m}{T}
           - \log \sum_j e^{(x_j - m)/T}, \qquad m = \max_j x_j .

    ``np.log(softmax(x))`` would give ``-inf`` as soon as a weight underflows to 0
    (a score more than about 745 below the maximum in float64); this form stays
    finite and exact there, and the sum inside the log is at least 1
    :cite:p:`blanchard2021accurately`.

    References
    ----------
    :cite:t:`blanchard2021accurately`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.softmax import log_softmax
    >>> print(np.round(log_softmax([1.0, 0.0, 1.0]), 4))
    [-0.862 -1.862 -0.862]

    Far below the maximum the weight underflows, its logarithm does not:

    >>> print(log_softmax([0.0, -1000.0]))
    [    0. -1000.]
    """
    arr = as_float_array(x, "x")
    _at_least_1d(arr, "x")
    ax = normalize_axis(axis, arr.ndim)
    t = positive_finite(temperature, "temperature")
    if arr.size == 0:
        return arr.copy()
    shifted, _ = _shifted(arr, ax, "x", allow_empty_rows=False)
    with np.errstate(over="ignore"):  # below the dtype's range: -inf, correctly rounded
        if t != 1.0:
            np.divide(shifted, t, out=shifted, dtype=np.float64, casting="same_kind")
        normaliser = np.log(sum_along(np.exp(shifted), ax))  # log(>= 1) >= 0
        out: FloatArray = (shifted - normaliser).astype(arr.dtype, copy=False)
    return out


@overload
def logsumexp(x: NDArray[F], /, *, axis: int = -1, keepdims: bool = False) -> NDArray[F]: ...
@overload
def logsumexp(
    x: Float64Like, /, *, axis: int = -1, keepdims: bool = False
) -> NDArray[np.float64]: ...
@overload
def logsumexp(x: ArrayLike, /, *, axis: int = -1, keepdims: bool = False) -> FloatArray: ...


def logsumexp(x: ArrayLike, /, *, axis: int = -1, keepdims: bool = False) -> FloatArray:
    r"""The log of the sum of exponentials along ``axis``, without overflow.

    It is the normaliser of softmax: ``softmax(x) = exp(x - logsumexp(x, keepdims=True))``,
    and the "soft maximum" of a row of scores, between ``max(x)`` and
    ``max(x) + log(n)``.

    Parameters
    ----------
    x : (..., n, ...) array_like
        Real numbers; ``-inf`` entries contribute 0 to the sum.
    axis : int, optional
        The axis to reduce. Default ``-1``.
    keepdims : bool, optional
        Keep the reduced axis with length 1. Default False.

    Returns
    -------
    lse : ndarray
        ``x``'s shape without ``axis`` (or with it of length 1), ``x``'s dtype. A row
        that is entirely ``-inf`` gives ``-inf`` (the log of an empty sum), as does a
        row of length 0.

    Raises
    ------
    ValueError
        If ``x`` is 0-d or holds NaN or ``+inf``.
    TypeError
        If ``x`` is bool, complex or not numeric.
    FloatingPointError
        If the exact result does not fit ``x``'s dtype (float16: a row near 65504 with
        millions of entries, whose ``max(x) + log(n)`` rounds past it).

    See Also
    --------
    softmax, log_softmax, scipy.special.logsumexp

    Notes
    -----
    In code, ``m = x.max(); m + np.log(np.exp(x - m).sum())``. In maths,

    .. math::

       \operatorname{LSE}(x) = \log \sum_{j=1}^{n} e^{x_j}
                             = m + \log \sum_{j=1}^{n} e^{x_j - m},
       \qquad m = \max_j x_j .

    Every exponent is :math:`\le 0` (no overflow) and the sum is between 1 and
    :math:`n` (no underflow, no log of 0), so the result is accurate to a few ulps of
    :math:`m` :cite:p:`blanchard2021accurately`.

    References
    ----------
    :cite:t:`blanchard2021accurately`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.softmax import logsumexp
    >>> scores = np.array([[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]])
    >>> print(np.round(logsumexp(scores), 4))
    [1.862  4.1429 2.862 ]

    No overflow where ``np.log(np.sum(np.exp(x)))`` gives ``inf``:

    >>> print(round(float(logsumexp([1000.0, 1000.0])), 4))
    1000.6931
    """
    arr = as_float_array(x, "x")
    _at_least_1d(arr, "x")
    keepdims = check_bool(keepdims, "keepdims")
    ax = normalize_axis(axis, arr.ndim)
    if arr.shape[ax] == 0:
        shape = np.sum(arr, axis=ax, keepdims=keepdims).shape
        return np.full(shape, -np.inf, dtype=arr.dtype)
    shifted, row_max = _shifted(arr, ax, "x", allow_empty_rows=True)
    with np.errstate(divide="ignore"):  # log(0) = -inf for rows that are all -inf
        out = row_max + np.log(np.sum(np.exp(shifted), axis=ax, keepdims=True))
    if not keepdims:
        out = np.squeeze(out, axis=ax)
    # float16 (computed in float32) can round past 65504: m + log(s) with s up to n
    return finite_result(out, arr.dtype, "logsumexp(x)", allow_neg_inf=True)


@overload
def entropy(p: NDArray[F], /, *, axis: int = -1) -> NDArray[F]: ...
@overload
def entropy(p: Float64Like, /, *, axis: int = -1) -> NDArray[np.float64]: ...
@overload
def entropy(p: ArrayLike, /, *, axis: int = -1) -> FloatArray: ...


def entropy(p: ArrayLike, /, *, axis: int = -1) -> FloatArray:
    r"""Shannon entropy :math:`-\sum_i p_i \log p_i` of weights along ``axis``, in nats.

    Measures how spread out a query's attention is: 0 when it attends to a single
    key, :math:`\log n` when it attends uniformly to :math:`n` keys. ``exp(entropy)``
    is the "effective number of keys" attended to.

    Parameters
    ----------
    p : (..., n, ...) array_like
        Non-negative weights, usually a softmax output. They are not renormalised.
    axis : int, optional
        The axis to reduce. Default ``-1``.

    Returns
    -------
    h : ndarray
        ``p``'s shape without ``axis``, ``p``'s dtype.

    Raises
    ------
    ValueError
        If ``p`` is 0-d, not finite, or has a negative entry.
    TypeError
        If ``p`` is bool, complex or not numeric.

    See Also
    --------
    softmax

    Notes
    -----
    In code, ``-(p * np.log(p)).sum()`` with the convention :math:`0 \log 0 = 0`
    (the limit of :math:`p \log p` as :math:`p \to 0^+`):

    .. math::

       H(p) = -\sum_{i : p_i > 0} p_i \log p_i .

    The logarithm is only evaluated where :math:`p_i > 0`, so no ``-inf * 0 = NaN``
    and no divide-by-zero warning can occur :cite:p:`cover2006elements`.

    References
    ----------
    :cite:t:`cover2006elements`, §2.1.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.softmax import entropy, softmax
    >>> scores = np.array([[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]])
    >>> print(np.round(entropy(softmax(scores)), 4))
    [1.0174 0.4411 1.0174]
    >>> print(float(entropy([1.0, 0.0, 0.0])), bool(np.isclose(entropy([1/3] * 3), np.log(3))))
    0.0 True
    """
    arr = as_float_array(p, "p")
    _at_least_1d(arr, "p")
    ax = normalize_axis(axis, arr.ndim)
    check_finite(arr, "p")
    if (arr < 0).any():
        index = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        msg = f"p must be non-negative: found {float(arr[index])} at index {index}"
        raise ValueError(msg)
    work = np.ascontiguousarray(arr, dtype=working_dtype(arr.dtype))
    positive = work > 0
    log_p = np.zeros_like(work)
    np.log(work, out=log_p, where=positive)  # 0 log 0 = 0: log only where p > 0
    with np.errstate(over="ignore", invalid="ignore"):  # p far above 1: reported just below
        h = -np.sum(work * log_p, axis=ax)
    # + 0.0: no -0.0 for one-hot rows
    return finite_result(np.asarray(h + 0.0), arr.dtype, "entropy(p)")


@overload
def softmax_jacobian(p: NDArray[F], /) -> NDArray[F]: ...
@overload
def softmax_jacobian(p: Float64Like, /) -> NDArray[np.float64]: ...
@overload
def softmax_jacobian(p: ArrayLike, /) -> FloatArray: ...


def softmax_jacobian(p: ArrayLike, /) -> FloatArray:
    r"""Jacobian of softmax at the weights ``p``: ``diag(p) - p p^T`` along the last axis.

    Parameters
    ----------
    p : (..., n) array_like
        Softmax output (the Jacobian is expressed through it, not through the scores).

    Returns
    -------
    jacobian : (..., n, n) ndarray
        ``jacobian[..., i, j]`` is :math:`\partial p_i / \partial x_j`; ``p``'s dtype.

    Raises
    ------
    ValueError
        If ``p`` is 0-d or not finite.
    TypeError
        If ``p`` is bool, complex or not numeric.

    See Also
    --------
    softmax_vjp : The product with a vector, without forming the matrix.

    Notes
    -----
    In code, ``np.diag(p) - np.outer(p, p)``. Differentiating
    :math:`p_i = e^{x_i} / \sum_k e^{x_k}`:

    .. math::

       \frac{\partial p_i}{\partial x_j} = p_i (\delta_{ij} - p_j),
       \qquad J = \operatorname{diag}(p) - p p^\top .

    :math:`J` is symmetric, its rows sum to 0 (adding a constant to every score
    changes nothing) and it vanishes as :math:`p` becomes one-hot: a saturated
    softmax passes back no gradient, the reason attention divides scores by
    :math:`\sqrt{d_k}` :cite:p:`vaswani2017attention`. Only products of numbers in
    :math:`[0, 1]` are formed, so nothing can overflow.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.1.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.softmax import softmax, softmax_jacobian
    >>> p = softmax([1.0, 0.0, 1.0])
    >>> print(np.round(softmax_jacobian(p), 4))
    [[ 0.244  -0.0656 -0.1784]
     [-0.0656  0.1312 -0.0656]
     [-0.1784 -0.0656  0.244 ]]
    >>> print(np.round(softmax_jacobian([0.0, 1.0, 0.0]), 4) + 0.0)
    [[0. 0. 0.]
     [0. 0. 0.]
     [0. 0. 0.]]
    """
    arr = as_float_array(p, "p")
    _at_least_1d(arr, "p")
    check_finite(arr, "p")
    work = arr.astype(working_dtype(arr.dtype), copy=False)
    n = work.shape[-1]
    with np.errstate(over="ignore"):  # |p| far above 1: reported by finite_result
        jac = (
            -work[..., :, None] * work[..., None, :]
        )  # -p p^T: (..., n, 1) * (..., 1, n) -> (..., n, n)
        diagonal = np.arange(n)
        jac[..., diagonal, diagonal] = work * (1.0 - work)  # p_i (1 - p_i): no cancellation
    return finite_result(jac, arr.dtype, "softmax_jacobian(p)")


@overload
def softmax_vjp(p: NDArray[F], grad: NDArray[F], /, *, axis: int = -1) -> NDArray[F]: ...
@overload
def softmax_vjp(
    p: Float64Like | NDArray[np.float64],
    grad: Float64Like | NDArray[np.float64],
    /,
    *,
    axis: int = -1,
) -> NDArray[np.float64]: ...
@overload
def softmax_vjp(p: ArrayLike, grad: ArrayLike, /, *, axis: int = -1) -> FloatArray: ...


def softmax_vjp(p: ArrayLike, grad: ArrayLike, /, *, axis: int = -1) -> FloatArray:
    r"""Vector-Jacobian product of softmax: the gradient of a loss with respect to the scores.

    Given the weights ``p = softmax(x)`` and the gradient ``grad`` of a loss with
    respect to ``p``, returns the gradient with respect to ``x``, without forming the
    :math:`n \times n` Jacobian.

    Parameters
    ----------
    p : (..., n, ...) array_like
        Softmax output along ``axis``.
    grad : (..., n, ...) array_like
        Gradient of the loss with respect to ``p``; same shape and dtype as ``p``.
    axis : int, optional
        The axis the softmax was taken over. Default ``-1``.

    Returns
    -------
    grad_x : (..., n, ...) ndarray
        Gradient of the loss with respect to the scores; ``p``'s dtype.

    Raises
    ------
    ValueError
        If the shapes differ, an input is 0-d or not finite.
    TypeError
        If the dtypes differ or an input is bool, complex or not numeric.

    See Also
    --------
    softmax_jacobian

    Notes
    -----
    In code, ``p * (grad - (grad * p).sum())``. With :math:`g = \partial L / \partial p`
    and the Jacobian of :func:`softmax_jacobian`,

    .. math::

       \frac{\partial L}{\partial x_j} = \sum_i g_i \, p_i (\delta_{ij} - p_j)
           = p_j \Bigl(g_j - \sum_i g_i p_i\Bigr),

    which costs :math:`O(n)` per row instead of :math:`O(n^2)`. This is the
    :math:`dS = P \circ (dP - \operatorname{rowsum}(dP \circ P))` step of attention's
    backward pass :cite:p:`dao2022flashattention`.

    References
    ----------
    :cite:t:`dao2022flashattention`, Appendix B.2.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.softmax import softmax, softmax_jacobian, softmax_vjp
    >>> p = softmax([1.0, 0.0, 1.0])
    >>> g = np.array([1.0, 0.0, 0.0])
    >>> print(np.round(softmax_vjp(p, g), 4))
    [ 0.244  -0.0656 -0.1784]
    >>> print(bool(np.allclose(softmax_vjp(p, g), g @ softmax_jacobian(p))))
    True
    """
    p_arr = as_float_array(p, "p")
    g_arr = as_float_array(grad, "grad")
    _at_least_1d(p_arr, "p")
    check_same_shape(p=p_arr, grad=g_arr)
    check_same_dtype(p=p_arr, grad=g_arr)
    ax = normalize_axis(axis, p_arr.ndim)
    check_finite(p_arr, "p")
    check_finite(g_arr, "grad")
    dtype: np.dtype[Any] = working_dtype(p_arr.dtype)
    pw = np.ascontiguousarray(p_arr, dtype=dtype)
    gw = np.ascontiguousarray(g_arr, dtype=dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # handled below
        inner = np.sum(gw * pw, axis=ax, keepdims=True)  # sum_i g_i p_i
        out = pw * (gw - inner)  # p_j (g_j - <g, p>)
    if not every_finite(out):  # |grad| near the largest float: rescaled rows
        out = softmax_vjp_rescaled(pw, gw, ax)
    return finite_result(out, p_arr.dtype, "softmax_vjp(p, grad)")


@overload
def log_softmax_vjp(log_p: NDArray[F], grad: NDArray[F], /, *, axis: int = -1) -> NDArray[F]: ...
@overload
def log_softmax_vjp(
    log_p: Float64Like | NDArray[np.float64],
    grad: Float64Like | NDArray[np.float64],
    /,
    *,
    axis: int = -1,
) -> NDArray[np.float64]: ...
@overload
def log_softmax_vjp(log_p: ArrayLike, grad: ArrayLike, /, *, axis: int = -1) -> FloatArray: ...


def log_softmax_vjp(log_p: ArrayLike, grad: ArrayLike, /, *, axis: int = -1) -> FloatArray:
    r"""Vector-Jacobian product of :func:`log_softmax`: the gradient with respect to the scores.

    Given ``log_p = log_softmax(x)`` and the gradient ``grad`` of a loss with respect
    to ``log_p``, returns the gradient with respect to ``x``. The cross-entropy loss of
    a language model, :math:`L = -\sum_t \log p_{t, y_t}`, is one: its ``grad`` is
    :math:`-1` at each target and 0 elsewhere, and the result is :math:`p - \text{onehot}(y)`.

    Parameters
    ----------
    log_p : (..., n, ...) array_like
        :func:`log_softmax` output along ``axis``; ``-inf`` entries (weight 0) allowed.
    grad : (..., n, ...) array_like
        :math:`\partial L / \partial \log p`: ``log_p``'s shape and dtype, finite.
    axis : int, optional
        The axis the log-softmax was taken over. Default ``-1``.

    Returns
    -------
    grad_x : (..., n, ...) ndarray
        :math:`\partial L / \partial x`; ``log_p``'s shape and floating dtype. For
        ``log_softmax(x, temperature=T)`` divide it by ``T``.

    Raises
    ------
    ValueError
        If the shapes differ, an input is 0-d, ``log_p`` holds NaN or ``+inf`` or
        ``grad`` is not finite.
    TypeError
        If the dtypes differ or an input is bool, complex or not numeric.
    numpy.exceptions.AxisError
        If ``axis`` is out of range.
    FloatingPointError
        If the gradient is too large for the dtype.

    See Also
    --------
    log_softmax, softmax_vjp

    Notes
    -----
    In code, ``grad - np.exp(log_p) * grad.sum()``. From
    :math:`\log p_i = x_i - \log \sum_k e^{x_k}`,
    :math:`\partial \log p_i / \partial x_j = \delta_{ij} - p_j`, so

    .. math::

       \frac{\partial L}{\partial x_j} = g_j - p_j \sum_i g_i .

    :math:`p = e^{\log p} \le 1` never overflows, and a ``-inf`` entry has :math:`p_j = 0`
    exactly. When ``grad`` is so large that its row sum overflows, the row is divided
    by a power of two first and multiplied back at the end (exact scalings)
    :cite:p:`blanchard2021accurately`. That is looked for only when it is possible:
    with :math:`\log p \le 0`, :math:`|g_j - p_j \sum_i g_i| \le (1 + m) \max|g|` for
    rows of :math:`m` entries, and where twice that fits the dtype the result is not
    scanned.

    References
    ----------
    :cite:t:`goodfellow2016deep`, §6.2.2.3 (softmax units and the cross-entropy).

    Examples
    --------
    The cross-entropy of row 0 of the running example's scores with target key 1:

    >>> import numpy as np
    >>> from attention_from_scratch.softmax import log_softmax, log_softmax_vjp, softmax
    >>> log_p = log_softmax([1.0, 0.0, 1.0])
    >>> print(np.round(log_softmax_vjp(log_p, [0.0, -1.0, 0.0]), 4))  # p - onehot(1)
    [ 0.4223 -0.8446  0.4223]
    """
    lp = as_float_array(log_p, "log_p")
    _at_least_1d(lp, "log_p")
    ax = normalize_axis(axis, lp.ndim)
    g_arr, peak_g = gradient_peak(grad, lp.shape, lp.dtype, "log_p")
    top = largest_entry(lp, "log_p")  # no NaN, no +inf (-inf is allowed: p = 0)
    work = as_working(lp)
    g = as_working(g_arr)
    # log p <= 0: |g_j - p_j sum_i g_i| <= max|g| + m max|g|, and nothing can overflow
    proven = top <= 0.0 and fits(2.0 * (peak_g + sum_bound(lp.shape[ax], peak_g)), lp.dtype)
    with silenced(proven):  # otherwise handled below
        p = np.exp(work)  # p = exp(log p) in [0, 1]; exp(-inf) = 0
        out = g - p * sum_along(g, ax)  # g_j - p_j sum_i g_i
    if proven:
        return out.astype(lp.dtype, copy=False)
    if every_finite(out):
        if out.dtype == lp.dtype:
            return out  # the common case: tested once
    else:  # |grad| near the largest float: rows scaled by 2^-e
        peak = np.max(np.abs(g), axis=ax, keepdims=True, initial=0.0)
        _, e = np.frexp(peak)
        small = np.ldexp(g, -e)  # g / 2^e, |g / 2^e| < 1: the sum cannot overflow
        with np.errstate(over="ignore", invalid="ignore"):  # reported by finite_result
            out = np.ldexp(small - p * np.sum(small, axis=ax, keepdims=True), e)
    return finite_result(out, lp.dtype, "log_softmax_vjp(log_p, grad)")
