"""Cross-package property tests: the invariants of docs/guarantees.md, in every dtype.

Each module's own tests check its properties in float64 with hand-picked inputs.
This file checks the invariants that hold *across* the package -- softmax, norms,
projections, attention, masks and explanations together -- in float16, float32 and
float64, with magnitudes up to the largest finite value of each dtype and ``-inf``
where it is allowed, and against the tolerance table of docs/guarantees.md
(:mod:`tests.strategies`).

A registry, :func:`calls`, draws a call of any public numeric function with valid
random arguments; the generic properties (finite in, finite out; dtype kept; memory
layout and read-only inputs change nothing; agreement with the independent loop
reference of :mod:`tests.reference.all_ref`) run over all of it. The other tests are
the specific invariants: probabilities, shift invariance, monotonicity,
permutations, convex hull, uniform attention, the temperature limits, causality,
padding, fully masked rows, homogeneity, unit length and explanations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from attention_from_scratch.explain import explain_query, explain_score
from attention_from_scratch.norms import (
    cosine_similarity,
    l2_norm,
    l2_normalize,
    layer_norm,
    rms_norm,
)
from attention_from_scratch.projections import (
    AttentionParams,
    linear,
    merge_heads,
    project_qkv,
    split_heads,
)
from attention_from_scratch.self_attention import (
    causal_mask,
    multi_head_attention,
    padding_mask,
    scaled_dot_product_attention,
    self_attention,
)
from attention_from_scratch.softmax import (
    entropy,
    log_softmax,
    logsumexp,
    softmax,
    softmax_jacobian,
    softmax_vjp,
)
from tests.reference import all_ref
from tests.strategies import (
    AttentionCase,
    SequenceCase,
    arrays,
    attention_cases,
    bounds,
    dtypes,
    exact_elements,
    finite_elements,
    layouts,
    masks,
    sequence_cases,
)
from tests.tolerances import Tolerance, assert_close, tolerance

AnyArray = NDArray[Any]
F64 = NDArray[np.float64]
Outputs = tuple[AnyArray, ...]

LOW_DTYPES = st.sampled_from([np.dtype(np.float16), np.dtype(np.float32)])


def _f64(a: Any) -> F64:
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------
# The registry: one drawn call of any public numeric function.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A call of a public function on drawn arrays, and its float64 loop reference.

    ``run(*arrays)`` returns the outputs compared by the properties; ``reference``
    gets those outputs (the staged references of multi-head attention start from the
    package's own rounded ``q``, ``k``, ``v``) and returns what they should be.
    """

    name: str
    arrays: tuple[AnyArray, ...]
    run: Callable[..., Outputs]
    reference: Callable[[Outputs], Outputs]
    may_overflow: bool = False  # FloatingPointError is a documented outcome
    neg_inf_out: bool = False  # -inf in the output is correct (log space)

    def __call__(self, arrays: tuple[AnyArray, ...] | None = None) -> Outputs:
        """Run on ``arrays`` (default: the drawn ones)."""
        return self.run(*(self.arrays if arrays is None else arrays))


def _elements(
    draw: st.DrawFn, dtype: np.dtype[Any], exact: bool, cap: float | None = None
) -> st.SearchStrategy[float]:
    """Exact grid values, or finite values up to a drawn magnitude (capped at ``cap``)."""
    if exact:
        return exact_elements()
    top = draw(bounds(dtype))
    return finite_elements(dtype, top if cap is None else min(top, cap))


def _probabilities(dtype: np.dtype[Any], exact: bool) -> st.SearchStrategy[float]:
    """Values >= 0: probabilities (exact grid), or any size (huge ones may overflow)."""
    if exact:
        return st.integers(0, 32).map(lambda i: i / 32)
    return finite_elements(dtype, float(np.finfo(dtype).max)).map(abs)


SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def _shape(draw: st.DrawFn, min_dims: int = 1, max_dims: int = 3) -> tuple[int, ...]:
    return draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=4))


def _array(
    draw: st.DrawFn, dtype: np.dtype[Any], shape: tuple[int, ...], values: st.SearchStrategy[float]
) -> AnyArray:
    out: AnyArray = draw(hnp.arrays(dtype, shape, elements=values))
    return out


def _with_neg_inf(draw: st.DrawFn, x: AnyArray, axis: int) -> AnyArray:
    """``x`` with some entries -inf, every row along ``axis`` keeping a finite one."""
    holes = draw(hnp.arrays(np.bool_, x.shape))
    np.moveaxis(holes, axis, 0)[draw(st.integers(0, x.shape[axis] - 1))] = False
    out = x.copy()
    out[holes] = -np.inf
    return out


def _no_zero_vectors(x: AnyArray, axis: int) -> AnyArray:
    """``x`` with every all-zero vector along ``axis`` given a first entry of 1."""
    out = x.copy()
    zero = ~np.any(out != 0, axis=axis, keepdims=True)
    first = np.moveaxis(out, axis, 0)
    first[0] = np.where(np.moveaxis(zero, axis, 0)[0], 1, first[0])
    return out


