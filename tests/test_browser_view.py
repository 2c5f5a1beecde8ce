"""The HTML view in a real browser: headless Chromium through Playwright, offline.

Each kind of page is loaded (the 3x4 running example, a multi-head result with hostile
tokens, a causal compact notebook view, the model view of all-MiniLM-L6-v2 when it is
installed) and checked for console errors. Then the page is *used*: a head of the
model view is clicked, a cell is clicked (and reached with Tab and Enter), and the
numbers the page computes in JavaScript are read back from their ``data-value``
attributes (``toPrecision(17)``: every bit of a float64) and compared with
:func:`~attention_from_scratch.explain.explain_score`'s to 1e-9; the neuron view's bars
must sum to the raw score and the waterfalls to their totals; the scale slider is moved
to three positions and its weights compared with the package's
:func:`~attention_from_scratch.softmax.softmax` to 1e-12. Every page must fit a 420 px
screen without horizontal scrolling. The tests skip, saying why, without Playwright or
Chromium (``tests/browser.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from attention_from_scratch.examples import fluffy_blue_creature
from attention_from_scratch.explain import ScoreExplanation, explain_score
from attention_from_scratch.projections import AttentionParams
from attention_from_scratch.self_attention import (
    Attention,
    ProjectedAttention,
    multi_head_attention,
    scaled_dot_product_attention,
    self_attention,
)
from attention_from_scratch.softmax import softmax
from attention_from_scratch.view import notebook_html, to_html
from tests.browser import PHONE, BrowserPage, assert_no_console_errors, open_page
from tests.minilm import minilm_checkpoint

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

MINILM_SENTENCE = "The fluffy blue creature sat on the mat because it was tired."
HOSTILE = [
    "</script><script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "a long token\nover two lines, and then some more words",
]
EXACT = 1e-9  # explanation numbers: the page's float64 against the package's
SOFTMAX = 1e-12  # slider weights against the package's softmax

# Fields of explain_score the page shows, and of its Contrast.
SCORE_FIELDS = (
    "weight",
    "rank",
    "n_tied",
    "n_allowed",
    "raw_score",
    "scale",
    "bias",
    "score",
    "logsumexp",
    "query_norm",
    "key_norm",
    "cosine",
    "unscaled_weight",
    "competitor",
    "competitor_weight",
    "competitor_score",
)
CONTRAST_FIELDS = (
    "rival",
    "rival_weight",
    "rival_score",
    "rival_raw_score",
    "rival_key_norm",
    "rival_cosine",
    "raw_gap",
    "length",
    "angle",
    "bias_gap",
    "score_gap",
    "weight_ratio",
)

READ_NUMBERS = """() => {
  const out = {};
  document.querySelectorAll('.afs-explanation tr[data-field]').forEach((tr) => {
    const td = tr.querySelector('td');
    out[tr.dataset.field] = td.dataset.value !== undefined ? Number(td.dataset.value) : td.textContent;
  });
  return out;
}"""
READ_BARS = """(selector) => Array.from(document.querySelectorAll(selector)).map(
  (e) => Number(e.getAttribute('data-value')))"""
READ_SLIDER = """() => {
  const box = document.querySelector('.afs-slider');
  const weights = Array.from(box.querySelectorAll('.afs-barval')).map((e) => Number(e.dataset.value));
  const field = (name) => Number(box.querySelector(`tr[data-field="${name}"] td`).dataset.value);
  return {factor: Number(box.dataset.factor), query: Number(box.dataset.query), weights,
          entropy: field('entropy'), max_weight: field('max_weight')};
}"""
SET_SLIDER = """(position) => {
  const range = document.querySelector('.afs-slider input[type=range]');
  range.value = String(position);
  range.dispatchEvent(new Event('input', {bubbles: true}));
}"""


def _write(tmp_path: Path, name: str, page: str) -> Path:
    path = tmp_path / f"{name}.html"
    path.write_text(page, encoding="utf-8")
    return path


def _running() -> tuple[ProjectedAttention, tuple[str, ...], tuple[str, ...]]:
    ex = fluffy_blue_creature()
    return self_attention(ex.x, ex.params), ex.tokens, ex.feature_names


def _hostile() -> ProjectedAttention:
    params = AttentionParams.random(4, 2, n_heads=2, rng=3)
    x = np.random.default_rng(3).normal(size=(3, 4))
    return multi_head_attention(x, params, n_heads=2)


def _close(got: float, expected: float, tol: float, what: str) -> None:
    assert abs(got - expected) <= tol * max(1.0, abs(expected)), (what, got, expected)


def _check_numbers(opened: BrowserPage, why: ScoreExplanation, *, features: bool) -> float:
    """The page's numbers for the picked pair against ``why``; returns the largest error."""
    page = opened.page
    shown: dict[str, Any] = page.evaluate(READ_NUMBERS)
    worst = 0.0
    for name in SCORE_FIELDS:
        expected = getattr(why, name)
        _close(float(shown[name]), float(expected), EXACT, name)
        worst = max(worst, abs(float(shown[name]) - float(expected)))
    # the neuron view: q, k, q*k per dimension, and q*k sums to the raw score
    q_bars = page.evaluate(READ_BARS, '[data-bars="q"] rect')
    dims = page.evaluate(READ_BARS, '[data-bars="dims"] rect')
    np.testing.assert_allclose(dims, why.dim_contributions, rtol=0, atol=1e-15)
    assert len(q_bars) == why.dim_contributions.shape[0]
    _close(sum(dims), why.raw_score, EXACT, "the q*k bars sum to the raw score")
    _close(float(shown["dims_sum"]), why.raw_score, EXACT, "dims_sum")
    if features:
        assert why.feature_contributions is not None
        assert why.bias_contribution is not None
        _close(float(shown["features_sum"]), float(why.feature_contributions.sum()), EXACT, "f")
        _close(float(shown["bias_contribution"]), why.bias_contribution, EXACT, "bias terms")
        _check_waterfall(opened, "features", why.raw_score)
    contrast = why.contrast
    if contrast is None:
        assert page.locator(".afs-contrast").count() == 0
        return worst
    for name in CONTRAST_FIELDS:
        expected = getattr(contrast, name)
        _close(float(shown[name]), float(expected), EXACT, name)
        worst = max(worst, abs(float(shown[name]) - float(expected)))
    _check_waterfall(opened, "length_angle", contrast.raw_gap)
    _check_waterfall(opened, "gap_dims", contrast.raw_gap)
    return worst


