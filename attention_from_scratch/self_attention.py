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

import numpy as np
from numpy.typing import ArrayLike

from attention_from_scratch._backward import attention_vjp
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
    check_cast,
    check_embeddings,
    check_finite,
    check_instance,
    check_qkv,
    finite_real,
    non_negative_int,
    positive_int,
    silenced,
    working_dtype,
)
from attention_from_scratch._kernel import (
    affine,
    attention,
    bias_peak,
    linear_bound,
    masked_softmax,
    may_overflow,
    merge_heads,
    near_top,
    scaled_operands,
    score_bound,
    split_heads,
    within_values,
)
from attention_from_scratch._results import (
    Attention,
    AttentionGrads,
    HeadView,
    ProjectedAttention,
    ProjectedGrads,
    frozen,
    kept,
)
from attention_from_scratch._tiled import tiled_attention
from attention_from_scratch.projections import AttentionParams

__all__ = [
    "Attention",
    "AttentionGrads",
    "HeadView",
    "ProjectedAttention",
    "ProjectedGrads",
    "attention_vjp",
    "causal_mask",
    "multi_head_attention",
    "padding_mask",
    "scaled_dot_product_attention",
    "self_attention",
    "tiled_attention",
]


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
        of length 1 broadcasts over the queries of ``(batch, n, m)`` scores: pass it as
        it is to :func:`self_attention` and :func:`multi_head_attention` (one mask
        serves every head; their ``lengths=`` builds it for you), and add a head axis,
        ``mask[:, None]``, only for :func:`scaled_dot_product_attention` on
        ``(batch, h, n, d)`` arrays.

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
    Up to 64 KiB of scores (every example of the book) these three steps run as the
    three lines they are; larger inputs go a few heads (or query rows) at a time,
    through the package's private kernel, so that each chunk of scores stays in the
    processor's cache from the product with k, through the softmax, to the product
    with v: the same computation, arranged for speed, equal to 2 ulp. There one step is
    skipped when the maths makes it unnecessary: when the Cauchy--Schwarz inequality
    :math:`|q_i \cdot k_j| \le \|q_i\| \, \|k_j\|` bounds every scaled score (plus the
    largest :math:`|B|`) by 64 in float32, 512 in float64, the exponentials are taken
    without the shift by the row maximum (a pass to find it, one to subtract it), since
    :math:`e^{\pm 64}` is far inside float32's range :cite:p:`blanchard2021accurately`.
    Those weights are within 8 ulp of the exact softmax of the scores (the shifted
    formula rounds :math:`s - \max s` first, an error that grows with the distance to
    the maximum), and within the documented tolerances of the readable lines.
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
    q_arr, k_arr, v_arr, batch, peak_qk, peak_v = check_qkv(q, k, v)
    n, m = q_arr.shape[-2], k_arr.shape[-2]
    shape = (*batch, n, m)  # the scores'
    s = 1.0 / math.sqrt(q_arr.shape[-1]) if scale is None else finite_real(scale, "scale")
    mask_arr = None
    if mask is not None:
        mask_arr = as_bool_mask(mask, "mask")
        broadcast_to_shape(mask_arr, shape, "mask", "scores")
    applied = _applied_mask(mask_arr, check_bool(is_causal, "is_causal"), shape)
    bias_arr = None if bias is None else _check_bias(bias, shape, q_arr.dtype, "scores")
    peak_b = bias_peak(bias_arr)  # one scan of the bias: for the guard and the kernel
    guard = may_overflow(score_bound(peak_qk, q_arr.shape[-1], s, peak_b), q_arr.dtype)
    output, weights = _attention(
        q_arr,
        k_arr,
        v_arr,
        shape,
        scale=s,
        mask=applied,
        bias=bias_arr,
        guard=guard,
        peak_v=peak_v,
        peak_b=peak_b,
    )
    return Attention(
        output=frozen(output),
        weights=frozen(weights),
        mask=kept(applied),
        scale=s,
        q=kept(q_arr),
        k=kept(k_arr),
        v=kept(v_arr),
        bias=kept(bias_arr),
        is_causal=bool(is_causal),
    )


