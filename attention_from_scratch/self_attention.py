r"""Scaled dot-product attention, masks, several heads, cross-attention.

This is Eq. 1 of :cite:t:`vaswani2017attention` (§3.2.1) and the multi-head
attention built on it (§3.2.2):

.. math::

   \operatorname{Attention}(Q, K, V) =
   \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + B\right) V ,

where :math:`B` is an optional additive bias (``-inf`` forbids a key) and a boolean
mask may remove keys outright. One path, no back and forth::

    q (n, d_k), k (m, d_k), v (m, d_v)
      -> scores  = (q * scale) @ k^T [+ bias]        (n, m)
      -> weights = softmax(scores, where=mask)       (n, m), rows sum to 1, masked = 0
      -> output  = weights @ v                       (n, d_v)

The routines:

* :func:`scaled_dot_product_attention` -- attention on given ``q``, ``k``, ``v``;
  returns an :class:`Attention` holding every intermediate;
* :func:`self_attention` -- projections of ``x`` and attention, one head;
* :func:`multi_head_attention` -- several heads, cross-attention (``context``) and
  grouped-query attention (``n_kv_heads``); returns a :class:`ProjectedAttention`;
* :func:`causal_mask` and :func:`padding_mask` -- the two masks every model uses.

Conventions (those of ``torch.nn.functional.scaled_dot_product_attention``): masks are
boolean with ``True`` meaning "may attend"; ``is_causal`` is the lower triangle aligned
top-left (also when ``n != m``) and is AND-ed with ``mask``; a query with no key
allowed gets weights 0 and output 0, never NaN; any leading batch dimensions
broadcast.

The running example is the fluffy blue creature of
:func:`attention_from_scratch.examples.fluffy_blue_creature`: the noun *creature*
asks for adjectives and takes colour and texture from *blue* and *fluffy*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from attention_from_scratch._backward import AttentionGrads, attention_vjp
from attention_from_scratch._checks import (
    BoolArray,
    FloatArray,
    as_bool_mask,
    as_float_array,
    broadcast_to_shape,
    check_finite,
    check_same_dtype,
    finite_real,
    first_index,
    positive_int,
    working_dtype,
)
from attention_from_scratch.projections import (
    AttentionParams,
    linear,
    merge_heads,
    project_qkv,
    split_heads,
)
from attention_from_scratch.softmax import _softmax_inplace

__all__ = [
    "Attention",
    "AttentionGrads",
    "ProjectedAttention",
    "attention_vjp",
    "causal_mask",
    "multi_head_attention",
    "padding_mask",
    "scaled_dot_product_attention",
    "self_attention",
]


def _raw_scores(q: FloatArray, k: FloatArray, scale: float, dtype: np.dtype[Any]) -> FloatArray:
    """``(q * scale) @ k^T`` in ``dtype``: scale the (n, d) queries, not the (n, m) scores.

    An overflow gives inf or NaN silently here; :func:`_check_overflow` reports it.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        q_scaled = q.astype(dtype, copy=False) * dtype.type(scale)  # (..., n, d_k), n*d mults
        scores: FloatArray = np.matmul(q_scaled, np.swapaxes(k.astype(dtype, copy=False), -1, -2))
    return scores


