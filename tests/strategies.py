"""Hypothesis strategies for the cross-package property tests (``tests/test_properties.py``).

They draw what the input policy of ``docs/guarantees.md`` is about: arrays in ``float16``,
``float32`` and ``float64``, with magnitudes from 1 up to the largest finite value of
the dtype, ``-inf`` entries where they are allowed (softmax input, attention bias),
boolean masks with fully masked rows, attention inputs with leading batch
dimensions, and random :class:`~attention_from_scratch.projections.AttentionParams`
(grouped-query, cross-attention, output projection and biases). The tolerance table
is in :mod:`tests.tolerances`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from attention_from_scratch.projections import AttentionParams

__all__ = [
    "FLOAT_DTYPES",
    "AttentionCase",
    "SequenceCase",
    "arrays",
    "arrays_and_axis",
    "attention_cases",
    "bounds",
    "dtypes",
    "exact_elements",
    "finite_elements",
    "layouts",
    "masks",
    "sequence_cases",
]

AnyArray = NDArray[Any]
BoolArray = NDArray[np.bool_]

FLOAT_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
)


def dtypes() -> st.SearchStrategy[np.dtype[Any]]:
    """One of float16, float32, float64."""
    return st.sampled_from(FLOAT_DTYPES)


def _largest(dtype: np.dtype[Any]) -> float:
    return float(np.finfo(dtype).max)


def bounds(dtype: np.dtype[Any]) -> st.SearchStrategy[float]:
    """A magnitude for the entries: 1, 8, the square root of the largest float, or the largest.

    ``sqrt(max)`` is where a textbook ``sum(x**2)`` starts to overflow; ``max`` is
    ``1.8e308`` in float64, ``3.4e38`` in float32 and ``65504`` in float16.
    """
    top = _largest(dtype)
    root = float(np.asarray(math.sqrt(top), dtype=dtype))
    return st.sampled_from([1.0, 8.0, root, top])


def finite_elements(dtype: np.dtype[Any], bound: float) -> st.SearchStrategy[float]:
    """Finite values of ``dtype`` in ``[-bound, bound]`` (subnormals and zeros included)."""
    edge = float(np.asarray(bound, dtype=dtype))
    return hnp.from_dtype(
        np.dtype(dtype), min_value=-edge, max_value=edge, allow_nan=False, allow_infinity=False
    )


def exact_elements(bound: int = 4) -> st.SearchStrategy[float]:
    """Multiples of 1/8 in ``[-bound, bound]``: exact in every dtype, and so are their sums.

    Inputs drawn from them are the same numbers in float16, float32 and float64, so a
    low-precision result can be compared with the float64 reference of *the same*
    inputs, and only the arithmetic is measured.
    """
    return st.integers(-8 * bound, 8 * bound).map(lambda i: i / 8)


@st.composite
def arrays(
    draw: st.DrawFn,
    dtype: np.dtype[Any] | None = None,
    *,
    shape: tuple[int, ...] | None = None,
    min_dims: int = 1,
    max_dims: int = 3,
    min_side: int = 1,
    max_side: int = 5,
    bound: float | None = None,
) -> AnyArray:
    """A finite array of ``dtype`` (drawn if None) with entries up to ``bound`` (drawn if None)."""
    dt = draw(dtypes()) if dtype is None else np.dtype(dtype)
    top = draw(bounds(dt)) if bound is None else bound
    if shape is None:
        shape = draw(
            hnp.array_shapes(
                min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
            )
        )
    out: AnyArray = draw(hnp.arrays(dt, shape, elements=finite_elements(dt, top)))
    return out


@st.composite
def arrays_and_axis(
    draw: st.DrawFn,
    dtype: np.dtype[Any] | None = None,
    *,
    bound: float | None = None,
    neg_inf: bool = False,
    max_dims: int = 3,
) -> tuple[AnyArray, int]:
    """An array and an axis of it (possibly negative).

    With ``neg_inf=True`` some entries are ``-inf``, but every row along ``axis`` keeps
    at least one finite entry (a row of only ``-inf`` is an error, not a property).
    """
    x = draw(arrays(dtype, max_dims=max_dims, bound=bound))
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    if neg_inf:
        holes = draw(hnp.arrays(np.bool_, x.shape))
        keep = draw(st.integers(0, x.shape[axis] - 1))
        np.moveaxis(holes, axis, 0)[keep] = False  # one finite entry in every row
        x[holes] = -np.inf
    return x, axis


@st.composite
def masks(draw: st.DrawFn, shape: tuple[int, ...], *, fully_masked: bool = True) -> BoolArray:
    """A boolean mask of ``shape`` (..., n, m); True = "may attend".

    With ``fully_masked=True`` some rows may have no True entry at all (queries that
    attend to nothing); otherwise every row keeps at least one True.
    """
    mask: BoolArray = draw(hnp.arrays(np.bool_, shape))
    if not fully_masked and mask.size:
        keep = draw(st.integers(0, shape[-1] - 1))
        mask[..., keep] = True
    elif mask.size and draw(st.booleans()):
        row = draw(st.integers(0, shape[-2] - 1))
        mask[..., row, :] = False  # a query that may attend to nothing
    return mask


@dataclass(frozen=True)
class AttentionCase:
    """Arguments of :func:`~attention_from_scratch.self_attention.scaled_dot_product_attention`."""

    q: AnyArray  # (..., n, d_k)
    k: AnyArray  # (..., m, d_k)
    v: AnyArray  # (..., m, d_v)
    mask: BoolArray | None  # (..., n, m), broadcastable
    bias: AnyArray | None  # (..., n, m), broadcastable, may hold -inf
    is_causal: bool
    scale: float | None

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments: ``mask``, ``bias``, ``is_causal``, ``scale``."""
        return {
            "mask": self.mask,
            "bias": self.bias,
            "is_causal": self.is_causal,
            "scale": self.scale,
        }

    @property
    def allowed(self) -> BoolArray:
        """(..., n, m): the keys each query may attend to (mask, causal and -inf bias)."""
        n, m = self.q.shape[-2], self.k.shape[-2]
        batch = np.broadcast_shapes(self.q.shape[:-2], self.k.shape[:-2], self.v.shape[:-2])
        ok = np.ones((*batch, n, m), dtype=bool)
        if self.mask is not None:
            ok &= self.mask
        if self.bias is not None:
            ok &= ~np.isneginf(self.bias)
        if self.is_causal:
            ok &= np.arange(m)[None, :] <= np.arange(n)[:, None]
        return ok


