r"""Projections: queries, keys and values from token embeddings.

Attention never compares the embeddings ``x`` directly. Each token's row is first
mapped by three learned matrices into a *query*, a *key* and a *value*
(:cite:t:`vaswani2017attention`, §3.2.2):

.. math::

   Q = X W_Q, \qquad K = X W_K, \qquad V = X W_V .

The query is the question a token asks ("which adjectives describe me?"), the key
is the answer every token offers ("I am an adjective"), and the value is what a
token passes on once it is attended to ("my colour is blue")
:cite:p:`sanderson2024attention,alammar2018illustrated`. Because the three maps
differ, "who asks" and "who is found" are decoupled: a noun may attend strongly to
an adjective although their embeddings share no feature.

This module offers

* :func:`linear` -- one affine map ``x @ weight + bias``, and :func:`linear_vjp`,
  its backward pass;
* :class:`AttentionParams` -- the frozen, validated bundle ``w_q, w_k, w_v`` (and
  optionally the output projection ``w_o`` and the biases), with
  :meth:`AttentionParams.random` for Glorot-initialised weights;
* :func:`project_qkv` -- ``q, k, v`` for self-attention, or for cross-attention
  when keys and values come from a ``context``;
* :func:`split_heads` and :func:`merge_heads` -- the reshapes between one wide
  projection and ``n_heads`` narrow ones (§3.2.2, multi-head attention).

Weight convention. The package follows the paper: ``Q = X @ W_Q``, so a weight has
shape ``(d_in, d_out)`` -- rows are input features, columns are output dimensions.
:class:`torch.nn.Linear` stores the transpose, ``(d_out, d_in)``, and computes
``x @ weight.T``; a torch weight ``w`` is used here as ``w.T``.

The running example: three tokens ``fluffy``, ``blue``, ``creature`` with features
``noun, adjective, colour, texture``. ``w_q`` lets the noun *seek an adjective*
(strength 3) and *seek a texture* (strength 1); ``w_k`` lets every token announce
*is an adjective* and *is a texture*; ``w_v`` keeps only colour and texture::

    q = x w_q            k = x w_k            v = x w_v
    fluffy   [0 0 0 0]   [1 1 0 0]            [0 0 0 1]
    blue     [0 0 0 0]   [1 0 0 0]            [0 0 1 0]
    creature [3 1 0 0]   [0 0 0 0]            [0 0 0 0]

Examples
--------
>>> import numpy as np
>>> from attention_from_scratch.projections import AttentionParams, project_qkv
>>> x = np.array([[0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=float)
>>> w_q = np.zeros((4, 4))
>>> w_q[0, :2] = [3, 1]  # noun -> "seeks an adjective" (3), "seeks a texture" (1)
>>> w_k = np.zeros((4, 4))
>>> w_k[1, 0] = w_k[3, 1] = 1  # adjective -> "is an adjective", texture -> "is a texture"
>>> params = AttentionParams(w_q=w_q, w_k=w_k, w_v=np.diag([0.0, 0.0, 1.0, 1.0]))
>>> q, k, v = project_qkv(x, params)
>>> print(q @ k.T)  # raw scores: the creature row asks, the adjectives answer
[[0. 0. 0.]
 [0. 0. 0.]
 [4. 3. 0.]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from attention_from_scratch._checks import (
    F,
    Float64Like,
    FloatArray,
    arrays_peak,
    as_float_array,
    as_generator,
    as_working,
    at_least_ndim,
    check_bool,
    check_embeddings,
    check_finite,
    check_instance,
    check_same_dtype,
    finite_results,
    fits,
    float_dtype,
    frozen,
    gradient_peak,
    named_peak,
    peak,
    positive_int,
    read_only,
    silenced,
)
from attention_from_scratch._kernel import (
    affine,
    linear_bound,
    linear_vjp_bound,
    matmul_rows,
    ones,
)

__all__ = [
    "AttentionParams",
    "LinearGrads",
    "linear",
    "linear_vjp",
    "merge_heads",
    "project_qkv",
    "split_heads",
]

_WEIGHTS = ("w_q", "w_k", "w_v", "w_o")
_BIASES = {"b_q": "w_q", "b_k": "w_k", "b_v": "w_v", "b_o": "w_o"}
_FIELDS = (*_WEIGHTS, *_BIASES)


def _checked_linear(
    x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray | None, tuple[float, float, float]]:
    """The checks of :func:`linear` and :func:`linear_vjp`: shapes, one dtype, finite.

    Returns the arrays and their peaks ``max|x|, max|weight|, max|bias|`` (0 without a
    bias), which the finiteness checks find on the way (:func:`peak`).
    """
    x_arr = as_float_array(x, "x")
    w_arr = as_float_array(weight, "weight")
    at_least_ndim(x_arr, 1, "x", "(..., d_in)")
    if w_arr.ndim != 2:
        msg = f"weight must be 2-D (d_in, d_out), got shape {w_arr.shape}"
        raise ValueError(msg)
    if x_arr.shape[-1] != w_arr.shape[0]:
        hint = ""
        if x_arr.shape[-1] == w_arr.shape[1]:
            hint = " (is it a torch-style (d_out, d_in) weight? pass weight.T)"
        msg = (
            "x's last dimension d_in must equal weight's rows (weight is (d_in, d_out)): "
            f"x {x_arr.shape}, weight {w_arr.shape}{hint}"
        )
        raise ValueError(msg)
    b_arr: FloatArray | None = None
    peak_b = 0.0
    if bias is not None:
        b_arr = as_float_array(bias, "bias")
        if b_arr.shape != (w_arr.shape[1],):
            msg = (
                f"bias must have shape (d_out,) = ({w_arr.shape[1]},): "
                f"bias {b_arr.shape}, weight {w_arr.shape}"
            )
            raise ValueError(msg)
        if not x_arr.dtype == w_arr.dtype == b_arr.dtype:
            check_same_dtype(x=x_arr, weight=w_arr, bias=b_arr)  # raises, naming them
        peak_b = peak(b_arr, "bias")
    elif x_arr.dtype != w_arr.dtype:
        check_same_dtype(x=x_arr, weight=w_arr)  # raises, naming both
    peaks = (peak(x_arr, "x"), peak(w_arr, "weight"), peak_b)
    return x_arr, w_arr, b_arr, peaks


@overload
def linear(x: NDArray[F], weight: NDArray[F], /, bias: NDArray[F] | None = None) -> NDArray[F]: ...
@overload
def linear(
    x: Float64Like | NDArray[np.float64],
    weight: Float64Like | NDArray[np.float64],
    /,
    bias: Float64Like | NDArray[np.float64] | None = None,
) -> NDArray[np.float64]: ...
@overload
def linear(x: ArrayLike, weight: ArrayLike, /, bias: ArrayLike | None = None) -> FloatArray: ...


def linear(x: ArrayLike, weight: ArrayLike, /, bias: ArrayLike | None = None) -> FloatArray:
    r"""The affine map ``x @ weight + bias`` in the paper's ``(in, out)`` convention.

    Every projection of attention is one of these: ``q = linear(x, w_q, b_q)``.

    Parameters
    ----------
    x : (..., d_in) array_like
        Input rows, with any leading batch dimensions. Integers become ``float64``.
    weight : (d_in, d_out) array_like
        Rows are input features, columns output dimensions: the transpose of
        ``torch.nn.Linear.weight``.
    bias : (d_out,) array_like, optional
        Added to every output row. Default: no bias.

    Returns
    -------
    y : (..., d_out) ndarray
        ``x @ weight + bias``, in the common dtype of the inputs.

    Raises
    ------
    ValueError
        If ``x`` is 0-d, ``weight`` is not 2-D, ``x.shape[-1] != weight.shape[0]``,
        ``bias`` is not ``(d_out,)``, or an input holds NaN or infinity.
    TypeError
        If the inputs do not share one floating dtype, or one is bool, complex or not
        numeric.
    FloatingPointError
        If a result does not fit the dtype (finite inputs whose products overflow,
        e.g. beyond 65504 in ``float16``); compute in a wider dtype or rescale.

    See Also
    --------
    project_qkv : The three projections of attention at once.

    Notes
    -----
    In code, ``x @ weight + bias``. In maths, for a row :math:`x \in \mathbb{R}^{d_{in}}`,

    .. math::

       y_j = \sum_{i=1}^{d_{in}} x_i W_{ij} + b_j .

    A sum of products of finite numbers; ``float16`` inputs are multiplied and
    accumulated in ``float32`` and rounded once, so long sums do not lose the
    low bits at every step :cite:p:`higham2002accuracy`. The only failure left is a
    result beyond the largest float of the dtype, which is reported, never returned
    as ``inf``. It is looked for only when it is possible: the finiteness checks of
    the inputs find :math:`\max|x|`, :math:`\max|W|` and :math:`\max|b|` on the way,
    and :math:`|y_j| \le d_{in} \max|x| \max|W| + \max|b|` (twice that bounds the
    rounded sums too); where that bound is below half the largest float, nothing can
    overflow and the result is not scanned.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.2.

    Examples
    --------
    The running example's query projection: only the noun ``creature`` asks.

    >>> import numpy as np
    >>> from attention_from_scratch.projections import linear
    >>> x = np.array([[0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=float)
    >>> w_q = np.array([[3, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    >>> print(linear(x, w_q))
    [[0. 0. 0. 0.]
     [0. 0. 0. 0.]
     [3. 1. 0. 0.]]
    >>> print(linear(x, w_q, [0.5, 0.0, 0.0, 0.0]))
    [[0.5 0.  0.  0. ]
     [0.5 0.  0.  0. ]
     [3.5 1.  0.  0. ]]
    """
    x_arr, w_arr, b_arr, (peak_x, peak_w, peak_b) = _checked_linear(x, weight, bias)
    return affine(x_arr, w_arr, b_arr, bound=linear_bound(len(w_arr), peak_x, peak_w, peak_b))


@dataclass(frozen=True, eq=False)
class LinearGrads:
    r"""Gradients of a loss through :func:`linear`.

    Returned by :func:`linear_vjp`. Every array is read-only and has the inputs'
    floating dtype. Equality is identity (``eq=False``).

    Attributes
    ----------
    x : (..., d_in) ndarray
        :math:`\partial L / \partial x`.
    weight : (d_in, d_out) ndarray
        :math:`\partial L / \partial W`, summed over every row of every batch entry.
    bias : (d_out,) ndarray
        :math:`\partial L / \partial b`: the upstream gradient summed over every row
        (the gradient a bias would receive, whether or not the forward pass had one).
    """

    x: FloatArray
    weight: FloatArray
    bias: FloatArray


def linear_vjp(x: ArrayLike, weight: ArrayLike, grad: ArrayLike, /) -> LinearGrads:
    r"""Backward pass of :func:`linear`: gradients for ``x``, ``weight`` and the bias.

    Given the inputs of ``y = linear(x, weight, bias)`` and the gradient ``grad`` of a
    loss with respect to ``y``, returns the gradients with respect to ``x``,
    ``weight`` and ``bias`` (the bias itself is not needed: it only shifts ``y``).

    Parameters
    ----------
    x : (..., d_in) array_like
        The input rows of the forward pass; finite.
    weight : (d_in, d_out) array_like
        The weight of the forward pass, paper convention ``(in, out)``; ``x``'s dtype.
    grad : (..., d_out) array_like
        :math:`\partial L / \partial y`: shape ``x.shape[:-1] + (d_out,)``, ``x``'s
        dtype, finite.

    Returns
    -------
    LinearGrads
        ``x`` ``(..., d_in)``, ``weight`` ``(d_in, d_out)``, ``bias`` ``(d_out,)``;
        read-only, the inputs' dtype (float16 computed in float32).

    Raises
    ------
    ValueError
        As :func:`linear`, and if ``grad``'s shape is not ``x.shape[:-1] + (d_out,)``
        or it is not finite.
    TypeError
        If the inputs do not share one floating dtype, or one is bool, complex or not
        numeric.
    FloatingPointError
        If a gradient is too large for the dtype.

    See Also
    --------
    linear, attention_from_scratch.self_attention.attention_vjp

    Notes
    -----
    In code, ``dx = grad @ weight.T; dw = x.T @ grad; db = grad.sum(0)``, the rows of
    every batch entry stacked. For :math:`Y = X W + \mathbf{1} b^\top`,

    .. math::

       dX = dY\, W^\top, \qquad dW = X^\top dY, \qquad db = dY^\top \mathbf{1},

    the back-propagation rule of a matrix product :cite:p:`goodfellow2016deep`. Sums of
    products of finite numbers; float16 accumulates in float32 and is rounded once.
    An overflow is looked for only when a bound allows one: with :math:`N` rows,
    :math:`|dX| \le d_{out} \max|dY| \max|W|`, :math:`|dW| \le N \max|X| \max|dY|` and
    :math:`|db| \le N \max|dY|` (the maxima found by the inputs' finiteness checks);
    twice the largest of them below half the largest float proves every gradient
    finite, and none is scanned.

    References
    ----------
    :cite:t:`goodfellow2016deep`, §6.5.

    Examples
    --------
    The running example's query projection, with a loss that wants creature's first
    query component larger (``L = q[2, 0]``): only the noun row of ``w_q`` moves.

    >>> import numpy as np
    >>> from attention_from_scratch.projections import linear_vjp
    >>> x = np.array([[0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=float)
    >>> w_q = np.array([[3, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    >>> grad = np.zeros((3, 4))
    >>> grad[2, 0] = 1.0
    >>> grads = linear_vjp(x, w_q, grad)
    >>> print(grads.weight[:, 0], grads.x[2], grads.bias)
    [1. 0. 0. 0.] [3. 0. 0. 0.] [1. 0. 0. 0.]
    """
    x_arr, w_arr, _, (peak_x, peak_w, _) = _checked_linear(x, weight, None)
    shape = (*x_arr.shape[:-1], w_arr.shape[1])
    g_arr, peak_g = gradient_peak(grad, shape, x_arr.dtype, "y = linear(x, weight)")
    xw, ww, g = as_working(x_arr), as_working(w_arr), as_working(g_arr)
    rows_x = xw.reshape(-1, xw.shape[-1])  # (N, d_in): every row of every batch entry
    rows_g = g.reshape(-1, g.shape[-1])  # (N, d_out)
    n, d_out = rows_g.shape
    # no gradient can overflow where the bound fits: nothing to scan
    proven = fits(linear_vjp_bound(n, d_out, peak_x, peak_w, peak_g), x_arr.dtype)
    with silenced(proven):  # otherwise an overflow is reported by finite_results
        d_x = matmul_rows(g, ww.T)  # dX = dY W^T: (..., d_out) @ (d_out, d_in) -> (..., d_in)
        d_w = rows_x.T @ rows_g  # dW = X^T dY: (d_in, N) @ (N, d_out) -> (d_in, d_out)
        d_b = ones(n, g.dtype) @ rows_g  # db = dY^T 1: (N, d_out) -> (d_out,)
    if proven:
        out_x, out_w, out_b = (d.astype(x_arr.dtype, copy=False) for d in (d_x, d_w, d_b))
    else:
        whats = ("linear_vjp: dL/dx", "linear_vjp: dL/dweight", "linear_vjp: dL/dbias")
        out_x, out_w, out_b = finite_results((d_x, d_w, d_b), x_arr.dtype, whats)
    return LinearGrads(x=frozen(out_x), weight=frozen(out_w), bias=frozen(out_b))


@dataclass(frozen=True, eq=False)
class AttentionParams:
    r"""The learned matrices of one attention layer, validated and read-only.

    Shapes follow the paper's convention ``(in, out)``; ``n_heads`` query heads of
    width ``d_k`` share ``n_kv_heads`` key/value heads (``n_kv_heads == n_heads``
    is ordinary multi-head attention, ``n_kv_heads < n_heads`` grouped-query
    attention). Head counts are not stored: they are arguments of the attention
    functions. Every array is converted with the package's input rules (integers
    become ``float64``), copied and made read-only, so a constructed object can
    never change. Equality is identity (``eq=False``): compare arrays with
    :func:`numpy.array_equal`. In the shapes below ``n_heads d_k`` is the product
    ``n_heads * d_k``.

    Attributes
    ----------
    w_q : (d_model, n_heads d_k) ndarray
        Query projection: ``q = x @ w_q + b_q``.
    w_k : (d_model, n_kv_heads d_k) ndarray
        Key projection: ``k = x @ w_k + b_k`` (``x`` or the ``context``).
    w_v : (d_model, n_kv_heads d_v) ndarray
        Value projection: ``v = x @ w_v + b_v``.
    w_o : (n_heads d_v, d_model) ndarray or None
        Output projection applied to the merged heads; None means no projection.
    b_q : (n_heads d_k,) ndarray or None
        Query bias; None means no bias.
    b_k : (n_kv_heads d_k,) ndarray or None
        Key bias.
    b_v : (n_kv_heads d_v,) ndarray or None
        Value bias.
    b_o : (d_model,) ndarray or None
        Output bias; only with ``w_o``.

    Raises
    ------
    ValueError
        If a weight is not 2-D or has a zero dimension, a bias is not 1-D, the shapes
        do not fit together (the message names both shapes), or an entry is NaN or
        infinite.
    TypeError
        If the arrays do not share one floating dtype, or one is bool, complex or not
        numeric.

    See Also
    --------
    project_qkv : Apply ``w_q``, ``w_k``, ``w_v`` and their biases.

    Notes
    -----
    What can be checked without the head counts is checked:

    * ``w_q``, ``w_k`` and ``w_v`` have ``d_model`` rows, and ``w_o`` has
      ``d_model`` columns;
    * ``w_q``'s width :math:`h d_k` is a multiple of ``w_k``'s width
      :math:`h_{kv} d_k`, the ratio being the group size :math:`g = h / h_{kv}`;
    * ``w_o`` has :math:`h d_v = g \cdot h_{kv} d_v` rows, ``g`` times ``w_v``'s width;
    * each bias has the width of its weight.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.2; :cite:t:`ainslie2023gqa`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.projections import AttentionParams
    >>> params = AttentionParams(w_q=np.eye(4), w_k=np.eye(4), w_v=np.eye(4))
    >>> print(params.d_model, params.w_o, params.w_q.flags.writeable)
    4 None False
    >>> AttentionParams(w_q=np.eye(4), w_k=np.eye(4), w_v=np.eye(5))
    Traceback (most recent call last):
    ...
    ValueError: w_q and w_v must have the same number of rows d_model: w_q (4, 4), w_v (5, 5)
    """

    w_q: FloatArray
    w_k: FloatArray
    w_v: FloatArray
    w_o: FloatArray | None = None
    b_q: FloatArray | None = None
    b_k: FloatArray | None = None
    b_v: FloatArray | None = None
    b_o: FloatArray | None = None
    # max |entry| of every array, found by their validation (None: not yet known). Not
    # a dataclass field (fields() lists the arrays only): set on each object, once.
    _peak: ClassVar[float | None] = None

    def __post_init__(self) -> None:
        """Convert, validate and freeze every array."""
        arrays: dict[str, FloatArray] = {}
        for name in (*_WEIGHTS, *_BIASES):
            value = getattr(self, name)
            if value is None and name not in ("w_q", "w_k", "w_v"):
                continue
            arr = as_float_array(value, name)
            want = 2 if name.startswith("w") else 1
            if arr.ndim != want:
                kind = "a 2-D weight" if want == 2 else "a 1-D bias"
                msg = f"{name} must be {kind}, got shape {arr.shape}"
                raise ValueError(msg)
            if name.startswith("w") and 0 in arr.shape:
                msg = f"{name} must have at least one row and one column, got shape {arr.shape}"
                raise ValueError(msg)
            arrays[name] = arr
        check_same_dtype(**arrays)
        self._check_shapes(arrays)
        top = 0.0
        for name, arr in arrays.items():
            top = max(top, peak(arr, name))  # raises, naming it, if arr is not finite
            object.__setattr__(self, name, read_only(arr))
        object.__setattr__(self, "_peak", top)

    @staticmethod
    def _check_shapes(arrays: dict[str, FloatArray]) -> None:
        """Raise :class:`ValueError` naming both shapes if two arrays do not fit."""
        w_q, w_k, w_v = arrays["w_q"], arrays["w_k"], arrays["w_v"]
        for name in ("w_k", "w_v"):
            if arrays[name].shape[0] != w_q.shape[0]:
                msg = (
                    f"w_q and {name} must have the same number of rows d_model: "
                    f"w_q {w_q.shape}, {name} {arrays[name].shape}"
                )
                raise ValueError(msg)
        if w_q.shape[1] % w_k.shape[1]:
            msg = (
                "w_q's width n_heads * d_k must be a multiple of w_k's width "
                f"n_kv_heads * d_k: w_q {w_q.shape}, w_k {w_k.shape}"
            )
            raise ValueError(msg)
        group = w_q.shape[1] // w_k.shape[1]  # n_heads / n_kv_heads
        w_o = arrays.get("w_o")
        if w_o is not None:
            if w_o.shape[1] != w_q.shape[0]:
                msg = (
                    f"w_o must have d_model = {w_q.shape[0]} columns: "
                    f"w_o {w_o.shape}, w_q {w_q.shape}"
                )
                raise ValueError(msg)
            if w_o.shape[0] != group * w_v.shape[1]:
                msg = (
                    f"w_o must have n_heads * d_v = {group * w_v.shape[1]} rows "
                    f"(w_v's width times n_heads / n_kv_heads = {group}): "
                    f"w_o {w_o.shape}, w_v {w_v.shape}, w_q {w_q.shape}, w_k {w_k.shape}"
                )
                raise ValueError(msg)
        if "b_o" in arrays and w_o is None:
            msg = f"b_o {arrays['b_o'].shape} needs the output projection w_o, which is None"
            raise ValueError(msg)
        for b_name, w_name in _BIASES.items():
            if b_name in arrays and w_name in arrays:
                bias, weight = arrays[b_name], arrays[w_name]
                if bias.shape[0] != weight.shape[1]:
                    msg = (
                        f"{b_name} must have {w_name}'s width {weight.shape[1]}: "
                        f"{b_name} {bias.shape}, {w_name} {weight.shape}"
                    )
                    raise ValueError(msg)

    @classmethod
    def _trusted(
        cls, arrays: Mapping[str, FloatArray | None], peak: float | None = None
    ) -> AttentionParams:
        """Parameters from arrays already validated, owned and read-only: no checks, no copies.

        ``peak`` is their ``max |entry|`` if the caller found it (None: found when needed).
        """
        params = object.__new__(cls)
        for name in _FIELDS:
            object.__setattr__(params, name, arrays.get(name))
        object.__setattr__(params, "_peak", peak)
        return params

    def _max_abs(self) -> float:
        """``max |entry|`` over every array: bounds the projections (:func:`linear_bound`).

        Found when the arrays were validated, or else now, once.
        """
        top = self._peak
        if top is None:
            top = arrays_peak(list(self.arrays().values()))  # finite: validated
            object.__setattr__(self, "_peak", top)
        return top

    def arrays(self) -> dict[str, FloatArray]:
        """Every array present, by field name (``w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o``).

        Fields that are None are left out. The arrays are the object's own, read-only.

        Examples
        --------
        >>> import numpy as np
        >>> from attention_from_scratch.projections import AttentionParams
        >>> params = AttentionParams.random(4, 2, out_proj=True, rng=0)
        >>> print({name: w.shape for name, w in params.arrays().items()})
        {'w_q': (4, 2), 'w_k': (4, 2), 'w_v': (4, 2), 'w_o': (2, 4)}
        """
        present = ((name, getattr(self, name)) for name in _FIELDS)
        return {name: arr for name, arr in present if arr is not None}

    def map(
        self, fn: Callable[[FloatArray, FloatArray], ArrayLike], grads: AttentionParams, /
    ) -> AttentionParams:
        r"""New parameters ``fn(param, grad)`` for every array, e.g. a gradient-descent step.

        ``grads`` is usually ``attention_vjp(...).params``: an :class:`AttentionParams`
        holding the same fields with the same shapes. Each array of the result is
        ``fn(self.<name>, grads.<name>)``; fields that are None stay None. The shapes
        were validated when ``self`` was built, so the result is not validated again
        as a whole: each new array must only have its old shape and dtype and be
        finite. It is copied once and made read-only, like every
        :class:`AttentionParams`.

        Parameters
        ----------
        fn : callable ``(param, grad) -> array``
            The update of one array, such as ``lambda w, g: w - lr * g``.
        grads : AttentionParams
            The gradients (or any second set of arrays of the same shapes).

        Returns
        -------
        AttentionParams
            The updated parameters; ``self`` is unchanged.

        Raises
        ------
        TypeError
            If ``grads`` is not an :class:`AttentionParams`, has another dtype, or
            ``fn`` returns an array of another dtype.
        ValueError
            If ``grads`` holds other fields or shapes than ``self``, or ``fn`` returns
            an array of another shape or with NaN or infinity.

        Notes
        -----
        In code, ``{name: fn(p, g) for name, p, g in zip(fields, self, grads)}``. With
        ``fn = lambda w, g: w - lr * g`` it is one step of gradient descent,
        :math:`\theta \leftarrow \theta - \eta \, \nabla_\theta L`
        :cite:p:`goodfellow2016deep`.

        References
        ----------
        :cite:t:`goodfellow2016deep`, §8.3.1 (stochastic gradient descent).

        Examples
        --------
        One step of gradient descent on the running example, lowering the colour and
        texture that *creature* receives (``L = sum(output[2])``):

        >>> import numpy as np
        >>> from attention_from_scratch.examples import fluffy_blue_creature
        >>> from attention_from_scratch.self_attention import attention_vjp, self_attention
        >>> ex = fluffy_blue_creature()
        >>> grad_output = np.zeros((3, 4))
        >>> grad_output[2] = 1.0  # dL/dO
        >>> result = self_attention(ex.x, ex.params)
        >>> grads = attention_vjp(result, grad_output)
        >>> params = ex.params.map(lambda w, g: w - 0.1 * g, grads.params)  # lr = 0.1
        >>> after = self_attention(ex.x, params)
        >>> print(round(float(result.output[2].sum()), 4), round(float(after.output[2].sum()), 4))
        0.9223 0.3978
        >>> squared = sum(float(np.sum(g * g)) for g in grads.params.arrays().values())
        >>> print(round(0.1 * squared, 4))  # the drop predicted to first order: lr |grad|^2
        0.5264
        """
        grads = check_instance(grads, AttentionParams, "grads")
        new: dict[str, FloatArray | None] = {}
        for name in _FIELDS:
            param: FloatArray | None = getattr(self, name)
            grad: FloatArray | None = getattr(grads, name)
            if param is None or grad is None:
                if param is not None or grad is not None:
                    which = "grads" if grad is None else "params"
                    msg = f"params and grads must hold the same arrays: {name} is None in {which}"
                    raise ValueError(msg)
                new[name] = None
                continue
            if grad.shape != param.shape:
                msg = f"grads.{name} must have the shape of {name} {param.shape}, got {grad.shape}"
                raise ValueError(msg)
            if grad.dtype != param.dtype:
                check_same_dtype(**{name: param, f"grads.{name}": grad})  # raises
            out = fn(param, grad)
            if not (type(out) is np.ndarray and out.dtype.kind == "f"):  # else: as it is
                out = as_float_array(out, f"fn(params.{name}, grads.{name})")
            if out.shape != param.shape or out.dtype != param.dtype:
                what = f"fn(params.{name}, grads.{name})"
                if out.shape != param.shape:
                    msg = f"{what} must keep {name}'s shape {param.shape}, got {out.shape}"
                    raise ValueError(msg)
                check_same_dtype(**{name: param, what: out})
            new[name] = out
        updated = {name: arr for name, arr in new.items() if arr is not None}
        top = named_peak(updated, "fn(params.{0}, grads.{0})")
        for name, arr in updated.items():
            if not (arr is getattr(self, name) or arr is getattr(grads, name)):
                new[name] = read_only(arr)  # a copy of its own, so no caller can change it
        return AttentionParams._trusted(new, top)

    @property
    def output_weight(self) -> FloatArray:
        """``w_o`` as an array, for code that knows it is there (typed without ``| None``).

        Raises
        ------
        ValueError
            If the parameters have no output projection (``w_o`` is None).

        Examples
        --------
        >>> from attention_from_scratch.projections import AttentionParams
        >>> print(AttentionParams.random(4, 2, n_heads=2, out_proj=True, rng=0).output_weight.shape)
        (4, 4)
        >>> AttentionParams.random(4, 2, rng=0).output_weight
        Traceback (most recent call last):
        ...
        ValueError: these parameters have no output projection w_o (draw one with AttentionParams.random(..., out_proj=True))
        """
        if self.w_o is None:
            msg = (
                "these parameters have no output projection w_o "
                "(draw one with AttentionParams.random(..., out_proj=True))"
            )
            raise ValueError(msg)
        return self.w_o

    @property
    def d_model(self) -> int:
        """Width of the embeddings the projections read (rows of ``w_q``)."""
        return int(self.w_q.shape[0])

    @property
    def dtype(self) -> np.dtype[Any]:
        """The floating dtype shared by every array."""
        return self.w_q.dtype

    @classmethod
    def random(
        cls,
        d_model: int,
        d_k: int,
        d_v: int | None = None,
        *,
        n_heads: int = 1,
        n_kv_heads: int | None = None,
        out_proj: bool = False,
        bias: bool = False,
        rng: int | np.random.Generator | None = None,
        dtype: DTypeLike = np.float64,
    ) -> AttentionParams:
        r"""Glorot-uniform random weights of the right shapes.

        Parameters
        ----------
        d_model : int
            Width of the embeddings.
        d_k : int
            Width of one query/key head.
        d_v : int, optional
            Width of one value head. Default ``d_k``.
        n_heads : int, optional
            Number of query heads. Default 1.
        n_kv_heads : int, optional
            Number of key/value heads; must divide ``n_heads``. Default ``n_heads``.
        out_proj : bool, optional
            Also draw the output projection ``w_o`` ``(n_heads * d_v, d_model)``.
        bias : bool, optional
            Also draw ``b_q``, ``b_k``, ``b_v`` (and ``b_o`` with ``out_proj``).
        rng : int or numpy.random.Generator, optional
            A seed or a generator; None draws fresh entropy.
        dtype : float16, float32 or float64, optional
            Dtype of every array. Default ``float64``.

        Returns
        -------
        params : AttentionParams
            ``w_q`` ``(d_model, n_heads * d_k)``, ``w_k`` ``(d_model, n_kv_heads * d_k)``,
            ``w_v`` ``(d_model, n_kv_heads * d_v)``.

        Raises
        ------
        ValueError
            If a size is not positive or ``n_kv_heads`` does not divide ``n_heads``.
        TypeError
            If a size is not an int, ``out_proj`` or ``bias`` is not a bool, or ``dtype``
            is not a float16/32/64 dtype.

        Notes
        -----
        In code, ``rng.uniform(-a, a, (fan_in, fan_out))`` with
        ``a = sqrt(6 / (fan_in + fan_out))``, which has variance

        .. math::

           \operatorname{Var}(W_{ij}) = \frac{a^2}{3} = \frac{2}{\text{fan}_{in} +
           \text{fan}_{out}},

        the compromise of :cite:t:`glorot2010understanding` between keeping the
        variance of activations (forward) and of gradients (backward) constant.
        ``fan_in = d_model`` for ``w_q, w_k, w_v`` and ``n_heads * d_v`` for ``w_o``.
        The biases are *not* zero, unlike a freshly trained model's usual start: they
        are drawn from :math:`U(-1/\sqrt{\text{fan}_{in}}, 1/\sqrt{\text{fan}_{in}})`
        (the range ``torch.nn.Linear`` uses) so that code and tests using them see
        their effect. Values are drawn in ``float64`` in the order ``w_q, w_k, w_v,
        w_o, b_q, b_k, b_v, b_o`` and then rounded to ``dtype``: one seed gives the
        same weights with or without biases, in every dtype.

        References
        ----------
        :cite:t:`glorot2010understanding`.

        Examples
        --------
        Grouped-query attention: four query heads share two key/value heads.

        >>> from attention_from_scratch.projections import AttentionParams
        >>> p = AttentionParams.random(16, 4, n_heads=4, n_kv_heads=2, rng=0)
        >>> print(p.w_q.shape, p.w_k.shape, p.w_v.shape, p.w_o)
        (16, 16) (16, 8) (16, 8) None
        >>> p = AttentionParams.random(16, 4, n_heads=4, out_proj=True, bias=True, rng=0)
        >>> print(p.w_o.shape, p.b_q.shape, p.b_o.shape)
        (16, 16) (16,) (16,)
        """
        out_proj = check_bool(out_proj, "out_proj")
        bias = check_bool(bias, "bias")
        d_model = positive_int(d_model, "d_model")
        d_k = positive_int(d_k, "d_k")
        d_v = d_k if d_v is None else positive_int(d_v, "d_v")
        n_heads = positive_int(n_heads, "n_heads")
        n_kv_heads = n_heads if n_kv_heads is None else positive_int(n_kv_heads, "n_kv_heads")
        if n_heads % n_kv_heads:
            msg = f"n_kv_heads must divide n_heads: n_heads={n_heads}, n_kv_heads={n_kv_heads}"
            raise ValueError(msg)
        dt = float_dtype(dtype)
        gen = as_generator(rng, "rng")

        def glorot(fan_in: int, fan_out: int) -> FloatArray:
            limit = math.sqrt(6.0 / (fan_in + fan_out))  # Var = limit^2 / 3
            return gen.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dt)

        def small(fan_in: int, size: int) -> FloatArray:
            limit = 1.0 / math.sqrt(fan_in)
            return gen.uniform(-limit, limit, size=size).astype(dt)

        w_q = glorot(d_model, n_heads * d_k)
        w_k = glorot(d_model, n_kv_heads * d_k)
        w_v = glorot(d_model, n_kv_heads * d_v)
        w_o = glorot(n_heads * d_v, d_model) if out_proj else None
        b_q = b_k = b_v = b_o = None
        if bias:
            b_q = small(d_model, n_heads * d_k)
            b_k = small(d_model, n_kv_heads * d_k)
            b_v = small(d_model, n_kv_heads * d_v)
            b_o = small(n_heads * d_v, d_model) if out_proj else None
        return cls(w_q=w_q, w_k=w_k, w_v=w_v, w_o=w_o, b_q=b_q, b_k=b_k, b_v=b_v, b_o=b_o)


@overload
def project_qkv(
    x: NDArray[F], params: AttentionParams, /, *, context: NDArray[F] | None = None
) -> tuple[NDArray[F], NDArray[F], NDArray[F]]: ...
@overload
def project_qkv(
    x: Float64Like | NDArray[np.float64],
    params: AttentionParams,
    /,
    *,
    context: Float64Like | NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...
@overload
def project_qkv(
    x: ArrayLike, params: AttentionParams, /, *, context: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]: ...


def project_qkv(
    x: ArrayLike, params: AttentionParams, /, *, context: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    r"""Queries from ``x``; keys and values from ``x`` or from ``context``.

    Parameters
    ----------
    x : (..., n, d_model) array_like
        The tokens that ask (one row per token), with any leading batch dimensions.
        Same dtype as ``params``; integers are converted to ``float64`` first.
    params : AttentionParams
        ``w_q``, ``w_k``, ``w_v`` and the biases present (``w_o`` is not used here).
    context : (..., m, d_model) array_like, optional
        The tokens that answer, for cross-attention. Default: ``x`` (self-attention).

    Returns
    -------
    q : (..., n, n_heads d_k) ndarray
        ``x @ w_q + b_q``.
    k : (..., m, n_kv_heads d_k) ndarray
        ``context @ w_k + b_k`` (``m = n`` without context).
    v : (..., m, n_kv_heads d_v) ndarray
        ``context @ w_v + b_v``.

    Raises
    ------
    ValueError
        If ``x`` or ``context`` has fewer than 2 dimensions, a last dimension other
        than ``d_model``, or holds NaN or infinity.
    TypeError
        If ``params`` is not an :class:`AttentionParams`, or the dtype of ``x`` or
        ``context`` differs from ``params.dtype``.
    FloatingPointError
        If a projection does not fit the dtype (see :func:`linear`).

    See Also
    --------
    split_heads : Cut ``q``, ``k``, ``v`` into heads.

    Notes
    -----
    In code, ``q = x @ w_q + b_q`` and the same for ``k`` and ``v``. In maths,
    with :math:`C = X` for self-attention,

    .. math::

       Q = X W_Q + \mathbf{1} b_Q^\top, \qquad
       K = C W_K + \mathbf{1} b_K^\top, \qquad
       V = C W_V + \mathbf{1} b_V^\top .

    Three matrix products of finite inputs; ``float16`` accumulates in ``float32``.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.2 and §3.2.3 (encoder-decoder attention).

    Examples
    --------
    The running example: only the noun asks, the adjectives answer, the values
    carry colour and texture.

    >>> import numpy as np
    >>> from attention_from_scratch.projections import AttentionParams, project_qkv
    >>> x = np.array([[0, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]], dtype=float)
    >>> w_q = np.array([[3, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    >>> w_k = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=float)
    >>> params = AttentionParams(w_q=w_q, w_k=w_k, w_v=np.diag([0.0, 0.0, 1.0, 1.0]))
    >>> q, k, v = project_qkv(x, params)
    >>> print(q[2], k[0], k[1], v[0], v[1])
    [3. 1. 0. 0.] [1. 1. 0. 0.] [1. 0. 0. 0.] [0. 0. 0. 1.] [0. 0. 1. 0.]

    Cross-attention: the queries still come from ``x``, keys and values from the
    context (here only the two adjectives).

    >>> q, k, v = project_qkv(x, params, context=x[:2])
    >>> print(q.shape, k.shape, v.shape)
    (3, 4) (2, 4) (2, 4)
    """
    check_instance(params, AttentionParams, "params")
    x_arr, _ = check_embeddings(x, "x", params.w_q)
    c_name = "x" if context is None else "context"
    c_arr = x_arr if context is None else check_embeddings(context, "context", params.w_q)[0]
    q = affine(x_arr, params.w_q, params.b_q, "q = x @ w_q + b_q")  # (..., n, h * d_k)
    k = affine(c_arr, params.w_k, params.b_k, f"k = {c_name} @ w_k + b_k")  # (..., m, h_kv d_k)
    v = affine(c_arr, params.w_v, params.b_v, f"v = {c_name} @ w_v + b_v")  # (..., m, h_kv d_v)
    return q, k, v


@overload
def split_heads(x: NDArray[F], n_heads: int, /) -> NDArray[F]: ...
@overload
def split_heads(x: Float64Like, n_heads: int, /) -> NDArray[np.float64]: ...
@overload
def split_heads(x: ArrayLike, n_heads: int, /) -> FloatArray: ...


def split_heads(x: ArrayLike, n_heads: int, /) -> FloatArray:
    r"""Cut the last axis into ``n_heads`` heads: ``(..., n, h*d) -> (..., h, n, d)``.

    Head ``i`` holds columns ``i*d : (i+1)*d``, the slice of ``w_q`` (or ``w_k``,
    ``w_v``) that belongs to it, so one wide projection computes all heads at once.

    Parameters
    ----------
    x : (..., n, n_heads d) array_like
        Projected rows, such as ``q`` from :func:`project_qkv`.
    n_heads : int
        Number of heads; must divide ``x.shape[-1]``.

    Returns
    -------
    heads : (..., n_heads, n, d) ndarray
        A new C-contiguous array (never a view of ``x``), ``x``'s dtype.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions, ``n_heads`` is not positive or does not
        divide ``x.shape[-1]``, or ``x`` holds NaN or infinity.
    TypeError
        If ``n_heads`` is not an int, or ``x`` is bool, complex or not numeric.

    See Also
    --------
    merge_heads : The inverse.

    Notes
    -----
    In code, ``x.reshape(..., n, h, d).swapaxes(-3, -2)``; with
    :math:`Q = [Q_1 \; Q_2 \; \cdots \; Q_h]` cut into column blocks,
    ``heads[..., i, :, :]`` is :math:`Q_i = X W_Q^{(i)}`
    (:cite:t:`vaswani2017attention`, §3.2.2). Only data movement: the values are
    copied bit for bit.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.2.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.projections import split_heads
    >>> q = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [3, 1, 0, 0]], dtype=float)
    >>> heads = split_heads(q, 2)
    >>> print(heads.shape)
    (2, 3, 2)
    >>> print(heads[0])  # head 0: columns 0 and 1
    [[0. 0.]
     [0. 0.]
     [3. 1.]]
    """
    arr = as_float_array(x, "x")
    h = positive_int(n_heads, "n_heads")
    at_least_ndim(arr, 2, "x", "(..., n, n_heads * d)")
    width = arr.shape[-1]
    if width % h:
        msg = f"x's last dimension {width} is not divisible by n_heads = {h}: x {arr.shape}"
        raise ValueError(msg)
    check_finite(arr, "x")
    n = arr.shape[-2]
    split = arr.reshape(*arr.shape[:-2], n, h, width // h)  # (..., n, h*d) -> (..., n, h, d)
    heads = np.swapaxes(split, -3, -2)  # (..., n, h, d) -> (..., h, n, d)
    out: FloatArray = np.array(heads, order="C", copy=True)  # never a view of x
    return out


@overload
def merge_heads(x: NDArray[F], /) -> NDArray[F]: ...
@overload
def merge_heads(x: Float64Like, /) -> NDArray[np.float64]: ...
@overload
def merge_heads(x: ArrayLike, /) -> FloatArray: ...


def merge_heads(x: ArrayLike, /) -> FloatArray:
    r"""Concatenate heads along the last axis: ``(..., h, n, d) -> (..., n, h*d)``.

    The exact inverse of :func:`split_heads`: ``merge_heads(split_heads(x, h))``
    equals ``x`` bit for bit, and so does ``split_heads(merge_heads(y), h)``.

    Parameters
    ----------
    x : (..., n_heads, n, d) array_like
        One block of rows per head, such as the per-head attention outputs.

    Returns
    -------
    merged : (..., n, n_heads d) ndarray
        Head ``i`` in columns ``i*d : (i+1)*d``; a new C-contiguous array, ``x``'s
        dtype.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 3 dimensions or holds NaN or infinity.
    TypeError
        If ``x`` is bool, complex or not numeric.

    See Also
    --------
    split_heads : The inverse.

    Notes
    -----
    In code, ``x.swapaxes(-3, -2).reshape(..., n, h * d)``. In maths it is the
    :math:`\operatorname{Concat}(\text{head}_1, \ldots, \text{head}_h)` of
    multi-head attention, which is then multiplied by :math:`W^O`
    (:cite:t:`vaswani2017attention`, §3.2.2). Only data movement.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.2.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.projections import merge_heads, split_heads
    >>> q = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [3, 1, 0, 0]], dtype=float)
    >>> print(merge_heads(split_heads(q, 2)))
    [[0. 0. 0. 0.]
     [0. 0. 0. 0.]
     [3. 1. 0. 0.]]
    >>> print(merge_heads(np.zeros((8, 2, 3, 5))).shape)
    (8, 3, 10)
    """
    arr = as_float_array(x, "x")
    at_least_ndim(arr, 3, "x", "(..., n_heads, n, d)")
    check_finite(arr, "x")
    h, n, d = arr.shape[-3:]
    moved = np.swapaxes(arr, -3, -2)  # (..., h, n, d) -> (..., n, h, d)
    merged = moved.reshape(*arr.shape[:-3], n, h * d)  # (..., n, h, d) -> (..., n, h*d)
    out: FloatArray = merged.copy() if np.may_share_memory(merged, arr) else merged
    return out