@dataclass(frozen=True, eq=False)
class Attention:
    r"""Result of :func:`scaled_dot_product_attention`: the output and every intermediate.

    Attributes
    ----------
    output : (..., n, d_v) ndarray
        ``weights @ v``: for each query, the weighted average of the value rows.
    weights : (..., n, m) ndarray
        The attention weights: rows sum to 1, masked keys get exactly 0, a query with
        no key allowed has a row of zeros.
    mask : (..., n, m) ndarray of bool or None
        The mask that was applied (``mask`` AND-ed with the causal triangle, broadcast
        to the scores), or None when nothing was masked.
    scale : float
        The factor the dot products were multiplied by (default :math:`1/\sqrt{d_k}`).
    q : (..., n, d_k) ndarray
        The queries, as given.
    k : (..., m, d_k) ndarray
        The keys, as given.
    v : (..., m, d_v) ndarray
        The values, as given.
    bias : (..., n, m) ndarray or None
        The additive bias, as given (broadcastable to the scores), or None.
    is_causal : bool
        Whether the causal triangle was applied.

    Notes
    -----
    ``scores`` (the scaled logits plus bias, before masking) are not stored: they are
    recomputed from ``q``, ``k``, ``scale`` and ``bias`` the first time they are read
    and cached, because keeping a second :math:`n \times m` array would cost memory
    and time that only explanations need.
    """

    output: FloatArray
    weights: FloatArray
    mask: BoolArray | None
    scale: float
    q: FloatArray
    k: FloatArray
    v: FloatArray
    bias: FloatArray | None = None
    is_causal: bool = False

    @cached_property
    def scores(self) -> FloatArray:
        """(..., n, m) ndarray: ``(q * scale) @ k^T + bias``, the logits softmax saw.

        In ``q``'s dtype. float16 inputs are computed in float32; if their scores do not
        fit in float16, reading this raises :class:`FloatingPointError`.
        """
        dtype = working_dtype(self.q.dtype)
        scores = _raw_scores(self.q, self.k, self.scale, dtype)  # (..., n, m)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.bias is not None:
                scores = scores + self.bias
            out = np.broadcast_to(scores, self.weights.shape).astype(self.q.dtype)
        # The forward pass validated the working-dtype scores; only the float16 cast can
        # still overflow (float16 inputs are computed in float32).
        if dtype != self.q.dtype:
            _check_overflow(self.q, self.k, self.scale, self.bias, out)
        return out


def causal_mask(n_q: int, n_k: int | None = None, /) -> BoolArray:
    r"""The causal mask: query ``i`` may attend to keys ``0 .. i`` only.

    Parameters
    ----------
    n_q : int
        Number of queries :math:`n`.
    n_k : int, optional
        Number of keys :math:`m`; default ``n_q``.

    Returns
    -------
    mask : (n_q, n_k) ndarray of bool
        ``mask[i, j]`` is ``j <= i``: the lower triangle aligned top-left, as
        ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``.

    Raises
    ------
    TypeError
        If a size is not an int.
    ValueError
        If a size is negative.

    Notes
    -----
    In code, ``np.tril(np.ones((n, m), bool))``: :math:`M_{ij} = [\, j \le i \,]`. A
    decoder uses it so that a token's representation never depends on the tokens
    after it :cite:p:`vaswani2017attention`. With :math:`m \ne n` the triangle stays
    aligned top-left (query 0 sees key 0), the convention of torch's ``is_causal``.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.3.

    Examples
    --------
    >>> from attention_from_scratch.self_attention import causal_mask
    >>> print(causal_mask(3).astype(int))
    [[1 0 0]
     [1 1 0]
     [1 1 1]]
    >>> print(causal_mask(2, 4).astype(int))
    [[1 0 0 0]
     [1 1 0 0]]
    """
    n = _size(n_q, "n_q")
    m = n if n_k is None else _size(n_k, "n_k")
    rows = np.arange(n)[:, None]  # (n, 1)
    cols = np.arange(m)[None, :]  # (1, m)
    return cols <= rows  # (n, m)


def _size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be an int, got {type(value).__name__}"
        raise TypeError(msg)
    if int(value) < 0:
        msg = f"{name} must be >= 0, got {int(value)}"
        raise ValueError(msg)
    return int(value)


