"""Sphinx configuration for the attention_from_scratch book."""

from __future__ import annotations

import doctest
import html
import importlib.util
import os
import runpy
import shutil
import sys
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import attention_from_scratch

DOCS = ROOT / "docs"
GENERATED = DOCS / "_generated"  # book assets written at build time, never committed
GENERATED.mkdir(exist_ok=True)  # Sphinx checks html_static_path before builder-inited

project = "attention_from_scratch"
author = "attention_from_scratch developers"
copyright = "2026, attention_from_scratch developers"
release = attention_from_scratch.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinxcontrib.bibtex",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_design",  # {dropdown}: the exercises' worked solutions, collapsed
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $...$ and $$...$$ maths, labelled equations, ::: fences.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# autodoc + napoleon (numpydoc docstrings) + typehints in the description.
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_preprocess_types = False
typehints_use_signature = False
typehints_use_signature_return = False
typehints_document_rtype = False
always_use_bars_union = True

# One bibliography, cited from the chapters and the docstrings.
bibtex_bibfiles = ["refs.bib"]
bibtex_default_style = "unsrt"
bibtex_reference_style = "author_year"

# The matplotlib plot directive: PNG only, code shown, no links to sources.
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.figsize": (6.4, 3.6), "figure.dpi": 110}

# Doctest builder over the narrative pages' {doctest} blocks.
doctest_global_setup = "import numpy as np"
doctest_default_flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS

# Intersphinx needs the network; only enable it when asked (AFS_INTERSPHINX=1).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if os.environ.get("AFS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
    }

# nitpicky (-n): names from numpy/typing that have no target without intersphinx,
# and the free-text type slots of numpydoc ("(..., n) array_like").
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|numpy\.typing|typing|collections\.abc)(\..*)?"),
    (r"py:.*", r"(NDArray|ArrayLike|DTypeLike|F|FloatArray|BoolArray|Any|TypeVar)"),
    (r"py:.*", r"(array_like|ndarray|optional|bool|int|float|str|tuple|list|dict|None)"),
    (r"py:.*", r"[\(\)\.,\s\w]*"),
    (r"py:.*", r"scipy(\..*)?"),
]

# MathJax 3 is copied into the site at build time from a registry package (the wheel
# django-static-mathjax ships MathJax 3.2.2's es5 bundle; nox and Read the Docs install
# it with --no-deps), so every formula renders offline. AFS_MATHJAX_PATH overrides it.
MATHJAX_FILES = ("tex-mml-chtml.js", "output/chtml/fonts", "input/tex/extensions", "a11y")


def _local_mathjax() -> str | None:
    """Copy the MathJax 3 files the book needs into _generated/mathjax; their _static path."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    es5 = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_FILES[0]).is_file():
        return None
    target = GENERATED / "mathjax"
    for name in MATHJAX_FILES:
        source, copy = es5 / name, target / name
        if source.is_dir():
            shutil.copytree(source, copy, dirs_exist_ok=True)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
    return f"mathjax/{MATHJAX_FILES[0]}"


MATHJAX_LOCAL = os.environ.get("AFS_MATHJAX_PATH") or _local_mathjax()
mathjax_path = MATHJAX_LOCAL or "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"

html_theme = "furo"
html_title = "attention from scratch"
# _generated: pages made by docs/scripts/ when the build starts (see setup below).
html_static_path = ["_static", "_generated"]
html_css_files = ["afs.css"]  # equations on phones: scroll, numbers on their own line
html_show_sourcelink = False
pygments_style = "sphinx"


# --------------------------------------------------------------------------- build-time assets


def _write_minilm_view(app: Sphinx) -> None:
    """Write ``_generated/minilm_layer.html`` (the real-model chapter links to it).

    Written by docs/scripts/minilm_layer_view.py on every HTML build, so the page always
    shows what the package computes now. Without the extra ``pretrained`` and the model
    it writes a page that says so and warns (``-W`` turns that into an error).
    """
    if app.builder.format != "html":
        return
    log = logging.getLogger(__name__)
    script = runpy.run_path(str(DOCS / "scripts" / "minilm_layer_view.py"))
    target = GENERATED / "minilm_layer.html"
    log.info(
        "writing %s (all-MiniLM-L6-v2, layer %d, head %d)", target, script["LAYER"], script["HEAD"]
    )
    try:
        script["write_page"](target)
    except ImportError as exc:
        reason = html.escape(str(exc))
        target.write_text(
            "<!doctype html><meta charset='utf-8'><title>Not built</title>"
            f"<p>This book was built without the model, so this page is missing: {reason}</p>",
            encoding="utf-8",
        )
        log.warning("the view of all-MiniLM-L6-v2 was not built: %s", exc)


def _write_running_view(app: Sphinx) -> None:
    """Write ``_generated/running_example.html`` (the explain chapter embeds it)."""
    if app.builder.format != "html":
        return
    script = runpy.run_path(str(DOCS / "scripts" / "running_example_view.py"))
    logging.getLogger(__name__).info("writing %s", script["write_page"]())


def _check_mathjax(app: Sphinx) -> None:
    """Warn (an error under -W) when the book would load MathJax from the network."""
    if app.builder.format == "html" and MATHJAX_LOCAL is None:
        logging.getLogger(__name__).warning(
            "MathJax 3 is not installed, so formulas would need the network: "
            "pip install --no-deps django-static-mathjax"
        )


def setup(app: Sphinx) -> dict[str, bool]:
    """Generate the book's assets when the builder starts."""
    app.connect("builder-inited", _write_minilm_view)
    app.connect("builder-inited", _write_running_view)
    app.connect("builder-inited", _check_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