def _check_bias(
    bias: ArrayLike, shape: tuple[int, ...], dtype: np.dtype[np.floating], target: str
) -> FloatArray:
    """``bias`` in ``dtype``, broadcastable to ``shape``, finite or ``-inf``; else an error."""
    given = as_float_array(bias, "bias")
    broadcast_to_shape(given, shape, "bias", target)
    check_finite(given, "bias", allow_neg_inf=True)
    with np.errstate(over="ignore"):
        arr: FloatArray = given.astype(dtype, copy=False)
    check_cast(given, arr, "bias")
    return arr


def _applied_mask(
    mask: BoolArray | None, is_causal: bool, shape: tuple[int, ...]
) -> BoolArray | None:
    """M = mask AND causal, broadcast to the scores' ``shape``; None when nothing is masked."""
    applied = None if mask is None else np.broadcast_to(mask, shape)
    if is_causal:
        triangle = causal_mask(shape[-2], shape[-1])  # (n, m)
        applied = np.broadcast_to(triangle, shape) if applied is None else applied & triangle
    return applied


#: Scores up to this many bytes go through the readable lines of :func:`_attention` as
#: written (64 KiB: every example of the book); larger ones through the kernel's chunks
#: (the same computation, arranged so that each chunk stays in cache).
_READABLE_BYTES = 1 << 16


