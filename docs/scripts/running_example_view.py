"""Write ``running_example.html``: the interactive view of the running example, for the book.

``docs/conf.py`` runs :func:`write_page` when an HTML build starts, into the build-time
static folder ``docs/_generated`` (not committed); the explain chapter embeds the page
(``_static/running_example.html``) in an iframe, so a reader clicks a cell of
*fluffy blue creature* and reads its explanation without leaving the chapter. Run by
hand::

    python docs/scripts/running_example_view.py --out /tmp/running_example.html
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.self_attention import self_attention
from attention_from_scratch.view import to_html

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "_generated" / "running_example.html"


def write_page(out: Path = TARGET) -> Path:
    """Write the view of self-attention on *fluffy blue creature* to ``out``."""
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    page = to_html(
        result,
        tokens=ex.tokens,
        feature_names=ex.feature_names,
        title="fluffy blue creature: click a cell",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--out PATH``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    print(write_page(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
