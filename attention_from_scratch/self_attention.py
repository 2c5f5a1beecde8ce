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
* :func:`causal_mask` and :func:`padding_mask` -- the two masks every model uses;
* :func:`tiled_attention` -- the same output in :math:`O(n)` memory, by online softmax
  over blocks of keys (the idea behind FlashAttention).

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
from functools import cached_property, partial
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from attention_from_scratch._backward import AttentionGrads, attention_vjp
from attention_from_scratch._checks import (
    BoolArray,
    FloatArray,
    as_bool_mask,
    as_float_array,
    as_int_array,
    as_working,
    at_least_ndim,
    broadcast_to_shape,
    check_bool,
    check_finite,
    check_instance,
    check_same_dtype,
    finite_real,
    first_index,
    non_negative_int,
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
from attention_from_scratch.softmax import _check_rows, _short_buffers, _softmax_rows

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
    "tiled_attention",
]


def _raw_scores(q: FloatArray, k: FloatArray, scale: float, dtype: np.dtype[Any]) -> FloatArray:
    """``(q * scale) @ k^T`` in ``dtype``: scale the (n, d) queries, not the (n, m) scores.

    An overflow gives inf or NaN silently here; :func:`_check_overflow` reports it.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        # C-contiguous operands, as in the forward pass: the bits do not depend on layout
        q_scaled = np.multiply(q, dtype.type(scale), dtype=dtype, order="C")  # (..., n, d_k)
        scores: FloatArray = np.matmul(q_scaled, np.swapaxes(as_working(k), -1, -2))
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
            _check_overflow(out, self.bias)
        return out

    def _repr_html_(self) -> str | None:
        """Jupyter: the interactive view of :func:`~attention_from_scratch.view.to_html`."""
        from attention_from_scratch.view import _notebook_html  # noqa: PLC0415 - on demand

        return _notebook_html(self)


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
    n = non_negative_int(n_q, "n_q")
    m = n if n_k is None else non_negative_int(n_k, "n_k")
    rows = np.arange(n)[:, None]  # (n, 1)
    cols = np.arange(m)[None, :]  # (1, m)
    return cols <= rows  # (n, m)


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
        If ``lengths`` is not integer (or is a masked array), or ``n`` is not an int.
    ValueError
        If ``lengths`` is ragged or not 1-D, a length is outside ``0 .. n``, or
        ``n < 0``. An empty ``lengths`` is an empty batch, ``(0, 1, n)``.

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
    size = non_negative_int(n, "n")
    arr = as_int_array(lengths, "lengths")  # [] is an empty batch; ragged, masked: errors
    if arr.ndim != 1:
        msg = f"lengths must be 1-D (one length per sequence), got shape {arr.shape}"
        raise ValueError(msg)
    if ((arr < 0) | (arr > size)).any():
        msg = f"lengths must lie in 0 .. n = {size}, got {arr.tolist()}"
        raise ValueError(msg)
    return (np.arange(size)[None, :] < arr[:, None])[:, None, :]  # (batch, 1, n)


def _peak(arr: FloatArray, name: str) -> float:
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


def _validate_qkv(
    q: ArrayLike, k: ArrayLike, v: ArrayLike
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
    peak_qk = _peak(q_arr, "q") * _peak(k_arr, "k")
    return q_arr, k_arr, v_arr, batch, peak_qk, _peak(v_arr, "v")


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


def _score_bound(peak_qk: float, d_k: int, scale: float, bias: FloatArray | None) -> float:
    """An upper bound of ``|scores|``: ``|q_i . k_j| * |scale| <= d_k max|q| max|k| |scale|``.

    Plus ``max |bias|`` over its finite entries. q and k are finite, so only a bound near
    the largest float can let the scores overflow.
    """
    with np.errstate(over="ignore"):
        bound = peak_qk * d_k * abs(scale)
        if bias is not None and bias.size:
            finite = np.isfinite(bias)
            if finite.any():
                bound += float(np.max(np.abs(bias), where=finite, initial=0.0))
    return bound


def _may_overflow(bound: float, dtype: np.dtype[Any]) -> bool:
    """Whether scores bounded by ``bound`` may overflow ``dtype`` (then they are scanned)."""
    return bound >= float(np.finfo(dtype).max) / 2


def _check_overflow(scores: FloatArray, bias: FloatArray | None) -> None:
    """Raise FloatingPointError if the scores (bias added) hold NaN or an infinity.

    An entry is -inf legitimately only where the bias is -inf.
    """
    overflowed = np.isnan(scores) | np.isposinf(scores)
    if bias is None:
        overflowed |= np.isneginf(scores)
    else:
        overflowed |= np.isneginf(scores) & np.isfinite(bias)
    if overflowed.any():
        big = float(np.finfo(scores.dtype).max)
        msg = (
            f"the attention scores overflowed {scores.dtype} (q.k * scale is beyond "
            f"{big:.3g}); compute in float64 or rescale q and k"
        )
        raise FloatingPointError(msg)


def _near_top(peak_v: float, dtype: np.dtype[Any]) -> bool:
    """Whether averages of values up to ``peak_v`` may round past the top of ``dtype``.

    A computed convex combination exceeds ``max|v|`` by a factor below 4, rounding of
    the weights and of the sum included, so below a quarter of the range it cannot; only
    above it does :func:`_within_values` run.
    """
    return peak_v >= float(np.finfo(dtype).max) / 4


def _within_values(output: FloatArray, v: FloatArray, dtype: np.dtype[Any]) -> None:
    """Clip the entries of ``output`` that rounded past the largest float of ``dtype``.

    ``O = P V`` is a convex combination of the value rows, but the rounded weights of a
    row can sum to ``1 + a few ulps``: with values within a few ulps of the largest
    float, the sum rounds to infinity (or, for float16 computed in float32, past the
    largest float16). Such an entry's exact value is within rounding of the largest (or
    smallest) value of its column of ``v`` (..., m, d_v); every other entry, the zeros
    of rows with no key allowed included, is left as it is.
    """
    beyond = ~(np.abs(output) <= float(np.finfo(dtype).max))  # inf, or past the top
    if not beyond.any():
        return
    low = np.min(v, axis=-2, keepdims=True)  # (..., m, d_v) -> (..., 1, d_v)
    high = np.max(v, axis=-2, keepdims=True)
    np.copyto(output, np.clip(output, low, high), where=beyond)


#: Bytes of scores computed at once: a chunk of heads (or of the query rows of one head)
#: whose scores stay in the processors' L2 caches from the product with k, through the
#: softmax, to the product with v, instead of going out to main memory and back.
_CHUNK_BYTES = 1 << 22


def _attend(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    weights: FloatArray,
    output: FloatArray,
    *,
    mask: BoolArray | None,
    bias: FloatArray | None,
    check_overflow: bool,
) -> None:
    """Fill ``weights`` with ``softmax(q k^T + bias, where=mask)`` and ``output`` with ``weights v``.

    Every array is broadcast to the full batch shape: q (..., n, d_k) already scaled,
    k (..., m, d_k), v (..., m, d_v), mask and bias (..., n, m); weights (..., n, m) and
    output (..., n, d_v) are the C-contiguous result buffers, all in the working dtype.
    The work goes chunk by chunk, each chunk a few heads or some query rows of one head.
    """
    batch = weights.shape[:-2]
    n, m = weights.shape[-2:]
    # Drop the batch axes of length 1 (a view): chunks are then taken along the last axis.
    *outer, heads = tuple(size for size in batch if size != 1) or (1,)

    def chunked(arr: Any) -> Any:
        return arr.reshape(*outer, heads, *arr.shape[-2:])  # (..., heads, a, b), a view

    q, v, weights, output = chunked(q), chunked(v), chunked(weights), chunked(output)
    k_t = chunked(np.swapaxes(k, -1, -2))  # (..., heads, d_k, m), a view
    mask = None if mask is None else chunked(mask)
    bias = None if bias is None else chunked(bias)
    rows = max(1, _CHUNK_BYTES // max(1, m * weights.itemsize))  # score rows per chunk
    head_step = max(1, rows // max(1, n))  # whole heads per chunk, or one head ...
    row_step = max(1, n if head_step > 1 else min(n, rows))  # ... in blocks of rows
    for index in np.ndindex(*outer):
        for h in range(0, heads, head_step):
            at_heads = (*index, slice(h, h + head_step))
            for r in range(0, n, row_step):
                at = (*at_heads, slice(r, r + row_step))
                scores = weights[at]  # (h, r, m): a C-contiguous block of the buffer
                # S = (Q scale) K^T + B   (Eq. 1)
                with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                    np.matmul(q[at], k_t[at_heads], out=scores)  # (h, r, d_k) @ (h, d_k, m)
                    if bias is not None:
                        np.add(scores, bias[at], out=scores)
                if check_overflow:
                    _check_overflow(scores, None if bias is None else bias[at])
                # P = softmax(S) over the keys, in place; masked entries 0, empty rows 0
                flat = scores.reshape(-1, m)  # (h r, m), a view
                allowed = None if mask is None else mask[at].reshape(-1, m)
                _softmax_rows(
                    flat,
                    flat,
                    where=allowed,
                    allow_empty_rows=True,
                    report=partial(
                        _check_rows, flat, -1, allowed, "scores", allow_empty_rows=True
                    ),
                )
                # O = P V (near the largest float it may round past it: _within_values)
                with np.errstate(over="ignore", invalid="ignore"):
                    np.matmul(scores, v[at_heads], out=output[at])  # (h, r, m) @ (h, m, d_v)


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
    :math:`n m`), and the product is written into one :math:`n \times m` buffer that the
    softmax then overwrites with the weights: no second :math:`n \times m` array is made.
    The softmax is the stable one of :func:`~attention_from_scratch.softmax.softmax`.
    The work goes a few heads (or query rows) at a time, so that each chunk of scores
    stays in the processor's cache from the product with k, through the softmax, to
    the product with v.
    Since q and k are finite (checked through their largest and smallest entries, which
    also give :math:`\max|q|` and :math:`\max|k|`), an infinite or NaN score can only
    come from overflow; the cheap bound :math:`|q_i \cdot k_j| \le d_k \max|q| \max|k|`
    says when that is possible, and only then are the scores scanned, so an overflow is
    reported instead of producing NaN. A fully masked row has denominator 0, which is
    replaced by 1, so its weights and output are exactly 0 :cite:p:`vaswani2017attention`.
    An output is an average of values, but rounded weights may sum to :math:`1 +` a few
    ulps: for values within rounding of the largest float an entry that rounds past it
    is set to the largest (or smallest) value of its column, its exact value up to
    rounding.

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
    q_arr, k_arr, v_arr, batch, peak_qk, peak_v = _validate_qkv(q, k, v)
    n, m = q_arr.shape[-2], k_arr.shape[-2]
    scores_shape = (*batch, n, m)
    d_k = q_arr.shape[-1]
    s = 1.0 / math.sqrt(d_k) if scale is None else finite_real(scale, "scale")
    is_causal = check_bool(is_causal, "is_causal")
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

    # Q scale: scale the n x d_k queries, not the n x m scores (n d_k multiplies).
    # C-contiguous operands: BLAS sums in one order (with the same FMAs) whatever the
    # memory layout of q, k, v, so the result does not depend on it, bit for bit; an
    # operand that already is C-contiguous in the working dtype is not copied.
    with np.errstate(over="ignore"):  # an overflow here shows in the scores, checked there
        q_scaled = np.multiply(q_arr, dtype.type(s), dtype=dtype, order="C")  # (..., n, d_k)
    v_w = as_working(v_arr)  # (..., m, d_v)
    d_v = v_arr.shape[-1]
    weights = np.empty(scores_shape, dtype=dtype)  # (..., n, m): S, then P in place
    output = np.empty((*batch, n, d_v), dtype=dtype)  # (..., n, d_v)
    _attend(
        np.broadcast_to(q_scaled, (*batch, n, d_k)),
        np.broadcast_to(as_working(k_arr), (*batch, m, d_k)),
        np.broadcast_to(v_w, (*batch, m, d_v)),
        weights,
        output,
        mask=applied,
        bias=None if bias_arr is None else np.broadcast_to(bias_arr, scores_shape),
        check_overflow=_may_overflow(_score_bound(peak_qk, d_k, s, bias_arr), dtype),
    )
    if _near_top(peak_v, q_arr.dtype):  # O(n d_v), only for values near the largest float
        _within_values(output, v_w, q_arr.dtype)
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


def _online_softmax_block(
    q_i: FloatArray,
    k_t: FloatArray,
    v: FloatArray,
    i: int,
    block: int,
    is_causal: bool,
    check_overflow: bool,
    normalised: bool = False,
) -> FloatArray:
    """The output rows of one block of queries, ``q_i`` (..., b_q, d_k) starting at ``i``.

    The keys ``k_t`` (..., d_k, m) and values ``v`` (..., m, d_v) go ``block`` at a time
    through the online softmax of :func:`tiled_attention`; ``q_i`` is already scaled and
    broadcast to the batch shape. Returns ``o / l``, (..., b_q, d_v).

    ``o = sum_j e^(s_j - m) v_j`` reaches (number of keys) ``max|v|``; with
    ``normalised`` (values near the top of the range) ``o / l`` is accumulated instead,
    a convex combination of the values, which cannot overflow.
    """
    *batch, b_q, _ = q_i.shape
    m = k_t.shape[-1]
    row_max = np.full((*batch, b_q, 1), -np.inf, dtype=q_i.dtype)  # m = -inf
    row_sum = np.zeros((*batch, b_q, 1), dtype=q_i.dtype)  # l = 0
    acc = np.zeros((*batch, b_q, v.shape[-1]), dtype=q_i.dtype)  # o = 0
    stop = min(m, i + b_q) if is_causal else m  # causal: no key after the last query
    for j in range(0, stop, block):  # a block of keys j .. j + b_k - 1
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            scores = np.matmul(q_i, k_t[..., :, j : j + block])  # S: (..., b_q, b_k)
        if check_overflow:
            _check_overflow(scores, None)
        b_k = scores.shape[-1]
        if is_causal and j + b_k - 1 > i:  # the block crosses the diagonal: key > query
            above = np.arange(b_k)[None, :] - np.arange(b_q)[:, None] > i - j  # (b_q, b_k)
            np.copyto(scores, -np.inf, where=above)
        # m_new = max(m, rowmax(S)); rows that have seen no key yet are shifted by 0
        new_max = np.maximum(row_max, np.max(scores, axis=-1, keepdims=True))
        shift = np.where(np.isneginf(new_max), 0.0, new_max)  # (..., b_q, 1)
        # P = exp(S - m_new), in place: every exponent <= 0
        np.exp(np.subtract(scores, shift, out=scores), out=scores)
        # c = exp(m - m_new) <= 1 carries the old sums over to the new maximum
        correction = np.exp(row_max - shift)  # (..., b_q, 1)
        # l = l c + rowsum(P)
        row_sum *= correction
        carried = row_sum.copy() if normalised else row_sum  # l_old c
        row_sum += np.sum(scores, axis=-1, keepdims=True)
        with np.errstate(over="ignore", invalid="ignore"):  # see _within_values
            if normalised:  # o / l = (o_old / l_old) (l_old c / l) + (P / l) V_j
                safe = np.where(row_sum == 0.0, 1.0, row_sum)  # (..., b_q, 1)
                acc *= carried / safe
                acc += np.matmul(scores / safe, v[..., j : j + block, :])
            else:  # o = o c + P V_j
                acc *= correction
                acc += np.matmul(scores, v[..., j : j + block, :])  # (b_q, b_k) @ (b_k, d_v)
        row_max = new_max
    if normalised:  # acc already is o / l (0 for a row that saw no key)
        return acc
    # O = o / l; a row that saw no key (l = 0) gets 0, not 0 / 0
    np.copyto(row_sum, 1.0, where=row_sum == 0.0)
    out: FloatArray = acc / row_sum  # (..., b_q, d_v)
    return out


def tiled_attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    /,
    *,
    block_size: int = 512,
    is_causal: bool = False,
    scale: float | None = None,
) -> FloatArray:
    r"""Exact attention in :math:`O(n)` memory: the keys one block at a time, online softmax.

    Returns the same output as :func:`scaled_dot_product_attention` without ever holding
    the :math:`n \times m` matrix of scores or weights: queries and keys are taken in
    blocks of ``block_size``, and each query keeps a running maximum, a running sum and
    a running (unnormalised) output that are corrected whenever a later block holds a
    larger score. Memory is :math:`O(b^2 + n d)` per batch element, for blocks of
    :math:`b` rows, instead of :math:`O(n m)`.

    Parameters
    ----------
    q : (..., n, d_k) array_like
        Queries, finite.
    k : (..., m, d_k) array_like
        Keys, finite; ``m >= 1``.
    v : (..., m, d_v) array_like
        Values, finite. q, k and v share one floating dtype; their leading (batch,
        head) dimensions broadcast.
    block_size : int, optional
        Rows of queries and of keys per block, ``>= 1``; it need not divide ``n`` or
        ``m``. Default 512: a block of float32 scores is then 1 MiB, which stays in the
        L2 cache. The result does not depend on it, up to rounding.
    is_causal : bool, optional
        Query ``i`` attends to keys ``0 .. i`` only (:func:`causal_mask`, top-left
        aligned); blocks above the diagonal are skipped, not computed.
    scale : float, optional
        The factor for the dot products; default :math:`1/\sqrt{d_k}`.

    Returns
    -------
    output : (..., n, d_v) ndarray
        ``softmax(q k^T * scale) v``, in q's dtype (float16 is computed in float32). A
        query with no key allowed would get output 0.

    Raises
    ------
    ValueError
        As :func:`scaled_dot_product_attention` (shapes, ``m = 0``, ``d_k = 0``, NaN or
        inf in q, k, v), and if ``block_size < 1``.
    TypeError
        As :func:`scaled_dot_product_attention` (dtypes), and if ``block_size`` is not
        an int.
    FloatingPointError
        If the scores overflow the dtype (float32 dot products beyond 3.4e38).

    See Also
    --------
    scaled_dot_product_attention : The same output, with the weights.

    Notes
    -----
    In code, for one block of queries ``q_i`` and each block of keys and values
    ``k_j``, ``v_j`` in turn, with ``S = q_i @ k_j.T * scale``::

        m_new = maximum(m, S.max(-1)); p = exp(S - m_new); c = exp(m - m_new)
        l = l * c + p.sum(-1);  o = o * c + p @ v_j;  m = m_new      # then o / l

    The online softmax of :cite:t:`milakov2018online`, the idea behind FlashAttention
    :cite:p:`dao2022flashattention`. Softmax needs the row maximum :math:`m` (for
    stability) and the row sum :math:`\ell` (to normalise) before any weight is known;
    both can be updated block by block. Write the row of scores as blocks
    :math:`S_1, \dots, S_T` and start with :math:`m^{(0)} = -\infty`,
    :math:`\ell^{(0)} = 0`, :math:`o^{(0)} = 0`. After block :math:`t`,

    .. math::

       m^{(t)} &= \max\bigl(m^{(t-1)}, \max_j S_{t,j}\bigr), \\
       \ell^{(t)} &= \ell^{(t-1)} e^{m^{(t-1)} - m^{(t)}}
                    + \sum_j e^{S_{t,j} - m^{(t)}}, \\
       o^{(t)} &= o^{(t-1)} e^{m^{(t-1)} - m^{(t)}} + \sum_j e^{S_{t,j} - m^{(t)}} v_j ,

    so that, by induction, :math:`\ell^{(t)} = \sum_{j \le t} e^{S_j - m^{(t)}}` and
    :math:`o^{(t)} = \sum_{j \le t} e^{S_j - m^{(t)}} v_j`: the factor
    :math:`e^{m^{(t-1)} - m^{(t)}} \le 1` moves every earlier term from the old
    maximum to the new one. After the last block :math:`m^{(T)}` is the row maximum and

    .. math::

       \frac{o^{(T)}}{\ell^{(T)}}
         = \frac{\sum_j e^{S_j - m} v_j}{\sum_j e^{S_j - m}}
         = \sum_j \operatorname{softmax}(S)_j \, v_j ,

    exactly the output of attention. Every exponent is :math:`\le 0`, as in the stable
    softmax, so nothing overflows; the rescaling factors are :math:`\le 1`. Only
    :math:`o` grows, up to (number of keys) :math:`\times \max|v|`: when that may
    overflow, the running :math:`o / \ell` is kept instead, an average of the values,
    which stays in range. A row that has seen no key yet has :math:`m = -\infty`; it is
    shifted by 0 instead (no :math:`-\infty - (-\infty)`), and a row that never sees one
    keeps :math:`\ell = 0` and gets output 0. With the top-left causal mask every query
    sees key 0, so that does not happen here; the rule is the one of
    :func:`scaled_dot_product_attention`.

    References
    ----------
    :cite:t:`milakov2018online`; :cite:t:`dao2022flashattention`, Algorithm 1.

    Examples
    --------
    The Gram example with blocks of two keys (and two queries) gives the output of
    dense attention:

    >>> import numpy as np
    >>> from attention_from_scratch.self_attention import (
    ...     scaled_dot_product_attention, tiled_attention)
    >>> x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    >>> out = tiled_attention(x, x, x, block_size=2)
    >>> print(np.round(out, 4))
    [[0.8446 0.733  0.8446 0.733 ]
     [0.1332 1.8509 0.1332 1.8509]
     [0.5777 1.267  0.5777 1.267 ]]
    >>> dense = scaled_dot_product_attention(x, x, x).output
    >>> print(bool(np.allclose(out, dense, rtol=0, atol=1e-12)))
    True
    """
    q_arr, k_arr, v_arr, batch, peak_qk, peak_v = _validate_qkv(q, k, v)
    block = positive_int(block_size, "block_size")
    is_causal = check_bool(is_causal, "is_causal")
    n, m = q_arr.shape[-2], k_arr.shape[-2]
    d_k, d_v = q_arr.shape[-1], v_arr.shape[-1]
    s = 1.0 / math.sqrt(d_k) if scale is None else finite_real(scale, "scale")
    dtype = working_dtype(q_arr.dtype)
    check_overflow = _may_overflow(_score_bound(peak_qk, d_k, s, None), dtype)

    # C-contiguous operands (see scaled_dot_product_attention): layout changes no bit
    with np.errstate(over="ignore"):  # an overflow here shows in the scores, checked there
        q_scaled = np.multiply(q_arr, dtype.type(s), dtype=dtype, order="C")  # (..., n, d_k)
    q_scaled = np.broadcast_to(q_scaled, (*batch, n, d_k))  # every block of scores: (*batch, .)
    k_t = np.swapaxes(as_working(k_arr), -1, -2)  # (..., d_k, m), a view of a C-order array
    v_w = as_working(v_arr)  # (..., m, d_v)
    # o = sum_j e^(s_j - m) v_j reaches m max|v|: near the top of the range accumulate
    # o / l instead (see _online_softmax_block)
    normalised = peak_v >= float(np.finfo(dtype).max) / (4 * m)
    output = np.empty((*batch, n, d_v), dtype=dtype)  # (..., n, d_v)
    with np.errstate():  # restores numpy's buffer size on the way out
        _short_buffers(min(block, m))  # rows of scores, broadcast against (b_q, 1) columns
        for i in range(0, n, block):  # a block of queries i .. i + b_q - 1
            output[..., i : i + block, :] = _online_softmax_block(
                q_scaled[..., i : i + block, :],
                k_t,
                v_w,
                i,
                block,
                is_causal,
                check_overflow,
                normalised,
            )
    if _near_top(peak_v, q_arr.dtype):  # O(n d_v), only for values near the largest float
        _within_values(output, np.broadcast_to(v_w, (*batch, m, d_v)), q_arr.dtype)
    return output.astype(q_arr.dtype, copy=False)


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

    def _repr_html_(self) -> str | None:
        """Jupyter: the interactive view of :func:`~attention_from_scratch.view.to_html`."""
        from attention_from_scratch.view import _notebook_html  # noqa: PLC0415 - on demand

        return _notebook_html(self)


def _check_x(x: ArrayLike, name: str) -> FloatArray:
    arr = as_float_array(x, name)
    at_least_ndim(arr, 2, name, "(..., n, d_model)")
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
    check_instance(params, AttentionParams, "params")
    h = positive_int(n_heads, "n_heads")
    h_kv = h if n_kv_heads is None else positive_int(n_kv_heads, "n_kv_heads")
    if h % h_kv:
        msg = f"n_kv_heads must divide n_heads: n_heads {h}, n_kv_heads {h_kv}"
        raise ValueError(msg)
    x_arr = _check_x(x, "x")
    context_arr = None if context is None else _check_x(context, "context")
    # Errors about the keys quote the user's shapes, not the grouped (..., h_kv, g, m, d).
    source, keys = ("x", x_arr) if context_arr is None else ("context", context_arr)
    if keys.shape[-2] == 0:
        msg = f"attention needs at least one key (m = 0): {source} {keys.shape}"
        raise ValueError(msg)
    if context_arr is not None:
        try:
            np.broadcast_shapes(x_arr.shape[:-2], context_arr.shape[:-2])
        except ValueError:
            msg = (
                "the batch dimensions of x and context do not broadcast: "
                f"x {x_arr.shape}, context {context_arr.shape}"
            )
            raise ValueError(msg) from None
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
        at_least_ndim(mask_arr, 2, "mask", "(..., n, m)")
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
