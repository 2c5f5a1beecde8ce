"""Tests for attention_from_scratch.view: one self-contained, safe page of explanations.

The page must load nothing from the network, carry the exact narratives of
:func:`~attention_from_scratch.explain.explain_score` for every pair, never let token
text become markup, and render in a real browser (headless Chromium, when installed)
without a script error.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.explain import explain_query, explain_score
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import (
    ProjectedAttention,
    multi_head_attention,
    scaled_dot_product_attention,
    self_attention,
)
from attention_from_scratch.view import (
    NOTEBOOK_MAX_HEADS,
    NOTEBOOK_MAX_PAIRS,
    NOTEBOOK_MAX_TOKENS,
    notebook_html,
    to_html,
)

SVG_NS = "http://www.w3.org/2000/svg"
DATA_OPEN = '<script type="application/json" class="afs-data">'
HOSTILE = (
    "</script><script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\"quotes\" & 'apostrophes'",
)


def _running() -> tuple[ProjectedAttention, tuple[str, ...], tuple[str, ...]]:
    ex = fluffy_blue_creature()
    return self_attention(ex.x, ex.params), ex.tokens, ex.feature_names


def _data(page: str) -> dict[str, Any]:
    """The embedded JSON: everything from the data element's start tag to its end tag."""
    start = page.index(DATA_OPEN) + len(DATA_OPEN)
    end = page.index("</script>", start)  # the first closing tag must be the data's own
    payload: dict[str, Any] = json.loads(page[start:end])
    return payload


def _hostile_multi_head() -> tuple[ProjectedAttention, list[str]]:
    params = AttentionParams.random(4, 2, n_heads=2, rng=3)
    x = np.random.default_rng(3).normal(size=(3, 4))
    return multi_head_attention(x, params, n_heads=2), list(HOSTILE)


def test_page_is_self_contained() -> None:
    result, tokens, names = _running()
    page = to_html(result, tokens=tokens, feature_names=names, title="fluffy blue creature")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1
    assert page.count("</html>") == 1
    assert page.rstrip().endswith("</html>")
    assert page.count("<body") == 1
    assert "<title>fluffy blue creature</title>" in page
    assert "http" not in page.replace(SVG_NS, "")  # no CDN, no external URL
    assert "src=" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert page.count("<script") == 2  # the JSON data and the inline script
    assert page.count("</script>") == 2


def test_default_title() -> None:
    result, tokens, _ = _running()
    assert "<title>Attention</title>" in to_html(result, tokens=tokens)


def test_title_is_escaped() -> None:
    result, tokens, _ = _running()
    page = to_html(result, tokens=tokens, title="<b>bold</b> & co")
    assert "<b>" not in page
    assert "<title>&lt;b&gt;bold&lt;/b&gt; &amp; co</title>" in page


def test_page_holds_every_narrative() -> None:
    result, tokens, names = _running()
    page = to_html(result, tokens=tokens, feature_names=names)
    data = _data(page)
    assert data["query_tokens"] == list(tokens)
    assert data["key_tokens"] == list(tokens)
    assert len(data["heads"]) == 1
    head = data["heads"][0]
    assert head["label"] == "single head"
    for i in range(3):
        assert head["queries"][i] == str(explain_query(result, i, tokens=tokens))
        for j in range(3):
            why = explain_score(result, i, j, tokens=tokens, feature_names=names)
            assert head["explanations"][i][j] == str(why)
            assert head["weights"][i][j] == round(why.weight, 6)
            assert head["masked"][i][j] is False
    assert head["explanations"][2][0].startswith("'creature' attends to 'fluffy' (0.5741) more")
    assert "'creature' attends to 'fluffy' (0.5741) more" in page  # plain text survives the JSON


def test_masked_pairs_are_flagged() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params, is_causal=True)
    head = _data(to_html(result, tokens=ex.tokens))["heads"][0]
    assert head["masked"] == [[False, True, True], [False, False, True], [False, False, False]]
    assert head["weights"][0] == [1.0, 0.0, 0.0]
    assert "masked" in head["explanations"][0][2]


