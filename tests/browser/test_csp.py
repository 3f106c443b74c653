"""The pages work under their real Content-Security-Policy (no CSP bypass here)."""
from __future__ import annotations

import pytest

from tests.browser.conftest import shot
from tests.helpers import minutes, run_via_rq

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", ["/", "/stocks/AAPL?range=all", "/alerts", "/alerts/rules", "/scanner",
                                  "/login", "/search?q=a", "/api/docs"])
def test_pages_run_under_the_policy(web, app, browser, path) -> None:
    run_via_rq(app, minutes(3))
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.on("pageerror", lambda e: messages.append(str(e)))
    resp = page.goto(web.url + path)
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    if path not in ("/api/docs", "/login", "/search?q=a"):  # those are static
        page.locator("#connection").filter(has_text="live").wait_for(timeout=10_000)
    if path.startswith("/stocks"):
        page.locator("#chart canvas").first.wait_for()
    page.wait_for_timeout(300)
    shot(page, "csp-" + (path.strip("/").split("?")[0].replace("/", "-") or "dashboard"))
    context.close()
    assert not [m for m in messages if "Content Security Policy" in m or "Refused" in m], messages
