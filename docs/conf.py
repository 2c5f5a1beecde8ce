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

from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
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

# nitpicky (-n): every cross-reference must resolve, except these, each for its reason.
nitpicky = True
# The dimensions that numpydoc type slots name ("(..., n, d_k) ndarray"): Sphinx makes
# each word a reference; these are shapes, not objects. See _ShapeNamesStayText.
SHAPE_NAMES = [
    *("n", "m", "d", "h", "h_kv", "batch", "P"),
    *("d_k", "d_v", "d_in", "d_out", "d_ff", "d_model", "n_heads", "n_kv_heads"),
    *("n_layers", "vocab_size", "type_vocab_size", "max_positions"),  # BertConfig's sizes
]
nitpick_ignore = [("py:class", name) for name in SHAPE_NAMES] + [
    ("py:data", "Ellipsis"),  # the "..." of "(..., n, d_k)" in an attribute's :type:
]
nitpick_ignore_regex = [
    # Outside this package: resolved by intersphinx only (AFS_INTERSPHINX=1, online).
    (r"py:.*", r"(numpy|np|numpy\.typing|typing|collections\.abc|scipy)(\..*)?"),
    (r"py:.*", r"(math|tracemalloc|pathlib|importlib|tokenizers|torch)(\..*)?"),
    (r"py:class", r"(NDArray|ArrayLike|DTypeLike|Any|TypeVar|ndarray)"),
    (r"py:class", r"float16|float32|float64"),  # dtypes named in type slots
    (r"py:class", r"\d+"),  # a fixed size in a shape, "(n, 2) ndarray"
    # numpydoc's words for types that are not Python names.
    (r"py:class", r"array_like|optional|sequence|mapping|callable|integers|a pair|them"),
    (r"py:class", r"(n_heads|n_kv_heads) (d_k|d_v|d)"),  # a product of two sizes
    (r"py:class", r"str to array_like"),  # "mapping of str to array_like"
]


# --------------------------------------------------------------------------- type slots


class _ShapeNamesStayText(SphinxPostTransform):
    """Keep a bare word of a type slot from linking to some class's attribute.

    numpydoc writes shapes in the type slot, ``(..., n, d_k) ndarray``, and Sphinx makes
    every word a ``py:class`` reference searched by suffix; finding no class ``d_k`` it
    falls back to attributes and links ``d_k`` to ``BertConfig.d_k``, ``d_model`` to
    ``AttentionParams.d_model``, ``n_heads`` to ``ProjectedAttention.n_heads``. Run
    before the references are resolved: a bare word that names a class or module-level
    name of the package (``AttentionParams``) links to it from any module; one that
    would only match attributes of classes is left unresolved, so nitpicky mode reports
    it unless it is one of the SHAPE_NAMES above.
    """

    default_priority = 5  # before ReferencesResolver (10)

    def run(self, **kwargs: object) -> None:  # noqa: ARG002 (Sphinx's signature)
        """Decide, for each bare ``py:class`` reference, whether it may link."""
        domain = self.env.get_domain("py")
        for node in self.document.findall(addnodes.pending_xref):
            target = node.get("reftarget", "")
            if node.get("refdomain") != "py" or node.get("reftype") != "class" or "." in target:
                continue
            module, cls = node.get("py:module"), node.get("py:class")
            as_class = [
                match
                for objtype in ("class", "data")
                for match in domain.find_obj(self.env, module, cls, target, objtype, 1)
                if match[0].rpartition(".")[0] in domain.modules  # a module's own name
            ]
            if as_class:
                node["refspecific"] = True  # found by name from any module, as docfields are
            elif node.hasattr("refspecific") or target in SHAPE_NAMES:
                # Searched by suffix only an attribute would match: no link; -n reports it.
                node.attributes.pop("refspecific", None)
                node["py:class"] = None  # not even this class's own attribute


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
    app.add_post_transform(_ShapeNamesStayText)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
