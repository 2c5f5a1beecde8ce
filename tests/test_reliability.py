"""The input policy of ``docs/guarantees.md``, as seen from the public functions.

The checks themselves (dtype whitelist, int -> float64, bool/complex/object ->
TypeError, NaN/inf -> ValueError, masks, axes, scalar options) are tested once, on
:mod:`attention_from_scratch._checks`, in ``tests/test_checks.py``. Here each public
argument gets *one* routing case -- a single bad value showing that it goes through
the checks and that the message names it -- and each behaviour that lives in the
functions rather than in the checks gets one test: ``-inf`` entries, fully masked
rows, the largest floats, overflow guards, empty inputs, dtypes, shapes, memory
layout, read-only inputs, explanations.

:data:`COVERAGE` maps every row of the policy to the tests that cover it (here, in
``tests/test_checks.py`` and in ``tests/test_properties.py``);
:func:`test_coverage_map_is_complete` checks that the map names tests that exist and
that ``docs/guarantees.md`` prints the same map.

The ``crosscheck`` tests at the end compare with :mod:`scipy.special` (always
installed with the test dependencies) and torch (``nox -s crosscheck``).
"""

from __future__ import annotations

import importlib
import itertools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special
import scipy.stats
from numpy.exceptions import AxisError
from numpy.typing import NDArray

from attention_from_scratch.examples import Example, fluffy_blue_creature
from attention_from_scratch.explain import explain_query, explain_score, heatmap
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
    Attention,
    AttentionGrads,
    ProjectedAttention,
    attention_vjp,
    causal_mask,
    multi_head_attention,
    padding_mask,
    scaled_dot_product_attention,
    self_attention,
    tiled_attention,
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
from tests.strategies import layouts
from tests.tolerances import REFERENCE, TOLERANCES

AnyArray = NDArray[Any]
F64 = NDArray[np.float64]
ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# Valid inputs, small enough to read
# ---------------------------------------------------------------------------

EX = fluffy_blue_creature()
X4 = np.array(EX.x)  # (3, 4): fluffy, blue, creature x noun, adjective, colour, texture
PARAMS = EX.params  # one head, d_model = d_k = d_v = 4
PARAMS2 = AttentionParams.random(4, 2, n_heads=2, out_proj=True, bias=True, rng=0)
S = np.array([[1.0, 0.0, 1.0], [0.0, 4.0, 2.0]])  # scores (2, 3)
P = np.array([[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]])  # weights (2, 3)
G = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])  # a gradient (2, 3)
W = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, -1.0]])  # weight (4, 2)
B = np.array([0.5, -0.5])  # bias (2,)
E4 = np.eye(4)
Q = np.arange(12.0).reshape(3, 4) / 12  # (3, 4)
K = np.arange(20.0).reshape(5, 4) / 20 - 0.5  # (5, 4)
V = np.arange(10.0).reshape(5, 2)  # (5, 2)
BIAS = np.zeros((3, 5))
FORWARD = scaled_dot_product_attention(Q, K, V)  # output (3, 2), for attention_vjp
HEADS = np.arange(12.0).reshape(2, 3, 2)  # (h, n, d)


def _example(x: Any) -> Example:
    features = ("noun", "adjective", "colour", "texture")
    return Example(
        name="e",
        tokens=("a", "b", "c"),
        feature_names=features,
        x=x,
        params=PARAMS,
        description="",
    )


@dataclass(frozen=True)
class Arg:
    """One array argument of a public function, and how to call the function with it."""

    function: str
    name: str
    valid: AnyArray
    call: Callable[[Any], object]
    neg_inf_ok: bool = False  # -inf is allowed (softmax input, attention bias)
    optional: bool = False  # None is valid (the argument is absent)
    zero_d_ok: bool = False  # a scalar broadcasts (cosine_similarity, bias)

    @property
    def id(self) -> str:
        """``function:argument``."""
        return f"{self.function}:{self.name}"


ARGS: list[Arg] = [
    Arg("softmax", "x", S, softmax, neg_inf_ok=True),
    Arg("log_softmax", "x", S, log_softmax, neg_inf_ok=True),
    Arg("logsumexp", "x", S, logsumexp, neg_inf_ok=True),
    Arg("entropy", "p", P, entropy),
    Arg("softmax_jacobian", "p", P, softmax_jacobian),
    Arg("softmax_vjp", "p", P, lambda a: softmax_vjp(a, G)),
    Arg("softmax_vjp", "grad", G, lambda a: softmax_vjp(P, a)),
    Arg("l2_norm", "x", X4, l2_norm),
    Arg("l2_normalize", "x", X4, l2_normalize),
    Arg("cosine_similarity", "a", X4, lambda a: cosine_similarity(a, X4), zero_d_ok=True),
    Arg("cosine_similarity", "b", X4, lambda a: cosine_similarity(X4, a), zero_d_ok=True),
    Arg("layer_norm", "x", X4, layer_norm),
    Arg("layer_norm", "gamma", np.ones(4), lambda a: layer_norm(X4, a), optional=True),
    Arg("layer_norm", "beta", np.zeros(4), lambda a: layer_norm(X4, None, a), optional=True),
    Arg("rms_norm", "x", X4, rms_norm),
    Arg("rms_norm", "gamma", np.ones(4), lambda a: rms_norm(X4, a), optional=True),
    Arg("linear", "x", X4, lambda a: linear(a, W)),
    Arg("linear", "weight", W, lambda a: linear(X4, a)),
    Arg("linear", "bias", B, lambda a: linear(X4, W, a), optional=True),
    Arg("AttentionParams", "w_q", E4, lambda a: AttentionParams(w_q=a, w_k=E4, w_v=E4)),
    Arg("AttentionParams", "w_k", E4, lambda a: AttentionParams(w_q=E4, w_k=a, w_v=E4)),
    Arg("AttentionParams", "w_v", E4, lambda a: AttentionParams(w_q=E4, w_k=E4, w_v=a)),
    Arg(
        "AttentionParams",
        "w_o",
        E4,
        lambda a: AttentionParams(w_q=E4, w_k=E4, w_v=E4, w_o=a),
        optional=True,
    ),
    Arg(
        "AttentionParams",
        "b_q",
        np.ones(4),
        lambda a: AttentionParams(w_q=E4, w_k=E4, w_v=E4, b_q=a),
        optional=True,
    ),
    Arg(
        "AttentionParams",
        "b_o",
        np.ones(4),
        lambda a: AttentionParams(w_q=E4, w_k=E4, w_v=E4, w_o=E4, b_o=a),
        optional=True,
    ),
    Arg("project_qkv", "x", X4, lambda a: project_qkv(a, PARAMS)),
    Arg("project_qkv", "context", X4, lambda a: project_qkv(X4, PARAMS, context=a), optional=True),
    Arg("split_heads", "x", X4, lambda a: split_heads(a, 2)),
    Arg("merge_heads", "x", HEADS, merge_heads),
    Arg("scaled_dot_product_attention", "q", Q, lambda a: scaled_dot_product_attention(a, K, V)),
    Arg("scaled_dot_product_attention", "k", K, lambda a: scaled_dot_product_attention(Q, a, V)),
    Arg("scaled_dot_product_attention", "v", V, lambda a: scaled_dot_product_attention(Q, K, a)),
    Arg(
        "scaled_dot_product_attention",
        "bias",
        BIAS,
        lambda a: scaled_dot_product_attention(Q, K, V, bias=a),
        neg_inf_ok=True,
        optional=True,
        zero_d_ok=True,
    ),
    Arg("tiled_attention", "q", Q, lambda a: tiled_attention(a, K, V, block_size=2)),
    Arg("tiled_attention", "k", K, lambda a: tiled_attention(Q, a, V, block_size=2)),
    Arg("tiled_attention", "v", V, lambda a: tiled_attention(Q, K, a, block_size=2)),
    Arg("attention_vjp", "grad_output", np.ones((3, 2)), lambda a: attention_vjp(FORWARD, a)),
    Arg("self_attention", "x", X4, lambda a: self_attention(a, PARAMS)),
    Arg("multi_head_attention", "x", X4, lambda a: multi_head_attention(a, PARAMS2, n_heads=2)),
    Arg(
        "multi_head_attention",
        "context",
        X4,
        lambda a: multi_head_attention(X4, PARAMS2, n_heads=2, context=a),
        optional=True,
    ),
    Arg("heatmap", "weights", P, heatmap),
    Arg("Example", "x", X4, _example),
]
ARG_IDS = [a.id for a in ARGS]
each_arg = pytest.mark.parametrize("arg", ARGS, ids=ARG_IDS)


