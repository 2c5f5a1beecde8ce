r"""Computing a BERT encoder from the package's pieces: GELU, the layers, the runs.

The encoder of :mod:`attention_from_scratch.pretrained`, written with the routines of
the earlier chapters: :func:`~attention_from_scratch.norms.layer_norm`,
:func:`~attention_from_scratch.projections.linear` and
:func:`~attention_from_scratch.self_attention.multi_head_attention`. It holds
:func:`gelu`, the weights (:class:`BertEmbeddings`, :class:`BertLayer`), one layer's
computation (:func:`encoder_layer`, giving a :class:`LayerRun`), the encoder
(:class:`BertEncoder`) and what a text run through it gives (:class:`EncoderRun`).
Reading a checkpoint from disk is ``attention_from_scratch.pretrained._checkpoint``,
which this module imports. The public names are re-exported by
:mod:`attention_from_scratch.pretrained`: import them from there.

Examples
--------
>>> import numpy as np
>>> from attention_from_scratch.pretrained import BertConfig, BertEncoder
>>> config = BertConfig(vocab_size=10, d_model=8, n_layers=1, n_heads=2, d_ff=16)
>>> run = BertEncoder.random(config, rng=0).run_ids([1, 5, 2])
>>> print(run.tokens, run.layers[0].weights.shape)
('1', '5', '2') (2, 3, 3)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from attention_from_scratch._checks import (
    FloatArray,
    as_float_array,
    as_generator,
    check_finite,
    read_only,
)
from attention_from_scratch._kernel import affine
from attention_from_scratch.explain import (
    OriginSplit,
    QueryExplanation,
    ScoreExplanation,
    explain_query,
    explain_score,
)
from attention_from_scratch.norms import layer_norm, layer_norm_stats
from attention_from_scratch.pretrained._checkpoint import (
    EMBEDDING_TENSORS,
    LAYER_TENSORS,
    BertConfig,
    ProgressCallback,
    check_dtype,
    expected_shapes,
    needed_tensors,
    read_checkpoint,
)
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import (
    ProjectedAttention,
    multi_head_attention,
    self_attention,
)

Float64Array = NDArray[np.float64]

__all__ = [
    "BertEmbeddings",
    "BertEncoder",
    "BertLayer",
    "EmbeddingParts",
    "EncoderRun",
    "LayerRun",
    "encoder_layer",
    "gelu",
]

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
    # FFN(H') = GELU(H' W_1 + b_1) W_2 + b_2 on checked arrays: (n, d_model) -> (n, d_ff) -> ..
    inner = gelu(affine(h1, layer.w_1, layer.b_1, "h1 @ w_1 + b_1"))
    ffn = affine(inner, layer.w_2, layer.b_2, "gelu(.) @ w_2 + b_2")  # (n, d_ff) -> (n, d_model)
    # H'' = LN(H' + FFN(H'))
    h2 = layer_norm(h1 + ffn, layer.ffn_gamma, layer.ffn_beta, eps=layer.eps)
    return LayerRun(attention=attention, attention_output=h1, output=h2)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False, repr=False)
class EmbeddingParts:
    r"""The three embeddings of each token and the LayerNorm that turned their sum into :math:`H_0`.

    Kept by :meth:`BertEncoder.run_ids` in :attr:`EncoderRun.embedding_parts`, so that a
    score of layer 0 can be split by where its input came from (see
    :meth:`EncoderRun.explain`). Read-only.

    Attributes
    ----------
    parts : tuple of str
        ``("word", "position", "segment")``: the names of the rows of ``vectors``.
    vectors : (3, n, d_model) ndarray
        ``vectors[0, i]`` is the word-piece embedding :math:`E_\text{word}[t_i]`,
        ``vectors[1, i]`` the position embedding :math:`E_\text{position}[i]`,
        ``vectors[2, i]`` the segment (token type) embedding :math:`E_\text{type}[s_i]`,
        in the encoder's dtype.
    mean : (n,) ndarray
        :math:`\mu_i`, the mean over the features of token ``i``'s sum
        :math:`e_i = \sum_p e_{p,i}`, in ``float64``.
    std : (n,) ndarray
        :math:`\sigma_i = \sqrt{\operatorname{Var}(e_i) + \varepsilon}`, the
        divisor of that token's LayerNorm (biased variance over the features), in
        ``float64``.
    gamma, beta : (d_model,) ndarray
        The embedding LayerNorm's gain and shift.

    Notes
    -----
    With :math:`\mu_i` and :math:`\sigma_i` held at their values, the LayerNorm
    :cite:p:`ba2016layer` of the sum is linear in the three parts, each centred by its
    *own* mean over the features (the three means add up to :math:`\mu_i`):

    .. math::

       h_i = \gamma \odot \frac{e_i - \mu_i}{\sigma_i} + \beta
           = \sum_p u_{p,i} + \beta, \qquad
       u_{p,i} = \gamma \odot \frac{e_{p,i} - \operatorname{mean}(e_{p,i})}{\sigma_i} .

    :meth:`normalised` returns the :math:`u_{p,i}`; :meth:`EncoderRun.explain` carries
    them through the projections of layer 0. The statistics are recomputed here in
    ``float64`` from the parts by :func:`~attention_from_scratch.norms.layer_norm_stats`,
    the lines :func:`~attention_from_scratch.norms.layer_norm` runs (:math:`\sigma_i`
    is the reciprocal of its ``rstd``); they agree with the encoder's own to
    rounding, and the test suite checks that ``normalised().sum(axis=0) + beta`` is
    :math:`H_0` to :math:`10^{-14}` on all-MiniLM-L6-v2.

    References
    ----------
    :cite:t:`devlin2019bert`, §3 (the input representation); :cite:t:`ba2016layer`.

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.pretrained import BertConfig, BertEncoder
    >>> config = BertConfig(vocab_size=10, d_model=8, n_layers=1, n_heads=2, d_ff=16)
    >>> run = BertEncoder.random(config, rng=0).run_ids([1, 5, 2])
    >>> split = run.embedding_parts
    >>> print(split.parts, split.vectors.shape)
    ('word', 'position', 'segment') (3, 3, 8)
    >>> h0 = split.normalised().sum(axis=0) + split.beta  # sum of the parts + beta
    >>> print(bool(np.allclose(h0, run.embeddings, rtol=0, atol=1e-14)))
    True
    """

    parts: tuple[str, ...]
    vectors: FloatArray
    mean: Float64Array
    std: Float64Array
    gamma: FloatArray
    beta: FloatArray

    def __repr__(self) -> str:
        """Sizes only."""
        n, d = self.vectors.shape[1:]
        return f"EmbeddingParts({', '.join(self.parts)}; {n} tokens, d_model {d})"

    def normalised(self) -> Float64Array:
        r"""(3, n, d_model) ndarray: :math:`u_{p,i}`, each part through the token's LayerNorm.

        In ``float64``; ``normalised().sum(axis=0) + beta`` is :math:`H_0` to rounding.
        """
        vectors = self.vectors.astype(np.float64)
        centred = vectors - vectors.mean(axis=-1, keepdims=True)  # each part by its own mean
        out: Float64Array = self.gamma.astype(np.float64) * centred / self.std[None, :, None]
        return out


def _embedding_parts(
    embeddings: BertEmbeddings, ids: Sequence[int], type_ids: Sequence[int], /, *, eps: float
) -> EmbeddingParts:
    """Look up the three parts of each token and the statistics of their sum."""
    n = len(ids)
    vectors = np.stack(
        [
            embeddings.word[np.asarray(ids)],
            embeddings.position[:n],
            embeddings.token_type[np.asarray(type_ids)],
        ]
    )  # (3, n, d_model)
    total = vectors.astype(np.float64).sum(axis=0)  # e_i: (n, d_model)
    stats = layer_norm_stats(total, eps=eps)  # mu_i and 1 / sigma_i, by layer_norm's lines
    return EmbeddingParts(
        parts=("word", "position", "segment"),
        vectors=read_only(vectors),
        mean=read_only(stats.mean),
        std=read_only(1.0 / stats.rstd),  # sigma_i = sqrt(Var + eps)
        gamma=embeddings.gamma,
        beta=embeddings.beta,
    )


def _origin_split(
    parts: EmbeddingParts,
    w_q: FloatArray | None,
    w_k: FloatArray | None,
    b_q: FloatArray | None,
    b_k: FloatArray | None,
    i: int,
    j: int,
) -> OriginSplit:
    """Query ``i`` and key ``j`` of one layer-0 head, split by origin (see EncoderRun.explain)."""
    if w_q is None or w_k is None:  # a ProjectedAttention always has them
        msg = "layer 0 of the run has no projection weights to split the score with"
        raise ValueError(msg)
    u = parts.normalised()  # (3, n, d_model): h_i = sum_p u[p, i] + beta
    wq = np.asarray(w_q, dtype=np.float64)  # (d_model, d_k), this head's columns
    wk = np.asarray(w_k, dtype=np.float64)
    beta = np.asarray(parts.beta, dtype=np.float64)
    d_k = wq.shape[1]
    c_q = beta @ wq + (np.zeros(d_k) if b_q is None else np.asarray(b_q, dtype=np.float64))
    c_k = beta @ wk + (np.zeros(d_k) if b_k is None else np.asarray(b_k, dtype=np.float64))
    q_parts = u[:, i] @ wq  # (3, d_k): u_{a,i} W_Q
    k_parts = u[:, j] @ wk  # (3, d_k): u_{b,j} W_K
    blocks = q_parts @ k_parts.T  # (3, 3): u_{a,i} W_Q W_K^T u_{b,j}^T
    # (sum_a u_{a,i} W_Q) . c_K + c_Q . (sum_b u_{b,j} W_K) + c_Q . c_K
    constant = float(q_parts.sum(axis=0) @ c_k + c_q @ k_parts.sum(axis=0) + c_q @ c_k)
    return OriginSplit(parts=parts.parts, blocks=read_only(blocks), constant_terms=constant)


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
        tokens=run.tokens)``; :meth:`explain` also splits a score of layer 0 by
        origin (word, position, segment) into the explanation's ``origins``.
    hidden_states : tuple of ndarray
        The output (n, d_model) of each layer; ``hidden_states[-1]`` is the model's last
        hidden state. The embeddings are *not* included (HuggingFace's
        ``hidden_states`` puts them first: its ``hidden_states[l + 1]`` is this
        ``hidden_states[l]``).
    embedding_parts : EmbeddingParts or None
        The word, position and segment embedding of each token and the per-token
        mean and standard deviation of their sum: what :meth:`explain` needs to split
        a score of layer 0 by origin (its ``origins``). None only for a run built by
        hand.
    """

    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    type_ids: tuple[int, ...]
    embeddings: FloatArray
    layers: tuple[ProjectedAttention, ...]
    hidden_states: tuple[FloatArray, ...]
    embedding_parts: EmbeddingParts | None = None

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
        r"""Why ``query`` attends to ``key`` in one head of one layer; in layer 0, by origin too.

        ``explain_score(self.layers[layer], query, key, head=head, tokens=self.tokens)``.
        ``query`` and ``key`` are positions or tokens; a token that occurs twice (a
        second "the") must be given by its position.

        For layer 0 (``layer`` 0, or ``-n_layers``) the explanation's ``origins`` is an
        :class:`~attention_from_scratch.explain.OriginSplit`: the raw score
        :math:`q_i \cdot k_j` split into ``blocks[a, b]``, part ``a`` (word, position,
        segment) of the query token meeting part ``b`` of the key token, plus
        ``constant_terms``; ``blocks.sum() + constant_terms`` is ``raw_score``. For
        the later layers ``origins`` is None: their input has been through attention
        and feed-forward blocks, which mix the tokens and are not linear, so no such
        exact split exists.

        Parameters
        ----------
        layer, head : int
            Which layer (from 0; negative counts from the end) and which head.
        query, key : int or str
            Positions or tokens.

        Returns
        -------
        ScoreExplanation
            With ``origins`` set for layer 0 (when the run has its
            :attr:`embedding_parts`), else None.

        Raises
        ------
        IndexError, ValueError, TypeError
            As :meth:`layer` and :func:`~attention_from_scratch.explain.explain_score`.

        Notes
        -----
        The input of layer 0 is :math:`h_i = \operatorname{LN}(e_{\text{word},i} +
        e_{\text{position},i} + e_{\text{segment},i})` :cite:p:`devlin2019bert`. Hold
        each token's LayerNorm mean :math:`\mu_i` and divisor :math:`\sigma_i` at the
        values its sum gave them :cite:p:`ba2016layer`; then :math:`h_i` is linear in the
        parts, each centred by its own mean over the features (see
        :class:`EmbeddingParts`):

        .. math::

           h_i = \sum_p u_{p,i} + \beta, \qquad
           u_{p,i} = \gamma \odot \frac{e_{p,i} - \operatorname{mean}(e_{p,i})}{\sigma_i} .

        With this head's columns :math:`W_Q, W_K` (d_model, d_k) and biases
        :math:`b_Q, b_K`, write :math:`c_Q = \beta W_Q + b_Q` and :math:`c_K = \beta W_K
        + b_K`. Then :math:`q_i = \sum_a u_{a,i} W_Q + c_Q`, :math:`k_j = \sum_b u_{b,j}
        W_K + c_K`, and

        .. math::

           q_i \cdot k_j
             = \sum_{a, b} \underbrace{u_{a,i} W_Q W_K^\top u_{b,j}^\top}_{\text{blocks}[a, b]}
             + \underbrace{\Bigl(\sum_a u_{a,i} W_Q\Bigr) \cdot c_K
               + c_Q \cdot \Bigl(\sum_b u_{b,j} W_K\Bigr)
               + c_Q \cdot c_K}_{\text{constant\_terms}} .

        The identity is exact; in code, each :math:`u_{a,i} W_Q` is one
        ``(d_model,) @ (d_model, d_k)`` product in ``float64``, and the blocks the
        ``(3, d_k) @ (d_k, 3)`` product of the query's and the key's. With the default
        ``float64`` encoder the split reconciles with ``raw_score`` to rounding: on
        all-MiniLM-L6-v2, over every pair and every head of layer 0 of a 15-token
        sentence (raw scores up to 168 in size), to :math:`1.3 \times 10^{-13}`
        (``tests/test_pretrained.py`` requires :math:`10^{-10}`, and compares every
        block with a separately written reference). With ``dtype=float32`` the split is
        still computed in ``float64``, from the ``float32`` embeddings, while
        ``raw_score`` comes from the ``float32`` run: the two then differ by that run's
        rounding (measured :math:`6.7 \times 10^{-6}` on a raw score of 121.75).

        Examples
        --------
        >>> import numpy as np
        >>> from attention_from_scratch.pretrained import BertConfig, BertEncoder
        >>> config = BertConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=2, d_ff=16)
        >>> run = BertEncoder.random(config, rng=0).run_ids([1, 5, 2])
        >>> why = run.explain(0, 1, 2, 1)  # layer 0, head 1: token 2 looks at token 1
        >>> origins = why.origins
        >>> print(origins.parts, origins.blocks.shape)
        ('word', 'position', 'segment') (3, 3)
        >>> total = origins.blocks.sum() + origins.constant_terms
        >>> print(bool(abs(total - why.raw_score) < 1e-15))
        True
        >>> print(run.explain(1, 1, 2, 1).origins)  # layer 1: no split by origin
        None
        """
        result = self.layer(layer)
        why = explain_score(result, query, key, head=head, tokens=self.tokens)
        if int(layer) % len(self.layers) != 0 or self.embedding_parts is None:
            return why
        view = result.head_view(head=head)  # this head's columns of W_Q, W_K, b_Q, b_K
        origins = _origin_split(
            self.embedding_parts, view.w_q, view.w_k, view.b_q, view.b_k, why.query, why.key
        )
        return replace(why, origins=origins)

    def explain_query(self, layer: int, head: int, query: int | str, /) -> QueryExplanation:
        """Where ``query`` looks in one head of one layer (see :meth:`explain`)."""
        return explain_query(self.layer(layer), query, head=head, tokens=self.tokens)

    def to_html(
        self, layer: int | None = None, /, *, head: int | None = None, title: str | None = None
    ) -> str:
        """The interactive page: every layer and head (the model view), or one head.

        Without ``head``: :func:`~attention_from_scratch.view.to_html` of every layer,
        a grid of layers x heads where a click opens a head, its matrix, the numbers of
        every pair (computed in the page from the embedded queries and keys), the scale
        slider and the joint query-key map; opened at ``layer`` when given. About 1 MB
        for 6 layers of 12 heads on 15 tokens (all-MiniLM-L6-v2). With ``layer`` and
        ``head``: the page of that head alone, which also embeds the narrative of each
        of its ``n * n`` pairs and the feature-pair contributions: the head's
        projections, sliced from the layer's, run by
        :func:`~attention_from_scratch.self_attention.self_attention`, which computes
        that head's weights again (equal to rounding).

        Raises
        ------
        IndexError
            If ``layer`` or ``head`` is out of range.
        ValueError
            If ``head`` is given without ``layer``.
        """
        from attention_from_scratch.view import to_html  # noqa: PLC0415 - only when asked

        sentence = " ".join(self.tokens)
        if layer is None:
            if head is not None:
                msg = "head= needs a layer: run.to_html(layer, head=head)"
                raise ValueError(msg)
            heading = f"Every layer and head: {sentence}"
            return to_html(
                list(self.layers), tokens=self.tokens, title=heading if title is None else title
            )
        if head is None:
            self.layer(layer)  # the checks: an int, in range
            index = int(layer) % len(self.layers)
            heading = f"Layer {index}: {sentence}"
            return to_html(
                list(self.layers),
                tokens=self.tokens,
                title=heading if title is None else title,
                select=(index, 0),
            )
        result = self.layer(layer)
        index = int(layer) % len(self.layers)
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
        dt = check_dtype(dtype)
        names = needed_tensors(config, weights)
        shapes = expected_shapes(config)

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
        gen = as_generator(rng, "rng")
        shapes = expected_shapes(config)
        weights: dict[str, FloatArray] = {}
        for key, name in EMBEDDING_TENSORS.items():
            weights[name] = gen.normal(0.0, 0.02, size=shapes[key])
        weights[EMBEDDING_TENSORS["gamma"]] = np.ones(config.d_model)
        weights[EMBEDDING_TENSORS["beta"]] = np.zeros(config.d_model)
        for index in range(config.n_layers):
            for key, name in LAYER_TENSORS.items():
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
        # Reading (files, config, tensors, tokenizer), then converting: torch -> paper layout.
        checkpoint = read_checkpoint(path, progress=progress)
        return cls.from_weights(
            checkpoint.config,
            checkpoint.weights,
            dtype=dtype,
            tokenizer=checkpoint.tokenizer,
            path=checkpoint.path,
        )

    # ----------------------------------------------------------------- running

    def tokenize(
        self, text: str, /, *, pair: str | None = None
    ) -> tuple[list[str], list[int], list[int]]:
        """Word pieces, ids and segment ids of ``text`` (and ``pair``) by the tokenizer.

        Raises
        ------
        ValueError
            If the encoder has no tokenizer, or ``text`` or ``pair`` holds a lone
            surrogate (not valid Unicode: bytes that were not UTF-8, decoded with
            ``surrogateescape``, as ``sys.argv`` is on POSIX).
        TypeError
            If ``text`` or ``pair`` is not a string.
        """
        checked: tuple[tuple[str, object], ...] = (("text", text), ("pair", pair))
        for name, value in checked:
            if value is not None and not isinstance(value, str):
                msg = f"{name} must be a str, got {type(value).__name__}"
                raise TypeError(msg)
            if isinstance(value, str):
                _check_unicode(value, name)
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
            If the encoder has no tokenizer, the text is longer than
            ``config.max_positions`` tokens, or ``text`` or ``pair`` holds a lone
            surrogate (not valid Unicode, e.g. bytes that were not UTF-8 in ``sys.argv``).
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
        parts = _embedding_parts(self.embeddings, id_list, type_list, eps=c.layer_norm_eps)
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
            embedding_parts=parts,
        )


def _check_unicode(text: str, name: str) -> None:
    """Raise ValueError naming ``name`` if ``text`` holds a lone surrogate.

    Such a str cannot be encoded as UTF-8, so no tokenizer can read it; it arises when
    bytes that are not UTF-8 are decoded with ``surrogateescape`` (``sys.argv`` on POSIX).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = (
            f"{name} is not valid Unicode: it holds a lone surrogate "
            f"{text[exc.start]!r} at index {exc.start} (bytes that were not UTF-8?)"
        )
        raise ValueError(msg) from None


def _ids(values: Sequence[int], name: str, size: int) -> list[int]:
    """Validate a sequence of ids in ``[0, size)``."""
    values_obj: object = values  # typed Sequence[int], but callers may pass anything
    if isinstance(values_obj, str):
        msg = f"{name} must be a sequence of ints, got a str"
        raise TypeError(msg)
    if not isinstance(values_obj, Iterable):
        msg = f"{name} must be a sequence of ints, got {type(values_obj).__name__}"
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