def _attention(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    shape: tuple[int, ...],
    *,
    scale: float,
    mask: BoolArray | None,
    bias: FloatArray | None,
    guard: bool | None = None,
    peak_v: float | None = None,
    peak_b: float | None = None,
    own: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """Eq. 1 on checked arrays: ``(output, weights)`` in ``q``'s dtype.

    ``q`` (..., n, d_k), ``k`` (..., m, d_k) and ``v`` (..., m, d_v) share one dtype;
    ``shape`` is the scores' (..., n, m), mask and bias broadcast to it; ``guard`` says
    whether the scores may have overflowed and must be scanned (None: not known, the
    kernel decides); ``peak_v`` is ``max |v|`` (None: not known, the output is
    scanned); ``peak_b`` is the bias's largest finite ``|b|`` (None: the kernel scans it);
    ``own``: k and v are the package's own heads, in one layout, used as they are.
    """
    given = q.dtype
    dtype = working_dtype(given)  # float16 is computed in float32
    # Bounds known to fit: the scores, the softmax and the output cannot overflow
    proven = guard is False and peak_v is not None and not near_top(peak_v, given)
    if math.prod(shape) * dtype.itemsize > _READABLE_BYTES:
        output, weights = attention(  # the same computation, arranged for speed
            q, k, v, shape, scale=scale, mask=mask, bias=bias, guard=guard, peak_b=peak_b
        )
    else:
        # C order, or the package's own layout: the caller's layout changes no bit
        q_scaled, k = scaled_operands(q, k, scale, dtype, own_k=own)
        v = v if own and v.dtype == dtype else as_working(v)
        with silenced(proven):  # otherwise an overflow: the guard reports it
            # S = Q K^T / sqrt(d_k) + B                      (..., n, d_k) @ (..., d_k, m)
            scores = q_scaled @ np.swapaxes(k, -1, -2)
            if bias is not None:
                scores = scores + bias  # a new array: bias may broadcast it
            # P = softmax(S) over the keys; masked keys get 0  (..., n, m)
            weights = masked_softmax(scores, shape, mask, bias, guard=guard)
            # O = P V                                          (..., n, m) @ (..., m, d_v)
            output = weights @ v
    if peak_v is None or near_top(peak_v, given):  # O(n d_v): values near the float max
        within_values(output, v, given)
    return output.astype(given, copy=False), weights.astype(given, copy=False)


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
    bias: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
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
        "may attend". A torch-style ``(B, m)`` key mask is not this: when ``B == n`` it
        would be read as an ``(n, m)`` mask. For padding, pass ``lengths``.
    is_causal : bool, optional
        Apply the causal mask, AND-ed with ``mask``.
    bias : (..., h, n, m) array_like, optional
        Added to each head's scaled scores (ALiBi, relative positions), broadcast as
        :func:`scaled_dot_product_attention`'s ``bias``: ``(h, n, m)`` is one bias per
        head, ``(n, m)`` or ``(..., 1, n, m)`` one for every head. May hold ``-inf``.
    lengths : (...) array_like of int, optional
        The number of real (not padding) keys of each sequence, one per batch entry of
        ``x`` (of the context for cross-attention): keys ``lengths[b] ..`` are masked,
        AND-ed with ``mask`` (:func:`padding_mask`, broadcast for you).

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
    those of :func:`scaled_dot_product_attention`. Overflow is looked for only where it
    is possible: from :math:`\max|x|` (found by the check that :math:`x` is finite) and
    the largest entry of the parameters, :math:`|q|, |k|, |v| \le d_{model} \max|x|
    \max|W| + \max|b|`, each score by :math:`d_k \max|q| \max|k|` scaled, and each row
    of a head's output is a weighted average of rows of :math:`v`. Where these bounds
    (twice each, for the rounding) are below half the largest float, nothing can
    overflow, and neither the projections nor the scores are scanned.

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
    x_arr, keys, source, h, h_kv, applied, batch, peak_x, peak_c = _check_multi_head(
        x, params, n_heads, n_kv_heads, context, mask, is_causal, lengths
    )
    n, m = x_arr.shape[-2], keys.shape[-2]
    g = h // h_kv
    bias_arr = (
        None
        if bias is None
        else _check_bias(bias, (*batch, h, n, m), x_arr.dtype, "the scores (..., h, n, m)")
    )
    # Bounds of |q|, |k| and |v| (Cauchy-Schwarz, from max|x|, max|context|, max|params|):
    # where they fit the dtype, no overflow is possible and no result needs a scan.
    peak_p, d_model = params._max_abs(), x_arr.shape[-1]
    bound_q = linear_bound(d_model, peak_x, peak_p, peak_p)
    bound_kv = linear_bound(d_model, peak_c, peak_p, peak_p)
    # Q = X W_Q + b_Q;  K = C W_K + b_K,  V = C W_V + b_V with C = X or the context
    # (..., n, h d_k), (..., m, h_kv d_k), (..., m, h_kv d_v)
    q = affine(x_arr, params.w_q, params.b_q, "q = x @ w_q + b_q", bound=bound_q)
    k = affine(keys, params.w_k, params.b_k, f"k = {source} @ w_k + b_k", bound=bound_kv)
    v = affine(keys, params.w_v, params.b_v, f"v = {source} @ w_v + b_v", bound=bound_kv)
    # Each head a view: the heads of q, k, v (and so the products) have one layout
    # whatever x's (x is made C-contiguous for the projections); q is copied once, scaled.
    q_heads = split_heads(q, h)  # (..., n, h d_k) -> (..., h, n, d_k)
    k_heads = split_heads(k, h_kv)  # -> (..., h_kv, m, d_k)
    v_heads = split_heads(v, h_kv)  # -> (..., h_kv, m, d_v)
    # Query head i = j g + r uses key/value head j: group the query heads, broadcast k, v.
    d_k, d_v = q_heads.shape[-1], v_heads.shape[-1]
    q_grouped = q_heads.reshape(*q_heads.shape[:-3], h_kv, g, n, d_k)  # (..., h_kv, g, n, d_k)
    grouped_shape = (*batch, h_kv, g, n, m)  # the scores', every head
    scale = 1.0 / math.sqrt(d_k)
    peak_b = bias_peak(bias_arr)
    # head_i = Attention(Q_i, K_g(i), V_g(i))   (Eq. 1, every head at once)
    outputs, weights = _attention(
        q_grouped,
        k_heads[..., :, None, :, :],  # (..., h_kv, 1, m, d_k)
        v_heads[..., :, None, :, :],  # (..., h_kv, 1, m, d_v)
        grouped_shape,
        scale=scale,
        mask=None if applied is None else applied[..., None, None, :, :],
        bias=None if bias_arr is None else _grouped_bias(bias_arr, grouped_shape),
        guard=may_overflow(score_bound(bound_q * bound_kv, d_k, scale, peak_b), x_arr.dtype),
        peak_v=bound_kv,
        peak_b=peak_b,
        own=True,
    )
    head_outputs = outputs.reshape(*batch, h, n, d_v)  # (..., h_kv, g, n, d_v) -> (..., h, n, d_v)
    merged = frozen(merge_heads(head_outputs))  # (..., h, n, d_v) -> (..., n, h d_v), a copy
    # MultiHead = Concat(head_1, ..., head_h) W_O + b_O
    output = merged
    if params.w_o is not None:  # |merged| <= 2 max|v|: each row a weighted average of v's
        bound_o = linear_bound(h * d_v, 2.0 * bound_kv, peak_p, peak_p)
        what = "output = concat(heads) @ w_o + b_o"
        output = affine(merged, params.w_o, params.b_o, what, bound=bound_o)
    result = ProjectedAttention(
        output=frozen(np.ascontiguousarray(output)),
        weights=frozen(weights.reshape(*batch, h, n, m)),  # (..., h_kv, g, n, m) -> (..., h, n, m)
        q=frozen(q_heads),
        k=frozen(k_heads),
        v=frozen(v_heads),
        head_outputs=split_heads(merged, h),  # a view of merged: the backward pass needs both
        mask=kept(applied),
        scale=scale,
        x=kept(x_arr),
        params=params,
        n_heads=h,
        n_kv_heads=h_kv,
        context=None if source == "x" else kept(keys),
        has_head_axis=True,
        bias=kept(bias_arr),
    )
    object.__setattr__(result, "_bounds", (bound_q, bound_kv, peak_x, peak_c))  # attention_vjp
    return result


def _grouped_bias(bias: FloatArray, grouped_shape: tuple[int, ...]) -> FloatArray:
    """``(..., h, n, m)`` -> ``(..., h_kv, g, n, m)``: head i = j g + r, as the queries."""
    *batch, h_kv, g, n, m = grouped_shape
    full = np.broadcast_to(bias, (*batch, h_kv * g, n, m))
    grouped: FloatArray = full.reshape(*batch, h_kv, g, n, m)  # a view unless broadcast
    return grouped


def _check_multi_head(
    x: ArrayLike,
    params: AttentionParams,
    n_heads: int,
    n_kv_heads: int | None,
    context: ArrayLike | None,
    mask: ArrayLike | None,
    is_causal: bool,
    lengths: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray, str, int, int, BoolArray | None, tuple[int, ...], float, float]:
    """The checks of :func:`multi_head_attention`, once.

    Returns ``x``, the rows keys and values come from (``x`` or the context) and the
    name to quote for them, the head counts, the applied mask (mask AND causal)
    broadcast to the scores (..., n, m), the batch shape ``...``, and ``max |x|`` and
    ``max |keys|`` (found by their finiteness checks).
    """
    check_instance(params, AttentionParams, "params")
    h = positive_int(n_heads, "n_heads")
    h_kv = h if n_kv_heads is None else positive_int(n_kv_heads, "n_kv_heads")
    _check_heads(params, h, h_kv)
    x_arr, peak_x = check_embeddings(x, "x", params.w_q)  # (..., n, d_model)
    c_arr, peak_c = (
        (None, peak_x) if context is None else check_embeddings(context, "context", params.w_q)
    )
    # Errors about the keys quote the user's shapes, not the grouped (..., h_kv, g, m, d).
    source, keys = ("x", x_arr) if c_arr is None else ("context", c_arr)
    if keys.shape[-2] == 0:
        msg = f"attention needs at least one key (m = 0): {source} {keys.shape}"
        raise ValueError(msg)
    batch = x_arr.shape[:-2]
    if c_arr is not None:
        try:
            batch = np.broadcast_shapes(x_arr.shape[:-2], keys.shape[:-2])
        except ValueError:
            msg = (
                "the batch dimensions of x and context do not broadcast: "
                f"x {x_arr.shape}, context {keys.shape}"
            )
            raise ValueError(msg) from None
    n, m = x_arr.shape[-2], keys.shape[-2]
    mask_arr = None
    if mask is not None:
        mask_arr = as_bool_mask(mask, "mask")
        at_least_ndim(mask_arr, 2, "mask", "(..., n, m)")
        try:
            broadcast_to_shape(mask_arr, (*batch, n, m), "mask", "scores (..., n, m)")
        except ValueError as exc:  # quotes the caller's shapes, not the per-head ones
            if h == 1:
                raise
            msg = f"{exc}; one mask serves every head (it has no head axis)"
            raise ValueError(msg) from None
    if lengths is not None:
        padding = _key_padding(lengths, keys.shape[:-2], m)  # (..., 1, m)
        mask_arr = padding if mask_arr is None else mask_arr & padding
    applied = _applied_mask(mask_arr, check_bool(is_causal, "is_causal"), (*batch, n, m))
    return x_arr, keys, source, h, h_kv, applied, batch, peak_x, peak_c


def _key_padding(lengths: ArrayLike, batch: tuple[int, ...], m: int) -> BoolArray:
    """``(..., 1, m)``: key ``j`` of sequence ``b`` is real when ``j < lengths[b]``."""
    arr = as_int_array(lengths, "lengths")
    if arr.shape != batch:
        msg = (
            f"lengths must have one entry per sequence, the batch shape {batch} of the keys' "
            f"source, got shape {arr.shape}"
        )
        raise ValueError(msg)
    if ((arr < 0) | (arr > m)).any():
        msg = f"lengths must lie in 0 .. m = {m}, got {arr.tolist()}"
        raise ValueError(msg)
    mask: BoolArray = np.arange(m) < arr[..., None, None]  # (..., 1, m)
    return mask


def _check_heads(params: AttentionParams, h: int, h_kv: int) -> None:
    """Raise ValueError unless the projection widths split into the heads asked for."""
    if h % h_kv:
        msg = f"n_kv_heads must divide n_heads: n_heads {h}, n_kv_heads {h_kv}"
        raise ValueError(msg)
    for name, w, heads in (
        ("w_q", params.w_q, h),
        ("w_k", params.w_k, h_kv),
        ("w_v", params.w_v, h_kv),
    ):
        if w.shape[-1] % heads:
            msg = (
                f"{name} has {w.shape[-1]} columns, not divisible into {heads} heads "
                f"({'n_heads' if name == 'w_q' else 'n_kv_heads'})"
            )
            raise ValueError(msg)
    if params.w_q.shape[-1] // h != params.w_k.shape[-1] // h_kv:
        msg = (
            f"query and key heads must have the same size d_k: w_q {params.w_q.shape} with "
            f"n_heads {h}, w_k {params.w_k.shape} with n_kv_heads {h_kv}"
        )
        raise ValueError(msg)


def self_attention(
    x: ArrayLike,
    params: AttentionParams,
    /,
    *,
    mask: ArrayLike | None = None,
    is_causal: bool = False,
    bias: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
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
    bias : (..., n, n) array_like, optional
        Added to the scaled scores, as in :func:`scaled_dot_product_attention`.
    lengths : (...) array_like of int, optional
        The number of real (not padding) tokens of each sequence of the batch: the
        padded keys are masked (see :func:`multi_head_attention`).

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
    x_arr, _, _, _, _, applied, batch, _, _ = _check_multi_head(
        x, params, 1, None, None, mask, is_causal, lengths
    )
    n = x_arr.shape[-2]
    bias_arr = None if bias is None else _check_bias(bias, (*batch, n, n), x_arr.dtype, "scores")
    # Q = X W_Q + b_Q,  K = X W_K + b_K,  V = X W_V + b_V
    q = affine(x_arr, params.w_q, params.b_q, "q = x @ w_q + b_q")  # (..., n, d_k)
    k = affine(x_arr, params.w_k, params.b_k, "k = x @ w_k + b_k")  # (..., n, d_k)
    v = affine(x_arr, params.w_v, params.b_v, "v = x @ w_v + b_v")  # (..., n, d_v)
    scale = 1.0 / math.sqrt(q.shape[-1])
    # head = softmax(Q K^T / sqrt(d_k)) V   (Eq. 1)
    head, weights = _attention(q, k, v, (*batch, n, n), scale=scale, mask=applied, bias=bias_arr)
    # output = head W_O + b_O, when the parameters have an output projection
    output = head
    if params.w_o is not None:
        output = affine(head, params.w_o, params.b_o, "output = head @ w_o + b_o")
    return ProjectedAttention(
        output=frozen(output),
        weights=frozen(weights),
        q=frozen(q),
        k=frozen(k),
        v=frozen(v),
        head_outputs=head,  # (..., n, d_v): the output before w_o
        mask=kept(applied),
        scale=scale,
        x=kept(x_arr),
        params=params,
        n_heads=1,
        n_kv_heads=1,
        context=None,
        has_head_axis=False,
        bias=kept(bias_arr),
    )
