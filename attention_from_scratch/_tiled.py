r"""Tiled attention: the output of Eq. 1 in :math:`O(n)` memory, by online softmax (private).

:func:`tiled_attention` is re-exported by :mod:`attention_from_scratch.self_attention`
and imported from there. It computes what
:func:`~attention_from_scratch.self_attention.scaled_dot_product_attention` computes,
without ever holding the :math:`n \times m` matrix of scores: the keys go a block at a
time through a softmax whose running maximum and running sum are corrected as each
block arrives :cite:p:`milakov2018online,dao2022flashattention`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from attention_from_scratch._checks import (
    FloatArray,
    as_working,
    check_bool,
    check_qkv,
    finite_real,
    largest,
    positive_int,
    working_dtype,
)
from attention_from_scratch._kernel import (
    check_overflow,
    may_overflow,
    near_top,
    run_large,
    scaled_operands,
    score_bound,
    short_buffers,
    within_values,
)

__all__ = ["tiled_attention"]


def _online_softmax_block(
    q_i: FloatArray,
    k_t: FloatArray,
    v: FloatArray,
    i: int,
    block: int,
    is_causal: bool,
    guard: bool,
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
        b_k = scores.shape[-1]
        above = None  # (b_q, b_k): keys after their query, never attended
        if is_causal and j + b_k - 1 > i:  # the block crosses the diagonal: key > query
            above = np.arange(b_k)[None, :] - np.arange(b_q)[:, None] > i - j
        if guard:  # only the entries that may be attended: as dense, for every block size
            check_overflow(scores, None, None if above is None else ~above)
        if above is not None:
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
    q_arr, k_arr, v_arr, batch, peak_qk, peak_v = check_qkv(q, k, v)
    block = positive_int(block_size, "block_size")
    is_causal = check_bool(is_causal, "is_causal")
    n, m = q_arr.shape[-2], k_arr.shape[-2]
    d_k, d_v = q_arr.shape[-1], v_arr.shape[-1]
    s = 1.0 / math.sqrt(d_k) if scale is None else finite_real(scale, "scale")
    dtype = working_dtype(q_arr.dtype)
    guard = may_overflow(score_bound(peak_qk, d_k, s, 0.0), dtype)

    # C-contiguous operands (see scaled_dot_product_attention): layout changes no bit
    q_scaled, k_w = scaled_operands(q_arr, k_arr, s, dtype)  # q * scale, or k * scale
    q_scaled = np.broadcast_to(q_scaled, (*batch, n, d_k))  # every block of scores: (*batch, .)
    k_t = np.swapaxes(k_w, -1, -2)  # (..., d_k, m), a view of a C-order array
    v_w = as_working(v_arr)  # (..., m, d_v)
    # o = sum_j e^(s_j - m) v_j reaches m max|v|: near the top of the range accumulate
    # o / l instead (see _online_softmax_block)
    normalised = peak_v >= largest(dtype) / (4 * m)
    output = np.empty((*batch, n, d_v), dtype=dtype)  # (..., n, d_v)
    # Even blocks, then odd ones: with the causal mask the later blocks see more keys,
    # and cut in two (for two threads) each half then holds a fair share of the work.
    starts = [*range(0, n, 2 * block), *range(block, n, 2 * block)]

    def blocks(first: int, last: int) -> None:
        with np.errstate():  # restores numpy's buffer size on the way out
            short_buffers(min(block, m))  # rows of scores, broadcast against (b_q, 1)
            for i in starts[first:last]:  # a block of queries i .. i + b_q - 1
                output[..., i : i + block, :] = _online_softmax_block(
                    q_scaled[..., i : i + block, :],
                    k_t,
                    v_w,
                    i,
                    block,
                    is_causal,
                    guard,
                    normalised,
                )

    # The blocks of queries are independent: on every core when the scores they compute
    # in turn would be large (the result is the same, bit for bit, on any number).
    run_large(blocks, len(starts), math.prod((*batch, n, m)) * dtype.itemsize)
    if near_top(peak_v, q_arr.dtype):  # O(n d_v), only for values near the largest float
        within_values(output, np.broadcast_to(v_w, (*batch, m, d_v)), q_arr.dtype)
    return output.astype(q_arr.dtype, copy=False)
