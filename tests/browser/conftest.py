"""Real-browser fixtures: Debian's chromium driven by Playwright.

Without chromium the browser tests are skipped and say so; with CI set they
fail instead, so a CI run can never pass without running them.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.processes import ROOT, WebProcess

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but /usr/bin/chromium is missing: browser tests must run in CI")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # Playwright's wait_for_function evaluates strings, which our CSP forbids;
    # test_csp.py loads the pages under the real policy.
    context = browser.new_context(viewport={"width": 1100, "height": 800}, timezone_id="Europe/Berlin",
                                  bypass_csp=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert errors == [], errors


@pytest.fixture
def web(service_urls, clean):
    proc = WebProcess(*service_urls).start()
    yield proc
    proc.stop()


def shot(page, name: str) -> Path:
    """Save a screenshot to look at (test-output/screenshots/NAME.png), with any secret the page shows
    (a new webhook endpoint's, shown once) painted over: screenshots get shared and committed."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, mask=[page.locator(".secret")])
    return path