def _raises(error: type[Exception], name: str, call: Callable[[], object], *parts: str) -> str:
    """Assert ``call()`` raises ``error`` whose message names ``name`` and holds ``parts``."""
    with pytest.raises(error, match=rf"(?<![\w.]){re.escape(name)}\b") as info:
        call()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def _output(result: object) -> AnyArray | None:
    """The main output array of any public result (None for text)."""
    if isinstance(result, Attention | ProjectedAttention):
        return result.output
    if isinstance(result, AttentionParams):
        return result.w_q
    if isinstance(result, AttentionGrads):
        return result.q
    if isinstance(result, Example):
        return result.x
    if isinstance(result, tuple):
        return np.asarray(result[0])
    if isinstance(result, np.ndarray):
        return result
    return None


def _bad_index(shape: tuple[int, ...]) -> tuple[int, ...]:
    """An index that is not the first one, so that 'first bad index' is tested."""
    return tuple(min(1, s - 1) for s in shape)


# ---------------------------------------------------------------------------
# Routing: every array argument goes through the checks, and the message names it
# ---------------------------------------------------------------------------


@each_arg
def test_every_array_argument_is_checked_and_named(arg: Arg) -> None:
    """One bad value per argument: a NaN, reported with the argument and its first index.

    What else the checks reject (bool, complex, object, strings, None, ragged, masked
    arrays, +-inf) and what they convert (integers) is tested on the checks themselves,
    in ``tests/test_checks.py``.
    """
    bad = arg.valid.copy()
    index = _bad_index(bad.shape)
    bad[index] = np.nan
    bad.reshape(-1)[-1] = np.nan  # a second NaN, later in C order: not the one reported
    _raises(ValueError, arg.name, lambda: arg.call(bad), "NaN", f"index {index}")


# ---------------------------------------------------------------------------
# Rows: +inf / -inf in x, q, k, v -> ValueError; +inf in softmax input or bias -> ValueError
# ---------------------------------------------------------------------------


def test_infinities_are_value_errors_naming_the_argument_and_index() -> None:
    """-inf is allowed only in softmax input and attention bias; +inf never."""
    q = Q.copy()
    q[1, 1] = -math.inf
    _raises(ValueError, "q", lambda: scaled_dot_product_attention(q, K, V), "-inf", "(1, 1)")
    for arg in (a for a in ARGS if a.neg_inf_ok):
        bad = arg.valid.copy()
        index = _bad_index(bad.shape)
        bad[index] = -math.inf
        assert _output(arg.call(bad)) is not None, arg.id  # allowed: see the -inf row
        bad[index] = math.inf
        _raises(ValueError, arg.name, lambda: arg.call(bad), "+inf", f"index {index}")  # noqa: B023


# ---------------------------------------------------------------------------
# Row: -inf in softmax input / bias -> allowed, that entry gets weight exactly 0
# ---------------------------------------------------------------------------