@st.composite
def _softmax_family(draw: st.DrawFn, which: str, dtype: np.dtype[Any], exact: bool) -> Call:
    shape = _shape(draw)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    x = _with_neg_inf(draw, _array(draw, dtype, shape, _elements(draw, dtype, exact)), axis)
    t = draw(st.sampled_from([1.0, 0.5, 3.0]))
    if which == "softmax":
        return Call(
            "softmax",
            (x,),
            lambda a: (softmax(a, axis=axis, temperature=t),),
            lambda _: (all_ref.softmax(x, axis=axis, temperature=t),),
        )
    if which == "where":
        where = draw(masks(shape)) if len(shape) > 1 else draw(hnp.arrays(np.bool_, shape))
        return Call(
            "softmax(where=)",
            (x, where),
            lambda a, w: (softmax(a, axis=axis, where=w),),
            lambda _: (all_ref.softmax(x, axis=axis, where=where),),
        )
    if which == "log_softmax":
        return Call(
            "log_softmax",
            (x,),
            lambda a: (log_softmax(a, axis=axis, temperature=t),),
            lambda _: (all_ref.log_softmax(x, axis=axis, temperature=t),),
            neg_inf_out=True,
        )
    keepdims = draw(st.booleans())
    return Call(
        "logsumexp",
        (x,),
        lambda a: (logsumexp(a, axis=axis, keepdims=keepdims),),
        lambda _: (all_ref.logsumexp(x, axis=axis, keepdims=keepdims),),
        neg_inf_out=True,
    )


@st.composite
def _derivatives(draw: st.DrawFn, which: str, dtype: np.dtype[Any], exact: bool) -> Call:
    shape = _shape(draw)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    p = _array(draw, dtype, shape, _probabilities(dtype, exact))
    if which == "entropy":
        return Call(
            "entropy",
            (p,),
            lambda a: (entropy(a, axis=axis),),
            lambda _: (all_ref.entropy(p, axis=axis),),
            may_overflow=True,
        )
    if which == "softmax_jacobian":
        return Call(
            "softmax_jacobian",
            (p,),
            lambda a: (softmax_jacobian(a),),
            lambda _: (all_ref.softmax_jacobian(p),),
            may_overflow=True,
        )
    grad = _array(draw, dtype, shape, _elements(draw, dtype, exact))
    return Call(
        "softmax_vjp",
        (p, grad),
        lambda a, g: (softmax_vjp(a, g, axis=axis),),
        lambda _: (all_ref.softmax_vjp(p, grad, axis=axis),),
        may_overflow=True,
    )


@st.composite
def _norms(draw: st.DrawFn, which: str, dtype: np.dtype[Any], exact: bool) -> Call:
    shape = _shape(draw)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    x = _array(draw, dtype, shape, _elements(draw, dtype, exact))
    if which == "l2_norm":
        keepdims = draw(st.booleans())
        return Call(
            "l2_norm",
            (x,),
            lambda a: (l2_norm(a, axis=axis, keepdims=keepdims),),
            lambda _: (all_ref.l2_norm(x, axis=axis, keepdims=keepdims),),
            may_overflow=True,
        )
    if which == "l2_normalize":
        eps = None if np.all(np.any(x != 0, axis=axis)) else 1e-3
        return Call(
            "l2_normalize",
            (x,),
            lambda a: (l2_normalize(a, axis=axis, eps=eps),),
            lambda _: (all_ref.l2_normalize(x, axis=axis, eps=eps),),
        )
    if which == "cosine":
        a0 = _no_zero_vectors(x, axis)
        b0 = _no_zero_vectors(_array(draw, dtype, shape, _elements(draw, dtype, exact)), axis)
        return Call(
            "cosine_similarity",
            (a0, b0),
            lambda a, b: (cosine_similarity(a, b, axis=axis),),
            lambda _: (all_ref.cosine_similarity(a0, b0, axis=axis),),
        )
    d = shape[-1]
    gamma = (
        _array(draw, dtype, (d,), _elements(draw, dtype, exact)) if draw(st.booleans()) else None
    )
    if which == "layer_norm":
        beta = _array(draw, dtype, (d,), _elements(draw, dtype, exact))
        return Call(
            "layer_norm",
            (x, beta) if gamma is None else (x, beta, gamma),
            lambda a, b, g=None: (layer_norm(a, g, b),),
            lambda _: (all_ref.layer_norm(x, gamma, beta),),
            may_overflow=True,
        )
    return Call(
        "rms_norm",
        (x,) if gamma is None else (x, gamma),
        lambda a, g=None: (rms_norm(a, g),),
        lambda _: (all_ref.rms_norm(x, gamma),),
        may_overflow=True,
    )


