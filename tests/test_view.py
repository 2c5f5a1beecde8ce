"""Tests for attention_from_scratch.view: one self-contained, safe page of explanations.

The page must load nothing from the network, carry the exact arrays its script computes
the explanations from (float64 bytes, compared bit for bit), the narratives of
:func:`~attention_from_scratch.explain.explain_score` while within its budget, and
never let token text become markup. The page in a real browser (clicks, the numbers it
computes, the slider, the keyboard, 420 px) is tested in ``tests/test_browser_view.py``.
"""

from __future__ import annotations

import base64
import html
import json
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
    PAGE_MAX_FEATURE_VALUES,
    PAGE_MAX_PAIRS,
    joint_map,
    notebook_html,
    to_html,
)
from tests.minilm import minilm_checkpoint

MINILM_SENTENCE = "The fluffy blue creature sat on the mat because it was tired."

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


def _script_and_style(page: str) -> str:
    """The page's fixed parts: its inline script and style, the same on every page."""
    script = page[page.index("<script>") : page.index("</script>", page.index("<script>"))]
    style = page[page.index("<style>") : page.index("</style>")]
    return script + style


def _decode(b64: str, shape: tuple[int, ...]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A base64 array of the page (little-endian float64) back as NumPy."""
    return np.frombuffer(base64.b64decode(b64), dtype="<f8").reshape(shape)


def _heads(data: dict[str, Any], layer: int = 0) -> list[dict[str, Any]]:
    """The heads of one layer of the page, with their arrays decoded.

    ``W`` the weights, ``masked`` the (n, m) flags, ``Q``, ``K``, ``R`` (raw dot
    products) when the page holds them.
    """
    n, m = len(data["query_tokens"]), len(data["key_tokens"])
    heads = []
    for head in data["layers"][layer]["heads"]:
        out = dict(head)
        out["W"] = _decode(head["weights"], (n, m))
        allowed = head.get("allowed", "1" * n * m)
        out["masked"] = [[allowed[i * m + j] == "0" for j in range(m)] for i in range(n)]
        if "q" in head:
            out["Q"] = _decode(head["q"], (n, head["dk"]))
            out["K"] = _decode(head["k"], (m, head["dk"]))
        if "raw" in head:
            out["R"] = _decode(head["raw"], (n, m))
        heads.append(out)
    return heads


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
    assert len(_heads(data)) == 1
    head = _heads(data)[0]
    assert head["label"] == "single head"
    for i in range(3):
        assert head["queries"][i] == str(explain_query(result, i, tokens=tokens))
        for j in range(3):
            why = explain_score(result, i, j, tokens=tokens, feature_names=names)
            assert head["explanations"][i][j] == str(why)
            assert head["W"][i, j] == why.weight  # exact: float64 bytes
            assert head["masked"][i][j] is False
    assert head["explanations"][2][0].startswith("'creature' attends to 'fluffy' (0.5741) more")
    assert "'creature' attends to 'fluffy' (0.5741) more" in page  # plain text survives the JSON


def test_masked_pairs_are_flagged() -> None:
    ex = fluffy_blue_creature()
    result = self_attention(ex.x, ex.params, is_causal=True)
    head = _heads(_data(to_html(result, tokens=ex.tokens)))[0]
    assert head["masked"] == [[False, True, True], [False, False, True], [False, False, False]]
    assert head["W"][0].tolist() == [1.0, 0.0, 0.0]
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
    assert _heads(data)[0]["explanations"][2][1] == str(
        explain_score(result, 2, 1, tokens=HOSTILE)
    )
    # Only the two scripts of the page itself.
    assert page.count("<script") == 2
    assert page.count("</script>") == 2


def test_multi_head_gives_one_entry_per_head() -> None:
    result, tokens = _hostile_multi_head()
    page = to_html(result, tokens=tokens)
    data = _data(page)
    assert [head["label"] for head in _heads(data)] == ["head 0", "head 1"]
    for h, head in enumerate(_heads(data)):
        np.testing.assert_array_equal(head["W"], result.weights[h])
        np.testing.assert_array_equal(head["Q"], result.q[h])
        np.testing.assert_array_equal(head["K"], result.k[h])
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
    assert _heads(data)[0]["explanations"][1][2] == expected


def test_attention_result_with_masked_bias() -> None:
    x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    bias = np.zeros((3, 3))
    bias[0, 1] = -np.inf
    result = scaled_dot_product_attention(x, x, x, bias=bias)
    head = _heads(_data(to_html(result)))[0]
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
    # each paragraph on one line, for the browser to reflow: no 88-column continuation
    unwrapped = html.escape(str(why).replace("\n  ", " "))
    assert f'<pre class="afs-text">{unwrapped}</pre>' in html_text
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
    assert [head["label"] for head in _heads(_data(page))] == ["head 0"]
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
    assert [head["label"] for head in _heads(data)] == [f"head {h}" for h in range(16)]
    cells = sum(head["W"].size for head in _heads(data))
    assert cells == NOTEBOOK_MAX_HEADS * 3 * 3
    assert "Heads 0 to 15 of 20 are shown here" in fragment
    assert "<code>to_html(result, heads=range(16, 20))</code>" in fragment
    assert "3 queries x 3 keys, 16 of 20 heads shown" in fragment
    # 16 * 9 = 144 pairs: within the budget, so the narratives are embedded
    assert NOTEBOOK_MAX_PAIRS >= 16 * 9
    assert _heads(data)[15]["explanations"][2][1] == str(explain_score(result, 2, 1, head=15))
    # the call in the note gives the rest
    rest = _data(to_html(result, heads=range(16, 20)))
    assert [head["label"] for head in _heads(rest)] == [f"head {h}" for h in range(16, 20)]
    np.testing.assert_array_equal(_heads(rest)[3]["W"], result.weights[19])


def test_notebook_compact_payload_values() -> None:
    """Beyond the pair budget the view holds numbers and calls, and the numbers are right."""
    n, n_heads = 10, 4  # 400 pairs > 256
    assert n_heads * n * n > NOTEBOOK_MAX_PAIRS
    result = _multi_head(n, n_heads, seed=5, causal=True)
    fragment = notebook_html(result)
    assert fragment is not None
    data = _data(fragment)
    assert data["query_tokens"] == [f"token {i}" for i in range(n)]
    assert len(_heads(data)) == n_heads
    for h, head in enumerate(_heads(data)):
        assert "explanations" not in head
        assert "queries" not in head
        np.testing.assert_array_equal(head["W"], result.weights[h])  # exact
        assert head["masked"] == np.triu(np.ones((n, n), dtype=bool), k=1).tolist()
        assert head["call"] == f"print(explain_score(result, {{i}}, {{j}}, head={h}))"
        assert head["query_call"] == f"print(explain_query(result, {{i}}, head={h}))"
        np.testing.assert_array_equal(head["Q"], result.q[h])
        np.testing.assert_array_equal(head["K"], result.k[h])
        assert head["scale"] == result.scale
        for i in range(n):
            for j in range(i + 1):
                why = explain_score(result, i, j, head=h)
                score = float(head["Q"][i] @ head["K"][j]) * head["scale"]
                assert score == pytest.approx(why.score, rel=1e-12, abs=1e-12)
    # 400 pairs as exact numbers (11 base64 characters per float64: weights, q, k), the
    # masks and the joint maps, no narratives; the script and the style (~38 kB) are fixed
    assert len(fragment) - len(_script_and_style(fragment)) < 14_000
    assert len(_script_and_style(fragment)) < 45_000


def test_to_html_heads_subset() -> None:
    result, tokens = _hostile_multi_head()
    page = to_html(result, tokens=tokens, heads=[1])
    data = _data(page)
    assert [head["label"] for head in _heads(data)] == ["head 1"]
    assert _heads(data)[0]["explanations"][2][1] == str(
        explain_score(result, 2, 1, head=1, tokens=tokens)
    )
    assert "3 queries x 3 keys, head 1 of 2 heads shown" in page
    with pytest.raises(IndexError, match="head"):
        to_html(result, heads=[2])
    with pytest.raises(ValueError, match="at least one head"):
        to_html(result, heads=[])


@pytest.mark.parametrize("title", [5, b"bytes", ["a"]])
def test_a_title_that_is_not_a_string_is_a_type_error_naming_title(title: object) -> None:
    result = scaled_dot_product_attention(np.eye(2), np.eye(2), np.eye(2))
    with pytest.raises(TypeError, match=f"title must be a str, got {type(title).__name__}"):
        to_html(result, title=title)  # type: ignore[arg-type]


# --- the model view, the page's budgets, the joint map ------------------------------------


def test_model_view_of_a_list_of_layers() -> None:
    layers = [_multi_head(5, 3, seed=seed) for seed in range(4)]
    page = to_html(layers, title="four layers", select=(2, 1))
    data = _data(page)
    assert [layer["label"] for layer in data["layers"]] == [f"layer {i}" for i in range(4)]
    assert data["select"] == [2, 1]
    assert "5 queries x 5 keys, 4 layers, 3 heads each" in page
    for index, layer in enumerate(layers):
        for h, head in enumerate(_heads(data, index)):
            assert head["label"] == f"head {h}"
            np.testing.assert_array_equal(head["W"], layer.weights[h])
            np.testing.assert_array_equal(head["Q"], layer.q[h])
            np.testing.assert_array_equal(head["K"], layer.k[h])
    # 4 * 3 * 25 = 300 pairs: within PAGE_MAX_PAIRS, so the narratives are there
    assert _heads(data, 3)[2]["explanations"][4][1] == str(explain_score(layers[3], 4, 1, head=2))
    lean = _data(to_html(layers, narratives=False))
    assert "explanations" not in _heads(lean, 3)[2]
    assert _heads(lean, 3)[2]["call"] == "print(explain_score(result, {i}, {j}, head=2))"
    subset = _data(to_html(layers, heads=[2], select=(1, 2)))
    assert [[h["label"] for h in layer["heads"]] for layer in subset["layers"]] == [["head 2"]] * 4
    assert subset["select"] == [1, 0]


@pytest.mark.parametrize(
    ("result", "kwargs", "error", "message"),
    [
        ([], {}, ValueError, "non-empty list"),
        (["x"], {}, TypeError, r"result\[0\] must be an attention result"),
        ("text", {}, TypeError, "result must come from"),
        ([None], {}, TypeError, r"result\[0\]"),
    ],
)
def test_model_view_bad_results(
    result: object, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        to_html(result, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("select", "error", "message"),
    [
        ((2, 0), ValueError, "select names layer 2, but the page has 2"),
        ((0, 5), ValueError, r"select names head 5, which is not shown \(heads shown: \[0, 1\]\)"),
        ([0, 0], TypeError, "select must be a pair"),
        ((0, True), TypeError, "select must be a pair"),
    ],
)
def test_select_errors(select: object, error: type[Exception], message: str) -> None:
    layers = [_multi_head(3, 2, seed=0), _multi_head(3, 2, seed=1)]
    with pytest.raises(error, match=message):
        to_html(layers, select=select)  # type: ignore[arg-type]


def test_page_pair_budget_for_narratives() -> None:
    """Narratives up to PAGE_MAX_PAIRS pairs by default; the numbers always."""
    n = 17  # 4 heads * 17 * 17 = 1156 pairs > 1024
    result = _multi_head(n, 4, seed=2)
    assert 4 * n * n > PAGE_MAX_PAIRS
    heads = _heads(_data(to_html(result)))
    assert all("explanations" not in head and "call" in head for head in heads)
    forced = _heads(_data(to_html(result, heads=[0], narratives=True)))
    assert forced[0]["explanations"][3][4] == str(explain_score(result, 3, 4, head=0))


def test_feature_data_is_embedded_within_budget() -> None:
    result, tokens, names = _running()
    data = _data(to_html(result, tokens=tokens, feature_names=names))
    layer = data["layers"][0]
    assert data["feature_names"] == list(names)
    x = _decode(layer["x"], (3, 4))
    np.testing.assert_array_equal(x, result.x)
    assert "xs" not in layer  # self-attention: the keys come from x
    head = layer["heads"][0]
    np.testing.assert_array_equal(_decode(head["w_q"], result.params.w_q.shape), result.params.w_q)
    np.testing.assert_array_equal(_decode(head["w_k"], result.params.w_k.shape), result.params.w_k)
    # Beyond PAGE_MAX_FEATURE_VALUES: no embeddings, no weights, the numbers still
    d_model = 256
    big = multi_head_attention(
        np.random.default_rng(0).normal(size=(4, d_model)),
        AttentionParams.random(d_model, 64, n_heads=4, rng=0),
        n_heads=4,
    )
    assert 4 * 2 * d_model * 64 > PAGE_MAX_FEATURE_VALUES
    lean = _data(to_html(big))
    assert "x" not in lean["layers"][0]
    assert all("w_q" not in head and "q" in head for head in lean["layers"][0]["heads"])


def test_cross_attention_embeds_the_context() -> None:
    params = AttentionParams.random(4, 2, n_heads=1, rng=1)
    rng = np.random.default_rng(1)
    x, context = rng.normal(size=(2, 4)), rng.normal(size=(3, 4))
    result = multi_head_attention(x, params, n_heads=1, context=context)
    layer = _data(to_html(result))["layers"][0]
    np.testing.assert_array_equal(_decode(layer["x"], (2, 4)), x)
    np.testing.assert_array_equal(_decode(layer["xs"], (3, 4)), context)


def test_notebook_wide_heads_embed_the_dot_products() -> None:
    """A notebook view of wide heads holds q . k, not q and k (the values bound)."""
    params = AttentionParams.random(8, 1024, n_heads=2, rng=0)
    result = multi_head_attention(np.random.default_rng(0).normal(size=(40, 8)), params, n_heads=2)
    fragment = notebook_html(result)
    assert fragment is not None
    for h, head in enumerate(_heads(_data(fragment))):
        assert "q" not in head
        np.testing.assert_allclose(head["R"], result.q[h] @ result.k[h].T, rtol=1e-13, atol=1e-13)
    assert len(fragment) < 200_000


def _reference_pca(
    points: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Coordinates on the two leading axes and their variance fractions, by eigh."""
    centred = points - points.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    return centred @ vectors[:, :2], values[:2] / values.sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_joint_map_against_a_reference(seed: int) -> None:
    result = _multi_head(7, 2, seed=seed, causal=seed == 1)
    for h in range(2):
        jm = joint_map(result, head=h)
        q, k = result.q[h], result.k[h]
        a = jm.query_scale
        assert a == pytest.approx(
            np.sqrt(np.linalg.norm(k, axis=1).mean() / np.linalg.norm(q, axis=1).mean())
        )
        moved = k / a + jm.key_shift
        # the keys' centre is the queries' centre, and no weight changes
        np.testing.assert_allclose(moved.mean(axis=0), (a * q).mean(axis=0), atol=1e-12)
        dots = (a * q) @ moved.T  # (n, m)
        per_row = dots - q @ k.T
        np.testing.assert_allclose(per_row, per_row[:, :1] * np.ones((1, 7)), atol=1e-12)
        coords, explained = _reference_pca(np.concatenate([a * q, moved]))
        np.testing.assert_allclose(jm.explained, explained, rtol=1e-9, atol=1e-12)
        ours = np.concatenate([jm.queries, jm.keys])
        for axis in range(2):  # equal up to the sign of each axis
            sign = np.sign(ours[:, axis] @ coords[:, axis])
            np.testing.assert_allclose(ours[:, axis], sign * coords[:, axis], atol=1e-9)
        expected_top = (
            np.argmax(np.where(np.asarray(result.mask), result.weights[h], -1), axis=1)
            if result.mask is not None
            else np.argmax(result.weights[h], axis=1)
        )
        np.testing.assert_array_equal(jm.top_keys, expected_top)
        assert not jm.queries.flags.writeable


def test_joint_map_of_one_dimension_and_errors() -> None:
    x = np.array([[1.0], [2.0], [-1.0]])
    jm = joint_map(scaled_dot_product_attention(x, x, x))
    assert jm.explained.tolist() == [1.0, 0.0]
    assert np.all(jm.queries[:, 1] == 0)
    with pytest.raises(TypeError, match="result must come from"):
        joint_map(np.eye(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head"):
        joint_map(_multi_head(3, 2))


def _minilm_path() -> Path:
    return minilm_checkpoint()


@pytest.mark.pretrained
def test_minilm_model_view_size() -> None:
    """All 6 x 12 heads of all-MiniLM-L6-v2 on the 15-token sentence: at most 1.5 MB."""
    from attention_from_scratch.pretrained import BertEncoder

    run = BertEncoder.from_pretrained(_minilm_path()).run(MINILM_SENTENCE)
    assert len(run.tokens) == 15
    page = run.to_html()
    size = len(page.encode("utf-8"))
    assert size <= 1_500_000, size
    data = _data(page)
    assert len(data["layers"]) == 6
    assert all(len(layer["heads"]) == 12 for layer in data["layers"])
    head = _heads(data, 3)[1]
    np.testing.assert_array_equal(head["W"], run.layers[3].weights[1])
    assert "explanations" not in head
    assert "<title>Every layer and head: [CLS] the fluffy blue creature" in page

    opened_at = _data(run.to_html(4))
    assert opened_at["select"] == [4, 0]
    with pytest.raises(ValueError, match="head= needs a layer"):
        run.to_html(head=1)
    with pytest.raises(IndexError, match="layer 6 is out of range"):
        run.to_html(6)


@pytest.mark.pretrained
def test_command_line_writes_the_model_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``explain --model minilm --text ... --html FILE`` writes every layer and head."""
    from attention_from_scratch.__main__ import main

    _minilm_path()
    target = tmp_path / "model.html"
    argv = ["explain", "--model", "minilm", "--text", "It was tired.", "--html", str(target)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"opened at layer 0) is in {target}" in out
    data = _data(target.read_text(encoding="utf-8"))
    assert data["query_tokens"] == ["[CLS]", "it", "was", "tired", ".", "[SEP]"]
    assert len(data["layers"]) == 6
    assert all(len(layer["heads"]) == 12 for layer in data["layers"])
    assert data["select"] == [0, 0]
    at_layer = tmp_path / "layer2.html"
    assert main([*argv[:-1], str(at_layer), "--layer", "2"]) == 0
    assert _data(at_layer.read_text(encoding="utf-8"))["select"] == [2, 0]
