"""Command line: ``python -m attention_from_scratch [explain | softmax] ...``.

``explain`` (the default) runs self-attention on the running example *fluffy blue
creature* and explains it: the weight heatmap, where *creature* looks, and why it
attends to its strongest key. ``--query TOKEN --key TOKEN`` explains one pair,
``--causal`` applies the causal mask, ``--html FILE`` writes the interactive view.

``softmax`` prints the softmax walk-through on the Gram example, each step checkable
by hand.

Bad arguments end with a one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.explain import explain_query, explain_score, heatmap
from attention_from_scratch.self_attention import self_attention
from attention_from_scratch.softmax import entropy, softmax

PROG = "python -m attention_from_scratch"


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
            "the heatmap, where 'creature' looks, and why it attends to its strongest key."
        ),
    )
    explain.add_argument("--query", metavar="TOKEN", help="the query token (or index)")
    explain.add_argument("--key", metavar="TOKEN", help="the key token (or index)")
    explain.add_argument("--causal", action="store_true", help="apply the causal mask")
    explain.add_argument("--html", metavar="FILE", help="write the interactive HTML view")
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
        print(_explain(args))
    except (ValueError, IndexError, TypeError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