def _check_waterfall(opened: BrowserPage, name: str, total: float) -> None:
    """The steps of a waterfall sum to its total bar, which is ``total``."""
    steps = opened.page.evaluate(READ_BARS, f'[data-waterfall="{name}"] rect:not([data-total])')
    (shown_total,) = opened.page.evaluate(READ_BARS, f'[data-waterfall="{name}"] rect[data-total]')
    assert steps
    _close(shown_total, total, EXACT, f"{name} total")
    _close(sum(steps), total, EXACT, f"{name} steps")


def _check_slider(
    opened: BrowserPage, result: Attention | ProjectedAttention, head: int | None
) -> None:
    """Three slider positions: the page's weights are the package's softmax to 1e-12."""
    page = opened.page
    view = result.head_view(head=head)
    seen = []
    for position in (0, 137, 1000):
        page.evaluate(SET_SLIDER, position)
        got = page.evaluate(READ_SLIDER)
        i, factor = got["query"], got["factor"]
        q = np.asarray(view.q, dtype=np.float64)[i]
        k = np.asarray(view.k, dtype=np.float64)
        allowed = np.asarray(view.allowed[i])
        bias = np.where(allowed, np.asarray(view.bias[i], dtype=np.float64), 0.0)
        expected = softmax((k @ q) * factor + bias, where=allowed)
        np.testing.assert_allclose(got["weights"], expected, rtol=0, atol=SOFTMAX)
        p = expected[expected > 0]
        _close(got["entropy"], float(-(p * np.log(p)).sum()), SOFTMAX, "entropy")
        _close(got["max_weight"], float(expected.max()), SOFTMAX, "largest weight")
        seen.append(factor)
    assert seen[0] == 0.0
    assert seen[0] < seen[1] < seen[2]
    # the marks: the default scale gives the result's own weights; "no scale" is factor 1
    page.get_by_role("button", name="no scale (1)").click()
    assert page.evaluate(READ_SLIDER)["factor"] == 1.0
    page.get_by_role("button", name="1/\u221ad_k (default)").click()
    got = page.evaluate(READ_SLIDER)
    assert got["factor"] == view.scale
    np.testing.assert_allclose(got["weights"], view.weights[got["query"]], rtol=0, atol=SOFTMAX)


