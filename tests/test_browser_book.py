"""The built book, read by a real browser: every page, at desktop and phone width, offline.

The book is the directory ``$AFS_BOOK`` (default ``docs/_build/html``); ``nox -s docs``
builds it and then runs these tests. Without a built book they skip, saying so.

Every page of the book is checked: the ``.html`` files of the build except those under
``_static/`` (the theme's, MathJax's and the generated view pages, which are checked by
the view test below, not as book pages) and ``_sources/`` (text copies, none are HTML).
The build has no ``_modules/`` (no viewcode). Each page is read at 1280 px and at 420 px
(one browser, one context per width, the network refused) with every dropdown opened,
after MathJax has finished typesetting, and must show:

* no raw TeX in its text outside code (``\\(``, ``\\[``, ``$$``, ``\\frac``, ``\\sqrt``,
  ...) and no MathJax error box;
* no console error, no uncaught exception and no network request;
* at 420 px, no display equation wider than the viewport unless a horizontally
  scrollable box holds it.

The HTML view pages the book ships (``_static/*.html`` with the view's root element),
and any book page that embeds a view (inline or in an iframe), must answer a click on
a weight cell with the pair's explanation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser import DESKTOP, PHONE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
BOOK = Path(os.environ.get("AFS_BOOK", ROOT / "docs" / "_build" / "html")).resolve()
RAW_TEX = ("\\(", "\\)", "\\[", "\\]", "$$", "\\frac", "\\sqrt", "\\begin{", "\\operatorname")

# Waits until MathJax (when the page loads it) has typeset everything, opens every
# dropdown, and reads the page: raw TeX left in the text outside code, MathJax errors,
# formulas, and (at any width) display equations that stick out without a scroll box.
_INSPECT = """
async () => {
  if (document.querySelector('script[src*="mathjax"]')) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - t0 > 20000) { return {error: "MathJax never started"}; }
      await new Promise(r => setTimeout(r, 50));
    }
    await MathJax.startup.promise;
  }
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll(
    "pre, code, script, style, textarea, mjx-container, .highlight, .MathJax"
  ).forEach(e => e.remove());
  const text = clone.textContent;
  const vw = document.documentElement.clientWidth;
  const scrolls = e => ["auto", "scroll"].includes(getComputedStyle(e).overflowX);
  const wide = [];
  const displays = document.querySelectorAll('mjx-container[display="true"]');
  displays.forEach(eq => {
    const r = eq.getBoundingClientRect();
    const spills = eq.scrollWidth > eq.clientWidth + 1 && !scrolls(eq);
    if (r.width === 0 || (r.left >= -1 && r.right <= vw + 1 && !spills)) { return; }
    // Only the equation's own box counts: furo's div.math-wrapper, or div.math.
    const own = eq.closest("div.math-wrapper") || eq.closest("div.math") || eq;
    for (let a = eq; a && a !== own.parentElement; a = a.parentElement) {
      const ar = a.getBoundingClientRect();
      if (scrolls(a) && ar.left >= -1 && ar.right <= vw + 1) { return; }
    }
    const tex = eq.getAttribute("aria-label") || eq.textContent;
    wide.push(Math.round(r.width) + " px: " + tex.slice(0, 60));
  });
  return {
    text: text,
    formulas: document.querySelectorAll("mjx-container").length,
    displays: displays.length,
    errors: document.querySelectorAll("mjx-merror, merror").length,
    wide: wide,
    viewport: vw,
  };
}
"""


def _book_pages() -> list[Path]:
    """Every HTML page of the built book, except the static files."""
    if not (BOOK / "index.html").is_file():
        return []
    return sorted(
        p
        for p in BOOK.rglob("*.html")
        if not {"_static", "_sources"} & set(p.relative_to(BOOK).parts)
    )


def _view_pages() -> list[Path]:
    """The standalone HTML views the book ships in ``_static``."""
    static = BOOK / "_static"
    if not static.is_dir():
        return []
    return sorted(p for p in static.glob("*.html") if 'class="afs-root"' in p.read_text("utf-8"))


class _Reader:
    """One offline context and one tab at one width; records what each page reported."""

    def __init__(self, browser: Browser, width: int) -> None:
        self.context: BrowserContext = browser.new_context(
            viewport={"width": width, "height": 900}
        )
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.context.route("**/*", self._offline)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _offline(self, route: Route) -> None:
        if route.request.url.startswith(("file:", "data:", "about:", "blob:")):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def open(self, path: Path) -> Page:
        """Go to ``path``, forgetting what the previous page reported."""
        self.errors.clear()
        self.blocked.clear()
        self.page.goto(path.as_uri(), wait_until="load")
        return self.page

    def settle(self) -> None:
        """Let the current page's requests finish, so that each is blamed on its page."""
        self.page.wait_for_load_state("networkidle")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and refused requests of the current page."""
        return self.errors + [f"network request refused: {url}" for url in self.blocked]


@pytest.fixture(scope="module")
def readers(browser: Browser) -> Iterator[dict[int, _Reader]]:
    """One reader per width, sharing the session's browser."""
    if not _book_pages():
        pytest.skip(f"no built book at {BOOK} (build it: nox -s docs, or set AFS_BOOK)")
    made = {width: _Reader(browser, width) for width in (DESKTOP, PHONE)}
    yield made
    for reader in made.values():
        reader.context.close()


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_every_page_renders_offline(readers: dict[int, _Reader], width: int) -> None:
    """No raw TeX, no MathJax error, no console error, no request; phones: no wide formula."""
    reader = readers[width]
    failures: list[str] = []
    pages = formulas = displays = 0
    for path in _book_pages():
        name = path.relative_to(BOOK).as_posix()
        page = reader.open(path)
        seen = page.evaluate(_INSPECT)
        reader.settle()
        assert "error" not in seen, f"{name}: {seen.get('error')}"
        pages += 1
        formulas += seen["formulas"]
        displays += seen["displays"]
        raw = [tex for tex in RAW_TEX if tex in seen["text"]]
        if raw:
            at = seen["text"].find(raw[0])
            context = " ".join(seen["text"][max(0, at - 60) : at + 60].split())
            failures.append(f"{name}: raw TeX {raw} in the text: ...{context}...")
        if seen["errors"]:
            failures.append(f"{name}: {seen['errors']} MathJax error boxes")
        failures += [f"{name}: {problem}" for problem in reader.problems()]
        if width == PHONE:
            failures += [
                f"{name}: equation wider than the {seen['viewport']} px viewport, no scroll "
                f"box: {eq}"
                for eq in seen["wide"]
            ]
    print(f"\n{width} px: {pages} pages, {formulas} formulas ({displays} display) checked")
    assert pages >= 20, f"only {pages} pages found in {BOOK}"
    assert formulas > 0, "no formula was typeset: is MathJax copied into the book?"
    assert not failures, "\n".join(failures)


