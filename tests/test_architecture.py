"""The package's layers, read from every module's imports with :mod:`ast`.

A module imports only modules below it (docs/contributing.md, "How the code is
organised"): no circle, no import inside a function to dodge one (an import inside a
function is fine when it goes down, e.g. to start the command line quickly), no
private name imported from another module. The order, lowest first, is :data:`LAYERS`; modules on
one line are side by side and do not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "attention_from_scratch"
NAME = "attention_from_scratch"

#: Lowest first. ``pretrained`` stands for the subpackage and everything in it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("arrays",),
    ("_checks",),
    ("_kernel",),
    ("softmax",),
    ("norms",),
    ("projections",),
    ("examples", "_results"),
    ("_tiled", "_backward"),
    ("self_attention",),
    ("_narrative",),
    ("explain",),
    ("view",),
    ("pretrained",),
    ("__main__", "__init__"),
)
RANK = {module: rank for rank, line in enumerate(LAYERS) for module in line}


def _module_name(path: Path) -> str:
    """``attention_from_scratch/pretrained/_bert.py`` -> ``pretrained._bert``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def package_imports(source: str, module: str) -> list[tuple[str, int, tuple[str, ...], bool]]:
    """``(imported module, line, names, inside a function)`` for each import of the package."""
    found: list[tuple[str, int, tuple[str, ...], bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom) and child.module:
                names = tuple(alias.name for alias in child.names)
                if child.module == NAME:  # from attention_from_scratch import softmax
                    for name in names:
                        found.append((name, child.lineno, (), nested))
                elif child.module.startswith(NAME + "."):
                    found.append((child.module[len(NAME) + 1 :], child.lineno, names, nested))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith(NAME + "."):
                        found.append((alias.name[len(NAME) + 1 :], child.lineno, (), nested))
            visit(child, nested)

    visit(ast.parse(source, filename=module), in_function=False)
    return found


def violations(source: str, module: str) -> list[str]:
    """Every way in which ``source`` (the text of ``module``) breaks the layering."""
    problems = []
    here = _layer(module)
    for target, line, names, in_function in package_imports(source, module):
        where = f"{module}:{line} imports {target}"
        there = _layer(target)
        if target not in RANK and there not in RANK:
            problems.append(f"{where}: a module missing from LAYERS")
            continue
        same_package = there == here and "." in module + target  # inside one package
        if not same_package and RANK[there] >= RANK[here] and module != "__init__":
            dodge = " (inside a function: a cycle dodged at call time)" if in_function else ""
            problems.append(f"{where}: {there} is not below {here}{dodge}")
            continue
        private = [name for name in names if name.startswith("_") and name != "__version__"]
        if private:
            problems.append(f"{where}: private name(s) {', '.join(private)} across modules")
    return problems


def _sources() -> dict[str, str]:
    return {_module_name(p): p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")}


def test_every_module_imports_only_below_it() -> None:
    problems = [p for module, source in _sources().items() for p in violations(source, module)]
    assert problems == []


def test_no_circle_inside_a_package() -> None:
    """Inside ``_checks`` and ``pretrained`` the modules import one way too."""
    graph = {
        module: {target for target, *_ in package_imports(source, module)}
        for module, source in _sources().items()
        if _layer(module) in {"_checks", "pretrained"}
    }
    for module, targets in graph.items():
        for target in targets:
            assert module not in graph.get(target, set()), f"{module} <-> {target}"


def test_every_module_has_a_layer() -> None:
    assert {_layer(m) for m in _sources()} <= set(RANK)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("softmax", "from attention_from_scratch.explain import explain_score", "not below"),
        ("_results", "import attention_from_scratch.view", "not below"),
        ("norms", "from attention_from_scratch import norms", "not below"),
        (
            "_results",
            "def f():\n    from attention_from_scratch.view import to_html",
            "inside a function",
        ),
        ("explain", "from attention_from_scratch.softmax import _helper", "private name"),
        ("view", "from attention_from_scratch.nowhere import x", "missing from LAYERS"),
    ],
)
def test_the_checker_catches_each_kind_of_violation(
    module: str, source: str, expected: str
) -> None:
    found = violations(source, module)
    assert len(found) == 1
    assert expected in found[0]


def test_the_checker_accepts_a_downward_import() -> None:
    source = (
        "import numpy as np\nfrom attention_from_scratch.softmax import softmax\n"
        "def f():\n    from attention_from_scratch.norms import l2_norm  # lazy, downward\n"
    )
    assert violations(source, "self_attention") == []