def _fits(opened: BrowserPage, width: int = PHONE) -> None:
    overflow = opened.page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"the page is {overflow} px wide at {width} px"


def test_running_example_cell_numbers_slider_and_map(browser: Browser, tmp_path: Path) -> None:
    result, tokens, names = _running()
    path = _write(tmp_path, "fluffy", to_html(result, tokens=tokens, feature_names=names))
    opened = open_page(browser, path)
    page = opened.page
    assert page.get_attribute(".afs-root", "data-rendered") == "ok"
    assert page.locator("table.afs-matrix td").count() == 9
    assert page.locator("button.afs-thumb").count() == 0  # one head: no grid
    for i in range(3):
        for j in range(3):
            page.locator(f'td[data-q="{i}"][data-k="{j}"]').click()
            why = explain_score(result, i, j, tokens=tokens, feature_names=names)
            assert page.get_attribute(".afs-explanation", "data-pair") == f"{i},{j},0,0"
            assert page.locator(".afs-explanation pre").inner_text() == str(why).replace(
                "\n  ", " "
            )
            _check_numbers(opened, why, features=True)
    _check_slider(opened, result, None)
    # the joint map: explained variance stated, one line per query to its top key
    note = page.locator(".afs-mapbox .afs-note")
    assert "% of their variance" in note.inner_text()
    assert float(note.get_attribute("data-explained") or "nan") == pytest.approx(1.0)
    assert page.locator(".afs-mapbox line").count() == 3
    assert page.locator(".afs-mapbox circle").count() == 3
    assert page.locator(".afs-mapbox rect").count() == 3
    assert_no_console_errors(opened)


def test_hover_shows_the_weight(browser: Browser, tmp_path: Path) -> None:
    result, tokens, _ = _running()
    opened = open_page(browser, _write(tmp_path, "hover", to_html(result, tokens=tokens)))
    cell = opened.page.locator('td[data-q="2"][data-k="0"]')
    why = explain_score(result, 2, 0)
    assert cell.get_attribute("title") == f"'creature' \u2192 'fluffy': weight {why.weight:.4g}"
    line_titles = opened.page.locator(".afs-panel svg line title").evaluate_all(
        "(titles) => titles.map((t) => t.textContent)"
    )
    assert f"'creature' \u2192 'fluffy': weight {why.weight:.4g}" in line_titles
    assert_no_console_errors(opened)


def test_keyboard_tab_and_enter(browser: Browser, tmp_path: Path) -> None:
    result, tokens, _ = _running()
    opened = open_page(browser, _write(tmp_path, "keys", to_html(result, tokens=tokens)))
    page = opened.page
    page.keyboard.press("Tab")  # the first focusable element: the matrix' first cell
    assert (
        page.evaluate("document.activeElement.dataset.q + ',' + document.activeElement.dataset.k")
        == "0,0"
    )
    page.keyboard.press("Enter")
    assert page.get_attribute(".afs-explanation", "data-pair") == "0,0,0,0"
    for _ in range(7):
        page.keyboard.press("Tab")
    assert (
        page.evaluate("document.activeElement.dataset.q + ',' + document.activeElement.dataset.k")
        == "2,1"
    )
    page.keyboard.press("Enter")
    assert page.get_attribute(".afs-explanation", "data-pair") == "2,1,0,0"
    assert page.locator("td.afs-picked").count() == 1
    assert page.evaluate("document.activeElement.dataset.k") == "1"  # focus stays on the cell
    page.keyboard.press(" ")
    assert page.get_attribute(".afs-explanation", "data-pair") == "2,1,0,0"
    _check_numbers(opened, explain_score(result, 2, 1), features=False)
    assert_no_console_errors(opened)