@st.composite
def _projections(draw: st.DrawFn, which: str, dtype: np.dtype[Any], exact: bool) -> Call:
    lead = _shape(draw, 0, 2)
    if which == "linear":
        d_in, d_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        x = _array(draw, dtype, (*lead, d_in), _elements(draw, dtype, exact))
        w = _array(draw, dtype, (d_in, d_out), _elements(draw, dtype, exact))
        b = _array(draw, dtype, (d_out,), _elements(draw, dtype, exact))
        return Call(
            "linear",
            (x, w, b),
            lambda a, ww, bb: (linear(a, ww, bb),),
            lambda _: (all_ref.linear(x, w, b),),
            may_overflow=True,
        )
    h, n, d = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if which == "split_heads":
        x = _array(draw, dtype, (*lead, n, h * d), _elements(draw, dtype, exact))
        return Call(
            "split_heads",
            (x,),
            lambda a: (split_heads(a, h),),
            lambda _: (all_ref.split_heads(x, h),),
        )
    if which == "merge_heads":
        x = _array(draw, dtype, (*lead, h, n, d), _elements(draw, dtype, exact))
        return Call(
            "merge_heads", (x,), lambda a: (merge_heads(a),), lambda _: (all_ref.merge_heads(x),)
        )
    case = draw(sequence_cases(dtype, mask=False, causal=False))
    x = case.x if exact else _array(draw, dtype, case.x.shape, _elements(draw, dtype, exact))
    weights = case.weights()
    if case.context is None:
        return Call(
            "project_qkv",
            (x,),
            lambda a: project_qkv(a, case.params),
            lambda _: all_ref.project_qkv(x, **weights),
            may_overflow=True,
        )
    context = case.context
    return Call(
        "project_qkv(context=)",
        (x, context),
        lambda a, c: project_qkv(a, case.params, context=c),
        lambda _: all_ref.project_qkv(x, context=context, **weights),
        may_overflow=True,
    )


@st.composite
def _attention(draw: st.DrawFn, which: str, dtype: np.dtype[Any], exact: bool) -> Call:
    del which  # one op
    values = _elements(draw, dtype, exact)
    case: AttentionCase = draw(attention_cases(dtype, elements=values))
    v = case.v
    kw: dict[str, Any] = {"is_causal": case.is_causal, "scale": case.scale}
    optional: dict[str, Any] = {
        name: arr for name, arr in (("mask", case.mask), ("bias", case.bias)) if arr is not None
    }
    names = tuple(optional)

    def run(q: AnyArray, k: AnyArray, vv: AnyArray, *extra: AnyArray) -> Outputs:
        given: dict[str, Any] = dict(zip(names, extra, strict=True))
        r = scaled_dot_product_attention(q, k, vv, **given, **kw)
        return r.weights, r.output

    def reference(_: Outputs) -> Outputs:
        ref = all_ref.scaled_dot_product_attention(case.q, case.k, v, **optional, **kw)
        return ref.weights, ref.output

    return Call(
        "scaled_dot_product_attention",
        (case.q, case.k, v, *optional.values()),
        run,
        reference,
        may_overflow=not exact,
    )


def _staged_attention_reference(case: SequenceCase, outputs: Outputs, *, heads: bool) -> Outputs:
    """The loop reference of each stage, starting from the package's own q, k, v.

    In float16/32 the projections are rounded to the dtype before attention (as in
    torch); comparing each stage with the exact computation on its actual inputs
    measures the arithmetic of that stage, at the docs/guarantees.md tolerance.
    """
    q, k, v, _, head_outputs, _ = (_f64(a) for a in outputs)
    w = case.weights()
    ref_q, ref_k, ref_v = all_ref.project_qkv(case.x, context=case.context, **w)
    if heads:
        g = case.n_heads // case.n_kv_heads
        ref_q = all_ref.split_heads(ref_q, case.n_heads)
        ref_k = all_ref.split_heads(ref_k, case.n_kv_heads)
        ref_v = all_ref.split_heads(ref_v, case.n_kv_heads)
        k, v = np.repeat(k, g, axis=-3), np.repeat(v, g, axis=-3)
    att = all_ref.scaled_dot_product_attention(q, k, v, mask=case.mask, is_causal=case.is_causal)
    merged = all_ref.merge_heads(head_outputs) if heads else head_outputs
    out = merged if "w_o" not in w else all_ref.linear(merged, w["w_o"], w.get("b_o"))
    return ref_q, ref_k, ref_v, att.weights, att.output, out


@st.composite
def _projected(draw: st.DrawFn, which: str, dtype: np.dtype[Any], exact: bool) -> Call:
    single = which == "self_attention"
    case: SequenceCase = draw(sequence_cases(dtype, heads=not single))
    x = case.x if exact else _array(draw, dtype, case.x.shape, _elements(draw, dtype, exact))
    case = dataclasses.replace(case, x=x)

    def run(a: AnyArray, *context: AnyArray) -> Outputs:
        if single:
            r = self_attention(a, case.params, mask=case.mask, is_causal=case.is_causal)
        else:
            kw: dict[str, Any] = case.kwargs() | {"context": context[0] if context else None}
            r = multi_head_attention(a, case.params, **kw)
        return r.q, r.k, r.v, r.weights, r.head_outputs, r.output

    def reference(outputs: Outputs) -> Outputs:
        if outputs[0].dtype != np.float64:
            return _staged_attention_reference(case, outputs, heads=not single)
        w = case.weights()
        ref_q, ref_k, ref_v = all_ref.project_qkv(case.x, context=case.context, **w)
        if single:
            one = all_ref.self_attention(x, mask=case.mask, is_causal=case.is_causal, **w)
            full = all_ref.multi_head_attention(
                x, n_heads=1, mask=case.mask, is_causal=case.is_causal, **w
            )
            return ref_q, ref_k, ref_v, one.weights, full.head_outputs[..., 0, :, :], one.output
        full = all_ref.multi_head_attention(x, **case.kwargs(), **w)
        return (
            all_ref.split_heads(ref_q, case.n_heads),
            all_ref.split_heads(ref_k, case.n_kv_heads),
            all_ref.split_heads(ref_v, case.n_kv_heads),
            full.weights,
            full.head_outputs,
            full.output,
        )

    arrays_in = (x,) if case.context is None else (x, case.context)
    name = "self_attention" if single else "multi_head_attention"
    return Call(name, arrays_in, run, reference, may_overflow=not exact)


