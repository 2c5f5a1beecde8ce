r"""What attention returns: results that own their arrays, and one 2-D view per head.

Three result types, each a frozen dataclass whose arrays are read-only and its own
(what it keeps from the caller is copied, so changing the caller's arrays afterwards
changes nothing in a result, nor in an explanation built from it):

* :class:`Attention` -- from
  :func:`~attention_from_scratch.self_attention.scaled_dot_product_attention`;
* :class:`ProjectedAttention` -- from
  :func:`~attention_from_scratch.self_attention.self_attention` and
  :func:`~attention_from_scratch.self_attention.multi_head_attention`;
* :class:`AttentionGrads` -- from
  :func:`~attention_from_scratch.self_attention.attention_vjp` (a
  :class:`ProjectedGrads`, whose ``x`` and ``params`` are never None, for projected
  results).

The arrays of a result carry leading batch (and head) dimensions. Explanations,
views and the pretrained model read one query of one sequence in one head at a time;
:meth:`Attention.head_view` and :meth:`ProjectedAttention.head_view` give that as a
:class:`HeadView` of 2-D arrays, so this module is the only one that knows where
the head axis is, how grouped-query heads share keys and which columns of the
weights belong to a head.

The three classes are re-exported by :mod:`~attention_from_scratch.self_attention`,
where they are documented and imported from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from attention_from_scratch._checks import (
    BoolArray,
    FloatArray,
    batch_index,
    frozen,
    int_index,
    read_only,
    working_dtype,
)
from attention_from_scratch._kernel import check_overflow, never_attended, raw_scores
from attention_from_scratch.projections import AttentionParams

__all__ = [
    "Attention",
    "AttentionGrads",
    "HeadView",
    "ProjectedAttention",
    "ProjectedGrads",
    "frozen",
    "kept",
    "notebook_display",
    "register_notebook_display",
]

#: How a result shows itself in a notebook. The view module, above this one, registers
#: its renderer when it is imported (the package imports it), so no module here has to
#: import upwards.
_NOTEBOOK_DISPLAY: list[Callable[[object], str | None]] = []


def register_notebook_display(render: Callable[[object], str | None], /) -> None:
    """Let ``render(result)`` give the HTML a notebook shows for a result (None: plain repr)."""
    _NOTEBOOK_DISPLAY[:] = [render]


def notebook_display(obj: object) -> str | None:
    """The HTML a notebook shows for ``obj`` (None: its plain repr), by the registered renderer."""
    return _NOTEBOOK_DISPLAY[0](obj) if _NOTEBOOK_DISPLAY else None


def kept(arr: Any) -> Any:
    """A read-only copy of an array a result keeps from its caller (O(size), once).

    A broadcast view is copied as the array it views, then broadcast again, so a mask
    of shape (n, m) broadcast over many heads stays (n, m) in memory.
    """
    if arr is None:
        return None
    base = arr
    strides = getattr(arr, "strides", ())
    if 0 in strides and arr.size:  # a broadcast view: copy only the distinct entries
        index = tuple(slice(0, 1) if s == 0 else slice(None) for s in strides)
        base = arr[index]
    own = read_only(base)  # a C-contiguous, read-only copy
    return np.broadcast_to(own, arr.shape) if own.shape != arr.shape else own


@dataclass(frozen=True, eq=False)
class HeadView:
    r"""One sequence and one head of a result, as 2-D arrays (read-only).

    Given by :meth:`Attention.head_view` and :meth:`ProjectedAttention.head_view`.

    Attributes
    ----------
    q : (n, d_k) ndarray
        This head's queries.
    k : (m, d_k) ndarray
        The keys they are compared with (for grouped-query attention, the shared
        key/value head of this query head).
    v : (m, d_v) ndarray
        The values.
    weights : (n, m) ndarray
        The attention weights.
    allowed : (n, m) ndarray of bool
        Which pairs the mask (and a ``-inf`` bias) allows.
    bias : (n, m) ndarray
        The additive bias of each pair (zeros without one).
    scale : float
        The factor of the dot products.
    head : int or None
        The query head (None for a result without a head axis).
    kv_head : int or None
        The key/value head it reads (``head // (n_heads // n_kv_heads)``).
    x : (n, d_model) ndarray or None
        The embeddings the queries came from (projected results only).
    source : (m, d_model) ndarray or None
        The embeddings the keys and values came from: ``x``, or the ``context`` of
        cross-attention (projected results only).
    w_q, w_k, w_v : ndarray or None
        This head's columns of the projection weights, ``(d_model, d_k)`` or
        ``(d_model, d_v)`` (projected results only).
    b_q, b_k, b_v : ndarray or None
        This head's slices of the projection biases, when the parameters have them.
    """

    q: FloatArray
    k: FloatArray
    v: FloatArray
    weights: FloatArray
    allowed: BoolArray
    bias: FloatArray
    scale: float
    _all_scores: Callable[[], FloatArray] = field(repr=False)
    _index: tuple[int, ...] = field(repr=False)
    head: int | None = None
    kv_head: int | None = None
    x: FloatArray | None = None
    source: FloatArray | None = None
    w_q: FloatArray | None = None
    w_k: FloatArray | None = None
    w_v: FloatArray | None = None
    b_q: FloatArray | None = None
    b_k: FloatArray | None = None
    b_v: FloatArray | None = None

    @property
    def scores(self) -> FloatArray:
        """(n, m) ndarray: the scaled logits plus bias that the softmax saw.

        This head's slice of the result's ``scores``, computed on first use.
        """
        scores: FloatArray = self._all_scores()[self._index]
        return scores


def _allowed(mask: BoolArray | None, bias: FloatArray, shape: tuple[int, ...]) -> BoolArray:
    """(n, m): the mask, and no ``-inf`` bias."""
    allowed = np.ones(shape, dtype=bool) if mask is None else np.array(mask, dtype=bool)
    allowed &= ~np.isneginf(bias)
    return allowed


@dataclass(frozen=True, eq=False)
class Attention:
    r"""Result of :func:`scaled_dot_product_attention`: the output and every intermediate.

    Its arrays are read-only and its own: ``q``, ``k``, ``v``, ``mask`` and ``bias`` are
    copies of what was passed, so the result never changes after it is returned.

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
        scores = raw_scores(self.q, self.k, self.scale, dtype)  # (..., n, m)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.bias is not None:
                scores = scores + self.bias
            out = np.broadcast_to(scores, self.weights.shape).astype(self.q.dtype)
        # The forward pass validated the working-dtype scores; only the float16 cast can
        # still overflow (float16 inputs are computed in float32).
        if dtype != self.q.dtype:
            check_overflow(out, self.bias, self.mask)
        return frozen(never_attended(out, self.bias))  # bias -inf: -inf, whatever q.k

    def head_view(self, *, batch: object = None, head: object = None) -> HeadView:
        """The 2-D arrays of one (batch, head) entry; see :class:`HeadView`.

        ``head`` indexes the last leading dimension (a result computed on
        ``(..., h, n, d)`` arrays), ``batch`` the leading dimensions before it (all of
        them when ``head`` is None): an int or a tuple, None when there is one entry.
        Index errors name what was indexed.
        """
        *lead, n, m = self.weights.shape
        lead_shape = tuple(lead)
        if head is not None:
            if not lead_shape:
                msg = "head= needs a result with a head dimension (..., h, n, m)"
                raise ValueError(msg)
            idx = (*batch_index(batch, lead_shape[:-1]), int_index(head, lead_shape[-1], "head"))
        else:
            idx = batch_index(batch, lead_shape)
        bias = np.zeros((n, m), dtype=self.weights.dtype)
        if self.bias is not None:
            bias = np.broadcast_to(self.bias, self.weights.shape)[idx]
        mask = None if self.mask is None else self.mask[idx]
        return HeadView(
            q=np.broadcast_to(self.q, (*lead_shape, n, self.q.shape[-1]))[idx],
            k=np.broadcast_to(self.k, (*lead_shape, m, self.k.shape[-1]))[idx],
            v=np.broadcast_to(self.v, (*lead_shape, m, self.v.shape[-1]))[idx],
            weights=self.weights[idx],
            allowed=_allowed(mask, bias, (n, m)),
            bias=bias,
            scale=self.scale,
            _all_scores=lambda: self.scores,
            _index=idx,
            head=None if head is None else idx[-1],
        )

    def _repr_html_(self) -> str | None:
        """Jupyter: the interactive view of :func:`~attention_from_scratch.view.to_html`."""
        return notebook_display(self)


@dataclass(frozen=True, eq=False)
class ProjectedAttention:
    r"""Result of :func:`self_attention` and :func:`multi_head_attention`.

    Holds the input ``x`` (and ``context`` for cross-attention) and the ``params``, so
    an explanation can go back from a score to the embedding features, and every
    intermediate of the computation. Its arrays are read-only and its own (``x`` and
    ``context`` are copies of what was passed).

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
    bias : ndarray or None
        The additive bias, as given (broadcastable to ``weights``), or None.
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
    bias: FloatArray | None = None
    # Bounds of |q| and of |k|, |v| the forward pass proved, and max |x|, max |context|
    # (None: not known), for the backward pass's own bounds. Not a dataclass field
    # (fields() lists the results): set by multi_head_attention only, before returning.
    _bounds: ClassVar[tuple[float, float, float, float] | None] = None

    def with_head_axis(self, arr: FloatArray) -> FloatArray:
        """``arr`` (one of this result's per-head arrays) with its head axis, ``(..., h, a, b)``."""
        return arr if self.has_head_axis else arr[..., None, :, :]

    def head_ids(self) -> list[int | None]:
        """The ``head=`` values of :meth:`head_view`: ``0 .. h-1``, or ``[None]`` without a head axis."""
        return list(range(self.n_heads)) if self.has_head_axis else [None]

    def as_returned(self, arr: FloatArray) -> FloatArray:
        """The inverse of :meth:`with_head_axis`: the layout this result's fields have."""
        return arr if self.has_head_axis else arr[..., 0, :, :]

    def grouped(self) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray | None]:
        """q, k, v and mask arranged so that each key/value head meets its query heads.

        ``q`` (..., h_kv, g, n, d_k) with ``g = h / h_kv`` query heads per group, ``k``
        (..., h_kv, 1, m, d_k), ``v`` (..., h_kv, 1, m, d_v) and the mask (..., 1, 1, n,
        m): broadcasting does the sharing, nothing is copied.
        """
        q, k, v = (self.with_head_axis(a) for a in (self.q, self.k, self.v))
        *batch, _, n, d_k = q.shape
        g = self.n_heads // self.n_kv_heads
        q_grouped = q.reshape(*batch, self.n_kv_heads, g, n, d_k)  # (..., h_kv, g, n, d_k)
        mask = None if self.mask is None else self.mask[..., None, None, :, :]
        return q_grouped, k[..., :, None, :, :], v[..., :, None, :, :], mask

    @cached_property
    def scores(self) -> FloatArray:
        """(..., h, n, m) ndarray: scaled logits ``q_i . k_j / sqrt(d_k)`` per head."""
        q, k, _, _ = self.grouped()
        dtype = working_dtype(q.dtype)
        grouped = raw_scores(q, k, self.scale, dtype)  # (..., h_kv, g, n, m)
        *lead, _, _, n, m = grouped.shape
        scores = self.as_returned(grouped.reshape(*lead, self.n_heads, n, m))  # (..., h, n, m)
        mask = self.mask  # (..., n, m), every head: as the scores are laid out
        if mask is not None and self.has_head_axis:
            mask = mask[..., None, :, :]
        with np.errstate(over="ignore", invalid="ignore"):
            if self.bias is not None:
                scores = never_attended(scores + self.bias, self.bias)
            out = np.broadcast_to(scores, self.weights.shape).astype(self.q.dtype)
        if dtype != self.q.dtype:
            check_overflow(out, self.bias, mask)
        return frozen(out)

    def head_view(self, *, batch: object = None, head: object = None) -> HeadView:
        """The 2-D arrays of one (batch, head) entry; see :class:`HeadView`.

        ``head`` is required when the result has more than one head; ``batch`` indexes
        the leading dimensions of ``x`` (an int or a tuple, None when there is one
        entry). Index errors name what was indexed.
        """
        h, h_kv = self.n_heads, self.n_kv_heads
        weights = self.with_head_axis(self.weights)  # (..., h, n, m)
        *lead, _, n, m = weights.shape
        lead_shape = tuple(lead)
        if head is None:
            if h > 1:
                msg = f"the result has {h} heads: pass head= (0 .. {h - 1})"
                raise ValueError(msg)
            head = 0
        hq = int_index(head, h, "head")
        hk = hq // (h // h_kv)  # query head i uses key/value head i // g
        b = batch_index(batch, lead_shape)
        d_k = self.q.shape[-1]
        d_v = self.v.shape[-1]
        p = self.params
        source = self.x if self.context is None else self.context
        cols_q = slice(hq * d_k, (hq + 1) * d_k)
        cols_k = slice(hk * d_k, (hk + 1) * d_k)
        cols_v = slice(hk * d_v, (hk + 1) * d_v)
        mask = None if self.mask is None else np.broadcast_to(self.mask, (*lead_shape, n, m))[b]
        bias = np.zeros((n, m), dtype=weights.dtype)
        if self.bias is not None:
            bias = np.broadcast_to(self.with_head_axis(self.bias), weights.shape)[(*b, hq)]
        return HeadView(
            q=self.with_head_axis(self.q)[(*b, hq)],
            k=self.with_head_axis(self.k)[(*b, hk)],
            v=self.with_head_axis(self.v)[(*b, hk)],
            weights=weights[(*b, hq)],
            allowed=_allowed(mask, bias, (n, m)),
            bias=bias,
            scale=self.scale,
            _all_scores=lambda: self.with_head_axis(self.scores),
            _index=(*b, hq),
            head=hq if self.has_head_axis else None,
            kv_head=hk if self.has_head_axis else None,
            x=np.broadcast_to(self.x, (*lead_shape, n, self.x.shape[-1]))[b],
            source=np.broadcast_to(source, (*lead_shape, m, source.shape[-1]))[b],
            w_q=p.w_q[:, cols_q],
            w_k=p.w_k[:, cols_k],
            w_v=p.w_v[:, cols_v],
            b_q=None if p.b_q is None else p.b_q[cols_q],
            b_k=None if p.b_k is None else p.b_k[cols_k],
            b_v=None if p.b_v is None else p.b_v[cols_v],
        )

    def _repr_html_(self) -> str | None:
        """Jupyter: the interactive view of :func:`~attention_from_scratch.view.to_html`."""
        return notebook_display(self)


@dataclass(frozen=True, eq=False)
class AttentionGrads:
    r"""Gradients of a loss with respect to everything an attention result was computed from.

    Returned by :func:`attention_vjp`. Each gradient has the shape and dtype of the
    array it belongs to, so a step of gradient descent is ``w - lr * grad`` field by
    field. Fields that do not apply to the result are None.

    Attributes
    ----------
    q : ndarray
        :math:`\partial L / \partial Q`, the shape of the result's ``q``: ``(..., n,
        d_k)`` for :func:`~attention_from_scratch.self_attention.scaled_dot_product_attention`
        and :func:`~attention_from_scratch.self_attention.self_attention`, ``(..., h, n,
        d_k)`` (one block per query head) for
        :func:`~attention_from_scratch.self_attention.multi_head_attention`.
    k : ndarray
        :math:`\partial L / \partial K`, the shape of the result's ``k`` (``(..., h_kv,
        m, d_k)`` for multi-head results: a key head shared by several query heads
        receives the sum of their gradients).
    v : ndarray
        :math:`\partial L / \partial V`, the shape of the result's ``v``.
    x : (..., n, d_model) ndarray or None
        :math:`\partial L / \partial X` for results of ``self_attention`` and
        ``multi_head_attention``; None for ``scaled_dot_product_attention``.
    context : (..., m, d_model) ndarray or None
        :math:`\partial L / \partial C` for cross-attention (keys and values from a
        ``context``); None otherwise.
    params : AttentionParams or None
        The gradients of every weight and bias present in the result's ``params``
        (``w_q``, ``w_k``, ``w_v``, and ``w_o``, ``b_q``, ``b_k``, ``b_v``, ``b_o``
        when they exist), with the same shapes, held in a read-only
        :class:`~attention_from_scratch.projections.AttentionParams`; None for
        ``scaled_dot_product_attention``.
    bias : ndarray or None
        :math:`\partial L / \partial B` for the additive ``bias`` (of any of the three
        attention functions), in the shape it was given (summed over the
        dimensions it was broadcast along); None when there was no bias. It is the
        gradient reaching the scores, :math:`dS`.

    Notes
    -----
    When ``q``, ``k`` or ``v`` were broadcast against each other (a key shared by a
    batch of queries, say), their gradient is summed over the broadcast dimensions,
    as automatic differentiation does. Equality is identity (``eq=False``).
    """

    q: FloatArray
    k: FloatArray
    v: FloatArray
    x: FloatArray | None = None
    context: FloatArray | None = None
    params: AttentionParams | None = None
    bias: FloatArray | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class ProjectedGrads(AttentionGrads):
    r"""The :class:`AttentionGrads` of a projected result: ``x`` and ``params`` always there.

    Returned by :func:`attention_vjp` for results of
    :func:`~attention_from_scratch.self_attention.self_attention` and
    :func:`~attention_from_scratch.self_attention.multi_head_attention`, so that typed
    training code reads ``grads.x`` and ``grads.params`` without checking for None.

    Attributes
    ----------
    x : (..., n, d_model) ndarray
        :math:`\partial L / \partial X`.
    params : AttentionParams
        The gradients of every weight and bias of the result's ``params``.
    """

    x: FloatArray
    params: AttentionParams
