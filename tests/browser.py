"""A real browser for tests: Debian's headless Chromium driven by Playwright.

The book's pages and the HTML view are checked in the browser readers use, offline.
Nothing downloads a browser: Playwright is pointed at the system Chromium
(``executable_path``), found as ``$AFS_CHROMIUM``, ``chromium`` or ``chromium-browser``.

Tests ask for the :func:`browser` fixture (re-exported by ``tests/conftest.py``) and
open pages with :func:`open_page`, which records console errors and uncaught
exceptions; :func:`assert_no_console_errors` fails with all of them. Without
Playwright or without Chromium the tests *skip*, saying which is missing and how to
get it (``pip install playwright``; ``apt-get install chromium``). Every test that
uses a browser is marked ``browser``.

The requests of a page are refused unless they are ``file:`` or ``data:`` URLs, so a
page that reaches for the network fails the test instead of loading quietly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

__all__ = ["BrowserPage", "assert_no_console_errors", "browser", "chromium_path", "open_page"]

PHONE = 420
DESKTOP = 1280


def chromium_path() -> str | None:
    """The system Chromium: ``$AFS_CHROMIUM``, else ``chromium`` or ``chromium-browser``."""
    configured = os.environ.get("AFS_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole session (skips without Playwright or Chromium)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install playwright; no browser download)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium, or set AFS_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class BrowserPage:
    """An open page and what it reported: console errors and uncaught exceptions."""

    page: Page
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


def open_page(browser: Browser, url: str | Path, *, width: int = DESKTOP) -> BrowserPage:
    """Open ``url`` (a path or a ``file:`` URL) offline at ``width`` px, recording errors."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    opened = BrowserPage(page)

    def _offline(route: Route) -> None:
        if route.request.url.startswith(("file:", "data:", "about:")):
            route.continue_()
        else:
            opened.blocked.append(route.request.url)
            route.abort()

    def _console(message: Any) -> None:
        if message.type == "error":
            opened.errors.append(f"console: {message.text}")

    def _exception(error: Any) -> None:
        opened.errors.append(f"uncaught: {error}")

    page.route("**/*", _offline)
    page.on("console", _console)
    page.on("pageerror", _exception)
    target = url.resolve().as_uri() if isinstance(url, Path) else url
    page.goto(target, wait_until="load")
    return opened


def assert_no_console_errors(opened: BrowserPage) -> None:
    """Fail with every console error, uncaught exception and network request of the page."""
    problems = opened.errors + [f"network request refused: {url}" for url in opened.blocked]
    assert not problems, "\n".join(problems)