Builder = Callable[[str, np.dtype[Any], bool], st.SearchStrategy[Call]]
FAMILIES: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "softmax": (_softmax_family, ("softmax", "where", "log_softmax", "logsumexp")),
    "derivatives": (_derivatives, ("entropy", "softmax_jacobian", "softmax_vjp")),
    "norms": (_norms, ("l2_norm", "l2_normalize", "cosine", "layer_norm", "rms_norm")),
    "projections": (_projections, ("linear", "split_heads", "merge_heads", "project_qkv")),
    "attention": (_attention, ("scaled_dot_product_attention",)),
    "projected": (_projected, ("self_attention", "multi_head_attention")),
}
"""Every public numeric function, by family; each generic property runs once per family."""


@st.composite
def calls(
    draw: st.DrawFn, family: str, dtype: np.dtype[Any] | None = None, *, exact: bool = False
) -> Call:
    """A call of a public numeric function of ``family``, in a drawn dtype.

    ``exact=True`` draws grid values (:func:`~tests.strategies.exact_elements`) that
    are the same numbers in every dtype; otherwise any finite values up to the
    largest float of the dtype.
    """
    dt = draw(dtypes()) if dtype is None else np.dtype(dtype)
    builder, ops = FAMILIES[family]
    call: Call = draw(builder(draw(st.sampled_from(ops)), dt, exact))
    return call


each_family = pytest.mark.parametrize("family", list(FAMILIES))
LAYOUT_FAMILIES = list(FAMILIES)


# ---------------------------------------------------------------------------
# Generic properties over the registry
# ---------------------------------------------------------------------------


@each_family
@given(data=st.data())
def test_finite_in_finite_out_never_a_warning(family: str, data: st.DataObject) -> None:
    """Finite input gives finite output, or a FloatingPointError where documented.

    Never NaN, never a RuntimeWarning (pytest turns warnings into errors), for values
    up to 1.8e308 (float64), 3.4e38 (float32) and 65504 (float16).
    """
    call = data.draw(calls(family))
    if call.may_overflow:
        try:
            outputs = call()
        except FloatingPointError as exc:
            message = str(exc)
            outputs = ()
        else:
            message = "float64"
        assert "float64" in message or "rescale" in message, message  # the advice
    else:
        outputs = call()
    inputs_finite = all(np.isfinite(a).all() for a in call.arrays if a.dtype != np.bool_)
    for out in outputs:
        assert not np.isnan(out).any(), call.name
        if inputs_finite and not call.neg_inf_out:
            assert np.isfinite(out).all(), call.name
        if call.neg_inf_out:
            assert not np.isposinf(out).any(), call.name


@each_family
@given(data=st.data())
def test_output_dtype_is_input_dtype(family: str, data: st.DataObject) -> None:
    call = data.draw(calls(family))
    dtype = next(a.dtype for a in call.arrays if a.dtype != np.bool_)
    try:
        outputs = call()
    except FloatingPointError:
        return
    for out in outputs:
        assert out.dtype == dtype, (call.name, out.dtype, dtype)


@each_family
@given(data=st.data())
def test_every_op_agrees_with_its_loop_reference(family: str, data: st.DataObject) -> None:
    """float64 to 1e-12; float16/32 within the docs/guarantees.md table, on the same inputs."""
    call = data.draw(calls(family, exact=True))
    outputs = call()
    expected = call.reference(outputs)
    assert len(expected) == len(outputs)
    for got, want in zip(outputs, expected, strict=True):
        assert got.shape == np.shape(want), call.name
        if got.dtype == np.bool_:
            np.testing.assert_array_equal(got, want)
        else:
            assert_close(got, want, dtype=outputs[0].dtype)


@pytest.mark.parametrize("family", LAYOUT_FAMILIES)
@given(data=st.data(), layout=st.sampled_from(["fortran", "negative strides", "strided view"]))
def test_memory_layout_never_changes_a_bit(family: str, data: st.DataObject, layout: str) -> None:
    call = data.draw(calls(family))
    try:
        expected = call()
    except FloatingPointError:
        return
    variants = tuple(dict(layouts(a)).get(layout, a) for a in call.arrays)
    got = call(variants)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{call.name}, {layout}")