@st.composite
def attention_cases(
    draw: st.DrawFn,
    dtype: np.dtype[Any] | None = None,
    *,
    elements: st.SearchStrategy[float] | None = None,
    mask: bool = True,
    bias: bool = True,
    causal: bool = True,
    scale: bool = True,
) -> AttentionCase:
    """q, k, v with broadcast batch dimensions, and optionally a mask, a bias, causal, a scale.

    ``elements`` defaults to :func:`exact_elements`, whose scores cannot overflow any
    dtype. A bias holds ``-inf`` entries; a mask may leave a query nothing to attend to.
    """
    dt = draw(dtypes()) if dtype is None else np.dtype(dtype)
    values = exact_elements() if elements is None else elements
    lead_q, lead_kv = draw(
        st.sampled_from([((), ()), ((2,), (2,)), ((2, 3), (1, 3)), ((1,), (3,))])
    )
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    d_k, d_v = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    q = draw(hnp.arrays(dt, (*lead_q, n, d_k), elements=values))
    k = draw(hnp.arrays(dt, (*lead_kv, m, d_k), elements=values))
    v = draw(hnp.arrays(dt, (*lead_kv, m, d_v), elements=values))
    batch = np.broadcast_shapes(lead_q, lead_kv)
    the_mask = None
    if mask and draw(st.booleans()):
        the_mask = draw(masks(draw(st.sampled_from([(n, m), (*batch, n, m)]))))
    the_bias = None
    if bias and draw(st.booleans()):
        bias_values = exact_elements() | st.just(-math.inf)
        the_bias = draw(hnp.arrays(dt, (n, m), elements=bias_values))
    is_causal = causal and draw(st.booleans())
    the_scale = draw(st.none() | st.sampled_from([0.0, 0.5, 1.0, 2.0])) if scale else None
    return AttentionCase(q, k, v, the_mask, the_bias, is_causal, the_scale)