def padding_mask(lengths: ArrayLike, n: int, /) -> BoolArray:
    r"""Mask the padding of a batch of sequences of different lengths.

    Parameters
    ----------
    lengths : (batch,) array_like of int
        The number of real tokens of each sequence, each in ``0 .. n``.
    n : int
        The padded length (the number of keys :math:`m`).

    Returns
    -------
    mask : (batch, 1, n) ndarray of bool
        ``mask[b, 0, j]`` is ``j < lengths[b]``: True for real tokens. The middle axis
        of length 1 broadcasts over the queries of ``(batch, n, m)`` scores (add a
        head axis, ``mask[:, None]``, for ``(batch, h, n, m)`` scores).

    Raises
    ------
    TypeError
        If ``lengths`` is not integer.
    ValueError
        If ``lengths`` is not 1-D or a length is outside ``0 .. n``.

    Notes
    -----
    In code, ``np.arange(n) < lengths[:, None]``: :math:`M_{bj} = [\, j < \ell_b \,]`.
    Padded keys then get weight exactly 0, so a sequence's outputs do not depend on how
    much padding follows it; padded *queries* still produce rows, which the model
    ignores :cite:p:`vaswani2017attention`.

    References
    ----------
    :cite:t:`vaswani2017attention`.

    Examples
    --------
    >>> from attention_from_scratch.self_attention import padding_mask
    >>> print(padding_mask([3, 1], 3).astype(int))
    [[[1 1 1]]
    <BLANKLINE>
     [[1 0 0]]]
    """
    size = _size(n, "n")
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        msg = f"lengths must be integers, got dtype {arr.dtype}"
        raise TypeError(msg)
    if arr.ndim != 1:
        msg = f"lengths must be 1-D (one length per sequence), got shape {arr.shape}"
        raise ValueError(msg)
    if ((arr < 0) | (arr > size)).any():
        msg = f"lengths must lie in 0 .. n = {size}, got {arr.tolist()}"
        raise ValueError(msg)
    return (np.arange(size)[None, :] < arr[:, None])[:, None, :]  # (batch, 1, n)


def _validate_qkv(
    q: ArrayLike, k: ArrayLike, v: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[int, ...]]:
    """Check q, k, v once; return them as arrays and the broadcast batch shape."""
    q_arr, k_arr, v_arr = as_float_array(q, "q"), as_float_array(k, "k"), as_float_array(v, "v")
    check_same_dtype(q=q_arr, k=k_arr, v=v_arr)
    for name, arr in (("q", q_arr), ("k", k_arr), ("v", v_arr)):
        if arr.ndim < 2:
            msg = f"{name} must have at least 2 dimensions (tokens, features), got {arr.shape}"
            raise ValueError(msg)
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
    check_finite(q_arr, "q")
    check_finite(k_arr, "k")
    check_finite(v_arr, "v")
    return q_arr, k_arr, v_arr, batch


def _check_cast(before: FloatArray, after: FloatArray, name: str) -> None:
    """Raise ValueError if casting ``before`` to ``after``'s dtype made a finite entry infinite."""
    overflowed = np.isinf(after) & np.isfinite(before)
    if overflowed.any():
        index = first_index(overflowed)
        msg = (
            f"{name} does not fit q's dtype {after.dtype}: {float(before[index])!r} at index "
            f"{index} overflows it"
        )
        raise ValueError(msg)


def _check_overflow(
    q: FloatArray, k: FloatArray, scale: float, bias: FloatArray | None, scores: FloatArray
) -> None:
    """Raise FloatingPointError if the scores overflowed their dtype.

    q and k are finite, so ``|q_i . k_j| * scale <= max|q| max|k| d_k |scale|``; only
    when that cheap bound comes near the largest float are the scores scanned.
    """
    if scores.size == 0:
        return
    big = float(np.finfo(scores.dtype).max)
    with np.errstate(over="ignore"):
        bound = float(np.max(np.abs(q))) * float(np.max(np.abs(k))) * q.shape[-1] * abs(scale)
        if bias is not None:
            finite_bias = bias[np.isfinite(bias)]
            bound += float(np.max(np.abs(finite_bias))) if finite_bias.size else 0.0
    if bound < big / 2:
        return
    overflowed = np.isnan(scores) | np.isposinf(scores)
    if bias is None:
        overflowed |= np.isneginf(scores)
    else:
        overflowed |= np.isneginf(scores) & np.isfinite(np.broadcast_to(bias, scores.shape))
    if overflowed.any():
        msg = (
            f"the attention scores overflowed {scores.dtype} (q.k * scale is beyond "
            f"{big:.3g}); compute in float64 or rescale q and k"
        )
        raise FloatingPointError(msg)


