r"""The backward pass of attention: the gradients that train it (private module).

:func:`attention_vjp` is re-exported by :mod:`attention_from_scratch.self_attention`
and imported from there, with the :class:`AttentionGrads` it returns. It reads the
results of :mod:`attention_from_scratch._results`, below both modules.

Training a model means nudging every weight against the gradient of a loss. A loss
depends on attention only through its output :math:`O`, so what a training loop
hands to attention is :math:`dO = \partial L / \partial O`, and what it needs back
are the gradients with respect to everything attention read: the queries, keys and
values, and, through the projections, the embeddings and the weights. That map
:math:`dO \mapsto (dQ, dK, dV, \dots)` is the *vector-Jacobian product* (VJP) of
attention: the chain rule applied to the forward pass of
:cite:t:`vaswani2017attention` (§3.2.1, Eq. 1) one step at a time, from the last
step back to the first (the formulas of :cite:t:`dao2022flashattention`, Appendix
B.2)::

    forward                              backward
    S = scale * Q K^T + B                dQ = scale * dS K,  dK = scale * dS^T Q,  dB = dS
    P = softmax(S, where=M)              dS = P * (dP - rowsum(dP * P))
    O = P V                              dP = dO V^T,  dV = P^T dO

The softmax step is :func:`~attention_from_scratch.softmax.softmax_vjp`: a masked
entry has :math:`P_{ij} = 0`, so its :math:`dS_{ij}` is exactly 0, and a query that
may attend to nothing gets gradients that are exactly 0, never NaN.
"""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike

from attention_from_scratch._checks import (
    BoolArray,
    FloatArray,
    all_finite,
    arrays_finite,
    as_float_array,
    every_finite,
    fits,
    frozen,
    overflow_advice,
    peak,
    silenced,
    sum_bound,
    working_dtype,
)
from attention_from_scratch._kernel import (
    masked_softmax,
    matmul_rows,
    ones,
    softmax_vjp_rescaled,
    sum_along,
)
from attention_from_scratch._results import (
    Attention,
    AttentionGrads,
    ProjectedAttention,
    ProjectedGrads,
)
from attention_from_scratch.projections import AttentionParams

__all__ = ["AttentionGrads", "attention_vjp"]

#: The arrays of an :class:`AttentionParams`, weights and biases.
_PARAM_FIELDS = ("w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")