@each_family
@given(data=st.data())
def test_read_only_inputs_are_accepted_and_never_modified(
    family: str, data: st.DataObject
) -> None:
    """Inputs are read-only views: any write would raise. Their bytes stay the same."""
    call = data.draw(calls(family))
    before = [a.tobytes() for a in call.arrays]
    frozen = []
    for a in call.arrays:
        view = a.view()
        view.flags.writeable = False
        frozen.append(view)
    try:
        outputs = call(tuple(frozen))
    except FloatingPointError:
        outputs = ()
    assert [a.tobytes() for a in call.arrays] == before
    for out in outputs:
        assert not any(np.shares_memory(out, a) for a in call.arrays), call.name


# ---------------------------------------------------------------------------
# Attention weights are probabilities; fully masked rows are exactly 0
# ---------------------------------------------------------------------------


@given(attention_cases())
def test_attention_weights_are_probabilities_in_every_dtype(case: AttentionCase) -> None:
    r = scaled_dot_product_attention(case.q, case.k, case.v, **case.kwargs())
    dtype = case.q.dtype
    assert r.weights.dtype == r.output.dtype == dtype
    w = _f64(r.weights)
    assert (w >= 0.0).all()
    assert (w <= 1.0).all()
    allowed = np.broadcast_to(case.allowed, w.shape)
    np.testing.assert_array_equal(w[~allowed], 0.0)
    some = allowed.any(axis=-1)
    m = w.shape[-1]
    np.testing.assert_allclose(w.sum(axis=-1)[some], 1.0, rtol=0, atol=m * np.finfo(dtype).eps)


@given(attention_cases(mask=False, causal=False), sequence_cases(), st.data())
def test_fully_masked_rows_are_exactly_zero_everywhere(
    case: AttentionCase, seq: SequenceCase, data: st.DataObject
) -> None:
    n, m = case.q.shape[-2], case.k.shape[-2]
    row = data.draw(st.integers(0, n - 1))
    mask = data.draw(hnp.arrays(np.bool_, (n, m)))
    mask[row] = False
    r = scaled_dot_product_attention(case.q, case.k, case.v, mask=mask, bias=case.bias)
    np.testing.assert_array_equal(r.weights[..., row, :], 0.0)
    np.testing.assert_array_equal(r.output[..., row, :], 0.0)
    why = explain_query(r, row, batch=tuple(0 for _ in r.weights.shape[:-2]))
    assert why.attends_to_nothing
    assert "attends to nothing" in str(why)
    # softmax(where=) is the same rule
    scores = np.zeros((n, m)) if case.bias is None else case.bias
    np.testing.assert_array_equal(softmax(scores, where=mask)[row], 0.0)
    # multi-head: every head's row is 0, so the output is exactly the output bias
    seq_mask = np.ones((seq.x.shape[-2], seq.m), dtype=bool)
    seq_row = data.draw(st.integers(0, seq.x.shape[-2] - 1))
    seq_mask[seq_row] = False
    kw = seq.kwargs() | {"mask": seq_mask, "is_causal": False}
    mh = multi_head_attention(seq.x, seq.params, **kw)
    np.testing.assert_array_equal(mh.weights[..., seq_row, :], 0.0)
    np.testing.assert_array_equal(mh.head_outputs[..., seq_row, :], 0.0)
    out_row = mh.output[..., seq_row, :]
    b_o = seq.params.b_o
    expected = np.zeros_like(out_row) if b_o is None else np.broadcast_to(b_o, out_row.shape)
    np.testing.assert_array_equal(out_row, expected)


# ---------------------------------------------------------------------------
# Shift invariance and monotonicity
# ---------------------------------------------------------------------------


@given(dtypes(), st.data(), st.integers(-100, 100))
def test_adding_a_constant_to_a_row_changes_nothing(
    dtype: np.dtype[Any], data: st.DataObject, c: int
) -> None:
    """log_softmax(x + c) = log_softmax(x), logsumexp(x + c) = logsumexp(x) + c, and a
    per-row constant added to the attention bias leaves the weights unchanged.

    Grid values and integer ``c`` keep ``x + c`` exact in float16 (|x + c| < 256).
    """
    x = data.draw(hnp.arrays(dtype, data.draw(SHAPES), elements=exact_elements()))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    shifted = (x + c).astype(dtype)
    tol = tolerance(dtype)
    assert_close(log_softmax(shifted, axis=axis), log_softmax(x, axis=axis), tol=tol)
    assert_close(logsumexp(shifted, axis=axis), all_ref.logsumexp(x, axis=axis) + c, tol=tol)
    case = data.draw(attention_cases(dtype, bias=False))
    n, m = case.q.shape[-2], case.k.shape[-2]
    bias = data.draw(hnp.arrays(dtype, (n, m), elements=exact_elements() | st.just(-math.inf)))
    row_shift = data.draw(hnp.arrays(dtype, (n, 1), elements=st.integers(-100, 100).map(float)))
    # a power-of-two scale keeps every score, and score + shift, exact
    scale = 0.5 if case.scale is None else case.scale
    kw: dict[str, Any] = {"mask": case.mask, "is_causal": case.is_causal, "scale": scale}
    before = scaled_dot_product_attention(case.q, case.k, case.v, bias=bias, **kw)
    after = scaled_dot_product_attention(case.q, case.k, case.v, bias=bias + row_shift, **kw)
    assert_close(after.weights, before.weights, tol=tol)
    assert_close(after.output, before.output, tol=Tolerance(tol.rtol, tol.atol * 4))


