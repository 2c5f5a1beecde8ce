"""The API pages document each public name exactly once, in the order they are written.

docs/api/*.md list their members one directive each (autodoc would sort them by the
alphabetical ``__all__``), so a name added to ``__all__`` must be added to its page too.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parent.parent / "docs" / "api"
MODULES = (
    "arrays",
    "examples",
    "explain",
    "norms",
    "pretrained",
    "projections",
    "self_attention",
    "softmax",
    "view",
)
DIRECTIVE = re.compile(
    r"^\.\. (?:auto(?:function|class|data)|py:data)::\s+(\w+)\s*$", re.MULTILINE
)


@pytest.mark.parametrize("name", MODULES)
def test_api_page_documents_all_of_module_once(name: str) -> None:
    """Every name of ``__all__`` has one directive on the module's page, and no other."""
    module = importlib.import_module(f"attention_from_scratch.{name}")
    page = (API / f"{name}.md").read_text(encoding="utf-8")
    assert f".. automodule:: attention_from_scratch.{name}\n   :no-members:" in page
    documented = DIRECTIVE.findall(page)
    assert len(documented) == len(set(documented)), documented
    assert sorted(documented) == sorted(module.__all__)


def test_every_api_page_is_checked() -> None:
    """No API page escapes the test above."""
    pages = {p.stem for p in API.glob("*.md")} - {"index"}
    assert pages == set(MODULES)