def scaled_dot_product_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    /,
    *,
    mask: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Attention:
    r"""Scaled dot-product attention: ``softmax(q k^T * scale + bias, where=mask) @ v``.

    Each query row of ``q`` scores every key row of ``k`` by a dot product, the
    softmax of a row of scores gives that query's weights, and its output is the
    weighted average of the rows of ``v``.

    Parameters
    ----------
    q : (..., n, d_k) array_like
        Queries, finite.
    k : (..., m, d_k) array_like
        Keys, finite; ``m >= 1``.
    v : (..., m, d_v) array_like
        Values, finite. q, k and v share one floating dtype; their leading (batch,
        head) dimensions broadcast.
    mask : (..., n, m) array_like of bool, optional
        Broadcastable to the scores; True means "may attend". A query row with no True
        entry gets weights 0 and output 0.
    bias : (..., n, m) array_like, optional
        Added to the scaled scores; may hold ``-inf`` (forbids a key), never NaN or
        ``+inf``. Converted to ``q``'s dtype.
    is_causal : bool, optional
        Apply the causal mask (:func:`causal_mask`), AND-ed with ``mask``.
    scale : float, optional
        The factor for the dot products; default :math:`1/\sqrt{d_k}`.

    Returns
    -------
    Attention
        ``output`` (..., n, d_v), ``weights`` (..., n, m), the applied ``mask``,
        ``scale``, ``q``, ``k``, ``v``, ``bias`` and, on demand, ``scores``.
        float16/32/64 in gives the same dtype out (float16 is computed in float32).

    Raises
    ------
    ValueError
        If a shape does not fit (d_k or m differ, batch dimensions or the mask or bias
        do not broadcast), ``m = 0`` or ``d_k = 0``, q, k or v hold NaN or inf, or
        ``bias`` holds NaN or ``+inf`` or a finite value beyond the range of q's dtype.
    TypeError
        If q, k and v have different dtypes, an input is bool, complex or not numeric,
        or ``mask`` is not bool.
    FloatingPointError
        If the scores overflow the dtype (float32 dot products beyond 3.4e38).

    See Also
    --------
    self_attention, multi_head_attention
    attention_from_scratch.softmax.softmax

    Notes
    -----
    In code, ``weights = softmax(q @ k.T * scale + bias, where=mask); output = weights @
    v``. In maths, with :math:`M` the mask:

    .. math::

       S = \frac{Q K^\top}{\sqrt{d_k}} + B, \qquad
       P_{ij} = \frac{M_{ij} \, e^{S_{ij}}}{\sum_{l} M_{il} \, e^{S_{il}}}, \qquad
       O = P V .

    The queries are scaled before the product (:math:`n d_k` multiplies instead of
    :math:`n m`). The softmax is the stable one of
    :func:`~attention_from_scratch.softmax.softmax`, done in place on the score buffer;
    its row maximum validates the scores. Since q and k are finite, an infinite or NaN
    score can only come from overflow, which is detected with the cheap bound
    :math:`|q_i \cdot k_j| \le d_k \max|q| \max|k|` and reported instead of producing
    NaN. A fully masked row has denominator 0, which is replaced by 1, so its weights
    and output are exactly 0 :cite:p:`vaswani2017attention`.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.1, Eq. 1.

    Examples
    --------
    The Gram example, Q = K = V = x: scores ``x x^T / 2``, weights row 0 =
    ``[0.4223, 0.1554, 0.4223]``.

    >>> import numpy as np
    >>> from attention_from_scratch.self_attention import scaled_dot_product_attention
    >>> x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    >>> result = scaled_dot_product_attention(x, x, x)
    >>> print(result.scores)
    [[1. 0. 1.]
     [0. 4. 2.]
     [1. 2. 2.]]
    >>> print(np.round(result.weights, 4))
    [[0.4223 0.1554 0.4223]
     [0.0159 0.8668 0.1173]
     [0.1554 0.4223 0.4223]]
    >>> print(np.round(result.output, 4))
    [[0.8446 0.733  0.8446 0.733 ]
     [0.1332 1.8509 0.1332 1.8509]
     [0.5777 1.267  0.5777 1.267 ]]

    With the causal mask, token 0 sees only itself:

    >>> causal = scaled_dot_product_attention(x, x, x, is_causal=True)
    >>> print(np.round(causal.weights, 4))
    [[1.     0.     0.    ]
     [0.018  0.982  0.    ]
     [0.1554 0.4223 0.4223]]
    """
    q_arr, k_arr, v_arr, batch = _validate_qkv(q, k, v)
    n, m = q_arr.shape[-2], k_arr.shape[-2]
    scores_shape = (*batch, n, m)
    d_k = q_arr.shape[-1]
    s = 1.0 / math.sqrt(d_k) if scale is None else finite_real(scale, "scale")
    causal_flag: object = is_causal  # typed bool, but callers may pass anything
    if not isinstance(causal_flag, bool | np.bool_):
        msg = f"is_causal must be a bool, got {type(is_causal).__name__}"
        raise TypeError(msg)
    dtype = working_dtype(q_arr.dtype)

    # M = mask AND causal, broadcast to the scores (..., n, m); None when nothing is masked.
    applied: BoolArray | None = None
    if mask is not None:
        applied = broadcast_to_shape(as_bool_mask(mask, "mask"), scores_shape, "mask", "scores")
    if is_causal:
        triangle = causal_mask(n, m)  # (n, m)
        applied = (
            np.broadcast_to(triangle, scores_shape) if applied is None else applied & triangle
        )

    bias_arr: FloatArray | None = None
    if bias is not None:
        bias_given = as_float_array(bias, "bias")
        broadcast_to_shape(bias_given, scores_shape, "bias", "scores")
        check_finite(bias_given, "bias", allow_neg_inf=True)
        with np.errstate(over="ignore"):
            bias_arr = bias_given.astype(q_arr.dtype, copy=False)
        _check_cast(bias_given, bias_arr, "bias")

    # S = Q K^T / sqrt(d_k) + B   (Eq. 1)
    scores = _raw_scores(q_arr, k_arr, s, dtype)  # (..., n, d_k) @ (..., d_k, m) -> (..., n, m)
    if bias_arr is not None:
        with np.errstate(over="ignore", invalid="ignore"):  # reported by _check_overflow
            scores = scores + bias_arr  # (..., n, m)
    scores = np.array(np.broadcast_to(scores, scores_shape))  # own, writable buffer
    _check_overflow(q_arr, k_arr, s, bias_arr, scores)
    # P = softmax(S) over the keys, masked entries exactly 0, empty rows all 0
    if scores.size:
        _softmax_inplace(scores, axis=-1, where=applied, allow_empty_rows=True, name="scores")
    weights = scores  # the buffer now holds P, (..., n, m)
    # O = P V
    output = np.matmul(weights, v_arr.astype(dtype, copy=False))  # (..., n, m) @ (..., m, d_v)
    return Attention(
        output=output.astype(q_arr.dtype, copy=False),
        weights=weights.astype(q_arr.dtype, copy=False),
        mask=applied,
        scale=s,
        q=q_arr,
        k=k_arr,
        v=v_arr,
        bias=bias_arr,
        is_causal=bool(is_causal),
    )


