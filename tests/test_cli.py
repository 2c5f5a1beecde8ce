"""Tests for ``python -m attention_from_scratch``: output, exit status, one-line errors.

Each behaviour is checked twice: in a subprocess, exactly as a reader types it, and
through :func:`attention_from_scratch.__main__.main` in this process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attention_from_scratch.__main__ import LEGEND, PROG, RUNNING_SENTENCE, main
from attention_from_scratch.examples import Example, fluffy_blue_creature, fluffy_creature_purred
from attention_from_scratch.explain import explain_score, heatmap
from attention_from_scratch.self_attention import self_attention
from tests.minilm import minilm_checkpoint

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
    ["explain", "--query", "②"],  # a digit to str.isdigit, not to int: a token
    ["explain", "--query", "٣"],  # int() reads it as 3; not ASCII: a token
    ["explain", "--query=--1"],  # not a position: a token
    ["explain", "--query", "creature", "--key=--1"],
    ["explain", "--example", "bogus"],
    ["explain", "--example", "purred", "--query", "blue"],  # a token of the other example
    ["explain", "--text", "\udcff"],  # bytes not UTF-8, as sys.argv decodes them
    ["explain", "--example", "fluffy", "--model", "minilm"],  # before any model is read
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


def _narrative(
    query: str | int, key: str | int, *, is_causal: bool = False, ex: Example | None = None
) -> str:
    ex = fluffy_blue_creature() if ex is None else ex
    result = self_attention(ex.x, ex.params, is_causal=is_causal)
    return str(explain_score(result, query, key, tokens=ex.tokens, feature_names=ex.feature_names))


def _heatmap_rows(out: str) -> dict[str, list[float]]:
    """The numbers of each heatmap row of the output, by query token."""
    rows: dict[str, list[float]] = {}
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("query \\ key"))
    end = lines.index(LEGEND, start)  # the legend closes every heatmap
    for line in lines[start + 1 : end]:
        label, *_ = line.split()
        rows[label] = [float(v) for v in re.findall(r"\d\.\d{3}", line)]
    return rows


def _check_default(out: str) -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    assert "query \\ key" in out
    assert heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens) in out
    assert (
        heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens) + "\n" + LEGEND in out
    )
    assert "'creature' looks at" in out
    assert "\n'creature' attends to 'fluffy'" in out
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
    assert done.stdout.startswith("'creature' attends to 'fluffy'")
    status, out, _ = _main(["explain", "--query", "-1", "--key", "fluffy"], capsys)
    assert (status, out) == (0, done.stdout)


def test_query_alone_explains_its_row(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _main(["explain", "--query", "blue"], capsys)
    assert status == 0
    assert "'blue' looks at" in out
    assert "\n'blue' attends to 'fluffy'" in out
    assert _narrative("blue", "fluffy") in out


@pytest.mark.parametrize("argv", [["explain", "--causal"], ["--causal"]])
def test_causal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    done = _run(*argv)
    assert done.returncode == 0, done.stderr
    rows = _heatmap_rows(done.stdout)
    assert rows["fluffy"] == [1.0, 0.0, 0.0]
    assert rows["blue"] == [0.5, 0.5, 0.0]
    assert rows["creature"] == [0.574, 0.348, 0.078]
    assert "causal" in done.stdout
    # Without --query: a row the mask changes (fluffy: 1/3 -> 1; creature's is unchanged).
    line = "(--causal: explaining 'fluffy', whose row the mask changes: 'fluffy' 0.333 -> 1.000)"
    assert f"\n{line}\n" in done.stdout
    assert "'fluffy' looks at" in done.stdout
    assert _narrative("fluffy", "fluffy", is_causal=True) in done.stdout
    assert "'creature' looks at" not in done.stdout
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
    assert "'creature' attends to 'fluffy'" in page
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
        for option in ("--example", "--query", "--key", "--causal", "--html", "--model"):
            assert option in out
    if argv[0] in ("--help", "-h"):
        # The top-level help lists the commands and their options, as argparse writes them.
        assert "{explain,softmax}" in out
        listed = out[out.index("commands and their options:") :]
        assert f"{PROG} explain" in listed
        assert f"{PROG} softmax" in listed
        options = ["--example", "--query", "--key", "--causal", "--html", "--model", "--text"]
        for option in [*options, "--layer", "--head", "{fluffy,purred}"]:
            assert option in listed, option


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


def test_bad_argument_messages_say_what_is_wrong(capsys: pytest.CaptureFixture[str]) -> None:
    for query in ("②", "٣", "--1"):
        _, _, err = _main(["explain", f"--query={query}"], capsys)
        assert err == (
            f"{ERROR_PREFIX} unknown query token {query!r}; "
            "the tokens are ['fluffy', 'blue', 'creature']\n"
        )
    _, _, err = _main(["explain", "--example", "bogus"], capsys)
    assert "--example" in err
    assert "'fluffy', 'purred'" in err
    _, _, err = _main(["explain", "--text", "it was \udcff tired"], capsys)
    assert err == f"{ERROR_PREFIX} --text is not valid UTF-8 (byte 0xff at character 7)\n"
    _, _, err = _main(["explain", "--model", "minilm", "--example", "purred"], capsys)
    assert err == f"{ERROR_PREFIX} --example does not apply to --model: the model runs --text\n"


def test_text_that_is_not_utf8_from_the_shell(tmp_path: Path) -> None:
    """Bytes that are not UTF-8, as a shell passes them: one line, status 2."""
    for extra in ([], ["--model", str(tmp_path / "nowhere")]):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "attention_from_scratch",
                "explain",
                *extra,
                "--text",
                b"caf\xe9",
            ],
            cwd=ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert done.stdout == b""
        assert done.stderr == (
            f"{ERROR_PREFIX} --text is not valid UTF-8 (byte 0xe9 at character 3)\n".encode()
        )


@pytest.mark.parametrize("argv", [["softmax"], [], ["--example", "purred", "--causal"]])
def test_broken_pipe_is_quiet(argv: list[str]) -> None:
    """The reader closes the pipe before anything is written: no traceback, status 0."""
    with subprocess.Popen(
        [sys.executable, "-m", "attention_from_scratch", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()  # as `head` does, before the program has imported numpy
        err = process.stderr.read()
        status = process.wait(timeout=60)
    assert (status, err) == (0, b"")


def test_broken_pipe_in_a_shell_pipeline() -> None:
    """`... softmax | head -1`, exactly as typed."""
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"set -o pipefail; {sys.executable} -m attention_from_scratch softmax | head -1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Softmax on the running Gram example (Q = K = V = x)\n"
    assert done.stderr == ""


def test_broken_pipe_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, f"Broken pipe writing {len(text)} characters")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["softmax"]) == 0
    assert main(["explain", "--example", "purred"]) == 0
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------- --example purred


def _check_purred_default(out: str) -> None:
    ex = fluffy_creature_purred()
    result = self_attention(ex.x, ex.params)
    assert out.startswith("Self-attention on 'the fluffy creature purred': the weights\n")
    table = heatmap(result.weights, row_labels=ex.tokens, col_labels=ex.tokens)
    assert f"\n{table}\n{LEGEND}\n" in out
    assert "\n'purred' looks at 'creature' 0.6103" in out  # the last token, by default
    assert "\n'purred' attends to 'creature'" in out
    assert _narrative("purred", "creature", ex=ex) in out


def test_example_purred(capsys: pytest.CaptureFixture[str]) -> None:
    done = _run("explain", "--example", "purred")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    _check_purred_default(done.stdout)
    assert _heatmap_rows(done.stdout)["fluffy"] == [0.259, 0.157, 0.427, 0.157]
    assert _main(["--example", "purred"], capsys) == (0, done.stdout, "")
    # --example fluffy is the default.
    assert _main(["--example", "fluffy"], capsys) == _main([], capsys)


def test_example_purred_causal_explains_the_row_the_mask_changes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ex = fluffy_creature_purred()
    status, out, err = _main(["explain", "--example", "purred", "--causal"], capsys)
    assert (status, err) == (0, "")
    rows = _heatmap_rows(out)
    assert rows["fluffy"] == [0.622, 0.378, 0.0, 0.0]
    assert rows["purred"] == [0.225, 0.083, 0.61, 0.083]
    line = (
        "(--causal: explaining 'fluffy', whose row the mask changes: "
        "its top key moves from 'creature' to 'the')"
    )
    assert f"\n\n{line}\n\n'fluffy' looks at 'the' 0.6225, 'fluffy' 0.3775." in out
    assert "\n'fluffy' attends to 'the'" in out
    assert _narrative("fluffy", "the", is_causal=True, ex=ex) in out
    # With --query, the row asked for, and no such line.
    status, out, _ = _main(["--example", "purred", "--causal", "--query", "purred"], capsys)
    assert status == 0
    assert "(--causal" not in out
    assert _narrative("purred", "creature", is_causal=True, ex=ex) in out


def test_example_purred_pair_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ex = fluffy_creature_purred()
    argv = ["explain", "--example", "purred", "--query", "creature", "--key", "-4"]
    status, out, _ = _main(argv, capsys)
    assert status == 0
    assert out == _narrative("creature", "the", ex=ex) + "\n"
    assert out.startswith("'creature' attends to 'the'")
    status, out, _ = _main([*argv, "--causal"], capsys)
    assert (status, out) == (0, _narrative("creature", "the", is_causal=True, ex=ex) + "\n")
    status, out, _ = _main(
        ["--example", "purred", "--query", "1", "--key", "purred", "--causal"], capsys
    )
    assert status == 0
    assert "masked" in out
    target = tmp_path / "purred.html"
    status, out, _ = _main(["--example", "purred", "--html", str(target)], capsys)
    assert status == 0
    assert out.endswith(f"The interactive view is in {target}\n")
    page = target.read_text(encoding="utf-8")
    assert "the fluffy creature purred" in page
    assert "'purred' attends to 'creature'" in page


def test_prog_name() -> None:
    assert ERROR_PREFIX.startswith(PROG)


# --------------------------------------------------------------------------- a real model
# ``explain --model``: the tests that need the checkpoint skip without it (and without
# the extra ``pretrained``); nox -s pretrained runs them.


@pytest.fixture(scope="module")
def minilm_run() -> Any:
    """The running sentence through all-MiniLM-L6-v2, computed in this process."""
    path = minilm_checkpoint()
    from attention_from_scratch.pretrained import BertEncoder

    return BertEncoder.from_pretrained(path).run(RUNNING_SENTENCE)


@pytest.mark.pretrained
@pytest.mark.parametrize("option", ["--text", "--layer", "--head"])
def test_model_options_need_model(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _main(["explain", option, "1"], capsys)
    assert (status, out) == (2, "")
    assert err == f"{ERROR_PREFIX} {option} needs --model\n"


@pytest.mark.pretrained
def test_model_bad_arguments_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = _run("explain", "--model", str(missing), "--query", "it", "--key", "creature")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(ERROR_PREFIX)
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "does not exist" in done.stderr
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    done = _run("explain", "--model", str(tmp_path))
    assert done.returncode == 2
    assert (
        done.stderr
        == f"{ERROR_PREFIX} the checkpoint directory {str(tmp_path)!r} lacks model.safetensors, tokenizer.json\n"
    )
    done = _run("explain", "--model", str(tmp_path), "--layer", "x")
    assert done.returncode == 2
    assert "--layer" in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.pretrained
def test_model_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "safetensors", None)  # as if not installed
    status, out, err = _main(["explain", "--model", str(tmp_path)], capsys)
    assert (status, out) == (2, "")
    assert err.startswith(ERROR_PREFIX)
    assert "pip install 'attention_from_scratch[pretrained]'" in err
    assert len(err.splitlines()) == 1


@pytest.mark.pretrained
def test_model_explains_a_pair(minilm_run: Any) -> None:
    args = ["explain", "--model", "minilm", "--layer", "3", "--head", "1"]
    done = _run(*args, "--query", "it", "--key", "creature")
    assert done.returncode == 0, done.stderr
    assert done.stdout == str(minilm_run.explain(3, 1, "it", "creature")) + "\n"
    assert done.stdout.startswith("'it' attends to 'creature' (")
    assert "(weight 0.6582, rank 1 of 15 keys)" in " ".join(done.stdout.split())
    # Progress on stderr only: one line, 20 dots, the tensor count.
    assert re.fullmatch(
        r"loading \S+ \.{20} done \(101 tensors, 22\.6M parameters, 90\.9 MB\)\n", done.stderr
    ), done.stderr


@pytest.mark.pretrained
def test_model_by_directory_and_index(minilm_run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(minilm_checkpoint())
    text = "The fluffy blue creature sat on the mat because it was tired."
    argv = ["explain", "--model", path, "--text", text, "--layer", "0", "--head", "2"]
    status, out, err = _main([*argv, "--query", "4", "--key", "3"], capsys)  # creature, blue
    assert status == 0, err
    assert out == str(minilm_run.explain(0, 2, 4, 3)) + "\n"
    assert "loading" in err
    # --query alone: where it looks, then why it attends to its strongest key.
    status, out, _ = _main([*argv, "--query", "creature"], capsys)
    assert status == 0
    row = minilm_run.explain_query(0, 2, "creature")
    assert out == f"{row}\n\n{minilm_run.explain(0, 2, 'creature', 'blue')}\n"
    # No query: the head's heatmap and each token's strongest key.
    status, out, _ = _main(argv, capsys)
    assert status == 0
    tokens = minilm_run.tokens
    assert heatmap(minilm_run.layers[0].weights[2], row_labels=tokens, col_labels=tokens) in out
    assert "   4 'creature' -> 'blue' 1.000" in out
    assert "  14 '[SEP]' -> '.' 1.000" in out


@pytest.mark.pretrained
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer", "6"], "layer 6 is out of range: the model has 6 layers (0 .. 5)"),
        (["--head", "12"], "head 12 is out of range: the model has 12 heads (0 .. 11)"),
        (["--query", "the", "--key", "creature"], "query token 'the' occurs 2 times"),
        (["--query", "it", "--key", "dog"], "unknown key token 'dog'"),
        (["--key", "it"], "--key needs --query"),
        (["--causal"], "--causal does not apply to --model"),
    ],
)
def test_model_bad_arguments(
    minilm_run: Any, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert minilm_run.tokens.count("the") == 2
    status, out, err = _main(["explain", "--model", "minilm", *extra], capsys)
    assert (status, out) == (2, "")
    last = err.splitlines()[-1]
    assert last.startswith(ERROR_PREFIX)
    assert message in last


@pytest.mark.pretrained
@pytest.mark.usefixtures("minilm_run")  # skips without the model
def test_model_html_of_one_head(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "head.html"
    argv = ["explain", "--model", "minilm", "--layer", "3", "--head", "1", "--html", str(target)]
    status, out, err = _main([*argv, "--query", "it", "--key", "creature"], capsys)
    assert status == 0, err
    assert out.endswith(f"The interactive view of layer 3 (head 1) is in {target}\n")
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Layer 3, head 1: [CLS] the fluffy blue creature" in page
    assert "'it' attends to 'creature'" in page


def _sharpest(run: Any, query: int | str, layers: range, heads: range) -> tuple[int, int, float]:
    """The (layer, head, entropy) of the lowest entropy of query's row, by a plain loop."""
    found = [
        (run.explain_query(layer, head, query).entropy, layer, head)
        for layer in layers
        for head in heads
    ]
    entropy, layer, head = min(found)
    assert [e for e, *_ in found].count(entropy) == 1  # no tie to break
    return layer, head, entropy