def test_neg_inf_entries_get_weight_exactly_zero() -> None:
    x = np.array([[1.0, -np.inf, 1.0], [-np.inf, 0.0, -np.inf]])
    np.testing.assert_array_equal(softmax(x), [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(log_softmax(x)[np.isneginf(x)], -np.inf)
    np.testing.assert_allclose(log_softmax(x)[0, 0], -math.log(2), rtol=1e-15)
    np.testing.assert_allclose(logsumexp(x), [1 + math.log(2), 0.0], rtol=1e-15)
    bias = np.zeros((3, 5))
    bias[:, 1] = bias[0, 3] = -np.inf
    r = scaled_dot_product_attention(Q, K, V, bias=bias)
    np.testing.assert_array_equal(r.weights[np.isneginf(bias)], 0.0)
    REFERENCE.check(r.weights, all_ref.scaled_dot_product_attention(Q, K, V, bias=bias).weights)


# ---------------------------------------------------------------------------
# Row: a softmax row that is all -inf, no where -> ValueError pointing to where=/mask=
# ---------------------------------------------------------------------------


def test_a_row_of_only_neg_inf_is_a_value_error_pointing_to_where() -> None:
    x = np.array([[0.0, 1.0], [-np.inf, -np.inf]])
    _raises(ValueError, "x", lambda: softmax(x), "all -inf", "where=")
    _raises(ValueError, "x", lambda: log_softmax(x), "all -inf")
    np.testing.assert_array_equal(logsumexp(x)[1], -np.inf)  # log of an empty sum
    # with where= the row is allowed to be empty: zeros, as attention's masked rows
    np.testing.assert_array_equal(softmax(x, where=np.isfinite(x))[1], 0.0)


# ---------------------------------------------------------------------------
# Row: fully masked attention row -> weights 0, output 0, no warning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["mask", "bias", "mask and causal"])
def test_fully_masked_rows_give_zeros_and_no_warning(how: str) -> None:
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False
    bias = np.where(mask, 0.0, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # also outside pytest's filterwarnings
        if how == "mask":
            r = scaled_dot_product_attention(Q, K, V, mask=mask)
        elif how == "bias":
            r = scaled_dot_product_attention(Q, K, V, bias=bias)
        else:
            r = scaled_dot_product_attention(Q, K, V, mask=mask, is_causal=True)
        why = explain_query(r, 1)
        pair = explain_score(r, 1, 0)
    np.testing.assert_array_equal(r.weights[1], 0.0)
    np.testing.assert_array_equal(r.output[1], 0.0)
    assert why.attends_to_nothing
    assert "attends to nothing" in str(why)
    assert pair.masked
    assert pair.weight == 0.0


def test_fully_masked_rows_in_every_public_attention_function() -> None:
    mask = np.ones((3, 3), dtype=bool)
    mask[2] = False
    one = self_attention(X4, PARAMS, mask=mask)
    np.testing.assert_array_equal(one.weights[2], 0.0)
    np.testing.assert_array_equal(one.output[2], 0.0)  # no w_o: the head output itself
    many = multi_head_attention(X4, PARAMS2, n_heads=2, mask=mask)
    np.testing.assert_array_equal(many.weights[:, 2], 0.0)
    np.testing.assert_array_equal(many.head_outputs[:, 2], 0.0)
    assert PARAMS2.b_o is not None
    np.testing.assert_array_equal(many.output[2], PARAMS2.b_o)  # 0 @ w_o + b_o
    np.testing.assert_array_equal(softmax(S, where=np.zeros(3, dtype=bool)), 0.0)


# ---------------------------------------------------------------------------
# Row: large finite values (1e308, -1e308; float16 +-65504) -> exact, no overflow warning
# ---------------------------------------------------------------------------

DTYPES = [np.float16, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_largest_finite_values_give_exact_results(dtype: type[np.floating[Any]]) -> None:
    big = np.finfo(dtype).max
    half = dtype(big / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = np.array([big, -big, big], dtype=dtype)
        np.testing.assert_array_equal(softmax(row), np.array([0.5, 0.0, 0.5], dtype=dtype))
        ls = log_softmax(row)
        assert ls[1] == -np.inf  # -2 max - log 2: below the range, correctly rounded
        TOLERANCES[np.dtype(dtype)].check(ls[[0, 2]], [-math.log(2)] * 2)
        assert logsumexp(np.array([big, big], dtype=dtype)) == big  # max + log 2 rounds to max
        assert l2_norm(np.array([big, 0.0, -0.0], dtype=dtype)) == big
        root = np.array([half, half], dtype=dtype)
        tol = TOLERANCES[np.dtype(dtype)]
        tol.check(l2_norm(root), big / math.sqrt(2))
        tol.check(l2_normalize(np.array([big, -big], dtype=dtype)), [2**-0.5, -(2**-0.5)])
        assert (
            cosine_similarity(
                np.array([big, big], dtype=dtype), np.array([big, -big], dtype=dtype)
            )
            == 0.0
        )
        parallel = cosine_similarity(
            np.array([big, big], dtype=dtype), np.array([big, big], dtype=dtype)
        )
        np.testing.assert_allclose(parallel, 1.0, rtol=4 * float(np.finfo(dtype).eps))
        np.testing.assert_array_equal(layer_norm(np.array([big, -big], dtype=dtype)), [1.0, -1.0])
        np.testing.assert_array_equal(rms_norm(np.array([big, -big], dtype=dtype)), [1.0, -1.0])
        one = np.ones((2, 1), dtype=dtype)
        assert linear(np.array([[big, -big]], dtype=dtype), one)[0, 0] == 0.0
        assert linear(np.array([[big]], dtype=dtype), np.array([[0.5]], dtype=dtype))[0, 0] == half
        heads = np.full((2, 3, 2), big, dtype=dtype)
        np.testing.assert_array_equal(split_heads(merge_heads(heads), 2), heads)
        r = scaled_dot_product_attention(
            np.ones((1, 1), dtype=dtype),
            np.ones((2, 1), dtype=dtype),
            np.full((2, 1), big, dtype=dtype),
        )
        assert r.output[0, 0] == big
        grad = softmax_vjp(np.array([0.5, 0.5], dtype=dtype), np.array([big, -big], dtype=dtype))
        np.testing.assert_array_equal(grad, np.array([half, -half], dtype=dtype))
        eye = np.eye(4, dtype=dtype)
        q, _, _ = project_qkv(
            np.array([[big, 0, 0, -big]], dtype=dtype), AttentionParams(w_q=eye, w_k=eye, w_v=eye)
        )
        np.testing.assert_array_equal(q, [[big, 0, 0, -big]])
    q64 = np.array([[1e150], [-1e150]])
    r = scaled_dot_product_attention(
        q64, np.array([[1e150], [-1e150], [0.0]]), np.array([[1e308], [-1e308], [0.0]]), scale=1.0
    )
    np.testing.assert_array_equal(r.weights, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(r.output, [[1e308], [-1e308]])


# ---------------------------------------------------------------------------
# Row: scores overflow (q.k ~ 1e40 in float32) -> FloatingPointError advising float64
# ---------------------------------------------------------------------------


def _f32_params(scale: float = 1.0) -> AttentionParams:
    eye = np.eye(4, dtype=np.float32)
    return AttentionParams(w_q=eye * np.float32(scale), w_k=eye, w_v=eye)


OVERFLOWS: list[tuple[str, Callable[[], object]]] = [
    (
        "scaled_dot_product_attention",
        lambda: scaled_dot_product_attention(*(np.full((2, 4), 1e20, np.float32),) * 3),
    ),
    (
        "tiled_attention",
        lambda: tiled_attention(*(np.full((2, 4), 1e20, np.float32),) * 3, block_size=1),
    ),
    ("self_attention", lambda: self_attention(np.full((2, 4), 1e20, np.float32), _f32_params())),
    (
        "multi_head_attention",
        lambda: multi_head_attention(np.full((2, 4), 1e20, np.float32), _f32_params(), n_heads=2),
    ),
    ("project_qkv", lambda: project_qkv(np.full((2, 4), 3e38, np.float32), _f32_params(2.0))),
    ("linear", lambda: linear(np.full((1, 2), 6e4, np.float16), np.ones((2, 1), np.float16))),
    (
        "Attention.scores",
        lambda: scaled_dot_product_attention(*(np.full((2, 2), 6e4, np.float16),) * 3).scores,
    ),
    ("l2_norm", lambda: l2_norm(np.full(2, 65504, np.float16))),
    (
        "layer_norm",
        lambda: layer_norm(
            np.array([1.0, -1.0], np.float16),
            np.full(2, 65504, np.float16),
            np.full(2, 65504, np.float16),
        ),
    ),
    (
        "rms_norm",
        lambda: rms_norm(np.array([1.0, -3.0], np.float32), np.full(2, 3e38, np.float32)),
    ),
]


@pytest.mark.parametrize(("function", "call"), OVERFLOWS, ids=[o[0] for o in OVERFLOWS])
def test_overflowing_results_are_floating_point_errors_with_advice(
    function: str, call: Callable[[], object]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FloatingPointError, not inf with a RuntimeWarning
        with pytest.raises(FloatingPointError, match=r"float64|wider dtype") as info:
            call()
    assert "rescale" in str(info.value), function


# ---------------------------------------------------------------------------
# Rows: empty batch axis -> empty result; zero queries -> empty output
# ---------------------------------------------------------------------------

EMPTY: list[tuple[str, Callable[[], object], tuple[int, ...]]] = [
    ("softmax", lambda: softmax(np.ones((0, 3))), (0, 3)),
    ("log_softmax", lambda: log_softmax(np.ones((0, 3))), (0, 3)),
    ("logsumexp", lambda: logsumexp(np.ones((0, 3))), (0,)),
    ("entropy", lambda: entropy(np.ones((0, 3))), (0,)),
    ("softmax_jacobian", lambda: softmax_jacobian(np.ones((0, 3))), (0, 3, 3)),
    ("softmax_vjp", lambda: softmax_vjp(np.ones((0, 3)), np.ones((0, 3))), (0, 3)),
    ("l2_norm", lambda: l2_norm(np.ones((0, 3))), (0,)),
    ("l2_normalize", lambda: l2_normalize(np.ones((0, 3))), (0, 3)),
    ("cosine_similarity", lambda: cosine_similarity(np.ones((0, 3)), np.ones((0, 3))), (0,)),
    ("layer_norm", lambda: layer_norm(np.ones((0, 3))), (0, 3)),
    ("rms_norm", lambda: rms_norm(np.ones((0, 3))), (0, 3)),
    ("linear", lambda: linear(np.ones((0, 4)), W), (0, 2)),
    ("project_qkv", lambda: project_qkv(np.ones((0, 3, 4)), PARAMS), (0, 3, 4)),
    ("split_heads", lambda: split_heads(np.ones((0, 3, 4)), 2), (0, 2, 3, 2)),
    ("merge_heads", lambda: merge_heads(np.ones((0, 2, 3, 2))), (0, 3, 4)),
    (
        "scaled_dot_product_attention",
        lambda: scaled_dot_product_attention(
            np.ones((0, 3, 4)), np.ones((0, 5, 4)), np.ones((0, 5, 2))
        ),
        (0, 3, 2),
    ),
    (
        "scaled_dot_product_attention n=0",
        lambda: scaled_dot_product_attention(Q[:0], K, V),
        (0, 2),
    ),
    (
        "tiled_attention",
        lambda: tiled_attention(np.ones((0, 3, 4)), np.ones((0, 5, 4)), np.ones((0, 5, 2))),
        (0, 3, 2),
    ),
    ("tiled_attention n=0", lambda: tiled_attention(Q[:0], K, V), (0, 2)),
    (
        "attention_vjp",
        lambda: attention_vjp(scaled_dot_product_attention(Q[:0], K, V), np.ones((0, 2))),
        (0, 4),
    ),
    ("self_attention", lambda: self_attention(np.ones((0, 3, 4)), PARAMS), (0, 3, 4)),
    (
        "multi_head_attention",
        lambda: multi_head_attention(np.ones((0, 3, 4)), PARAMS2, n_heads=2),
        (0, 3, 4),
    ),
    (
        "multi_head_attention n=0",
        lambda: multi_head_attention(np.ones((0, 4)), PARAMS2, n_heads=2, context=X4),
        (0, 4),
    ),
    ("padding_mask", lambda: padding_mask(np.zeros(0, dtype=int), 3), (0, 1, 3)),
    ("causal_mask", lambda: causal_mask(0, 3), (0, 3)),
]


@pytest.mark.parametrize(("function", "call", "shape"), EMPTY, ids=[e[0] for e in EMPTY])
def test_empty_batches_and_zero_queries_give_empty_results(
    function: str, call: Callable[[], object], shape: tuple[int, ...]
) -> None:
    out = _output(call())
    assert out is not None
    assert out.shape == shape, function


def test_the_heatmap_of_no_queries_is_its_header() -> None:
    assert heatmap(np.zeros((0, 3))).splitlines() == ["query \\ key        0        1        2"]


# ---------------------------------------------------------------------------
# Row: zero keys (m = 0) or d_k = 0 -> ValueError
# ---------------------------------------------------------------------------

NO_KEYS: list[tuple[str, str, Callable[[], object]]] = [
    (
        "scaled_dot_product_attention m=0",
        "m = 0",
        lambda: scaled_dot_product_attention(Q, K[:0], V[:0]),
    ),
    (
        "scaled_dot_product_attention d_k=0",
        "d_k = 0",
        lambda: scaled_dot_product_attention(Q[:, :0], K[:, :0], V),
    ),
    ("tiled_attention m=0", "m = 0", lambda: tiled_attention(Q, K[:0], V[:0])),
    ("tiled_attention d_k=0", "d_k = 0", lambda: tiled_attention(Q[:, :0], K[:, :0], V)),
    ("self_attention n=m=0", "m = 0", lambda: self_attention(np.ones((0, 4)), PARAMS)),
    (
        "multi_head_attention m=0",
        "m = 0",
        lambda: multi_head_attention(X4, PARAMS2, n_heads=2, context=np.ones((0, 4))),
    ),
    (
        "AttentionParams d_k=0",
        "w_q",
        lambda: AttentionParams(w_q=np.ones((4, 0)), w_k=np.ones((4, 0)), w_v=E4),
    ),
    ("AttentionParams.random d_k=0", "d_k", lambda: AttentionParams.random(4, 0)),
    ("layer_norm d=0", "length 0", lambda: layer_norm(np.ones((3, 0)))),
    ("rms_norm d=0", "length 0", lambda: rms_norm(np.ones((3, 0)))),
    (
        "cosine_similarity d=0",
        "zero vector",
        lambda: cosine_similarity(np.ones((3, 0)), np.ones((3, 0))),
    ),
    ("l2_normalize d=0", "zero vector", lambda: l2_normalize(np.ones((3, 0)))),
]


@pytest.mark.parametrize(
    ("part", "call"), [pytest.param(part, call, id=case) for case, part, call in NO_KEYS]
)
def test_no_keys_or_no_features_is_a_value_error(part: str, call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=re.escape(part)):
        call()


# ---------------------------------------------------------------------------
# Row: 0-d input -> ValueError (needs at least one dimension), checked by each function
# ---------------------------------------------------------------------------

FIRST_ARGS = list({a.function: a for a in reversed(ARGS)}.values())  # first argument of each


@pytest.mark.parametrize("arg", FIRST_ARGS, ids=lambda a: a.function)
def test_zero_dimensional_input_is_a_value_error_naming_the_argument(arg: Arg) -> None:
    if arg.zero_d_ok:  # broadcasting a scalar against the other operand is valid
        assert _output(arg.call(np.float64(1.0))) is not None
        return
    message = _raises(ValueError, arg.name, lambda: arg.call(np.float64(1.0)))
    assert "0-d" in message or "()" in message, message  # the shape seen


def test_two_zero_dimensional_cosine_operands_are_a_value_error() -> None:
    _raises(ValueError, "a", lambda: cosine_similarity(1.0, 2.0), "at least one dimension")


# ---------------------------------------------------------------------------
# Row: integer input -> float64 (the SciPy rule): the conversion is as_float_array's
# (test_checks.py); here, that integers and lists flow through whole computations
# ---------------------------------------------------------------------------


def test_integer_input_is_cast_to_float64() -> None:
    ints = np.array([[1, 0, 1], [0, 4, 2]])
    for result in (
        softmax(ints),
        softmax(ints.tolist()),
        logsumexp(ints),
        l2_norm(ints),
        layer_norm(ints, np.ones(3, dtype=int)),
        linear(ints, np.ones((3, 2), dtype=int), [1, 2]),
        scaled_dot_product_attention(ints, ints, ints).output,
        AttentionParams(w_q=np.eye(4, dtype=int), w_k=E4, w_v=E4).w_q,
        _example(np.rint(X4).astype(int)).x,
    ):
        assert result.dtype == np.float64
    np.testing.assert_array_equal(softmax(ints), softmax(ints.astype(np.float64)))
    assert heatmap([[1, 0], [0, 1]]) == heatmap(np.eye(2))


# ---------------------------------------------------------------------------
# Rows: bool, complex, None, strings, ragged lists, object and masked arrays: the checks
# (test_checks.py), reached by every argument (the routing test above); the integer
# arguments and the other non-array arguments are checked one by one here
# ---------------------------------------------------------------------------


def test_padding_lengths_must_be_integers() -> None:
    _raises(TypeError, "lengths", lambda: padding_mask([1.0, 2.0], 3), "int")


@pytest.mark.parametrize(
    ("call", "name", "error"),
    [
        (lambda: causal_mask(2.0), "n_q", TypeError),  # type: ignore[arg-type]
        (lambda: causal_mask(True), "n_q", TypeError),
        (lambda: causal_mask(3, -1), "n_k", ValueError),
        (lambda: padding_mask([1], None), "n", TypeError),  # type: ignore[arg-type]
        (lambda: split_heads(X4, 2.0), "n_heads", TypeError),  # type: ignore[call-overload]
        (lambda: split_heads(X4, 0), "n_heads", ValueError),
        (lambda: multi_head_attention(X4, PARAMS2, n_heads="2"), "n_heads", TypeError),  # type: ignore[arg-type]
        (lambda: AttentionParams.random(4, 2, out_proj=1), "out_proj", TypeError),  # type: ignore[arg-type]
        (lambda: AttentionParams.random(4, 2, bias="yes"), "bias", TypeError),  # type: ignore[arg-type]
        (lambda: project_qkv(X4, {"w_q": E4}), "params", TypeError),  # type: ignore[call-overload]
        (lambda: self_attention(X4, None), "params", TypeError),  # type: ignore[arg-type]
        (lambda: Example("e", ("a",), ("f",), np.ones((1, 1)), None, ""), "params", TypeError),  # type: ignore[arg-type]
        (lambda: explain_score(None, 0, 0), "result", TypeError),  # type: ignore[arg-type]
    ],
    ids=[
        "causal_mask-float",
        "causal_mask-bool",
        "causal_mask-negative",
        "padding_mask-n",
        "split_heads-float",
        "split_heads-zero",
        "multi_head_attention-n_heads",
        "random-out_proj",
        "random-bias",
        "project_qkv-params",
        "self_attention-params",
        "Example-params",
        "explain-result",
    ],
)
def test_non_array_arguments_are_checked_by_type_and_value(
    call: Callable[[], object], name: str, error: type[Exception]
) -> None:
    _raises(error, name, call)


# ---------------------------------------------------------------------------
# Row: float16 / float32 / float64 -> dtype preserved; float16 accumulates in float32
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_composite_functions_keep_the_dtype(dtype: type[np.floating[Any]]) -> None:
    """Results of several arrays keep their common dtype (test_properties.py: every op)."""
    params = AttentionParams.random(4, 2, n_heads=2, out_proj=True, bias=True, rng=1, dtype=dtype)
    x = X4.astype(dtype)
    for result in (
        scaled_dot_product_attention(Q.astype(dtype), K.astype(dtype), V.astype(dtype)),
        self_attention(x, AttentionParams.random(4, 3, rng=2, dtype=dtype)),
        multi_head_attention(x, params, n_heads=2),
    ):
        assert result.output.dtype == result.weights.dtype == dtype
    assert all(a.dtype == dtype for a in project_qkv(x, params))
    assert linear(x, W.astype(dtype), B.astype(dtype)).dtype == dtype
    assert cosine_similarity(x, x).dtype == dtype
    assert softmax_vjp(P.astype(dtype), G.astype(dtype)).dtype == dtype
    # documented: the bias is converted to q's dtype
    assert (
        scaled_dot_product_attention(Q, K, V, bias=BIAS.astype(dtype)).output.dtype == np.float64
    )


def test_float16_accumulates_in_float32() -> None:
    """Sums of 3000 float16 terms: a float16 accumulator would stall at 2048."""
    n = 3000
    ones = np.ones(n, dtype=np.float16)
    assert l2_norm(np.ones(4096, dtype=np.float16)) == 64.0  # sqrt(4096)
    np.testing.assert_array_equal(softmax(np.zeros(n, np.float16)), np.float16(np.float32(1) / n))
    assert logsumexp(np.zeros(n, np.float16)) == np.float16(math.log(n))
    np.testing.assert_array_equal(rms_norm(ones), ones)  # mean square exactly 1
    assert linear(ones[None, :], ones[:, None])[0, 0] == n
    r = scaled_dot_product_attention(
        np.zeros((1, 1), np.float16), np.zeros((n, 1), np.float16), np.ones((n, 1), np.float16)
    )
    assert r.output[0, 0] == 1.0
    np.testing.assert_allclose(
        float(entropy(softmax(np.zeros(n, np.float16)))), math.log(n), rtol=1e-3
    )


# ---------------------------------------------------------------------------
# Row: arrays of different float dtypes -> TypeError naming the dtypes
# ---------------------------------------------------------------------------

F32 = np.float32
MIXED: list[tuple[str, Callable[[], object], tuple[str, ...]]] = [
    (
        "sdpa q",
        lambda: scaled_dot_product_attention(Q.astype(F32), K, V),
        ("q float32", "k float64"),
    ),
    ("sdpa v", lambda: scaled_dot_product_attention(Q, K, V.astype(np.float16)), ("v float16",)),
    ("linear", lambda: linear(X4.astype(F32), W), ("x float32", "weight float64")),
    ("linear bias", lambda: linear(X4, W, B.astype(F32)), ("bias float32", "x float64")),
    (
        "cosine_similarity",
        lambda: cosine_similarity(X4, X4.astype(F32)),
        ("a float64", "b float32"),
    ),
    ("softmax_vjp", lambda: softmax_vjp(P, G.astype(F32)), ("p float64", "grad float32")),
    ("layer_norm", lambda: layer_norm(X4, np.ones(4, F32)), ("x float64", "gamma float32")),
    ("rms_norm", lambda: rms_norm(X4, np.ones(4, np.float16)), ("x float64", "gamma float16")),
    (
        "AttentionParams",
        lambda: AttentionParams(w_q=E4.astype(F32), w_k=E4, w_v=E4),
        ("w_q float32", "w_k float64"),
    ),
    ("project_qkv", lambda: project_qkv(X4.astype(F32), PARAMS), ("x float32", "params float64")),
    (
        "multi_head_attention",
        lambda: multi_head_attention(X4, PARAMS2, n_heads=2, context=X4.astype(F32)),
        ("context float32", "params float64"),
    ),
]


@pytest.mark.parametrize(("case", "call", "parts"), MIXED, ids=[m[0] for m in MIXED])
def test_mixed_float_dtypes_are_type_errors_naming_the_dtypes(
    case: str, call: Callable[[], object], parts: tuple[str, ...]
) -> None:
    with pytest.raises(TypeError) as info:
        call()
    for part in parts:
        assert part in str(info.value), (case, str(info.value))


# ---------------------------------------------------------------------------
# Row: shape mismatches -> ValueError quoting both shapes
# ---------------------------------------------------------------------------

SHAPES: list[tuple[str, Callable[[], object], tuple[str, ...]]] = [
    ("sdpa d_k", lambda: scaled_dot_product_attention(Q, K[:, :3], V), ("q (3, 4)", "k (5, 3)")),
    ("sdpa m", lambda: scaled_dot_product_attention(Q, K, V[:4]), ("k (5, 4)", "v (4, 2)")),
    (
        "sdpa batch",
        lambda: scaled_dot_product_attention(np.stack([Q, Q]), np.stack([K, K, K]), V),
        ("(2, 3, 4)", "(3, 5, 4)"),
    ),
    ("linear", lambda: linear(X4, W[:3]), ("x (3, 4)", "weight (3, 2)")),
    ("linear bias", lambda: linear(X4, W, np.ones(3)), ("bias (3,)", "weight (4, 2)")),
    ("cosine_similarity", lambda: cosine_similarity(X4, np.ones(3)), ("a (3, 4)", "b (3,)")),
    ("softmax_vjp", lambda: softmax_vjp(P, G.T), ("p (2, 3)", "grad (3, 2)")),
    ("layer_norm gamma", lambda: layer_norm(X4, np.ones(3)), ("(3, 4)", "gamma (3,)")),
    (
        "AttentionParams",
        lambda: AttentionParams(w_q=E4, w_k=E4, w_v=np.eye(5)),
        ("w_q (4, 4)", "w_v (5, 5)"),
    ),
    ("project_qkv", lambda: project_qkv(np.ones((3, 5)), PARAMS), ("x (3, 5)", "w_q (4, 4)")),
    ("split_heads", lambda: split_heads(np.ones((3, 10)), 4), ("(3, 10)", "n_heads = 4")),
    (
        "sdpa bias",
        lambda: scaled_dot_product_attention(Q, K, V, bias=np.zeros((2, 5))),
        ("(2, 5)", "(3, 5)"),
    ),
]


@pytest.mark.parametrize(("case", "call", "parts"), SHAPES, ids=[s[0] for s in SHAPES])
def test_shape_mismatches_quote_both_shapes(
    case: str, call: Callable[[], object], parts: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match=re.escape(parts[0])) as info:
        call()
    for part in parts[1:]:
        assert part in str(info.value), (case, str(info.value))


# ---------------------------------------------------------------------------
# Rows: mask not bool -> TypeError "mask must be bool, got int64"; mask not
# broadcastable -> ValueError quoting shapes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskArg:
    """A boolean mask argument: ``call(mask)``, and the shape it must broadcast to."""

    function: str
    name: str
    target: tuple[int, ...]
    call: Callable[[Any], object]


MASKS = [
    MaskArg("softmax", "where", (2, 3), lambda m: softmax(S, where=m)),
    MaskArg(
        "scaled_dot_product_attention",
        "mask",
        (3, 5),
        lambda m: scaled_dot_product_attention(Q, K, V, mask=m),
    ),
    MaskArg("self_attention", "mask", (3, 3), lambda m: self_attention(X4, PARAMS, mask=m)),
    MaskArg(
        "multi_head_attention",
        "mask",
        (3, 3),
        lambda m: multi_head_attention(X4, PARAMS2, n_heads=2, mask=m),
    ),
]
each_mask = pytest.mark.parametrize("arg", MASKS, ids=[m.function for m in MASKS])


@each_mask
def test_masks_that_are_not_bool_are_type_errors_naming_the_dtype(arg: MaskArg) -> None:
    """The routing case of each mask argument (the mask check: test_checks.py)."""
    mask = np.ones(arg.target, dtype=np.int64)
    _raises(TypeError, arg.name, lambda: arg.call(mask), "must be bool", "int64")


@each_mask
def test_masks_that_do_not_broadcast_quote_both_shapes(arg: MaskArg) -> None:
    _raises(
        ValueError,
        arg.name,
        lambda: arg.call(np.ones((2, 2), dtype=bool)),
        "(2, 2)",
        str(arg.target),
    )


# ---------------------------------------------------------------------------
# Row: is_causal with n != m -> top-left aligned lower triangle, as torch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(2, 5), (5, 2), (3, 3)])
def test_is_causal_is_the_top_left_triangle_also_when_n_differs_from_m(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 10 + m)
    q, k, v = rng.normal(size=(n, 4)), rng.normal(size=(m, 4)), rng.normal(size=(m, 2))
    r = scaled_dot_product_attention(q, k, v, is_causal=True)
    triangle = all_ref.causal_mask(n, m)
    np.testing.assert_array_equal(causal_mask(n, m), triangle)
    np.testing.assert_array_equal(r.weights[~triangle], 0.0)
    assert r.mask is not None
    np.testing.assert_array_equal(r.mask, triangle)
    ref = all_ref.scaled_dot_product_attention(q, k, v, is_causal=True)
    REFERENCE.check(r.output, ref.output)
    _raises(TypeError, "is_causal", lambda: scaled_dot_product_attention(q, k, v, is_causal=1))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Row: axis out of range / not an int -> numpy AxisError / TypeError
# ---------------------------------------------------------------------------

AXES: list[tuple[str, Callable[[Any], object]]] = [
    ("softmax", lambda ax: softmax(S, axis=ax)),
    ("log_softmax", lambda ax: log_softmax(S, axis=ax)),
    ("logsumexp", lambda ax: logsumexp(S, axis=ax)),
    ("entropy", lambda ax: entropy(P, axis=ax)),
    ("softmax_vjp", lambda ax: softmax_vjp(P, G, axis=ax)),
    ("l2_norm", lambda ax: l2_norm(X4, axis=ax)),
    ("l2_normalize", lambda ax: l2_normalize(X4, axis=ax)),
    ("cosine_similarity", lambda ax: cosine_similarity(X4, X4, axis=ax)),
]


@pytest.mark.parametrize("call", [pytest.param(call, id=name) for name, call in AXES])
def test_axis_out_of_range_or_not_an_int(call: Callable[[Any], object]) -> None:
    """The routing case of each ``axis`` (the axis check: test_checks.py)."""
    _raises(TypeError, "axis", lambda: call(1.0), "int")
    with pytest.raises(AxisError, match="2"):
        call(2)


# ---------------------------------------------------------------------------
# Row: temperature <= 0, NaN or inf -> ValueError (and the other scalar options)
# ---------------------------------------------------------------------------

OPTIONS: list[tuple[str, str, Callable[[Any], object], Any, type[Exception]]] = [
    ("softmax", "temperature", lambda t: softmax(S, temperature=t), 0.0, ValueError),
    ("log_softmax", "temperature", lambda t: log_softmax(S, temperature=t), math.nan, ValueError),
    ("l2_normalize", "eps", lambda e: l2_normalize(X4, eps=e), 0.0, ValueError),
    ("layer_norm", "eps", lambda e: layer_norm(X4, eps=e), -1e-5, ValueError),
    ("rms_norm", "eps", lambda e: rms_norm(X4, eps=e), math.inf, ValueError),
    (
        "scaled_dot_product_attention",
        "scale",
        lambda s: scaled_dot_product_attention(Q, K, V, scale=s),
        math.nan,
        ValueError,
    ),
    ("l2_norm", "keepdims", lambda k: l2_norm(X4, keepdims=k), 1, TypeError),
    (
        "self_attention",
        "is_causal",
        lambda c: self_attention(X4, PARAMS, is_causal=c),
        1,
        TypeError,
    ),
]


@pytest.mark.parametrize(
    ("name", "call", "bad", "error"),
    [pytest.param(*option[1:], id=f"{option[0]}-{option[1]}") for option in OPTIONS],
)
def test_scalar_options_out_of_range_or_of_the_wrong_type(
    name: str, call: Callable[[Any], object], bad: Any, error: type[Exception]
) -> None:
    """The routing case of each scalar option (the scalar checks: test_checks.py)."""
    _raises(error, name, lambda: call(bad))


# ---------------------------------------------------------------------------
# Row: l2_normalize of a zero vector, no eps -> ValueError
# ---------------------------------------------------------------------------


def test_zero_vectors_are_value_errors_unless_eps_is_given() -> None:
    x = X4.copy()
    x[1] = 0.0
    _raises(ValueError, "x", lambda: l2_normalize(x), "zero vector", "index (1,)", "eps=")
    np.testing.assert_array_equal(l2_normalize(x, eps=1e-12)[1], 0.0)
    _raises(ValueError, "b", lambda: cosine_similarity(X4, x), "zero vector", "index (1,)")
    _raises(ValueError, "a", lambda: cosine_similarity(x[1], X4), "zero vector", "broadcast")
    _raises(ValueError, "x", lambda: rms_norm(x, eps=0.0), "zero row", "index (1,)")
    _raises(ValueError, "x", lambda: layer_norm(np.ones((2, 3)), eps=0.0), "constant row")


# ---------------------------------------------------------------------------
# Row: non-contiguous, Fortran-order, negative strides -> same results as contiguous
# ---------------------------------------------------------------------------

# Wide rows: NumPy's pairwise sums (8 accumulators) and BLAS kernels differ by layout
# only from about 8 terms on.
_RNG = np.random.default_rng(2024)
WIDE = _RNG.normal(size=(5, 37))
WIDE_P = softmax(WIDE)
WIDE_W = _RNG.normal(size=(37, 6))
ATTENTION_D_K = 37
WIDE_Q = _RNG.normal(size=(2, 5, ATTENTION_D_K))
WIDE_K = _RNG.normal(size=(2, 7, ATTENTION_D_K))
WIDE_V = _RNG.normal(size=(2, 7, 3))
WIDE_PARAMS = AttentionParams.random(37, 4, n_heads=2, out_proj=True, bias=True, rng=3)

LAYOUT_CALLS: list[tuple[str, tuple[AnyArray, ...], Callable[..., object]]] = [
    ("softmax", (WIDE,), softmax),
    ("softmax axis 0", (WIDE,), lambda x: softmax(x, axis=0)),
    ("log_softmax", (WIDE,), log_softmax),
    ("logsumexp", (WIDE,), logsumexp),
    ("entropy", (WIDE_P,), entropy),
    ("softmax_jacobian", (WIDE_P,), softmax_jacobian),
    ("softmax_vjp", (WIDE_P, WIDE), softmax_vjp),
    ("l2_norm", (WIDE,), l2_norm),
    ("l2_norm axis 0", (WIDE,), lambda x: l2_norm(x, axis=0)),
    ("l2_normalize", (WIDE,), l2_normalize),
    ("cosine_similarity", (WIDE, WIDE[::-1]), cosine_similarity),
    ("layer_norm", (WIDE, WIDE[0]), lambda x, g: layer_norm(x, g, g)),
    ("rms_norm", (WIDE, WIDE[1]), rms_norm),
    ("linear", (WIDE, WIDE_W, WIDE_W[0]), linear),
    ("project_qkv", (WIDE,), lambda x: project_qkv(x, WIDE_PARAMS)[0]),
    ("split_heads", (WIDE[:, :36],), lambda x: split_heads(x, 4)),
    ("merge_heads", (WIDE_Q,), merge_heads),
    (
        "scaled_dot_product_attention",
        (WIDE_Q, WIDE_K, WIDE_V),
        scaled_dot_product_attention,
    ),
    (
        "tiled_attention",
        (WIDE_Q, WIDE_K, WIDE_V),
        lambda q, k, v: tiled_attention(q, k, v, block_size=3),
    ),
    (
        "attention_vjp",
        (WIDE_Q[..., :3],),
        lambda g: attention_vjp(scaled_dot_product_attention(WIDE_Q, WIDE_K, WIDE_V), g),
    ),
    ("multi_head_attention", (WIDE,), lambda x: multi_head_attention(x, WIDE_PARAMS, n_heads=2)),
    ("heatmap", (WIDE_P,), heatmap),
]


LAYOUTS = ["fortran", "negative strides", "strided view"]


@pytest.mark.parametrize(
    ("function", "inputs", "call"), LAYOUT_CALLS, ids=[c[0] for c in LAYOUT_CALLS]
)
def test_memory_layout_does_not_change_a_bit(
    function: str, inputs: tuple[AnyArray, ...], call: Callable[..., object]
) -> None:
    expected = call(*inputs)
    for layout in LAYOUTS:
        got = call(*(dict(layouts(a))[layout] for a in inputs))
        if isinstance(expected, str):
            assert got == expected
            continue
        want, have = _output(expected), _output(got)
        assert want is not None
        assert have is not None
        np.testing.assert_array_equal(have, want, err_msg=f"{function}, {layout}")


# ---------------------------------------------------------------------------
# Inputs are never modified; no RuntimeWarning escapes
# ---------------------------------------------------------------------------


def test_inputs_are_never_modified() -> None:
    """Every array argument, read-only (a write would raise), keeps its values."""
    for arg in ARGS:
        given = arg.valid.copy()
        given.flags.writeable = False
        arg.call(given)
        np.testing.assert_array_equal(given, arg.valid, err_msg=arg.id)


def test_no_runtime_warning_escapes_on_extreme_inputs() -> None:
    """Every function on inputs at the edges of the float range, warnings as errors."""
    tiny, big = 5e-324, 1.7e308
    edge = np.array([[tiny, -tiny, big], [-big, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        softmax(edge)
        log_softmax(edge)
        logsumexp(edge)
        entropy(np.array([tiny, 1.0]))
        softmax_jacobian(np.array([tiny, 1.0]))
        softmax_vjp(np.array([tiny, 1.0]), np.array([big, -big]) / 4)
        l2_norm(edge)
        l2_normalize(edge)
        cosine_similarity(edge, edge[::-1])
        layer_norm(edge)
        rms_norm(edge)
        rms_norm(np.full((1, 3), tiny), eps=0.0)
        l2_normalize(np.full(3, tiny), eps=1e-300)
        split_heads(merge_heads(edge[None, :, :]), 1)
        scaled_dot_product_attention(edge, edge, edge, scale=1e-310)  # scores ~ 3e306
        scaled_dot_product_attention(np.full((1, 1), tiny), np.full((2, 1), tiny), edge[:, :1])
        with pytest.raises(FloatingPointError):
            linear(edge, np.full((3, 1), 2.0))
        with pytest.raises(FloatingPointError):
            scaled_dot_product_attention(edge, edge, edge)
        r = scaled_dot_product_attention(
            np.array([[1e200, 0.0]]),
            np.array([[1e200, 0.0], [0.0, 1.0]]),
            np.ones((2, 1)),
            scale=1e-300,
        )
        with pytest.raises(FloatingPointError, match="rescale"):
            explain_score(r, 0, 0)


# ---------------------------------------------------------------------------
# Rows: explain -- index out of range, unknown or repeated token, a masked pair
# ---------------------------------------------------------------------------

RESULT = self_attention(X4, PARAMS)
BATCHED = scaled_dot_product_attention(np.stack([Q, Q]), np.stack([K, K]), np.stack([V, V]))
MULTI = multi_head_attention(X4, PARAMS2, n_heads=2)


@pytest.mark.parametrize(
    ("call", "what", "index", "size"),
    [
        (lambda: explain_score(RESULT, 3, 0), "query", 3, 3),
        (lambda: explain_score(RESULT, 0, -4), "key", -4, 3),
        (lambda: explain_query(RESULT, 7), "query", 7, 3),
        (lambda: explain_score(MULTI, 0, 0, head=2), "head", 2, 2),
        (lambda: explain_score(BATCHED, 0, 0, batch=2), "batch axis 0", 2, 2),
    ],
    ids=["query", "key", "explain_query", "head", "batch"],
)
def test_explain_index_out_of_range_is_an_index_error_in_numpy_wording(
    call: Callable[[], object], what: str, index: int, size: int
) -> None:
    with pytest.raises(IndexError) as numpy_error:
        _ = np.zeros(size)[index]
    numpy_words = re.sub(r"axis 0", what, str(numpy_error.value))
    with pytest.raises(IndexError, match=re.escape(numpy_words)):
        call()


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: explain_score(RESULT, 1.0, 0), "query"),  # type: ignore[arg-type]
        (lambda: explain_score(RESULT, 0, None), "key"),  # type: ignore[arg-type]
        (lambda: explain_score(MULTI, 0, 0, head=1.0), "head"),  # type: ignore[arg-type]
        (lambda: explain_score(BATCHED, 0, 0, batch=1.0), "batch"),  # type: ignore[arg-type]
        (
            lambda: explain_score(
                scaled_dot_product_attention(HEADS, HEADS, HEADS),
                0,
                0,
                head="0",  # type: ignore[arg-type]
            ),
            "head",
        ),
    ],
    ids=["query-float", "key-None", "head-float", "batch-float", "attention-head-str"],
)
def test_explain_indices_of_the_wrong_type_are_type_errors(
    call: Callable[[], object], name: str
) -> None:
    _raises(TypeError, name, call)


def test_explain_unknown_or_repeated_tokens_are_value_errors() -> None:
    _raises(
        ValueError,
        "query",
        lambda: explain_score(RESULT, "cat", 0, tokens=EX.tokens),
        "'cat'",
        str(list(EX.tokens)),
    )
    _raises(
        ValueError,
        "query",
        lambda: explain_score(RESULT, "a", 0, tokens=["a", "a", "b"]),
        "2 times",
        "pass its index",
    )
    _raises(
        ValueError, "key", lambda: explain_score(RESULT, 0, "z", tokens=["a", "b", "c"]), "'z'"
    )


def test_explain_a_masked_pair_has_weight_zero_and_no_decomposition() -> None:
    causal = self_attention(X4, PARAMS, is_causal=True)
    why = explain_score(
        causal, "fluffy", "creature", tokens=EX.tokens, feature_names=EX.feature_names
    )
    assert why.masked
    assert why.weight == 0.0
    text = str(why)
    assert "masked" in text
    assert "In the embedding features" not in text
    assert "In the head's dimensions" not in text


# ---------------------------------------------------------------------------
# Row: HTML viewer -- token text with <, >, &, quotes is escaped, never executed
# ---------------------------------------------------------------------------


def test_html_viewer_escapes_hostile_tokens() -> None:
    from attention_from_scratch.view import to_html

    hostile = ["<script>alert(1)</script>", "a & b", "\"quoted\" 'single'"]
    page = to_html(RESULT, tokens=hostile, title="<b>title</b>")
    assert "<script>alert(1)</script>" not in page
    assert "<b>title</b>" not in page
    assert "&lt;b&gt;title&lt;/b&gt;" in page


# ---------------------------------------------------------------------------
# The coverage map: every row of the policy and the tests that cover it
# ---------------------------------------------------------------------------

_P = "test_properties.py::"
_C = "test_checks.py::"
COVERAGE: dict[str, list[str]] = {
    "NaN anywhere in x / q / k / v / bias": [
        f"{_C}test_check_finite_reports_value_index_and_shape",
        "test_every_array_argument_is_checked_and_named",
    ],
    "+inf or -inf in x / q / k / v (projections, attention inputs)": [
        f"{_C}test_check_finite_reports_value_index_and_shape",
        "test_infinities_are_value_errors_naming_the_argument_and_index",
    ],
    "+inf in softmax input or scores": [
        f"{_C}test_check_row_max",
        "test_infinities_are_value_errors_naming_the_argument_and_index",
    ],
    "-inf in softmax input / bias": [
        "test_neg_inf_entries_get_weight_exactly_zero",
        f"{_P}test_every_op_agrees_with_its_loop_reference",
    ],
    "a softmax row that is all -inf, no `where`": [
        "test_a_row_of_only_neg_inf_is_a_value_error_pointing_to_where",
    ],
    "fully masked attention row": [
        "test_fully_masked_rows_give_zeros_and_no_warning",
        "test_fully_masked_rows_in_every_public_attention_function",
        f"{_P}test_fully_masked_rows_are_exactly_zero_everywhere",
    ],
    "large finite values (1e308, -1e308; f16 +-65504)": [
        "test_largest_finite_values_give_exact_results",
        f"{_P}test_finite_in_finite_out_never_a_warning",
    ],
    "scores overflow in float32 (q.k ~ 1e40)": [
        "test_overflowing_results_are_floating_point_errors_with_advice",
    ],
    "empty batch axis (0, n)": ["test_empty_batches_and_zero_queries_give_empty_results"],
    "zero keys (m = 0) or d_k = 0": ["test_no_keys_or_no_features_is_a_value_error"],
    "zero queries (n = 0)": ["test_empty_batches_and_zero_queries_give_empty_results"],
    "0-d input to softmax": ["test_zero_dimensional_input_is_a_value_error_naming_the_argument"],
    "integer input": [
        f"{_C}test_integers_become_float64",
        "test_integer_input_is_cast_to_float64",
    ],
    "bool input to a numeric argument": [
        f"{_C}test_as_float_array_type_errors_name_the_argument",
        "test_every_array_argument_is_checked_and_named",
    ],
    "complex input": [
        f"{_C}test_as_float_array_type_errors_name_the_argument",
        "test_every_array_argument_is_checked_and_named",
    ],
    "None, strings, ragged lists, object arrays, masked arrays": [
        f"{_C}test_as_float_array_type_errors_name_the_argument",
        f"{_C}test_as_float_array_ragged_is_value_error",
        f"{_C}test_as_int_array_rejects_everything_but_integers",
        "test_every_array_argument_is_checked_and_named",
        "test_padding_lengths_must_be_integers",
        "test_non_array_arguments_are_checked_by_type_and_value",
    ],
    "float16 / float32 / float64": [
        f"{_C}test_float_arrays_keep_dtype_and_are_not_copied",
        "test_composite_functions_keep_the_dtype",
        "test_float16_accumulates_in_float32",
        f"{_P}test_output_dtype_is_input_dtype",
    ],
    "q, k, v of different float dtypes": [
        f"{_C}test_check_same_dtype_and_shape",
        "test_mixed_float_dtypes_are_type_errors_naming_the_dtypes",
    ],
    "shape mismatches (d_k, m, batch)": ["test_shape_mismatches_quote_both_shapes"],
    "mask not bool (0/1 ints, floats)": [
        f"{_C}test_as_bool_mask_errors_name_the_argument",
        "test_masks_that_are_not_bool_are_type_errors_naming_the_dtype",
    ],
    "mask not broadcastable to (..., n, m)": [
        f"{_C}test_broadcast_to_shape",
        "test_masks_that_do_not_broadcast_quote_both_shapes",
    ],
    "is_causal with n != m (cross-attention)": [
        "test_is_causal_is_the_top_left_triangle_also_when_n_differs_from_m",
    ],
    "axis out of range / not an int": [
        f"{_C}test_normalize_axis_out_of_range_is_axis_error",
        f"{_C}test_normalize_axis_non_integer_is_type_error_naming_the_argument",
        "test_axis_out_of_range_or_not_an_int",
    ],
    "temperature <= 0, NaN or inf": [
        f"{_C}test_positive_finite_rejects_non_positive_or_non_finite",
        "test_scalar_options_out_of_range_or_of_the_wrong_type",
    ],
    "l2_normalize of a zero vector, no eps": [
        "test_zero_vectors_are_value_errors_unless_eps_is_given",
    ],
    "non-contiguous, Fortran-order, negative strides": [
        "test_memory_layout_does_not_change_a_bit",
        f"{_P}test_memory_layout_never_changes_a_bit",
    ],
    "explain: index out of range": [
        "test_explain_index_out_of_range_is_an_index_error_in_numpy_wording",
        "test_explain_indices_of_the_wrong_type_are_type_errors",
    ],
    "explain: unknown token / token appearing twice": [
        "test_explain_unknown_or_repeated_tokens_are_value_errors",
    ],
    "explain: a masked pair": ["test_explain_a_masked_pair_has_weight_zero_and_no_decomposition"],
    "HTML viewer: token text with <, >, &, quotes": ["test_html_viewer_escapes_hostile_tokens"],
    # Not rows of the table, but part of the policy:
    "inputs are never modified in place": [
        "test_inputs_are_never_modified",
        f"{_P}test_read_only_inputs_are_accepted_and_never_modified",
    ],
    "no RuntimeWarning ever escapes": [
        "test_no_runtime_warning_escapes_on_extreme_inputs",
        f"{_P}test_finite_in_finite_out_never_a_warning",
    ],
}
"""Policy row -> the tests (in this file unless prefixed with another file) that cover it."""


def test_coverage_map_is_complete() -> None:
    """Every row names existing tests, and docs/guarantees.md prints every row's tests."""
    here = globals()
    page = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    assert len(COVERAGE) >= 32
    for row, names in COVERAGE.items():
        assert names, row
        for name in names:
            module, _, test = name.rpartition("::")
            owner = vars(importlib.import_module(f"tests.{module[:-3]}")) if module else here
            assert callable(owner.get(test)), f"{row}: {name} does not exist"
            assert test in page, f"docs/guarantees.md does not list {test} ({row})"
        assert row in page, f"docs/guarantees.md does not list the row {row!r}"


# ---------------------------------------------------------------------------
# Cross-checks: scipy.special (always) and torch (nox -s crosscheck)
# ---------------------------------------------------------------------------

CROSS = np.array(
    [
        [[0.5, -1.0, 3.0, 0.0], [2.0, 2.0, -7.5, 1.25], [-0.125, 4.0, 1.0, -np.inf]],
        [[10.0, -10.0, 0.0, 1e-3], [-np.inf, 0.0, 1.0, 2.0], [3.0, 3.0, 3.0, 3.0]],
    ]
)


@pytest.mark.crosscheck
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_family_matches_scipy_special(axis: int) -> None:
    x = CROSS if axis == -1 else np.where(np.isneginf(CROSS), -3.0, CROSS)
    REFERENCE.check(softmax(x, axis=axis), scipy.special.softmax(x, axis=axis))
    REFERENCE.check(log_softmax(x, axis=axis), scipy.special.log_softmax(x, axis=axis))
    REFERENCE.check(logsumexp(x, axis=axis), scipy.special.logsumexp(x, axis=axis))
    p = softmax(x, axis=axis)
    REFERENCE.check(entropy(p, axis=axis), scipy.special.entr(p).sum(axis=axis))
    # float32 and float16 results against scipy's float64, within the table of docs/guarantees.md
    for dtype in (np.float32, np.float16):
        low = x.astype(dtype)
        tol = TOLERANCES[np.dtype(dtype)]
        exact = low.astype(np.float64)
        tol.check(softmax(low, axis=axis), scipy.special.softmax(exact, axis=axis))
        tol.check(logsumexp(low, axis=axis), scipy.special.logsumexp(exact, axis=axis))
    # huge values: scipy's logsumexp is also exact there
    assert logsumexp([1e308, 1e308]) == scipy.special.logsumexp([1e308, 1e308])


@pytest.mark.crosscheck
def test_norms_match_scipy() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6))
    REFERENCE.check(layer_norm(x, eps=0.0), scipy.stats.zscore(x, axis=-1))
    from scipy.linalg import norm
    from scipy.spatial.distance import cosine

    for row in (x[0], np.array([3e200, 4e200]), np.array([3e-200, -4e-200])):
        np.testing.assert_allclose(l2_norm(row), norm(row), rtol=1e-15)  # BLAS nrm2 scales too
    REFERENCE.check(cosine_similarity(x[0], x[1]), 1.0 - cosine(x[0], x[1]))


@pytest.mark.crosscheck
def test_low_precision_attention_and_projections_match_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    q, k, v = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 7, 4)), rng.normal(size=(2, 7, 3))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    theirs = sdpa(*(torch.from_numpy(a) for a in (q, k, v)), is_causal=True).numpy()
    REFERENCE.check(scaled_dot_product_attention(q, k, v, is_causal=True).output, theirs)
    for dtype in (np.float32, np.float16):
        rounded = [a.astype(dtype) for a in (q, k, v)]  # the same inputs in both libraries
        ours = scaled_dot_product_attention(*rounded, is_causal=True)
        exact = sdpa(*(torch.from_numpy(a.astype(np.float64)) for a in rounded), is_causal=True)
        TOLERANCES[np.dtype(dtype)].check(ours.output, exact.numpy())
        TOLERANCES[np.dtype(dtype)].check(
            ours.output, all_ref.scaled_dot_product_attention(*rounded, is_causal=True).output
        )
    x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=2)
    t = torch.nn.functional.linear(
        torch.from_numpy(x), torch.from_numpy(w.T.copy()), torch.from_numpy(b)
    )
    REFERENCE.check(linear(x, w, b), t.numpy())
    for n, m in ((3, 5), (5, 3)):
        np.testing.assert_array_equal(
            causal_mask(n, m), torch.ones(n, m, dtype=torch.bool).tril().numpy()
        )
    heads = rng.normal(size=(2, 5, 6))
    split = torch.from_numpy(heads).reshape(2, 5, 3, 2).transpose(1, 2).numpy()
    np.testing.assert_array_equal(split_heads(heads, 3), split)


# ---------------------------------------------------------------------------
# Added with the fixes to softmax.py and self_attention.py (see the report)
# ---------------------------------------------------------------------------


def test_derivatives_of_huge_inputs_are_floating_point_errors_or_exact() -> None:
    """entropy, softmax_jacobian, softmax_vjp on huge finite input: never inf + a warning."""
    big = float(np.finfo(np.float64).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calls: list[Callable[[], object]] = [
            lambda: entropy(np.array([1e308, 0.5])),
            lambda: entropy(np.array([65504.0, 1.0], dtype=np.float16)),
            lambda: softmax_jacobian(np.array([1e308, -1e308])),
            lambda: softmax_vjp(np.array([1e308, 1e308]), np.array([1e308, 1e308])),
        ]
        for call in calls:
            with pytest.raises(FloatingPointError, match="rescale"):
                call()
        # results that exist are computed: grad - <grad, p> does not overflow on the way
        REFERENCE.check(softmax_vjp(np.array([1.0, 1.0]), np.array([1e308, 1e308])), [-1e308] * 2)
        tiny_p = softmax_vjp(np.array([5e-324, 1.0]), np.array([big, -big]))
        assert np.isfinite(tiny_p).all()


def test_padding_mask_of_an_empty_list_is_an_empty_batch() -> None:
    assert padding_mask([], 3).shape == (0, 1, 3)


@pytest.mark.parametrize("m", [3, 11, 13, 64])
def test_values_at_the_largest_float_give_exact_outputs(m: int) -> None:
    big = float(np.finfo(np.float64).max)
    q, k, v = np.zeros((1, 2)), np.zeros((m, 2)), np.full((m, 1), big)
    mixed = v.copy()
    mixed[0] = -big / 2  # a convex combination well inside the range
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        REFERENCE.check(scaled_dot_product_attention(q, k, v).output, [[big]])  # finite
        REFERENCE.check(tiled_attention(q, k, v, block_size=4), [[big]])
        want = (big / m) * (m - 1) - big / (2 * m)
        REFERENCE.check(tiled_attention(q, k, mixed, block_size=4), [[want]])
        REFERENCE.check(scaled_dot_product_attention(q, k, mixed).output, [[want]])
    f32 = np.float32
    top = np.finfo(f32).max
    out = tiled_attention(q.astype(f32), k.astype(f32), np.full((m, 1), top, f32), block_size=4)
    TOLERANCES[np.dtype(f32)].check(out, [[top]])


def test_attention_does_not_depend_on_the_memory_layout() -> None:
    """The cases of test_memory_layout_does_not_change_a_bit with wide d_k, and tiled."""
    x = np.random.default_rng(0).normal(size=(13, 37))  # q = k = v, d_k = 37
    cases: list[tuple[tuple[AnyArray, ...], Callable[..., AnyArray]]] = [
        ((x, x, x), lambda q, k, v: scaled_dot_product_attention(q, k, v).output),
        ((WIDE_Q, WIDE_K, WIDE_V), lambda q, k, v: tiled_attention(q, k, v, block_size=3)),
    ]
    for (inputs, call), layout in itertools.product(cases, LAYOUTS):
        expected = call(*inputs)
        got = call(*(dict(layouts(a))[layout] for a in inputs))
        np.testing.assert_array_equal(got, expected, err_msg=layout)


def test_values_at_the_largest_float_leave_fully_masked_rows_zero() -> None:
    """Only the entries that rounded past the largest float are clipped, never a 0 row."""
    big = float(np.finfo(np.float64).max)
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(50, 4)), rng.normal(size=(3, 4)), np.full((3, 1), big)
    mask = np.ones((50, 3), dtype=bool)
    mask[0] = False  # query 0 may attend to nothing: weights 0, output 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = scaled_dot_product_attention(q, k, v, mask=mask).output
    np.testing.assert_array_equal(out[0], 0.0)
    REFERENCE.check(out[1:], np.full((49, 1), big))  # rows that rounded past it included


@pytest.mark.parametrize("block_size", [4, 64, 1000])
def test_tiled_attention_with_many_keys_near_the_largest_float(block_size: int) -> None:
    """The running sum of e^(s - m) v reaches (number of keys) max|v|, not (block) max|v|."""
    top = float(np.finfo(np.float64).max)
    m = 1000
    v = np.empty((m, 1))
    v[: m // 2], v[m // 2 :] = top / 20, -top / 40
    q, k = np.zeros((2, 3)), np.zeros((m, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tiled_attention(q, k, v, block_size=block_size)
    REFERENCE.check(out, np.full((2, 1), (top / 20 - top / 40) / 2))


def test_errors_about_keys_quote_the_callers_shapes() -> None:
    """m = 0 and batch mismatches name x or context, not the grouped (..., h_kv, g, m, d)."""
    _raises(ValueError, "x", lambda: self_attention(np.ones((0, 4)), PARAMS), "m = 0", "(0, 4)")
    _raises(
        ValueError,
        "context",
        lambda: multi_head_attention(X4, PARAMS2, n_heads=2, context=np.ones((0, 4))),
        "m = 0",
        "(0, 4)",
    )
    _raises(
        ValueError,
        "context",
        lambda: multi_head_attention(
            np.ones((2, 3, 4)), PARAMS2, n_heads=2, context=np.ones((3, 5, 4))
        ),
        "x (2, 3, 4)",
        "context (3, 5, 4)",
    )