@dataclass(frozen=True, eq=False)
class ProjectedAttention:
    r"""Result of :func:`self_attention` and :func:`multi_head_attention`.

    Holds the input ``x`` (and ``context`` for cross-attention) and the ``params``, so
    an explanation can go back from a score to the embedding features, and every
    intermediate of the computation.

    Attributes
    ----------
    output : (..., n, d_out) ndarray
        The final output: the heads' outputs merged, then ``@ w_o + b_o`` when the
        parameters have an output projection (``d_out = d_model``), else
        ``d_out = n_heads * d_v``.
    weights : (..., h, n, m) ndarray
        Attention weights per head (for :func:`self_attention`: ``(..., n, m)``, no head
        axis).
    q : (..., h, n, d_k) ndarray
        Queries per head (no head axis for :func:`self_attention`).
    k : (..., h_kv, m, d_k) ndarray
        Keys per key/value head; query head ``i`` uses key head ``i // (h // h_kv)``.
    v : (..., h_kv, m, d_v) ndarray
        Values per key/value head.
    head_outputs : (..., h, n, d_v) ndarray
        ``weights @ v`` per head, before merging and the output projection (no head
        axis for :func:`self_attention`).
    mask : (..., n, m) ndarray of bool or None
        The applied mask (``mask`` AND causal), shared by every head, or None.
    scale : float
        :math:`1/\sqrt{d_k}`.
    x : (..., n, d_model) ndarray
        The input sequence.
    params : AttentionParams
        The weights.
    n_heads : int
        Number of query heads :math:`h`.
    n_kv_heads : int
        Number of key/value heads :math:`h_{kv}` (``< h``: grouped-query attention).
    context : (..., m, d_model) ndarray or None
        Where keys and values came from in cross-attention; None for self-attention.
    has_head_axis : bool
        False for results of :func:`self_attention`, whose arrays have no head axis.
    """

    output: FloatArray
    weights: FloatArray
    q: FloatArray
    k: FloatArray
    v: FloatArray
    head_outputs: FloatArray
    mask: BoolArray | None
    scale: float
    x: FloatArray
    params: AttentionParams
    n_heads: int
    n_kv_heads: int
    context: FloatArray | None = None
    has_head_axis: bool = True
    _grouped: Attention | None = field(default=None, repr=False)

    @cached_property
    def scores(self) -> FloatArray:
        """(..., h, n, m) ndarray: scaled logits ``q_i . k_j / sqrt(d_k)`` per head."""
        if self._grouped is None:  # pragma: no cover - always set by the constructors
            msg = "scores need the attention the result was built from"
            raise RuntimeError(msg)
        grouped = self._grouped.scores  # (..., h_kv, g, n, m)
        return grouped.reshape(self.weights.shape)