@given(attention_cases(mask=False, causal=False), st.data())
def test_raising_one_score_raises_its_weight_and_lowers_the_others(
    case: AttentionCase, data: st.DataObject
) -> None:
    n, m = case.q.shape[-2], case.k.shape[-2]
    dtype = case.q.dtype
    bias = np.zeros((n, m), dtype=dtype) if case.bias is None else case.bias
    i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, m - 1))
    assume(not np.isneginf(bias[i, j]))
    raised = bias.copy()
    raised[i, j] += dtype.type(data.draw(st.sampled_from([0.125, 1.0, 4.0])))
    kw: dict[str, Any] = {"scale": case.scale}
    w0 = scaled_dot_product_attention(case.q, case.k, case.v, bias=bias, **kw).weights
    w1 = scaled_dot_product_attention(case.q, case.k, case.v, bias=raised, **kw).weights
    ulp = np.spacing(np.abs(w0[..., i, :]))  # one rounding of the dtype
    assert (w1[..., i, j] >= w0[..., i, j] - ulp[..., j]).all()
    others = np.arange(m) != j
    assert (w1[..., i, others] <= w0[..., i, others] + ulp[..., others]).all()
    np.testing.assert_array_equal(np.delete(w1, i, axis=-2), np.delete(w0, i, axis=-2))


# ---------------------------------------------------------------------------
# Permutations, convex hull, uniform attention, temperature limits
# ---------------------------------------------------------------------------


@given(sequence_cases(), st.data())
def test_keys_permute_away_and_queries_permute_along(
    seq: SequenceCase, data: st.DataObject
) -> None:
    """Permuting the keys/values (with the mask's columns) leaves every output unchanged;
    permuting the queries (with the mask's rows) permutes the outputs."""
    tol = tolerance(seq.x.dtype)
    kw = seq.kwargs() | {"is_causal": False}
    base = multi_head_attention(seq.x, seq.params, **kw)
    n, m = seq.x.shape[-2], seq.m
    rows = np.array(data.draw(st.permutations(range(n))), dtype=np.intp)
    if seq.context is not None:
        cols = np.array(data.draw(st.permutations(range(m))), dtype=np.intp)
        mask = None if seq.mask is None else seq.mask[:, cols]
        moved = multi_head_attention(
            seq.x, seq.params, **(kw | {"context": seq.context[..., cols, :], "mask": mask})
        )
        assert_close(moved.output, base.output, tol=tol)
        assert_close(moved.weights, base.weights[..., cols], tol=tol)
        mask = None if seq.mask is None else seq.mask[rows]
        moved = multi_head_attention(seq.x[..., rows, :], seq.params, **(kw | {"mask": mask}))
    else:
        mask = None if seq.mask is None else seq.mask[np.ix_(rows, rows)]
        moved = multi_head_attention(seq.x[..., rows, :], seq.params, **(kw | {"mask": mask}))
        assert_close(moved.weights, base.weights[..., rows, :][..., rows], tol=tol)
    assert_close(moved.output, base.output[..., rows, :], tol=tol)


@given(attention_cases())
def test_output_lies_in_the_convex_hull_of_the_allowed_values(case: AttentionCase) -> None:
    r = scaled_dot_product_attention(case.q, case.k, case.v, **case.kwargs())
    dtype = case.q.dtype
    allowed = np.broadcast_to(case.allowed, r.weights.shape)
    v = np.broadcast_to(_f64(case.v), (*r.weights.shape[:-2], *case.v.shape[-2:]))
    out = _f64(r.output)
    m = case.k.shape[-2]
    # float16 is computed in float32 and rounded once: the rounding of a value inside
    # [lo, hi] (both float16 numbers) stays inside. float32/64 may overshoot by m ulps.
    ulps = 0.0 if dtype == np.float16 else m * float(np.finfo(dtype).eps)
    for index in np.ndindex(*allowed.shape[:-1]):
        ok = allowed[index]
        if not ok.any():
            np.testing.assert_array_equal(out[index], 0.0)
            continue
        values = v[index[:-1]][ok]
        slack = ulps * float(np.abs(values).max())
        assert (out[index] >= values.min(axis=0) - slack).all()
        assert (out[index] <= values.max(axis=0) + slack).all()