def _sum_to(arr: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Sum ``arr`` over the axes along which an array of ``shape`` was broadcast to it."""
    if arr.shape == shape:  # nothing was broadcast
        return arr
    lead = arr.ndim - len(shape)
    stretched = (
        lead + i for i, size in enumerate(shape) if size == 1 and arr.shape[lead + i] != 1
    )
    axes = (*range(lead), *stretched)
    if axes:
        arr = np.sum(arr, axis=axes, keepdims=True)
    return arr.reshape(shape)


def _merge(heads: FloatArray) -> FloatArray:
    """``(..., h, n, d) -> (..., n, h*d)``: the head blocks side by side (no validation)."""
    *batch, h, n, d = heads.shape
    merged: FloatArray = np.swapaxes(heads, -3, -2).reshape(*batch, n, h * d)
    return merged


def _rows(arr: FloatArray) -> FloatArray:
    """``(..., r, c) -> (N, c)``: every row of every batch entry, stacked."""
    flat: FloatArray = arr.reshape(-1, arr.shape[-1])
    return flat


def _column_sums(arr: FloatArray) -> FloatArray:
    """``(..., c) -> (c,)``: the sum over every row of every batch entry, ``1^T A``."""
    rows = _rows(arr)  # (N, c)
    total: FloatArray = ones(len(rows), rows.dtype) @ rows
    return total


def _all_finished(
    arrays: dict[str, FloatArray | None], dtype: np.dtype[Any], *, proven: bool = False
) -> dict[str, FloatArray]:
    """:func:`_finished` of every array present (read-only), decided by one test of them all.

    :func:`~attention_from_scratch._checks.arrays_finite` tests them together; only when
    it fails is each array tested, and the first that overflowed is reported by name.
    Arrays that are None are left out. ``proven``: a bound (:func:`_backward_bound`)
    has shown them finite, and they are not tested.
    """
    out = {
        name: arr.astype(dtype, order="C", copy=False)
        for name, arr in arrays.items()
        if arr is not None
    }
    if not proven and not arrays_finite(list(out.values())):
        for name, arr in out.items():
            _finished(arr, dtype, name)
    return {name: frozen(arr) for name, arr in out.items()}  # results: read-only


def _finished(
    arr: FloatArray, dtype: np.dtype[Any], name: str, *, proven: bool = False
) -> FloatArray:
    """``arr`` in the result's dtype, read-only; FloatingPointError if it overflowed (float16).

    ``arr`` is a gradient this module has just computed: made read-only in place, as
    every array of a returned result is. ``proven``: known finite, not tested.
    """
    out: FloatArray = arr.astype(dtype, order="C", copy=False)
    if not proven and not every_finite(out):
        msg = (
            f"the gradient with respect to {name} overflowed {dtype}; "
            f"{overflow_advice(dtype, 'rescale the loss')}"
        )
        raise FloatingPointError(msg)
    return frozen(out)


def _probabilities(
    stored: FloatArray,
    q: FloatArray,
    k: FloatArray,
    scale: float,
    mask: BoolArray | None,
    bias: FloatArray | None,
) -> FloatArray:
    """The weights P in the working dtype of ``q`` (already converted).

    float32 and float64 results stored P exactly as computed. A float16 result stored
    P rounded to float16; it is recomputed in float32 from ``q`` and ``k``, as the
    forward pass did, so the backward pass does not inherit that rounding.
    """
    if stored.dtype == q.dtype:
        return stored
    scores = np.matmul(q * q.dtype.type(scale), np.swapaxes(k, -1, -2))  # (..., n, m)
    if bias is not None:
        scores = scores + bias.astype(q.dtype)  # + B
    return masked_softmax(scores, stored.shape, mask, bias, guard=None)


def _attention_backward(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    p: FloatArray,
    scale: float,
    d_out: FloatArray,
    *,
    proven: bool = False,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """dQ, dK, dV, dS of ``O = softmax(scale Q K^T + B) V`` for the upstream gradient dO.

    All arrays are in one working dtype; ``p`` and ``d_out`` have the full broadcast
    batch shape, and so do the returned gradients (not yet summed back to the shapes
    of ``q``, ``k``, ``v``). Runs inside :func:`attention_vjp`'s ``np.errstate``: an
    overflow gives ``inf``, reported as :class:`FloatingPointError`. ``proven``: a
    bound (:func:`_backward_bound`) has shown that nothing overflows: dP and dS are
    not scanned.
    """
    # dV = P^T dO
    d_v = np.matmul(np.swapaxes(p, -1, -2), d_out)  # (..., m, n) @ (..., n, d_v)
    # dP = dO V^T
    d_p = np.matmul(d_out, np.swapaxes(v, -1, -2))  # (..., n, d_v) @ (..., d_v, m)
    if not proven and not all_finite(d_p):
        msg = (
            f"the gradient with respect to the weights overflowed {d_p.dtype}; "
            f"{overflow_advice(d_p.dtype, 'rescale the loss')}"
        )
        raise FloatingPointError(msg)
    # dS = P * (dP - rowsum(dP * P)): 0 where P is 0 (masked keys, empty rows)
    row = sum_along(d_p * p, -1)  # (..., n, 1)
    d_s = np.subtract(d_p, row)  # (..., n, m), a new array: dP is kept for the check below
    d_s *= p  # in place: the same bits as p * (d_p - row), one temporary fewer
    if not proven and not all_finite(d_s):  # |dP| near the largest float: rescaled rows
        d_s = softmax_vjp_rescaled(p, d_p, -1)
    # dQ = scale dS K,  dK = scale dS^T Q (scaled in place)
    d_q = np.matmul(d_s, k)  # (..., n, m) @ (..., m, d_k) -> (..., n, d_k)
    d_q *= scale
    d_k = np.matmul(np.swapaxes(d_s, -1, -2), q)  # (..., m, n) @ (..., n, d_k)
    d_k *= scale
    return d_q, d_k, d_v, d_s


def _grad_output(grad_output: object, output: FloatArray) -> tuple[FloatArray, float]:
    """Validate ``grad_output`` against the result's ``output``; return it and ``max |it|``."""
    grad = as_float_array(grad_output, "grad_output")
    if grad.shape != output.shape:
        msg = (
            "grad_output must have the shape of result.output: "
            f"grad_output {grad.shape}, output {output.shape}"
        )
        raise ValueError(msg)
    if grad.dtype != output.dtype:
        msg = (
            "grad_output must have the dtype of result.output: "
            f"grad_output {grad.dtype}, output {output.dtype}"
        )
        raise TypeError(msg)
    return grad, peak(grad, "grad_output")


@overload
def attention_vjp(result: ProjectedAttention, grad_output: ArrayLike, /) -> ProjectedGrads: ...
@overload
def attention_vjp(result: Attention, grad_output: ArrayLike, /) -> AttentionGrads: ...


def attention_vjp(
    result: Attention | ProjectedAttention, grad_output: ArrayLike, /
) -> AttentionGrads:
    r"""The backward pass of attention: gradients of a loss from the gradient of its output.

    Given a result of attention and the gradient ``grad_output`` of a loss with
    respect to its ``output``, returns the gradients with respect to the queries,
    keys and values and, for a result of
    :func:`~attention_from_scratch.self_attention.self_attention` or
    :func:`~attention_from_scratch.self_attention.multi_head_attention`, with respect
    to the embeddings ``x`` (and ``context``) and every weight and bias. This is what
    a training loop calls after computing the loss: the vector-Jacobian product (VJP)
    of the forward pass, without forming any Jacobian.

    Parameters
    ----------
    result : Attention or ProjectedAttention
        A result of ``scaled_dot_product_attention`` (any mask, bias, causal flag,
        scale and batch shape), ``self_attention`` or ``multi_head_attention``
        (several heads, grouped-query attention, cross-attention, biases, ``w_o``).
    grad_output : array_like
        :math:`dO = \partial L / \partial O`: the shape and dtype of
        ``result.output``; finite. Integers are converted to ``float64`` first.

    Returns
    -------
    AttentionGrads
        ``q``, ``k``, ``v`` always, in the shapes of ``result.q``, ``result.k``,
        ``result.v``; ``bias`` when the result has one; ``x``, ``context`` (for
        cross-attention) and ``params`` for projected results. Every array has the
        result's dtype (float16 is computed in float32).

    Raises
    ------
    TypeError
        If ``result`` is not an attention result, or ``grad_output`` is not a real
        array of ``result.output``'s dtype.
    ValueError
        If ``grad_output``'s shape differs from ``result.output``'s (the message
        quotes both) or it holds NaN or infinity.
    FloatingPointError
        If a gradient overflows the dtype (float16 or float32 gradients beyond its
        range).

    See Also
    --------
    attention_from_scratch.softmax.softmax_vjp : The softmax step of the backward pass.
    scaled_dot_product_attention, multi_head_attention

    Notes
    -----
    In code, ``dv = p.T @ do; dp = do @ v.T; ds = softmax_vjp(p, dp);
    dq = scale * ds @ k; dk = scale * ds.T @ q``. The forward pass is
    :math:`S = s\,Q K^\top + B`, :math:`P = \operatorname{softmax}(S)` row by row
    (masked entries 0), :math:`O = P V`. The chain rule read backwards, one step at a
    time :cite:p:`dao2022flashattention`:

    .. math::

       dV = P^\top dO, \qquad dP = dO\, V^\top, \qquad
       dS = P \circ \bigl(dP - \operatorname{rowsum}(dP \circ P)\,\mathbf{1}^\top\bigr),

       dQ = s\, dS\, K, \qquad dK = s\, dS^\top Q, \qquad dB = dS .

    The softmax step comes from :math:`\partial P_{ij} / \partial S_{il} = P_{ij}
    (\delta_{jl} - P_{il})`; it is
    :func:`~attention_from_scratch.softmax.softmax_vjp`. For the projected results,
    :math:`Q = X W_Q + \mathbf{1} b_Q^\top` (and :math:`K`, :math:`V` from :math:`X` or
    the context :math:`C`) and :math:`Y = \operatorname{Concat}(O_1, \dots, O_h) W_O +
    \mathbf{1} b_O^\top`, so

    .. math::

       dW_O = \operatorname{Concat}(O)^\top dY, \quad db_O = dY^\top \mathbf{1}, \quad
       d\operatorname{Concat}(O) = dY\, W_O^\top,

       dW_Q = X^\top dQ, \quad db_Q = dQ^\top \mathbf{1}, \quad
       dX = dQ\, W_Q^\top + dK\, W_K^\top + dV\, W_V^\top ,

    with the last two terms going to :math:`dC` in cross-attention, the rows of every
    batch entry stacked, and the key/value head of a group of query heads receiving
    the sum of their gradients (grouped-query attention, :cite:t:`ainslie2023gqa`).

    FlashAttention computes the row sum of the softmax step as
    :math:`\operatorname{rowsum}(dO \circ O)`, equal since :math:`O = PV`, so that it
    need not keep :math:`P`; this package keeps :math:`P` in the result and uses it.

    Numerically: a masked key has :math:`P_{ij} = 0` exactly, so its :math:`dS_{ij}`
    is exactly 0 and a query that may attend to nothing gets gradients of exactly 0,
    never NaN; ``-inf`` in ``bias`` behaves the same. The backward pass only multiplies
    and adds finite numbers (no exponential, no division), in the working dtype: a
    float16 result's weights are recomputed in float32 by the forward pass's stable
    softmax rather than read back rounded, and a gradient too large for the result's
    dtype raises instead of becoming ``inf``. For a result of
    :func:`multi_head_attention`, whether one can be too large is decided first: the
    bounds of :math:`|q|, |k|, |v|` the forward pass proved, :math:`\max|dY|` (found by
    the check that ``grad_output`` is finite), :math:`P \le 1` and the number of terms
    of each product bound every gradient above; where all fit the dtype, none is
    scanned. When :math:`P` is one-hot,
    :math:`dS = 0`: a saturated softmax passes back no gradient, the reason for the
    :math:`1/\sqrt{d_k}` scale :cite:p:`vaswani2017attention`.

    References
    ----------
    :cite:t:`dao2022flashattention`, Appendix B.2 (the standard attention backward
    pass); :cite:t:`vaswani2017attention`, §3.2.1.

    Examples
    --------
    The running example, with the loss ``L = sum(output[2])``: the colour plus texture
    that *creature* receives, :math:`1 - P_{\text{creature},\text{creature}}`.

    >>> import numpy as np
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> from attention_from_scratch.self_attention import attention_vjp, self_attention
    >>> ex = fluffy_blue_creature()
    >>> result = self_attention(ex.x, ex.params)
    >>> grad_output = np.zeros((3, 4))
    >>> grad_output[2] = 1.0  # dL/dO: ones on creature's row
    >>> grads = attention_vjp(result, grad_output)
    >>> print(np.round(grads.q, 4) + 0.0)  # only creature's query matters
    [[0.     0.     0.     0.    ]
     [0.     0.     0.     0.    ]
     [0.0358 0.0223 0.     0.    ]]
    >>> print(np.round(grads.params.w_q[0], 4) + 0.0)  # the noun row of W_Q: seek more
    [0.0358 0.0223 0.     0.    ]
    """
    given: object = result  # typed, but callers may pass anything
    if isinstance(given, ProjectedAttention | Attention):
        grad, peak_g = _grad_output(grad_output, given.output)
        # Proven by a bound, nothing overflows; otherwise an overflow gives inf here
        # silently, and _finished reports it as FloatingPointError.
        if isinstance(given, ProjectedAttention):
            proven = fits(_backward_bound(given, peak_g), given.output.dtype)
            with silenced(proven):
                return _projected_vjp(given, grad, proven=proven)
        with silenced():
            return _plain_vjp(given, grad)
    msg = (
        "result must be an Attention or ProjectedAttention (a result of "
        f"scaled_dot_product_attention, self_attention or multi_head_attention), "
        f"got {type(given).__name__}"
    )
    raise TypeError(msg)


def _plain_vjp(result: Attention, grad: FloatArray) -> AttentionGrads:
    """The VJP of a :func:`scaled_dot_product_attention` result."""
    dtype = result.output.dtype
    work = working_dtype(dtype)
    q = result.q.astype(work, copy=False)  # (..., n, d_k)
    k = result.k.astype(work, copy=False)  # (..., m, d_k)
    v = result.v.astype(work, copy=False)  # (..., m, d_v)
    p = _probabilities(result.weights, q, k, result.scale, result.mask, result.bias)
    d_q, d_k, d_v, d_s = _attention_backward(
        q, k, v, p, result.scale, grad.astype(work, copy=False)
    )
    d_bias = None
    if result.bias is not None:
        d_bias = _finished(_sum_to(d_s, result.bias.shape), dtype, "bias")  # dB = dS
    return AttentionGrads(
        q=_finished(_sum_to(d_q, result.q.shape), dtype, "q"),
        k=_finished(_sum_to(d_k, result.k.shape), dtype, "k"),
        v=_finished(_sum_to(d_v, result.v.shape), dtype, "v"),
        bias=d_bias,
    )


def _backward_bound(result: ProjectedAttention, peak_g: float) -> float:
    """A bound of every array :func:`_projected_vjp` computes, from ``max |grad_output|``.

    From the bounds of ``|q|``, ``|k|``, ``|v|`` that :func:`multi_head_attention`
    proved, ``max |x|``, ``max |context|`` and ``max |params|``, each product bounded by
    :func:`~attention_from_scratch._checks.sum_bound` (its number of terms times the
    bounds of its factors, rounding included), the weights by 1; ``inf`` (nothing
    proven) for a result that did not keep them.
    """
    if result._bounds is None:
        return math.inf
    bound_q, bound_kv, peak_x, peak_c = result._bounds
    params = result.params
    peak_p = params._max_abs()
    h, h_kv = result.n_heads, result.n_kv_heads
    g = h // h_kv
    *batch, _, n, m = result.weights.shape  # (..., h, n, m): every batch axis broadcast
    rows_x, rows_c = math.prod(batch) * n, math.prod(batch) * m  # N, M: the rows summed over
    width_k, width_v = result.q.shape[-1], result.v.shape[-1]  # d_k, d_v
    scale = abs(result.scale)
    bounds = [peak_g]
    d_o = peak_g  # dO: dY, or dY W_O^T
    if params.w_o is not None:
        merged = 2.0 * bound_kv  # each row of each head a weighted average of v's rows
        bounds += [sum_bound(rows_x, merged, peak_g), sum_bound(rows_x, peak_g)]  # dW_O, db_O
        d_o = sum_bound(params.w_o.shape[1], peak_g, peak_p)
    d_p = sum_bound(width_v, d_o, bound_kv)  # dP = dO V^T
    d_s = 2.0 * (d_p + sum_bound(m, d_p, 1.0))  # dS = P (dP - rowsum(dP P)), P <= 1
    d_q = 2.0 * scale * sum_bound(m, d_s, bound_kv)  # scale dS K
    d_k = sum_bound(g, 2.0 * scale * sum_bound(n, d_s, bound_q))  # scale dS^T Q, the group summed
    d_vv = sum_bound(g, sum_bound(n, 1.0, d_o))  # P^T dO, the group summed
    d_kv = max(d_k, d_vv)
    d_c = 2.0 * (sum_bound(h_kv * width_k, d_k, peak_p) + sum_bound(h_kv * width_v, d_vv, peak_p))
    d_x = sum_bound(h * width_k, d_q, peak_p)  # dQ W_Q^T
    if result.context is None:
        d_x = 2.0 * (d_x + d_c)  # + dK W_K^T + dV W_V^T
    bounds += [d_p, d_s, d_q, d_kv, d_c, d_x]
    bounds += [sum_bound(rows_x, peak_x, d_q), sum_bound(rows_c, peak_c, d_kv)]  # dW_Q, K, V
    bounds += [sum_bound(rows_x, d_q), sum_bound(rows_c, d_kv)]  # db_Q, db_K, db_V
    if result.bias is not None:  # dB: dS summed over what the bias was broadcast along
        bounds.append(sum_bound(result.weights.size, d_s))
    return math.inf if any(math.isnan(b) for b in bounds) else max(bounds)  # inf * 0: unknown


def _projected_vjp(
    result: ProjectedAttention, grad: FloatArray, *, proven: bool = False
) -> ProjectedGrads:
    """The VJP of a :func:`self_attention` or :func:`multi_head_attention` result.

    ``proven``: :func:`_backward_bound` fits the dtype, and no gradient is scanned.
    """
    dtype = result.output.dtype
    work = working_dtype(dtype)
    params = result.params

    q, k, v = (
        result.with_head_axis(a).astype(work, copy=False) for a in (result.q, result.k, result.v)
    )
    weights = result.with_head_axis(result.weights)  # (..., h, n, m), in the result's dtype
    h, h_kv = result.n_heads, result.n_kv_heads
    g = h // h_kv  # query heads per key/value head
    *batch, _, n, m = weights.shape
    d_y = grad.astype(work, copy=False)  # (..., n, d_out)

    # Output projection Y = Concat(O) W_O + b_O:  dW_O = Concat^T dY, dConcat = dY W_O^T
    d_w_o = d_b_o = None
    if params.w_o is None:
        d_merged = d_y  # (..., n, h d_v)
    else:
        merged = _merge(
            result.with_head_axis(result.head_outputs).astype(work, copy=False)
        )  # (..., n, h d_v)
        d_w_o = _rows(merged).T @ _rows(d_y)  # (h d_v, N) @ (N, d_model)
        if params.b_o is not None:
            d_b_o = _column_sums(d_y)  # dY^T 1: (d_model,)
        # dConcat = dY W_O^T: (..., n, d_model) @ (d_model, h d_v)
        d_merged = matmul_rows(d_y, params.w_o.astype(work).T)
    d_v_width = d_merged.shape[-1] // h
    d_heads = np.swapaxes(d_merged.reshape(*batch, n, h, d_v_width), -3, -2)  # (..., h, n, d_v)

    # Attention per head, query head i = j g + r grouped with its key/value head j
    q_g = q.reshape(*q.shape[:-3], h_kv, g, n, q.shape[-1])  # (..., h_kv, g, n, d_k)
    k_g = k[..., :, None, :, :]  # (..., h_kv, 1, m, d_k)
    v_g = v[..., :, None, :, :]  # (..., h_kv, 1, m, d_v)
    mask_g = None if result.mask is None else result.mask[..., None, None, :, :]
    stored = weights.reshape(*batch, h_kv, g, n, m)  # (..., h_kv, g, n, m)
    bias_h = None  # the bias per head, (..., h, n, m) -> (..., h_kv, g, n, m)
    if result.bias is not None:
        bias_h = np.broadcast_to(result.with_head_axis(result.bias), weights.shape)
        bias_h = bias_h.reshape(*batch, h_kv, g, n, m)
    p = _probabilities(stored, q_g, k_g, result.scale, mask_g, bias_h)
    d_o = d_heads.reshape(*batch, h_kv, g, n, d_v_width)  # (..., h_kv, g, n, d_v)
    d_q_g, d_k_g, d_v_g, d_s_g = _attention_backward(
        q_g, k_g, v_g, p, result.scale, d_o, proven=proven
    )
    d_bias = None
    if result.bias is not None:  # dB = dS, summed over what the bias was broadcast along
        d_s = result.as_returned(d_s_g.reshape(weights.shape))  # (..., h, n, m) as returned
        d_bias = _finished(_sum_to(d_s, result.bias.shape), dtype, "bias", proven=proven)
    d_q = _sum_to(d_q_g, q_g.shape).reshape(q.shape)  # (..., h, n, d_k)
    d_k = _sum_to(d_k_g, k_g.shape).reshape(k.shape)  # sum over the group: (..., h_kv, m, d_k)
    d_v = _sum_to(d_v_g, v_g.shape).reshape(v.shape)  # (..., h_kv, m, d_v)

    # Projections Q = X W_Q + b_Q (K, V from X or the context C)
    x = result.x.astype(work, copy=False)  # (..., n, d_model)
    c = x if result.context is None else result.context.astype(work, copy=False)
    d_q_m, d_k_m, d_v_m = _merge(d_q), _merge(d_k), _merge(d_v)  # (..., n | m, heads * d)
    # dW_Q = X^T dQ, summed over every row of every batch entry
    d_w_q = _rows(x).T @ _rows(d_q_m)  # (d_model, N) @ (N, h d_k)
    d_w_k = _rows(c).T @ _rows(d_k_m)  # (d_model, M) @ (M, h_kv d_k)
    d_w_v = _rows(c).T @ _rows(d_v_m)  # (d_model, M) @ (M, h_kv d_v)
    # dX = dQ W_Q^T (+ dK W_K^T + dV W_V^T when keys and values come from X)
    d_x = matmul_rows(d_q_m, params.w_q.astype(work).T)  # (..., n, h d_k) @ (h d_k, d_model)
    d_c = matmul_rows(d_k_m, params.w_k.astype(work).T)  # + dK W_K^T
    d_c += matmul_rows(d_v_m, params.w_v.astype(work).T)  # + dV W_V^T
    if result.context is None:
        d_x += d_c  # (..., n, d_model)

    def bias_grad(bias: FloatArray | None, d_proj: FloatArray) -> FloatArray | None:
        """db = dProj^T 1: the column sums of the projection's gradient, if b exists."""
        return None if bias is None else _column_sums(d_proj)

    done = _all_finished(
        {
            "w_q": d_w_q,
            "w_k": d_w_k,
            "w_v": d_w_v,
            "w_o": d_w_o,
            "b_q": bias_grad(params.b_q, d_q_m),
            "b_k": bias_grad(params.b_k, d_k_m),
            "b_v": bias_grad(params.b_v, d_v_m),
            "b_o": d_b_o,
            "q": result.as_returned(d_q),
            "k": result.as_returned(d_k),
            "v": result.as_returned(d_v),
            "x": d_x,
            "context": None if result.context is None else d_c,
        },
        dtype,
        proven=proven,
    )
    # New arrays of the shapes of params' own, finite and read-only: not checked again
    grad_params = AttentionParams._trusted(
        {name: done[name] for name in _PARAM_FIELDS if name in done}
    )

    return ProjectedGrads(
        q=done["q"],
        k=done["k"],
        v=done["v"],
        x=done["x"],
        context=done.get("context"),
        params=grad_params,
        bias=d_bias,
    )