def _check_x(x: ArrayLike, name: str) -> FloatArray:
    arr = as_float_array(x, name)
    if arr.ndim < 2:
        msg = f"{name} must have at least 2 dimensions (tokens, d_model), got {arr.shape}"
        raise ValueError(msg)
    return arr


def multi_head_attention(
    x: ArrayLike,
    params: AttentionParams,
    /,
    *,
    n_heads: int,
    n_kv_heads: int | None = None,
    context: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
) -> ProjectedAttention:
    r"""Multi-head attention: project, split into heads, attend per head, merge, project.

    Parameters
    ----------
    x : (..., n, d_model) array_like
        The sequence whose tokens ask (the queries).
    params : AttentionParams
        ``w_q`` (d_model, h d_k), ``w_k`` (d_model, h_kv d_k), ``w_v`` (d_model, h_kv
        d_v), optional ``w_o`` (h d_v, d_model) and biases.
    n_heads : int
        Number of query heads :math:`h`; must divide ``w_q``'s columns.
    n_kv_heads : int, optional
        Number of key/value heads :math:`h_{kv}`, dividing ``n_heads``; default
        ``n_heads``. Fewer is grouped-query attention: key/value head ``j`` serves query
        heads ``j g .. (j+1) g - 1`` with :math:`g = h / h_{kv}` (torch's
        ``enable_gqa``).
    context : (..., m, d_model) array_like, optional
        Keys and values come from it (cross-attention); default ``x``.
    mask : (..., n, m) array_like of bool, optional
        Broadcast over ``x``'s batch dimensions and applied to every head; True means
        "may attend".
    is_causal : bool, optional
        Apply the causal mask, AND-ed with ``mask``.

    Returns
    -------
    ProjectedAttention
        ``output`` (..., n, d_model) or (..., n, h d_v) without ``w_o``, per-head
        ``weights`` (..., h, n, m), and every intermediate.

    Raises
    ------
    ValueError
        If head counts do not divide the projection widths, query and key heads have
        different sizes, or any check of :func:`scaled_dot_product_attention` fails.
    TypeError
        If ``params`` is not an :class:`~attention_from_scratch.projections.AttentionParams`
        or head counts are not ints.

    See Also
    --------
    self_attention, scaled_dot_product_attention
    attention_from_scratch.projections.project_qkv

    Notes
    -----
    In code, ``q, k, v = project_qkv(x, params)``, then per head
    ``softmax(q_h k_h^T / sqrt(d_k)) v_h``, then ``merge_heads(...) @ w_o + b_o``:

    .. math::

       \operatorname{MultiHead}(X) = \operatorname{Concat}(O_1, \dots, O_h) W_O + b_O,
       \qquad O_i = \operatorname{Attention}(X W_Q^{(i)}, C W_K^{(g(i))}, C W_V^{(g(i))}),

    with :math:`C = X` (self-attention) or the context, and :math:`g(i) = \lfloor i /
    (h / h_{kv}) \rfloor` :cite:p:`vaswani2017attention,ainslie2023gqa`. The key/value
    heads are broadcast to their query heads by a reshape, never copied. The numerics are
    those of :func:`scaled_dot_product_attention`.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.2; :cite:t:`ainslie2023gqa`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.projections import AttentionParams
    >>> from attention_from_scratch.self_attention import multi_head_attention
    >>> params = AttentionParams.random(8, 2, n_heads=4, n_kv_heads=2, out_proj=True, rng=0)
    >>> x = np.arange(24.0).reshape(3, 8) / 24
    >>> result = multi_head_attention(x, params, n_heads=4, n_kv_heads=2)
    >>> print(result.output.shape, result.weights.shape, result.k.shape)
    (3, 8) (4, 3, 3) (2, 3, 2)
    >>> print(np.round(result.weights.sum(axis=-1), 12))
    [[1. 1. 1.]
     [1. 1. 1.]
     [1. 1. 1.]
     [1. 1. 1.]]
    """
    params_obj: object = params  # typed AttentionParams, but callers may pass anything
    if not isinstance(params_obj, AttentionParams):
        msg = f"params must be an AttentionParams, got {type(params_obj).__name__}"
        raise TypeError(msg)
    h = positive_int(n_heads, "n_heads")
    h_kv = h if n_kv_heads is None else positive_int(n_kv_heads, "n_kv_heads")
    if h % h_kv:
        msg = f"n_kv_heads must divide n_heads: n_heads {h}, n_kv_heads {h_kv}"
        raise ValueError(msg)
    x_arr = _check_x(x, "x")
    context_arr = None if context is None else _check_x(context, "context")
    q, k, v = project_qkv(x_arr, params, context=context_arr)  # (..., n, h d_k), (..., m, h_kv d)
    for name, arr, heads in (("w_q", q, h), ("w_k", k, h_kv), ("w_v", v, h_kv)):
        if arr.shape[-1] % heads:
            msg = (
                f"{name} has {arr.shape[-1]} columns, not divisible into {heads} heads "
                f"({'n_heads' if name == 'w_q' else 'n_kv_heads'})"
            )
            raise ValueError(msg)
    if q.shape[-1] // h != k.shape[-1] // h_kv:
        msg = (
            f"query and key heads must have the same size d_k: w_q {params.w_q.shape} with "
            f"n_heads {h}, w_k {params.w_k.shape} with n_kv_heads {h_kv}"
        )
        raise ValueError(msg)
    q_heads = split_heads(q, h)  # (..., n, h d_k) -> (..., h, n, d_k)
    k_heads = split_heads(k, h_kv)  # (..., m, h_kv d_k) -> (..., h_kv, m, d_k)
    v_heads = split_heads(v, h_kv)  # (..., m, h_kv d_v) -> (..., h_kv, m, d_v)
    g = h // h_kv
    *batch, _, n, d_k = q_heads.shape
    # Query head i = j g + r uses key/value head j: group the query heads, broadcast k, v.
    q_grouped = q_heads.reshape(*batch, h_kv, g, n, d_k)  # (..., h_kv, g, n, d_k)
    k_grouped = k_heads[..., :, None, :, :]  # (..., h_kv, 1, m, d_k)
    v_grouped = v_heads[..., :, None, :, :]  # (..., h_kv, 1, m, d_v)
    mask_grouped = None
    if mask is not None:
        mask_arr = as_bool_mask(mask, "mask")
        if mask_arr.ndim < 2:
            msg = f"mask must have at least 2 dimensions (n, m), got {mask_arr.shape}"
            raise ValueError(msg)
        # Check against the user's shapes, before the head axes are added.
        shared = (*batch, n, k_heads.shape[-2])  # (..., n, m), every head
        try:
            np.broadcast_shapes(mask_arr.shape, shared)
        except ValueError:
            msg = (
                f"mask of shape {mask_arr.shape} does not broadcast to the scores "
                f"(..., n, m) of shape {shared}"
            )
            raise ValueError(msg) from None
        mask_grouped = mask_arr[..., None, None, :, :]  # (..., n, m) -> (..., 1, 1, n, m)
    grouped = scaled_dot_product_attention(
        q_grouped, k_grouped, v_grouped, mask=mask_grouped, is_causal=is_causal
    )
    m = k_heads.shape[-2]
    weights = grouped.weights.reshape(*batch, h, n, m)  # (..., h_kv, g, n, m) -> (..., h, n, m)
    head_outputs = grouped.output.reshape(*batch, h, n, v_heads.shape[-1])  # (..., h, n, d_v)
    merged = merge_heads(head_outputs)  # (..., h, n, d_v) -> (..., n, h d_v)
    # MultiHead = Concat(head_1, ..., head_h) W_O + b_O
    output = merged if params.w_o is None else linear(merged, params.w_o, params.b_o)
    applied = None
    if grouped.mask is not None:
        applied = grouped.mask[..., 0, 0, :, :]  # identical for every head: (..., n, m)
    return ProjectedAttention(
        output=output,
        weights=weights,
        q=q_heads,
        k=k_heads,
        v=v_heads,
        head_outputs=head_outputs,
        mask=applied,
        scale=grouped.scale,
        x=x_arr,
        params=params,
        n_heads=h,
        n_kv_heads=h_kv,
        context=context_arr,
        has_head_axis=True,
        _grouped=grouped,
    )