@given(sequence_cases())
def test_zero_queries_attend_uniformly_to_the_mean_of_the_values(seq: SequenceCase) -> None:
    """With ``w_q = 0`` (and no ``b_q``) every allowed key scores 0: each weight is
    exactly ``1 / count`` and each head outputs the mean of its allowed values."""
    p = seq.params
    zero_q = AttentionParams(
        w_q=np.zeros_like(p.w_q), w_k=p.w_k, w_v=p.w_v, w_o=p.w_o, b_k=p.b_k, b_v=p.b_v, b_o=p.b_o
    )
    r = multi_head_attention(seq.x, zero_q, **seq.kwargs())
    n, m = seq.x.shape[-2], seq.m
    allowed = np.ones((n, m), dtype=bool) if seq.mask is None else seq.mask.copy()
    if seq.is_causal:
        allowed &= causal_mask(n, m)
    count = allowed.sum(axis=-1)
    work = np.float32 if seq.x.dtype == np.float16 else seq.x.dtype.type
    share = (np.ones_like(count, dtype=work) / np.maximum(count, 1).astype(work)).astype(
        seq.x.dtype
    )
    expected = np.where(allowed, share[:, None], 0).astype(seq.x.dtype)
    np.testing.assert_array_equal(r.weights, np.broadcast_to(expected, r.weights.shape))
    g = seq.n_heads // seq.n_kv_heads
    v = np.repeat(_f64(r.v), g, axis=-3)  # (..., h, m, d_v): the values each query head sees
    mean = np.einsum("nm,...md->...nd", allowed / np.maximum(count, 1)[:, None], v)
    tol = tolerance(seq.x.dtype)
    assert_close(r.head_outputs, mean, tol=tol)


@given(attention_cases(mask=False, bias=False, causal=False, scale=False))
def test_scale_to_zero_is_uniform_and_to_infinity_is_the_argmax(case: AttentionCase) -> None:
    """The temperature limits of attention: ``scale -> 0`` gives uniform weights, a huge
    scale gives the argmax (shared evenly by tied keys), exactly, in every dtype."""
    dtype = case.q.dtype
    work = np.float32 if dtype == np.float16 else dtype.type
    m = case.k.shape[-2]
    flat = scaled_dot_product_attention(case.q, case.k, case.v, scale=1e-30).weights
    uniform = (work(1) / work(m)).astype(dtype)
    np.testing.assert_array_equal(flat, np.full(flat.shape, uniform))
    # Grid inputs: raw scores are exact multiples of 1/64, so 2**16 separates them by
    # at least 1024 after scaling, and exp(-1024) is 0 in every dtype.
    sharp = scaled_dot_product_attention(case.q, case.k, case.v, scale=2.0**16).weights
    raw = np.einsum("...nd,...md->...nm", _f64(case.q), _f64(case.k))
    top = raw == raw.max(axis=-1, keepdims=True)
    ties = top.sum(axis=-1, keepdims=True)
    expected = np.where(top, (work(1) / ties.astype(work)).astype(dtype), 0)
    np.testing.assert_array_equal(sharp, np.broadcast_to(expected, sharp.shape))


# ---------------------------------------------------------------------------
# Causality and padding: what is masked can change without changing anything
# ---------------------------------------------------------------------------


@given(sequence_cases(cross=False, mask=False, causal=False), st.data())
def test_causal_outputs_ignore_later_tokens_bit_for_bit(
    seq: SequenceCase, data: st.DataObject
) -> None:
    n, d_model = seq.x.shape[-2:]
    cut = data.draw(st.integers(0, n - 1))  # tokens after `cut` change
    later = data.draw(
        hnp.arrays(
            seq.x.dtype, (*seq.x.shape[:-2], n - cut - 1, d_model), elements=exact_elements(2)
        )
    )
    changed = seq.x.copy()
    changed[..., cut + 1 :, :] = later
    kw = seq.kwargs() | {"is_causal": True}
    before = multi_head_attention(seq.x, seq.params, **kw)
    after = multi_head_attention(changed, seq.params, **kw)
    np.testing.assert_array_equal(np.triu(before.weights, 1), 0.0)
    for a, b in (
        (before.weights, after.weights),
        (before.head_outputs, after.head_outputs),
        (before.output, after.output),
    ):
        assert np.array_equal(a[..., : cut + 1, :], b[..., : cut + 1, :])


@given(sequence_cases(cross=True, mask=False), st.data())
def test_padding_tokens_change_nothing(seq: SequenceCase, data: st.DataObject) -> None:
    """With ``padding_mask(lengths, m)``, the padded context rows can hold anything."""
    x = seq.x if seq.x.ndim == 3 else seq.x.reshape(-1, *seq.x.shape[-2:])
    context = seq.context
    assert context is not None
    context = context.reshape(-1, *context.shape[-2:])
    batch, m = context.shape[0], context.shape[1]
    lengths = data.draw(st.lists(st.integers(1, m), min_size=batch, max_size=batch))
    mask = padding_mask(lengths, m)  # (batch, 1, m)
    noise = data.draw(hnp.arrays(context.dtype, context.shape, elements=exact_elements(2)))
    padded = np.where(mask[:, 0, :, None], context, noise)
    kw = seq.kwargs() | {"mask": mask}
    before = multi_head_attention(x, seq.params, **(kw | {"context": context}))
    after = multi_head_attention(x, seq.params, **(kw | {"context": padded}))
    assert np.array_equal(before.weights, after.weights)
    assert np.array_equal(before.head_outputs, after.head_outputs)
    assert np.array_equal(before.output, after.output)
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(before.weights[b, ..., length:], 0.0)


# ---------------------------------------------------------------------------
# Norms: homogeneity, unit length
# ---------------------------------------------------------------------------


