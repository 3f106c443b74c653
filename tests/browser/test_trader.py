"""Signed in, a trader changes things from the pages: searching and tracking a symbol, watchlists
across a reload and a second browser, the dashboard's columns; and what is refused without."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from rq import Queue, SimpleWorker

from tests.browser.conftest import shot
from tests.browser.test_pages import LIVE
from tests.helpers import START, minutes, run_via_rq
from webapp import names
from webapp.extensions import db, get_redis
from webapp.store import users

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"


def sign_in(page, web, name: str = "trader") -> None:
    page.goto(web.url + "/login?next=/")
    page.fill('input[name="username"]', name)
    page.fill('input[name="password"]', PASSWORD)
    page.click('.login button[type="submit"]')
    page.wait_for_url(web.url + "/")
    assert name in page.inner_text(".account")


@pytest.fixture
def trader(app):
    return users.create(db.session, "trader", PASSWORD)


def test_search_finds_by_name_and_tracks_a_symbol_with_its_history(web, app, page, trader) -> None:
    run_via_rq(app, minutes(2))
    page.goto(web.url + "/")
    page.fill("#search", "apple")
    page.wait_for_function("document.querySelectorAll('#search-hits option').length > 0")
    assert page.eval_on_selector_all("#search-hits option", "os => os.map(o => o.value)") == ["AAPL"]
    page.press("#search", "Enter")
    page.wait_for_url("**/stocks/AAPL")
    # an untracked symbol: anonymous users are sent to sign in first
    page.goto(web.url + "/search?q=amd")
    assert "AMD is not tracked" in page.inner_text("#track")
    page.click("#track button")
    page.wait_for_url(lambda url: "/login" in url and "next=" in url)
    page.fill('input[name="username"]', "trader")
    page.fill('input[name="password"]', PASSWORD)
    page.click('.login button[type="submit"]')
    page.wait_for_url(lambda url: "/search?q=AMD" in url)
    page.click("#track button")
    page.wait_for_url("**/stocks/AMD")
    assert "Tracking AMD" in page.inner_text(".flash")
    assert page.get_attribute("#chart", "data-points") == "0"
    assert not page.is_hidden("#backfill")
    # the worker takes the backfill job; the chart draws the history when it is in
    conn = get_redis()
    SimpleWorker([Queue(names.backfill_queue(app.config["TRACKER"].QUEUE_NAME), connection=conn)],
                 connection=conn).work(burst=True)
    page.wait_for_function("document.getElementById('chart').dataset.backfill === 'done'", timeout=15_000)
    points = int(page.get_attribute("#chart", "data-points"))
    # the chart's range is the session so far (a few minutes of bars just after the open): it draws
    # every bar the API has for that range, and the backfilled history reaches beyond it
    served = page.evaluate("""async () => {
        const n = async (q) => (await (await fetch('/api/stocks/AMD/chart' + q)).json()).bars.length;
        return [await n(''), await n('?range=5d')]; }""")
    assert points == served[0] and served[1] > 100 and page.is_hidden("#backfill")
    shot(page, "chart-backfilled")
    tracked = requests.get(web.url + "/api/symbols").json()["symbols"]
    assert "AMD" in [s["ticker"] for s in tracked]


def test_watchlists_are_kept_per_user_across_a_reload_and_another_browser(web, app, page, browser,
                                                                           trader) -> None:
    run_via_rq(app, minutes(2))
    sign_in(page, web)
    page.wait_for_function(LIVE.format(n=1))
    page.once("dialog", lambda d: d.accept("Tech"))
    page.click("#list-new")
    page.wait_for_function("document.getElementById('list-pick').selectedOptions[0].text.startsWith('Tech')")
    for t in ("AAPL", "MSFT", "NVDA"):  # a picked list shows its own symbols: add with its box
        page.fill("#list-add", t.lower())
        page.press("#list-add", "Enter")
        page.wait_for_function(f"document.querySelector('tr[data-ticker=\"{t}\"]').hidden === false")
    page.fill("#list-add", "nope")  # not a symbol the simulated market lists: refused, saying so
    page.press("#list-add", "Enter")
    page.wait_for_function("document.getElementById('watch-info').textContent"
                           ".includes('NOPE is not in the simulated market')")
    assert "refused" not in page.inner_text("#connection")  # an empty list joins no room, asks none
    page.click('tr[data-ticker="NVDA"] .move.up')  # NVDA up one: AAPL, NVDA, MSFT
    page.wait_for_function("document.getElementById('list-pick').selectedOptions[0].text === 'Tech (3)'")
    shown = ("[...document.querySelectorAll('#quotes tbody tr:not([hidden])')]"
             ".map(r => r.dataset.ticker).join()")
    page.wait_for_function(f"{shown} === 'AAPL,NVDA,MSFT'")
    assert page.locator('tr[data-ticker="AAPL"] .move').count() == 1  # the first goes only down
    page.click('tr[data-ticker="AAPL"] .move.down')  # and down one: NVDA, AAPL, MSFT
    page.wait_for_function(f"{shown} === 'NVDA,AAPL,MSFT'")
    page.click('tr[data-ticker="AAPL"] .move.up')
    page.wait_for_function(f"{shown} === 'AAPL,NVDA,MSFT'")
    # only the list's rooms: a tick's quotes come for these three, and no stock_update is taken
    page.evaluate("window.__live.quote = {}")
    run_via_rq(app, [START + timedelta(minutes=2)])
    page.wait_for_function("Object.keys(window.__live.quote).length === 3")
    assert sorted(page.evaluate("Object.keys(window.__live.quote)")) == ["AAPL", "MSFT", "NVDA"]
    shot(page, "dashboard-watchlist-tech")
    # on "All symbols", the star adds to the list last picked
    page.select_option("#list-pick", label="All symbols")
    page.click('tr[data-ticker="KO"] .star')
    page.wait_for_function("document.querySelector('tr[data-ticker=\"KO\"] .star').textContent === '★'")
    page.click('tr[data-ticker="KO"] .star')  # and takes it out again
    page.wait_for_function("document.querySelector('tr[data-ticker=\"KO\"] .star').textContent === '☆'")
    page.select_option("#list-pick", label="Tech (3)")
    page.reload()
    page.wait_for_function(LIVE.format(n=1))
    assert page.eval_on_selector("#list-pick", "s => s.selectedOptions[0].text") == "Tech (3)"
    shown = page.eval_on_selector_all("#quotes tbody tr:not([hidden])", "rs => rs.map(r => r.dataset.ticker)")
    assert shown == ["AAPL", "NVDA", "MSFT"]

    other = browser.new_context(viewport={"width": 1100, "height": 800}, bypass_csp=True).new_page()
    try:
        sign_in(other, web)
        other.select_option("#list-pick", label="Tech (3)")
        other.once("dialog", lambda d: d.accept("Mega caps"))
        other.click("#list-rename")
        chosen = "document.getElementById('list-pick').selectedOptions[0].text === "
        other.wait_for_function(chosen + "'Mega caps (3)'")
        other.click('tr[data-ticker="MSFT"] .star')  # out of the list (it stays shown until reloaded)
        other.wait_for_function(chosen + "'Mega caps (2)'")
    finally:
        other.context.close()
    page.reload()
    page.wait_for_function(LIVE.format(n=1))
    assert page.eval_on_selector("#list-pick", "s => s.selectedOptions[0].text") == "Mega caps (2)"
    page.once("dialog", lambda d: d.accept())
    page.click("#list-delete")
    page.wait_for_function("document.getElementById('list-pick').options.length === 1")
    assert page.eval_on_selector_all("#quotes tbody tr:not([hidden])", "rs => rs.length") == 15


def test_column_choices_are_kept_for_the_user_and_in_the_browser_for_others(web, app, page, trader) -> None:
    run_via_rq(app, minutes(2))
    page.goto(web.url + "/")
    page.wait_for_function(LIVE.format(n=1))
    for col in ("volume", "open", "range", "prev_close"):
        assert page.is_visible(f'tr[data-ticker="AAPL"] .col-{col}')
    assert page.inner_text('tr[data-ticker="AAPL"] .volume') != "–"
    assert page.locator('tr[data-ticker="AAPL"] .range svg circle').count() == 1
    page.click("#columns summary")
    page.uncheck('#columns input[value="open"]')  # anonymous: kept in this browser
    page.reload()
    assert page.is_hidden('tr[data-ticker="AAPL"] .col-open')
    sign_in(page, web)  # a user's choice is their own (and starts with every column)
    assert page.is_visible('tr[data-ticker="AAPL"] .col-open')
    page.click("#columns summary")
    page.uncheck('#columns input[value="sma"]')
    page.wait_for_function("fetch('/api/me').then(r => r.json()).then(m => "
                           "m.settings.dashboard_columns && !m.settings.dashboard_columns.includes('sma'))")
    page.reload()
    assert page.is_hidden('tr[data-ticker="AAPL"] .col-sma')
    assert page.is_visible('tr[data-ticker="AAPL"] .col-open')
    shot(page, "dashboard-columns")


def test_writes_need_a_signed_in_user_and_the_pages_csrf_token(web, app, page, trader) -> None:
    page.goto(web.url + "/")
    post = """fetch('/api/watchlists', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({name: 'x'})}).then(async r => [r.status, await r.json()])"""
    anonymous = page.evaluate(post)
    assert anonymous[0] == 401 and "sign in" in anonymous[1]["error"]["message"]
    track = page.evaluate("""fetch('/api/symbols', {method: 'POST', headers: {'Content-Type':
        'application/json'}, body: JSON.stringify({ticker: 'AMD'})}).then(r => r.status)""")
    assert track == 401
    sign_in(page, web)
    # signed in, but without the page's token: refused (a cross-site form or script cannot send it)
    no_token = page.evaluate(post)
    assert no_token[0] == 401 and "X-CSRFToken" in no_token[1]["error"]["message"]
    with_token = page.evaluate("""fetch('/api/watchlists', {method: 'POST', headers: {'Content-Type':
        'application/json', 'X-CSRFToken': document.querySelector('meta[name=csrf-token]').content},
        body: JSON.stringify({name: 'x'})}).then(r => r.status)""")
    assert with_token == 201
    forged = page.evaluate("fetch('/logout', {method: 'POST'}).then(async r => [r.status, await r.text()])")
    assert forged[0] == 400 and "Form refused" in forged[1]
    assert "trader" in page.inner_text(".account")  # still signed in
    page.goto(web.url + "/login")
    page.fill('input[name="username"]', "trader")
    page.fill('input[name="password"]', "wrong password")
    page.click('.login button[type="submit"]')
    shot(page, "login-refused")
    assert "do not match" in page.inner_text(".login")
    shot(page, "login-refused")


@pytest.mark.parametrize("width", [1280, 390])
def test_your_rules_alerts_toast_on_any_page_with_the_sound_you_chose(web, app, browser, trader,
                                                                     width) -> None:
    """A rule's fire used to show only on the Rules page (issue 26, item 8): now a toast on whatever
    page is open, for its owner only, and a sound when chosen, remembered in the user's settings."""
    from webapp.services import rules
    from webapp.store import rules as rules_store

    run_via_rq(app, minutes(2))
    rules_store.create(db.session, rules.rule_spec(
        {"name": "AAPL above 1", "scope": {"tickers": ["AAPL"]}, "frequency": "every_time",
         "cooldown_seconds": 0,
         "condition": {"op": "greater_than", "a": {"field": "close"}, "b": {"const": 1}}},
        trader.id), trader.id)
    users.update_settings(db.session, trader.id, {"alert_sound": True})
    page = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True).new_page()
    stranger = browser.new_context().new_page()  # someone else's open page gets no toast of it
    try:
        sign_in(page, web)
        stranger.goto(web.url + "/")
        for p in (page, stranger):
            p.wait_for_function(LIVE.format(n=1))
        page.goto(web.url + "/scanner")  # any page: here the scanner
        page.wait_for_function("window.__toasts.following >= 1")  # its feed joined before the tick
        run_via_rq(app, [START + timedelta(minutes=2)])
        toast = page.locator("#toasts .toast").first
        toast.wait_for(timeout=15_000)
        assert "AAPL · AAPL above 1" in toast.inner_text() and "close" in toast.inner_text()
        assert page.evaluate("window.__toasts.beeps") >= 1  # the sound this user chose
        box = toast.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width  # on screen at this width
        shot(page, f"toast-{width}")
        assert stranger.locator("#toasts .toast").count() == 0
    finally:
        page.context.close()
        stranger.context.close()