@pytest.mark.pretrained
def test_model_shows_the_sharpest_head(
    minilm_run: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = minilm_run.tokens
    assert tokens[12] == "tired"  # the last word: neither [SEP] nor "."
    layer, head, entropy = _sharpest(minilm_run, 12, range(6), range(12))
    assert (layer, head) == (0, 2)  # the previous-token head
    status, out, err = _main(["explain", "--model", "minilm"], capsys)
    assert status == 0, err
    first, rest = out.split("\n\n", 1)
    assert first == (
        f"layer 0 head 2: the head where 'tired' attends most sharply (entropy {entropy:.4f} nats)"
    )
    weights = minilm_run.layers[0].weights[2]
    assert heatmap(weights, row_labels=tokens, col_labels=tokens) + "\n" + LEGEND in rest
    assert rest.startswith("Layer 0, head 2 of ")
    assert "  12 'tired' -> 'was' 1.000" in rest


@pytest.mark.pretrained
@pytest.mark.parametrize(
    ("extra", "layers", "heads", "which"),
    [
        ([], range(6), range(12), "the head"),
        (["--layer", "3"], range(3, 4), range(12), "the head of layer 3"),
        (["--head", "1"], range(6), range(1, 2), "the layer for head 1"),
    ],
)
def test_model_query_in_the_sharpest_head(
    minilm_run: Any,
    extra: list[str],
    layers: range,
    heads: range,
    which: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layer, head, entropy = _sharpest(minilm_run, "it", layers, heads)
    status, out, err = _main(["explain", "--model", "minilm", "--query", "it", *extra], capsys)
    assert status == 0, err
    row = minilm_run.explain_query(layer, head, "it")
    line = f"layer {layer} head {head}: {which} where 'it' attends most sharply"
    assert out == (
        f"{line} (entropy {entropy:.4f} nats)\n\n{row}\n\n"
        f"{minilm_run.explain(layer, head, 'it', row.order[0])}\n"
    )
    if extra == ["--layer", "3"]:
        assert (layer, head) == (3, 1)  # the head that resolves 'it' to 'creature'
        assert "\n'it' attends to 'creature'" in out