@given(dtypes(), st.data(), st.integers(-4, 4), st.booleans(), st.booleans())
def test_norms_are_homogeneous_bit_for_bit(
    dtype: np.dtype[Any], data: st.DataObject, k: int, negative: bool, negative_b: bool
) -> None:
    """``||a x|| = |a| ||x||`` and the unit vector, cosine, RMS and layer norms only see
    the sign of ``a``: exactly, for ``a = +-2**k`` (the norms scale by powers of two)."""
    x = data.draw(hnp.arrays(dtype, data.draw(SHAPES), elements=exact_elements()))
    x = _no_zero_vectors(x, -1)
    a = (-1.0 if negative else 1.0) * 2.0**k
    b = -1.0 if negative_b else 1.0
    ax = (x * dtype.type(a)).astype(dtype)
    np.testing.assert_array_equal(l2_norm(ax), (l2_norm(x) * dtype.type(abs(a))).astype(dtype))
    sign = np.sign(a)
    np.testing.assert_array_equal(l2_normalize(ax), sign * l2_normalize(x))
    np.testing.assert_array_equal(rms_norm(ax, eps=0.0), sign * rms_norm(x, eps=0.0))
    np.testing.assert_array_equal(cosine_similarity(ax, b * x), sign * b * cosine_similarity(x, x))
    varied = np.any(x != x[..., :1], axis=-1)
    if varied.all():
        np.testing.assert_array_equal(layer_norm(ax, eps=0.0), sign * layer_norm(x, eps=0.0))


@given(arrays())
def test_normalised_rows_have_unit_length_and_variance(x: AnyArray) -> None:
    """||l2_normalize(x)|| = 1, rms(rms_norm(x)) = 1, layer_norm(x) has mean 0 and
    standard deviation 1: in every dtype, up to the largest finite values."""
    tol = tolerance(x.dtype)
    unit = _f64(l2_normalize(_no_zero_vectors(x, -1)))
    assert_close(np.sqrt(np.sum(unit**2, axis=-1)), 1.0, tol=tol)
    nonzero = _no_zero_vectors(x, -1)
    y = _f64(rms_norm(nonzero, eps=0.0))
    assert_close(np.sqrt(np.mean(y**2, axis=-1)), 1.0, tol=tol)
    varied = np.any(x != x[..., :1], axis=-1)  # rows that are not constant
    if varied.any():
        z = _f64(layer_norm(x[varied], eps=0.0))
        mean = z.mean(axis=-1)
        assert (np.abs(mean) <= 2 * tol.rtol * np.abs(z).max(axis=-1) + 1e-12).all()
        assert_close(
            np.sqrt(np.mean((z - mean[:, None]) ** 2, axis=-1)),
            1.0,
            tol=Tolerance(2 * tol.rtol, tol.atol),
        )


# ---------------------------------------------------------------------------
# Masks and explanations
# ---------------------------------------------------------------------------


@given(st.integers(0, 6), st.none() | st.integers(0, 6), st.data())
def test_masks_match_their_loop_reference(n: int, m: int | None, data: st.DataObject) -> None:
    np.testing.assert_array_equal(causal_mask(n, m), all_ref.causal_mask(n, m))
    size = data.draw(st.integers(0, 6))
    lengths = data.draw(st.lists(st.integers(0, size), max_size=4))
    got = padding_mask(np.array(lengths, dtype=np.int64), size)
    np.testing.assert_array_equal(got, all_ref.padding_mask(lengths, size))
    assert got.dtype == np.bool_


@given(attention_cases(), st.data())
def test_explanations_reconcile_in_every_dtype(case: AttentionCase, data: st.DataObject) -> None:
    """Every explained number is float64 from the result's own arrays: the head's
    dimensions sum to the raw score, ``|q| |k| cos`` is the raw score, and
    ``exp(score - logsumexp)`` is the weight the result computed (to its dtype)."""
    r = scaled_dot_product_attention(case.q, case.k, case.v, **case.kwargs())
    n, m = r.weights.shape[-2:]
    batch = tuple(data.draw(st.integers(0, s - 1)) for s in r.weights.shape[:-2])
    i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, m - 1))
    why = explain_score(r, i, j, batch=batch)
    assert why.weight == float(r.weights[(*batch, i, j)])
    q = _f64(np.broadcast_to(case.q, (*r.weights.shape[:-2], *case.q.shape[-2:]))[batch][i])
    k = _f64(np.broadcast_to(case.k, (*r.weights.shape[:-2], *case.k.shape[-2:]))[batch][j])
    raw = math.fsum(q * k)
    assert why.raw_score == pytest.approx(raw, rel=1e-12, abs=1e-12)
    assert math.fsum(why.dim_contributions) == pytest.approx(raw, rel=1e-12, abs=1e-12)
    if why.masked:
        assert why.weight == 0.0
        assert "masked" in str(why)
        return
    assert why.query_norm * why.key_norm * why.cosine == pytest.approx(raw, rel=1e-9, abs=1e-12)
    tol = tolerance(case.q.dtype)
    assert_close(
        math.exp(why.score - why.logsumexp), why.weight, tol=Tolerance(tol.rtol, 4 * tol.atol)
    )