def test_hostile_tokens_are_never_markup() -> None:
    result, _, _ = _running()
    page = to_html(result, tokens=HOSTILE, title=HOSTILE[0])
    assert "<img" not in page
    assert "alert(1)</script>" not in page
    assert HOSTILE[2] not in page  # quotes and & are escaped
    # The data element ends at its own closing tag: no second </script> before it.
    start = page.index(DATA_OPEN) + len(DATA_OPEN)
    end = page.index("</script>", start)
    assert "<" not in page[start:end]
    assert ">" not in page[start:end]
    assert "&" not in page[start:end]
    data = json.loads(page[start:end])
    assert data["query_tokens"] == list(HOSTILE)
    assert data["key_tokens"] == list(HOSTILE)
    assert data["heads"][0]["explanations"][2][1] == str(
        explain_score(result, 2, 1, tokens=HOSTILE)
    )
    # Only the two scripts of the page itself.
    assert page.count("<script") == 2
    assert page.count("</script>") == 2


def test_multi_head_gives_one_entry_per_head() -> None:
    result, tokens = _hostile_multi_head()
    page = to_html(result, tokens=tokens)
    data = _data(page)
    assert [head["label"] for head in data["heads"]] == ["head 0", "head 1"]
    for h, head in enumerate(data["heads"]):
        np.testing.assert_allclose(head["weights"], result.weights[h], atol=5e-7)
        for i in range(3):
            assert head["queries"][i] == str(explain_query(result, i, head=h, tokens=tokens))
            for j in range(3):
                expected = str(explain_score(result, i, j, head=h, tokens=tokens))
                assert head["explanations"][i][j] == expected
    assert "2 heads" in page


def test_cross_attention_tokens_and_batch() -> None:
    params = AttentionParams.random(4, 2, n_heads=1, rng=1)
    rng = np.random.default_rng(1)
    x, context = rng.normal(size=(2, 2, 4)), rng.normal(size=(2, 3, 4))
    result = multi_head_attention(x, params, n_heads=1, context=context)
    pair = (["q0", "q1"], ["k0", "k1", "k2"])
    with pytest.raises(ValueError, match="batch"):
        to_html(result, tokens=pair)
    data = _data(to_html(result, tokens=pair, batch=1))
    assert data["query_tokens"] == pair[0]
    assert data["key_tokens"] == pair[1]
    expected = str(explain_score(result, 1, 2, batch=1, tokens=pair))
    assert data["heads"][0]["explanations"][1][2] == expected


def test_attention_result_with_masked_bias() -> None:
    x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    bias = np.zeros((3, 3))
    bias[0, 1] = -np.inf
    result = scaled_dot_product_attention(x, x, x, bias=bias)
    head = _data(to_html(result))["heads"][0]
    assert head["masked"][0] == [False, True, False]
    assert head["explanations"][0][1] == str(explain_score(result, 0, 1))


def test_fragment_is_a_div() -> None:
    result, tokens, _ = _running()
    fragment = to_html(result, tokens=tokens, fragment=True)
    assert fragment.startswith("<div")
    assert fragment.endswith("</div>")
    assert "<html" not in fragment
    assert "<!DOCTYPE" not in fragment
    assert "<body" not in fragment
    assert _data(fragment)["query_tokens"] == list(tokens)


def test_bad_result() -> None:
    with pytest.raises(TypeError, match="result"):
        to_html(np.eye(3))  # type: ignore[arg-type]


# --- a real browser ----------------------------------------------------------------------


