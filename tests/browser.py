"""Debian's Chromium driven by Playwright, for the browser tests: where it is, how it starts, one page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # The review page plays each detection's audio as it shows it.
    "--autoplay-policy=no-user-gesture-required",
]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -r requirements/dev.txt"
)
# A browser test needs Chromium, and a database its live server's threads can see.
BROWSER_TEST = [
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"{CHROMIUM} is missing: apt-get install chromium (Debian's package; .ci/run installs it)",
    ),
    pytest.mark.django_db(transaction=True),
]


@contextmanager
def chromium_page() -> Iterator:
    """A page of a fresh headless Chromium, 1366 x 800, closed with its browser at the end."""
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 800})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