def _click_every_view(page: Page, name: str) -> tuple[int, list[str]]:
    """Click the first weight cell of each view on ``page``; the explanation must change."""
    clicks, failures = 0, []
    for frame in page.frames:
        roots = frame.locator(".afs-root")
        if roots.count() and frame != page.main_frame:
            # An embedded view: bring its iframe on screen first (a lazy iframe far
            # down the page never settles for a scroll from inside it).
            frame.frame_element().scroll_into_view_if_needed()
        for index in range(roots.count()):
            root = roots.nth(index)
            frame.wait_for_function(
                "root => root.dataset.rendered === 'ok'", arg=root.element_handle()
            )
            text = root.locator("pre.afs-text").first
            before = text.inner_text()
            cell = root.locator("table.afs-matrix td:not(.afs-masked)").first
            cell.scroll_into_view_if_needed()
            cell.click()
            clicks += 1
            after = text.inner_text()
            if after == before or "attend" not in after:
                failures.append(f"{name}: view {index}: a click on a weight cell showed {after!r}")
    return clicks, failures


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_views_answer_a_click_with_the_explanation(
    readers: dict[int, _Reader], width: int
) -> None:
    """Each shipped view page, and each book page embedding one, explains a clicked cell."""
    reader = readers[width]
    views, clicks, failures = 0, 0, []
    for path in _view_pages():
        name = path.relative_to(BOOK).as_posix()
        page = reader.open(path)
        done, failed = _click_every_view(page, name)
        reader.settle()
        views, clicks = views + 1, clicks + done
        failures += failed + [f"{name}: {problem}" for problem in reader.problems()]
        if done == 0:
            failures.append(f"{name}: no view rendered")
    for path in _book_pages():
        if "afs-root" not in path.read_text("utf-8") and "<iframe" not in path.read_text("utf-8"):
            continue
        page = reader.open(path)
        done, failed = _click_every_view(page, path.relative_to(BOOK).as_posix())
        clicks += done
        failures += failed
    print(f"\n{width} px: {views} view pages, {clicks} clicks on weight cells")
    assert views >= 1, f"no HTML view in {BOOK / '_static'}"
    assert not failures, "\n".join(failures)