@dataclass(frozen=True)
class SequenceCase:
    """Arguments of :func:`~attention_from_scratch.self_attention.multi_head_attention`."""

    x: AnyArray  # (..., n, d_model)
    params: AttentionParams
    n_heads: int
    n_kv_heads: int
    context: AnyArray | None  # (..., m, d_model) for cross-attention
    mask: BoolArray | None  # (..., n, m)
    is_causal: bool

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`multi_head_attention`."""
        return {
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "context": self.context,
            "mask": self.mask,
            "is_causal": self.is_causal,
        }

    def weights(self) -> dict[str, Any]:
        """The arrays of ``params`` by name (for the loop reference), as float64."""
        names = ("w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o")
        out: dict[str, Any] = {}
        for name in names:
            arr = getattr(self.params, name)
            if arr is not None:
                out[name] = np.asarray(arr, dtype=np.float64)
        return out

    @property
    def m(self) -> int:
        """The number of keys."""
        return int((self.x if self.context is None else self.context).shape[-2])


@st.composite
def sequence_cases(
    draw: st.DrawFn,
    dtype: np.dtype[Any] | None = None,
    *,
    cross: bool | None = None,
    mask: bool = True,
    causal: bool = True,
    heads: bool = True,
) -> SequenceCase:
    """x (..., n, d_model), random params (GQA, w_o, biases), maybe a context and a mask.

    Embeddings are :func:`exact_elements` in ``[-2, 2]`` and the weights are Glorot
    uniform rounded to the dtype: nothing overflows in any dtype. ``heads=False`` draws
    one head and no context (the arguments of ``self_attention``).
    """
    dt = draw(dtypes()) if dtype is None else np.dtype(dtype)
    n_kv_heads = draw(st.integers(1, 2)) if heads else 1
    n_heads = n_kv_heads * draw(st.integers(1, 2)) if heads else 1
    d_model = draw(st.integers(1, 5))
    params = AttentionParams.random(
        d_model,
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        out_proj=draw(st.booleans()),
        bias=draw(st.booleans()),
        rng=draw(st.integers(0, 2**32 - 1)),
        dtype=dt,
    )
    batch = draw(st.sampled_from([(), (2,), (1, 2)]))
    n = draw(st.integers(1, 5))
    x = draw(hnp.arrays(dt, (*batch, n, d_model), elements=exact_elements(2)))
    is_cross = (draw(st.booleans()) if cross is None else cross) and heads
    context = None
    m = n
    if is_cross:
        m = draw(st.integers(1, 5))
        context = draw(hnp.arrays(dt, (*batch, m, d_model), elements=exact_elements(2)))
    the_mask = draw(masks((n, m))) if mask and draw(st.booleans()) else None
    is_causal = causal and draw(st.booleans())
    return SequenceCase(x, params, n_heads, n_kv_heads, context, the_mask, is_causal)


def layouts(arr: AnyArray) -> list[tuple[str, AnyArray]]:
    """``arr`` in other memory layouts, holding the same values.

    Fortran order, negative strides on every axis, and a strided view into a larger
    buffer. For 0-d or empty arrays only what applies is returned.
    """
    out: list[tuple[str, AnyArray]] = [("fortran", np.asfortranarray(arr))]
    if arr.ndim == 0:
        return out
    every = (slice(None, None, -1),) * arr.ndim
    reversed_copy = np.ascontiguousarray(arr[every])[every]  # same values, negative strides
    out.append(("negative strides", reversed_copy))
    buffer = np.zeros(tuple(2 * s + 1 for s in arr.shape), dtype=arr.dtype)
    view = buffer[tuple(slice(1, None, 2) for _ in arr.shape)]
    view[...] = arr
    out.append(("strided view", view))
    return out
