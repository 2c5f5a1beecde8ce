"""Tests for ``python -m attention_from_scratch``: output, exit status, one-line errors.

Each behaviour is checked twice: in a subprocess, exactly as a reader types it, and
through :func:`attention_from_scratch.__main__.main` in this process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from attention_from_scratch.__main__ import PROG, main
from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.explain import explain_score, heatmap
from attention_from_scratch.self_attention import self_attention

ROOT = Path(__file__).resolve().parents[1]
ERROR_PREFIX = "python -m attention_from_scratch: error:"
BAD_ARGUMENTS = [
    ["--bogus"],
    ["explain", "--bogus"],
    ["explain", "--query", "creature", "--key", "cat"],  # unknown token
    ["explain", "--key", "blue"],  # --key without --query
    ["explain", "--query", "7"],  # index out of range
    ["explain", "--query", "creature", "--key", "-4"],
    ["explain", "--query"],  # missing value
    ["bogus-command"],
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attention_from_scratch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run main(argv) in-process; argparse's exits become a status like the process's."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def _narrative(query: str | int, key: str | int, *, is_causal: bool = False) -> str:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params, is_causal=is_causal)
    return str(explain_score(result, query, key, tokens=ex.tokens, feature_names=ex.feature_names))


def _heatmap_rows(out: str) -> dict[str, list[float]]:
    """The numbers of each heatmap row of the output, by query token."""
    rows: dict[str, list[float]] = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("query \\ key"))
    for line in lines[start + 1 : start + 4]:
        label, *_ = line.split()
        rows[label] = [float(v) for v in re.findall(r"\d\.\d{3}", line)]
    return rows


def _check_default(out: str) -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    assert "query \\ key" in out
    assert heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens) in out
    assert "'creature' looks at" in out
    assert "'creature' attends to 'fluffy' because" in out
    assert _narrative("creature", "fluffy") in out


def test_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    done = _run()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    _check_default(done.stdout)
    status, out, err = _main([], capsys)
    assert (status, err) == (0, "")
    assert out == done.stdout


def test_explain_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _main(["explain"], capsys)
    assert status == 0
    _check_default(out)
    assert (0, out, "") == _main([], capsys)


def test_explain_a_pair_by_token(capsys: pytest.CaptureFixture[str]) -> None:
    done = _run("explain", "--query", "creature", "--key", "blue")
    assert done.returncode == 0, done.stderr
    assert done.stdout == _narrative("creature", "blue") + "\n"
    assert _main(["explain", "--query", "creature", "--key", "blue"], capsys) == (
        0,
        done.stdout,
        "",
    )


def test_explain_a_pair_by_index(capsys: pytest.CaptureFixture[str]) -> None:
    done = _run("explain", "--query", "2", "--key", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == _narrative("creature", "fluffy") + "\n"
    assert done.stdout.startswith("'creature' attends to 'fluffy' because")
    status, out, _ = _main(["explain", "--query", "-1", "--key", "fluffy"], capsys)
    assert (status, out) == (0, done.stdout)


def test_query_alone_explains_its_row(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _main(["explain", "--query", "blue"], capsys)
    assert status == 0
    assert "'blue' looks at" in out
    assert "'blue' attends to 'fluffy' because its query is zero" in out


@pytest.mark.parametrize("argv", [["explain", "--causal"], ["--causal"]])
def test_causal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    done = _run(*argv)
    assert done.returncode == 0, done.stderr
    rows = _heatmap_rows(done.stdout)
    assert rows["fluffy"] == [1.0, 0.0, 0.0]
    assert rows["blue"] == [0.5, 0.5, 0.0]
    assert rows["creature"] == [0.574, 0.348, 0.078]
    assert "causal" in done.stdout
    assert _main(argv, capsys) == (0, done.stdout, "")


def test_causal_pair_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _main(["explain", "--causal", "--query", "fluffy", "--key", "blue"], capsys)
    assert status == 0
    assert out == _narrative("fluffy", "blue", is_causal=True) + "\n"
    assert "masked" in out


def test_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "sub" / "view.html"
    done = _run("explain", "--html", str(target))
    assert done.returncode == 0, done.stderr
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "'creature' attends to 'fluffy' because" in page
    assert str(target) in done.stdout
    again = tmp_path / "again.html"
    status, out, _ = _main(["--html", str(again)], capsys)
    assert status == 0
    assert again.read_text(encoding="utf-8") == page
    assert str(again) in out


def test_html_into_a_directory_fails_cleanly(tmp_path: Path) -> None:
    done = _run("explain", "--html", str(tmp_path))  # a directory, not a file
    assert done.returncode == 2
    assert done.stderr.startswith(ERROR_PREFIX)
    assert "Traceback" not in done.stderr


def test_softmax_walkthrough(capsys: pytest.CaptureFixture[str]) -> None:
    done = _run("softmax")
    assert done.returncode == 0, done.stderr
    assert "0.4223" in done.stdout
    assert "0.1554" in done.stdout
    assert "row maxima" in done.stdout
    assert "entropy" in done.stdout
    assert _main(["softmax"], capsys) == (0, done.stdout, "")


@pytest.mark.parametrize(
    "argv", [["--help"], ["-h"], ["explain", "--help"], ["softmax", "--help"]]
)
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    done = _run(*argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m attention_from_scratch")
    assert done.stderr == ""
    status, out, _ = _main(argv, capsys)
    assert (status, out) == (0, done.stdout)
    if argv[0] == "explain":
        for option in ("--query", "--key", "--causal", "--html"):
            assert option in out


@pytest.mark.parametrize("argv", BAD_ARGUMENTS)
def test_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    done = _run(*argv)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(ERROR_PREFIX)
    assert done.stderr.endswith("\n")
    assert "Traceback" not in done.stderr
    assert _main(argv, capsys) == (2, "", done.stderr)


def test_bad_argument_messages(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = _main(["explain", "--query", "creature", "--key", "cat"], capsys)
    assert "'cat'" in err
    assert "['fluffy', 'blue', 'creature']" in err
    _, _, err = _main(["explain", "--key", "blue"], capsys)
    assert "--query" in err
    _, _, err = _main(["explain", "--query", "7"], capsys)
    assert "7" in err
    assert "out of bounds" in err
    _, _, err = _main(["--bogus"], capsys)
    assert "--bogus" in err


def test_prog_name() -> None:
    assert ERROR_PREFIX.startswith(PROG)