def test_multi_head_grid_hostile_and_long_tokens(browser: Browser, tmp_path: Path) -> None:
    result = _hostile()
    path = _write(tmp_path, "hostile", to_html(result, tokens=HOSTILE, title=HOSTILE[0]))
    for width in (1280, PHONE):
        opened = open_page(browser, path, width=width)
        page = opened.page
        assert page.locator("img").count() == 0  # the token was shown, not parsed
        assert page.locator("button.afs-thumb").count() == 2
        assert page.locator("h1").inner_text() == HOSTILE[0]
        page.locator('button.afs-thumb[data-head="1"]').click()
        assert page.locator(".afs-where").inner_text().startswith("head 1:")
        assert page.get_attribute('button.afs-thumb[data-head="1"]', "aria-pressed") == "true"
        page.locator('td[data-q="2"][data-k="1"]').click()
        why = explain_score(result, 2, 1, head=1, tokens=HOSTILE)
        assert page.locator(".afs-explanation pre").inner_text() == str(why).replace("\n  ", " ")
        _check_numbers(opened, why, features=True)
        titles = page.locator("table.afs-matrix th").evaluate_all("(e) => e.map((x) => x.title)")
        assert set(HOSTILE) <= set(titles)  # full text in the tooltip, one line on screen
        heights = page.locator("table.afs-matrix tr").evaluate_all(
            "(rows) => rows.map((r) => r.getBoundingClientRect().height)"
        )
        assert max(heights) < 60  # a long, two-line token does not break the rows
        _check_slider(opened, result, 1)
        _fits(opened, width)
        assert_no_console_errors(opened)


def test_masked_pairs_and_the_compact_notebook_view(browser: Browser, tmp_path: Path) -> None:
    params = AttentionParams.random(8, 2, n_heads=4, rng=5)
    x = np.random.default_rng(5).normal(size=(10, 8))
    result = multi_head_attention(x, params, n_heads=4, is_causal=True)
    fragment = notebook_html(result)
    assert fragment is not None
    page_text = f"<!DOCTYPE html><html><body>{fragment}</body></html>"
    opened = open_page(browser, _write(tmp_path, "notebook", page_text).as_uri() + "#pick=7,2,3")
    page = opened.page
    assert page.locator("table.afs-matrix td").count() == 100
    why = explain_score(result, 7, 2, head=3)
    assert page.get_attribute(".afs-explanation", "data-pair") == "7,2,3,0"
    _check_numbers(opened, why, features=False)
    assert (
        "print(explain_score(result, 7, 2, head=3))"
        in page.locator(".afs-explanation").inner_text()
    )
    page.locator('td[data-q="1"][data-k="4"]').click()  # masked
    masked = explain_score(result, 1, 4, head=3)
    assert masked.masked
    assert "masked" in page.locator(".afs-explanation pre").inner_text()
    _check_numbers(opened, masked, features=False)
    _check_slider(opened, result, 3)
    _fits(open_page(browser, _write(tmp_path, "notebook", page_text), width=PHONE))
    assert_no_console_errors(opened)