def _render(page: str, tmp_path: Path, fragment: str) -> tuple[str, str]:
    """Load ``page`` in headless Chromium; return the DOM after the scripts ran, and stderr."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    profile = tmp_path / "profile"
    profile.mkdir()
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            f"{path.as_uri()}#{fragment}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _explanation_text(dom: str) -> str:
    match = re.search(r'<pre class="afs-text">(.*?)</pre>', dom, flags=re.DOTALL)
    assert match is not None, dom[-2000:]
    return match.group(1)


def test_chromium_renders_the_running_example(tmp_path: Path) -> None:
    result, tokens, names = _running()
    page = to_html(result, tokens=tokens, feature_names=names)
    dom, stderr = _render(page, tmp_path, "pick=2,0")
    assert 'data-rendered="ok"' in dom
    narrative = str(explain_score(result, 2, 0, tokens=tokens, feature_names=names))
    assert _explanation_text(dom) == html.escape(narrative, quote=False)
    assert "Uncaught" not in stderr
    assert dom.count("<svg") == 1
    assert dom.count("<td") == 9  # the 3 x 3 matrix
    assert "afs-picked" in dom


def test_chromium_multi_head_hostile_tokens(tmp_path: Path) -> None:
    result, tokens = _hostile_multi_head()
    page = to_html(result, tokens=tokens)
    dom, stderr = _render(page, tmp_path, "pick=2,1,1")
    assert 'data-rendered="ok"' in dom
    assert "Uncaught" not in stderr
    assert "<img" not in dom  # the token was shown, not parsed
    narrative = str(explain_score(result, 2, 1, head=1, tokens=tokens))
    assert _explanation_text(dom) == html.escape(narrative, quote=False)
    body = dom[dom.index('<div class="afs-root"') :]
    for token in tokens:
        assert html.escape(token, quote=False) in body  # shown as text
    assert 'class="afs-on">head 1<' in dom  # the head named in the link is selected


def test_notebook_reprs_reuse_the_view() -> None:
    """Results and explanations render in Jupyter through the same view code."""
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params)
    fragment = result._repr_html_()
    assert fragment is not None
    assert fragment == notebook_html(result)
    assert fragment == to_html(result, fragment=True)  # 9 pairs: every narrative embedded
    assert "<html" not in fragment
    assert "body {" not in fragment  # the style is scoped: it cannot restyle a notebook
    why = explain_score(result, "creature", "<b>", tokens=("<b>", "blue", "creature"))
    html_text = why._repr_html_()
    assert html_text is not None
    assert "&lt;b&gt;" in html_text
    assert "<b>" not in html_text
    assert "attends to" in html_text
    row_html = explain_query(result, 2)._repr_html_()
    assert row_html is not None
    assert "looks at" in row_html
    batched = scaled_dot_product_attention(
        np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.ones((2, 3, 4))
    )
    assert batched._repr_html_() is None  # needs batch=: Jupyter falls back to repr
    assert notebook_html(batched) is None


# --- the bounded notebook view ------------------------------------------------------------


def _multi_head(
    n: int, n_heads: int, *, seed: int = 0, causal: bool = False
) -> ProjectedAttention:
    params = AttentionParams.random(8, 2, n_heads=n_heads, rng=seed)
    x = np.random.default_rng(seed).normal(size=(n, 8))
    return multi_head_attention(x, params, n_heads=n_heads, is_causal=causal)


def test_notebook_too_many_tokens_is_a_summary_with_the_call() -> None:
    result = _multi_head(NOTEBOOK_MAX_TOKENS + 16, 2)  # 80 tokens
    fragment = notebook_html(result)
    assert fragment is not None
    assert fragment.startswith('<div class="afs-view">')
    assert fragment.endswith("</div>")
    assert DATA_OPEN not in fragment  # nothing drawn, no data
    assert "<script" not in fragment
    assert "80 queries x 80 keys, 2 heads: no head or row is shown" in fragment
    assert "<code>to_html(result, heads=[0])</code>" in fragment
    assert "<code>print(explain_query(result, 0, head=0))</code>" in fragment
    assert len(fragment) < 4000
    # the call it prints works and gives the page of that head
    page = to_html(result, heads=[0])
    assert [head["label"] for head in _data(page)["heads"]] == ["head 0"]
    # queries or keys beyond the bound: cross-attention with a long context
    params = AttentionParams.random(4, 2, rng=1)
    rng = np.random.default_rng(1)
    cross = multi_head_attention(
        rng.normal(size=(3, 4)), params, n_heads=1, context=rng.normal(size=(65, 4))
    )
    summary = notebook_html(cross)
    assert summary is not None
    assert "3 queries x 65 keys, 1 head:" in summary
    assert "<code>to_html(result)</code>" in summary
    assert "<code>print(explain_query(result, 0))</code>" in summary


def test_notebook_too_many_heads_shows_the_first_ones() -> None:
    result = _multi_head(3, NOTEBOOK_MAX_HEADS + 4)  # 20 heads of 3 x 3
    fragment = notebook_html(result)
    assert fragment is not None
    data = _data(fragment)
    assert [head["label"] for head in data["heads"]] == [f"head {h}" for h in range(16)]
    cells = sum(len(row) for head in data["heads"] for row in head["weights"])
    assert cells == NOTEBOOK_MAX_HEADS * 3 * 3
    assert "Heads 0 to 15 of 20 are shown here" in fragment
    assert "<code>to_html(result, heads=range(16, 20))</code>" in fragment
    assert "3 queries x 3 keys, 16 of 20 heads shown" in fragment
    # 16 * 9 = 144 pairs: within the budget, so the narratives are embedded
    assert NOTEBOOK_MAX_PAIRS >= 16 * 9
    assert data["heads"][15]["explanations"][2][1] == str(explain_score(result, 2, 1, head=15))
    # the call in the note gives the rest
    rest = _data(to_html(result, heads=range(16, 20)))
    assert [head["label"] for head in rest["heads"]] == [f"head {h}" for h in range(16, 20)]
    np.testing.assert_allclose(rest["heads"][3]["weights"], result.weights[19], atol=5e-7)


def test_notebook_compact_payload_values() -> None:
    """Beyond the pair budget the view holds numbers and calls, and the numbers are right."""
    n, n_heads = 10, 4  # 400 pairs > 256
    assert n_heads * n * n > NOTEBOOK_MAX_PAIRS
    result = _multi_head(n, n_heads, seed=5, causal=True)
    fragment = notebook_html(result)
    assert fragment is not None
    data = _data(fragment)
    assert data["query_tokens"] == [f"token {i}" for i in range(n)]
    assert len(data["heads"]) == n_heads
    for h, head in enumerate(data["heads"]):
        assert "explanations" not in head
        assert "queries" not in head
        np.testing.assert_allclose(head["weights"], result.weights[h], atol=5e-7)
        assert head["masked"] == np.triu(np.ones((n, n), dtype=bool), k=1).tolist()
        assert head["call"] == f"print(explain_score(result, {{i}}, {{j}}, head={h}))"
        assert head["query_call"] == f"print(explain_query(result, {{i}}, head={h}))"
        for i in range(n):
            row = explain_query(result, i, head=h)
            assert head["effective_keys"][i] == round(row.effective_keys, 4)
            for j in range(n):
                if j > i:
                    assert head["scores"][i][j] is None  # masked: no score
                else:
                    why = explain_score(result, i, j, head=h)
                    assert head["scores"][i][j] == pytest.approx(why.score, abs=5e-7)
    assert len(fragment) < 40_000  # 400 pairs of numbers, no narratives


def test_to_html_heads_subset() -> None:
    result, tokens = _hostile_multi_head()
    page = to_html(result, tokens=tokens, heads=[1])
    data = _data(page)
    assert [head["label"] for head in data["heads"]] == ["head 1"]
    assert data["heads"][0]["explanations"][2][1] == str(
        explain_score(result, 2, 1, head=1, tokens=tokens)
    )
    assert "3 queries x 3 keys, head 1 of 2 heads shown" in page
    with pytest.raises(IndexError, match="head"):
        to_html(result, heads=[2])
    with pytest.raises(ValueError, match="at least one head"):
        to_html(result, heads=[])


def test_chromium_compact_notebook_view(tmp_path: Path) -> None:
    """Without embedded narratives a click shows the pair's numbers and the call."""
    result = _multi_head(10, 4, seed=5, causal=True)
    fragment = notebook_html(result)
    assert fragment is not None
    page = f"<!DOCTYPE html><html><body>{fragment}</body></html>"
    dom, stderr = _render(page, tmp_path, "pick=7,2,3")
    assert 'data-rendered="ok"' in dom
    assert "Uncaught" not in stderr
    assert dom.count("<td") == 100  # one head of 10 x 10
    text = html.unescape(_explanation_text(dom))
    match = re.fullmatch(
        r"'token 7' attends to 'token 2' with weight (\S+) \(rank (\d+) of 8 keys; "
        r"score (\S+)\)\.\nWhy, in Python: print\(explain_score\(result, 7, 2, head=3\)\)",
        text,
    )
    assert match is not None, text
    why = explain_score(result, 7, 2, head=3)
    assert float(match.group(1)) == pytest.approx(why.weight, rel=1e-3)
    assert int(match.group(2)) == why.rank
    assert float(match.group(3)) == pytest.approx(why.score, rel=1e-3, abs=1e-6)
    (tmp_path / "masked").mkdir()
    masked, _ = _render(page, tmp_path / "masked", "pick=1,4,0")
    assert html.unescape(_explanation_text(masked)) == (
        "'token 1' does not attend to 'token 4': the pair is masked, so its weight is "
        "exactly 0.\nWhy, in Python: print(explain_score(result, 1, 4, head=0))"
    )


@pytest.mark.parametrize("title", [5, b"bytes", ["a"]])
def test_a_title_that_is_not_a_string_is_a_type_error_naming_title(title: object) -> None:
    result = scaled_dot_product_attention(np.eye(2), np.eye(2), np.eye(2))
    with pytest.raises(TypeError, match=f"title must be a str, got {type(title).__name__}"):
        to_html(result, title=title)  # type: ignore[arg-type]