def self_attention(
    x: ArrayLike,
    params: AttentionParams,
    /,
    *,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
) -> ProjectedAttention:
    r"""Self-attention with one head: ``softmax(x W_Q (x W_K)^T / sqrt(d_k)) x W_V``.

    Exactly :func:`multi_head_attention` with ``n_heads=1`` (``w_o`` and ``b_o`` applied
    when present), with the head axis removed from the result's arrays.

    Parameters
    ----------
    x : (..., n, d_model) array_like
        The token embeddings, one row per token.
    params : AttentionParams
        ``w_q`` (d_model, d_k), ``w_k`` (d_model, d_k), ``w_v`` (d_model, d_v), optional
        ``w_o`` and biases.
    mask : (..., n, n) array_like of bool, optional
        True means "may attend"; broadcast over ``x``'s batch dimensions.
    is_causal : bool, optional
        Apply the causal mask, AND-ed with ``mask``.

    Returns
    -------
    ProjectedAttention
        With ``has_head_axis=False``: ``q`` (..., n, d_k), ``k`` (..., n, d_k), ``v``
        (..., n, d_v), ``weights`` (..., n, n), ``output`` (..., n, d_out), plus ``x``
        and ``params`` for explanations.

    Raises
    ------
    ValueError, TypeError
        As :func:`multi_head_attention`.

    See Also
    --------
    multi_head_attention, scaled_dot_product_attention

    Notes
    -----
    In code, ``q, k, v = x @ w_q, x @ w_k, x @ w_v`` then
    ``softmax(q @ k.T / sqrt(d_k)) @ v``:

    .. math::

       \operatorname{SelfAttention}(X) =
       \operatorname{softmax}\!\left(\frac{(X W_Q)(X W_K)^\top}{\sqrt{d_k}}\right) X W_V .

    Numerically it is :func:`scaled_dot_product_attention` on the projections
    :cite:p:`vaswani2017attention`.

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.2.

    Examples
    --------
    The running example: *creature* attends to *fluffy*, then *blue*; the adjectives,
    whose queries are zero, attend uniformly.

    >>> import numpy as np
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.self_attention import self_attention
    >>> ex = fluffy_blue_creature()
    >>> result = self_attention(ex.x, ex.params)
    >>> print(np.round(result.weights, 4))
    [[0.3333 0.3333 0.3333]
     [0.3333 0.3333 0.3333]
     [0.5741 0.3482 0.0777]]
    >>> print(np.round(result.output[2], 4) + 0.0)
    [0.     0.     0.3482 0.5741]
    """
    full = multi_head_attention(x, params, n_heads=1, mask=mask, is_causal=is_causal)
    return ProjectedAttention(
        output=full.output,
        weights=full.weights[..., 0, :, :],  # (..., 1, n, m) -> (..., n, m)
        q=full.q[..., 0, :, :],
        k=full.k[..., 0, :, :],
        v=full.v[..., 0, :, :],
        head_outputs=full.head_outputs[..., 0, :, :],  # (..., 1, n, d_v) -> (..., n, d_v)
        mask=full.mask,
        scale=full.scale,
        x=full.x,
        params=full.params,
        n_heads=1,
        n_kv_heads=1,
        context=None,
        has_head_axis=False,
        _grouped=full._grouped,
    )