def test_wide_heads_in_a_notebook_hold_the_dot_products(browser: Browser, tmp_path: Path) -> None:
    """Without q and k (a notebook view of wide heads): weights, scores and the slider."""
    params = AttentionParams.random(8, 1024, n_heads=2, rng=0)
    result = multi_head_attention(np.random.default_rng(0).normal(size=(40, 8)), params, n_heads=2)
    fragment = notebook_html(result)
    assert fragment is not None
    page_text = f"<!DOCTYPE html><html><body>{fragment}</body></html>"
    opened = open_page(browser, _write(tmp_path, "wide", page_text).as_uri() + "#pick=5,7,1")
    shown: dict[str, Any] = opened.page.evaluate(READ_NUMBERS)
    why = explain_score(result, 5, 7, head=1)
    for name in ("weight", "rank", "raw_score", "score", "logsumexp", "unscaled_weight"):
        _close(float(shown[name]), float(getattr(why, name)), EXACT, name)
    assert "query_norm" not in shown  # not computable without q and k: not shown
    assert opened.page.locator(".afs-mapbox svg").count() == 0
    _check_slider(opened, result, 1)
    assert_no_console_errors(opened)


def test_attention_result_with_bias(browser: Browser, tmp_path: Path) -> None:
    x = np.array([[1.0, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]])
    bias = np.array([[0.0, -np.inf, 0.5], [0.25, 0.0, -1.0], [0.0, 0.0, 0.0]])
    result = scaled_dot_product_attention(x, x, x, bias=bias)
    opened = open_page(browser, _write(tmp_path, "bias", to_html(result)))
    for i, j in ((0, 2), (1, 0), (0, 1)):
        opened.page.locator(f'td[data-q="{i}"][data-k="{j}"]').click()
        _check_numbers(opened, explain_score(result, i, j), features=False)
    opened.page.locator('td[data-q="1"][data-k="0"]').click()
    _check_slider(opened, result, None)
    assert_no_console_errors(opened)


# --------------------------------------------------------------------------- all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def minilm_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The model view of the book's sentence (skips without the extra or the model)."""
    path = minilm_checkpoint()
    from attention_from_scratch.pretrained import BertEncoder

    run = BertEncoder.from_pretrained(path).run(MINILM_SENTENCE)
    target = tmp_path_factory.mktemp("minilm") / "model.html"
    target.write_text(run.to_html(), encoding="utf-8")
    return run, target


@pytest.mark.pretrained
def test_minilm_model_view(browser: Browser, minilm_page: tuple[Any, Path]) -> None:
    run, path = minilm_page
    assert len(run.tokens) == 15
    assert path.stat().st_size <= 1_500_000
    opened = open_page(browser, path)
    page = opened.page
    assert page.locator("button.afs-thumb").count() == 6 * 12
    assert (
        page.get_attribute('button.afs-thumb[data-layer="0"][data-head="0"]', "aria-pressed")
        == "true"
    )
    page.locator('button.afs-thumb[data-layer="3"][data-head="1"]').click()
    assert page.locator(".afs-where").inner_text().startswith("layer 3, head 1:")
    i, j = run.tokens.index("it"), run.tokens.index("creature")
    page.locator(f'td[data-q="{i}"][data-k="{j}"]').click()
    assert page.get_attribute(".afs-explanation", "data-pair") == f"{i},{j},1,3"
    layer = run.layers[3]
    worst = _check_numbers(
        opened, explain_score(layer, i, j, head=1, tokens=run.tokens), features=False
    )
    assert worst <= EXACT
    # another pair, the top key of its row, so the rival is the runner-up
    top = int(np.argmax(layer.weights[1, 5]))
    page.locator(f'td[data-q="5"][data-k="{top}"]').click()
    _check_numbers(opened, explain_score(layer, 5, top, head=1), features=False)
    _check_slider(opened, layer, 1)
    # a head opened by keyboard: Tab to a thumbnail, Enter
    page.locator('button.afs-thumb[data-layer="5"][data-head="10"]').focus()
    page.keyboard.press("Enter")
    assert page.locator(".afs-where").inner_text().startswith("layer 5, head 10:")
    assert "of their variance" in page.locator(".afs-mapbox .afs-note").inner_text()
    assert_no_console_errors(opened)
    phone = open_page(browser, path, width=PHONE)
    _fits(phone)
    assert_no_console_errors(phone)
