"""What a newcomer met on the pages (issue 11), each in a real browser against
the real web process, with ticks run by a real RQ worker."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.browser.conftest import shot
from tests.browser.test_pages import LIVE
from tests.fakes.providers import ScriptedProvider
from tests.helpers import START, minutes, run_via_rq, scripted_services, token_for
from tests.processes import WebProcess
from webapp.core.quotes import Quote
from webapp.tick.pipeline import run_tick

pytestmark = pytest.mark.slow


def order(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('#quotes tbody tr')].map((r) => r.dataset.ticker)")


def test_scanner_form_submits_with_empty_boxes_and_again(web, app, page) -> None:
    run_via_rq(app, minutes(2))
    page.goto(web.url + "/scanner")
    page.wait_for_function(LIVE.format(n=1))
    page.fill('input[name="min_price"]', "100")
    with page.expect_navigation() as nav:
        page.click('#filters button[type="submit"]')  # the real form, empty boxes and all
    assert nav.value.status == 200, page.inner_text("main")[:300]
    assert "max_price=&" in page.url
    prices = page.evaluate("[...document.querySelectorAll('section[data-list=\"gainers\"] td.price')]"
                           ".map((c) => Number(c.textContent))")
    assert all(p >= 100 for p in prices)
    assert page.input_value('input[name="min_price"]') == "100.0"
    assert page.input_value('input[name="max_price"]') == ""
    with page.expect_navigation() as again:
        page.click('#filters button[type="submit"]')
    assert again.value.status == 200
    shot(page, "scanner-filtered")


def test_watchlist_holds_many_symbols_and_a_toggle_keeps_it(web, app, page) -> None:
    run_via_rq(app, minutes(1))
    page.goto(web.url + "/")
    page.wait_for_function(LIVE.format(n=1))
    for t in ("AAPL", "MSFT", "KO"):
        page.click(f'tr[data-ticker="{t}"] .star')
        assert page.is_visible('tr[data-ticker="NVDA"] .star')  # every row and its star stay
    assert page.get_attribute('tr[data-ticker="MSFT"] .star', "aria-pressed") == "true"
    page.check("#watch-only")
    # the page leaves every other room (one unsubscribe; the three are joined already): acknowledged
    page.wait_for_function(LIVE.format(n=1) + " && window.__live.acks >= 2")
    assert page.is_hidden('tr[data-ticker="NVDA"]') and page.is_visible('tr[data-ticker="KO"]')
    page.fill("#filter", "K")  # the filter searches inside what is shown
    assert page.is_visible('tr[data-ticker="KO"]') and page.is_hidden('tr[data-ticker="AAPL"]')
    page.fill("#filter", "")
    run_via_rq(app, [START + timedelta(minutes=1)])
    page.wait_for_function("window.__live.quote.AAPL >= 1 && window.__live.quote.MSFT >= 1"
                           " && window.__live.quote.KO >= 1")
    page.reload()
    page.wait_for_function(LIVE.format(n=1))
    assert page.is_checked("#watch-only") and page.is_hidden('tr[data-ticker="NVDA"]')
    page.uncheck("#watch-only")  # everything again, and the watchlist is kept
    assert page.is_visible('tr[data-ticker="NVDA"]')
    stars = page.evaluate("[...document.querySelectorAll('.star[aria-pressed=\"true\"]')]"
                          ".map((s) => s.closest('tr').dataset.ticker)")
    assert sorted(stars) == ["AAPL", "KO", "MSFT"]
    shot(page, "dashboard-watchlist-set")


def test_added_and_removed_symbols_show_on_an_open_dashboard(web, app, page) -> None:
    run_via_rq(app, minutes(1))
    token = token_for("test", admin=True)
    page.goto(web.url + "/")
    page.wait_for_function(LIVE.format(n=1))
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.post(web.url + "/api/symbols", json={"ticker": "AMD"}, headers=auth, timeout=5).ok
    assert requests.delete(web.url + "/api/symbols/KO", headers=auth, timeout=5).ok
    from webapp.services import context as context_service

    context_service.tracked_symbols(fresh=True)
    run_via_rq(app, [START + timedelta(minutes=1)])
    page.wait_for_selector('tr[data-ticker="AMD"] td.price:not(:text("–"))')
    page.wait_for_selector('tr[data-ticker="KO"]', state="detached")
    assert page.inner_text("#symbol-count") == "15"
    assert page.get_attribute('tr[data-ticker="AMD"] a', "href") == "/stocks/AMD"
    shot(page, "dashboard-symbols-changed")


def test_rows_turn_stale_when_ticks_stop_and_the_reason_fits(service_urls, make_app, browser) -> None:
    web = WebProcess(*service_urls, TICK_SECONDS="2").start()  # readings go stale after 6 s
    try:
        app = make_app(TICK_SECONDS=2)
        with app.app_context():
            run_via_rq(app, [datetime.now(timezone.utc)])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.goto(web.url + "/")
        page.wait_for_function(LIVE.format(n=1))
        assert page.locator("#quotes tbody tr.stale").count() == 0
        page.wait_for_function("document.querySelectorAll('#quotes tbody tr.stale').length === 15",
                               timeout=15_000)
        tag = page.locator('tr[data-ticker="AAPL"] .stale-tag')
        assert tag.inner_text() == "⚠ stale" and "no reading for" in tag.get_attribute("title")
        heights = page.eval_on_selector_all("#quotes tbody tr", "rs => rs.map(r => r.offsetHeight)")
        assert max(heights) < 60, heights  # the reason went into "As of": rows grew to 180 px (item 7)
        fits = page.evaluate("""() => {
            const right = document.getElementById('quotes').getBoundingClientRect().right;
            return [...document.querySelectorAll('.stale-tag')].every(
                (t) => t.getBoundingClientRect().right <= right + 1) && right <= window.innerWidth;
        }""")
        assert fits
        shot(page, "dashboard-stale-1280")
        # the feed comes back: a print clears its row at once, not a minute later (item 7)
        from tests.browser.test_stream import trade

        with app.app_context():
            trade("AAPL", 250.01)
        page.wait_for_function("!document.querySelector('tr[data-ticker=\"AAPL\"]').classList.contains('stale')")
        assert page.locator('tr[data-ticker="AAPL"] .stale-tag').count() == 0
        assert page.locator('tr[data-ticker="MSFT"].stale').count() == 1  # nothing came for MSFT
        context.close()
    finally:
        web.stop()


def test_rows_turn_stale_the_moment_the_stream_that_feeds_prices_stops(service_urls, make_app, browser
                                                                       ) -> None:
    """Issue 26 item 7: with the stream frozen, the header said "stream not running" next to "live"
    while rows looked normal for 75 s.  Now, when the stream the prices come from is not connected,
    the connection says prices are stalled and every row is stale within seconds, with the reason;
    a print clears its row."""
    web = WebProcess(*service_urls, MARKET_DATA_PROVIDER="stream").start()  # and no stream process
    try:
        app = make_app()
        with app.app_context():
            run_via_rq(app, [datetime.now(timezone.utc)])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.goto(web.url + "/")
        page.wait_for_function("document.querySelectorAll('#quotes tbody tr.stale').length === 15",
                               timeout=12_000)  # the readings are fresh: only the stream says so
        assert "prices stalled" in page.inner_text("#connection")
        tag = page.locator('tr[data-ticker="AAPL"] .stale-tag')
        assert "stream not running" in tag.get_attribute("title")
        assert "prices are not updating" in tag.get_attribute("title")
        from tests.browser.test_stream import trade

        with app.app_context():
            trade("AAPL", 250.01)
        page.wait_for_function("!document.querySelector('tr[data-ticker=\"AAPL\"]').classList.contains('stale')")
        context.close()
    finally:
        web.stop()


def test_sort_is_kept_as_values_update_and_headers_are_buttons(web, app, page) -> None:
    run_via_rq(app, minutes(1))
    page.goto(web.url + "/")
    page.wait_for_function(LIVE.format(n=1))
    header = page.locator('th[data-sort="change_pct"] button.sort')
    header.focus()
    page.keyboard.press("Enter")
    assert page.get_attribute('th[data-sort="change_pct"]', "aria-sort") == "ascending"
    page.keyboard.press(" ")
    assert page.get_attribute('th[data-sort="change_pct"]', "aria-sort") == "descending"
    assert page.get_attribute('th[data-sort="price"]', "aria-sort") == "none"
    for i in (1, 2):
        run_via_rq(app, [START + timedelta(minutes=i)])
        page.wait_for_function(f"window.__live.stock_update >= {i}")
    page.wait_for_timeout(300)
    values = page.evaluate("[...document.querySelectorAll('#quotes tbody tr')]"
                           ".map((r) => Number(r.dataset.change_pct))")
    assert values == sorted(values, reverse=True), values
    shot(page, "dashboard-sorted")
    page.reload()  # the order is kept across a reload (issue 26, item 18)
    page.wait_for_function(LIVE.format(n=1))
    assert page.get_attribute('th[data-sort="change_pct"]', "aria-sort") == "descending"
    values = page.evaluate("[...document.querySelectorAll('#quotes tbody tr')]"
                           ".map((r) => Number(r.dataset.change_pct))")
    assert values == sorted(values, reverse=True), values
    page.fill("#filter", "apple")  # the filter matches company names too (item 12)
    shown = ("[...document.querySelectorAll('#quotes tbody tr:not([hidden])')]"
             ".map(r => r.dataset.ticker).join()")
    page.wait_for_function(f"{shown} === 'AAPL'")
    page.fill("#filter", "ko")
    page.wait_for_function(f"{shown} === 'KO'")


def test_accessibility_landmarks_names_and_targets(web, app, browser) -> None:
    run_via_rq(app, minutes(2))
    context = browser.new_context(viewport={"width": 375, "height": 800}, bypass_csp=True)
    page = context.new_page()
    for path in ("/", "/scanner", "/alerts", "/stocks/AAPL"):
        page.goto(web.url + path)
        assert page.locator("h1").count() == 1, path
        assert page.get_attribute("a.brand", "aria-label"), path
    page.goto(web.url + "/")
    assert page.locator('[aria-live="polite"]').count() == 1
    box = page.locator('tr[data-ticker="AAPL"] .star').bounding_box()
    assert box["width"] >= 24 and box["height"] >= 24
    page.goto(web.url + "/scanner")
    assert page.locator("table.scan-table caption").count() == 12  # the minute lists and the live ones
    page.goto(web.url + "/stocks/AAPL")
    assert page.get_attribute("#chart", "role") == "img"
    assert "AAPL" in page.get_attribute("#chart", "aria-label")
    context.close()


@pytest.mark.parametrize("width", [1280, 1920])
def test_scanner_tables_stay_in_their_column(web, app, browser, width) -> None:
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    tickers = ["AAPL", "MSFT", "KO"]
    for i, at in enumerate(minutes(30)):  # a quiet half hour, then a burst: unusual volume, new highs
        vol = 100_000_000 if i == 29 else 100
        provider.next = [Quote(t, 100 + i + j, at, vol * (i + 1), 99.0, source="script", open=100.0,
                               high=100 + i + j, low=99.0) for j, t in enumerate(tickers)]
        run_tick(svc, tickers, at)
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(web.url + "/scanner")
    assert page.locator(".flag").count() > 0
    spill = page.evaluate("""() => [...document.querySelectorAll('section.scan')].filter((s) => {
        const t = s.querySelector('table').getBoundingClientRect(), b = s.getBoundingClientRect();
        return t.right > b.right + 1 || b.right > window.innerWidth;
    }).map((s) => s.dataset.list)""")
    shot(page, f"scanner-{width}")
    assert spill == []
    # the six lists stacked full width (issue 26, item 16): at 1280 px two sit side by side
    columns = page.evaluate("new Set([...document.querySelectorAll('section.scan')]"
                            ".map((s) => Math.round(s.getBoundingClientRect().left))).size")
    assert columns >= 2
    context.close()


def test_scanner_columns_sort_each_list_and_the_order_is_kept(web, app, page) -> None:
    """The scanner's columns did not sort (issue 26, item 16): a header is a button that sorts its
    list (largest first, then reversed), the list stays sorted as it updates, and a reload keeps it."""
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    tickers = ["AAPL", "MSFT", "KO", "NVDA"]
    prices = {"AAPL": 105.0, "MSFT": 103.0, "KO": 101.5, "NVDA": 102.0}
    for at in minutes(2):
        provider.next = [Quote(t, prices[t], at, 1000 * (i + 1) ** 3, 100.0, source="script", open=100.0,
                               high=prices[t], low=99.0) for i, t in enumerate(tickers)]
        run_tick(svc, tickers, at)
    page.goto(web.url + "/scanner")
    page.wait_for_function(LIVE.format(n=1))
    gainers = page.locator('section[data-list="gainers"]')
    order = lambda: gainers.locator("tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.ticker)")  # noqa: E731
    assert order() == ["AAPL", "MSFT", "NVDA", "KO"]  # the list's own order: % change
    volume = gainers.locator('th[data-sort="day_volume"]')
    volume.locator("button").click()
    assert order() == ["NVDA", "KO", "MSFT", "AAPL"] and volume.get_attribute("aria-sort") == "descending"
    volume.locator("button").click()
    assert order() == ["AAPL", "MSFT", "KO", "NVDA"] and volume.get_attribute("aria-sort") == "ascending"
    assert gainers.locator("tbody tr td.rank").first.inner_text() == "1"  # the list's rank stays
    page.reload()
    page.wait_for_function(LIVE.format(n=1))
    assert order() == ["AAPL", "MSFT", "KO", "NVDA"]  # kept across the reload
    assert page.locator('section[data-list="losers"] th[aria-sort="ascending"]').count() == 1  # "#"? no:


def test_error_pages_do_not_claim_to_connect(web, page) -> None:
    resp = page.goto(web.url + "/stocks/NOPE")
    assert resp.status == 404
    assert "connecting" not in page.inner_text("body")


def test_chart_legend_window_follows_the_ticks(web, app, page) -> None:
    run_via_rq(app, minutes(6))
    page.goto(web.url + "/stocks/AAPL?range=all")
    page.wait_for_function(LIVE.format(n=1))
    run_via_rq(app, [START + timedelta(minutes=6)])
    page.wait_for_function("document.getElementById('chart').dataset.points === '7'")
    window = requests.get(web.url + "/api/stocks/AAPL", timeout=5).json()["window"]
    assert page.inner_text("#window-now") == ", ".join(f"{p:.2f}" for p in window)
    assert page.inner_text("#last-price") == f"{window[-1]:.2f}"


def test_sub_dollar_prices_keep_their_four_decimals(web, app, page) -> None:
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    provider.next = [Quote("AAPL", 0.1234, START, 100, 0.12, source="script")]
    run_tick(svc, ["AAPL"], START)
    page.goto(web.url + "/")
    assert page.inner_text('tr[data-ticker="AAPL"] .price') == "0.1234"
    page.wait_for_function(LIVE.format(n=1))
    page.wait_for_timeout(300)  # the gap fill re-renders the row from /api/stocks
    assert page.inner_text('tr[data-ticker="AAPL"] .price').endswith("0.1234")


def test_a_bad_ticker_in_the_alert_filter_is_said_beside_the_form(web, page) -> None:
    resp = page.goto(web.url + "/alerts?ticker=%24%24")
    assert resp.status == 400
    assert "'$$' is not a ticker" in page.inner_text("#ticker-error")
    assert page.input_value('input[name="ticker"]') == "$$"


CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92
      : Math.pow((v + 0.055) / 1.055, 2.4); }).reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const bg = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none') continue;
    if (el.closest('[hidden], .visually-hidden, template')) continue;
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const fg = rgb(st.color), back = bg(el);
    const mixed = fg.slice(0, 3).map((v, i) => v * opacity + back[i] * (1 - opacity));
    const [a, b] = [lum(mixed), lum(back)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const what = `${el.tagName}.${el.className}: ${el.textContent.trim().slice(0, 30)}`;
    if (ratio < 4.5) out.push(`${what} ${ratio.toFixed(2)}`);
  }
  return out;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_reaches_wcag_aa(service_urls, clean, app, browser, scheme) -> None:
    web = WebProcess(*service_urls).start()
    try:
        provider = ScriptedProvider()
        svc = scripted_services(app, provider)
        for at, price in zip(minutes(7), [10, 10, 10, 10, 8, 9.5, 11], strict=True):
            provider.next = [Quote("AAPL", price, at, 100, 10.0, source="script")]
            provider.problems = {"MSFT": "provider timestamp unchanged"} if at == START else {}
            run_tick(svc, ["AAPL", "MSFT"], at)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme,
                                      bypass_csp=True)
        page = context.new_page()
        for path in ("/", "/stocks/AAPL?range=all", "/alerts", "/scanner"):
            page.goto(web.url + path)
            page.wait_for_function(LIVE.format(n=1))
            page.wait_for_timeout(1200)  # no flash animation mid-way
            if path == "/":
                assert page.locator("tr.stale").count() > 0  # the stale rows are measured too
            assert page.evaluate(CONTRAST) == [], path
        shot(page, f"contrast-{scheme}")
        context.close()
    finally:
        web.stop()


def test_at_phone_width_wide_tables_scroll_inside_the_page(web, app, browser) -> None:
    """At 390 px the Rules and scanner tables reached 444 px and their buttons were cut (issue 26,
    item 14): every table now sits in a box of the page's width that scrolls sideways, and the page
    itself never overflows."""
    from tests.helpers import user_id
    from webapp.extensions import db
    from webapp.services import rules
    from webapp.store import rules as rules_store

    run_via_rq(app, minutes(2))
    owner = user_id("phone")
    rules_store.create(db.session, rules.rule_spec(
        {"name": "a rule with a long enough name to be wide", "scope": {"tickers": ["AAPL", "MSFT"]},
         "condition": {"op": "crossing", "a": {"field": "close"}, "b": {"sma": 3}}}, owner), owner)
    context = browser.new_context(viewport={"width": 390, "height": 800}, bypass_csp=True)
    page = context.new_page()
    page.goto(web.url + "/login?next=/alerts/rules")
    page.fill("input[name=username]", "phone")
    page.fill("input[name=password]", "password-phone")
    page.click(".login button[type=submit]")
    page.wait_for_url(lambda url: "/alerts/rules" in url)
    page.locator("#rules tbody tr[data-rule]").nth(1).wait_for()
    for path in ("/alerts/rules", "/scanner", "/alerts", "/"):
        if path != "/alerts/rules":
            page.goto(web.url + path)
        got = page.evaluate("""() => ({
            page: document.documentElement.scrollWidth,
            boxes: [...document.querySelectorAll('table')].filter((t) => t.offsetParent).map((t) => {
                let w = t.parentElement;
                while (w && !['auto', 'scroll'].includes(getComputedStyle(w).overflowX)) w = w.parentElement;
                return w ? Math.round(w.getBoundingClientRect().right) : -1;
            }),
        })""")
        assert got["page"] <= 390, (path, got)
        assert got["boxes"] and all(0 < right <= 390 for right in got["boxes"]), (path, got)
        shot(page, "phone" + path.replace("/", "-"))
    # a cut button is reachable: the rules table scrolls to show its Delete
    delete = page.goto(web.url + "/alerts/rules") and page.locator("#rules button", has_text="Delete").first
    delete.scroll_into_view_if_needed()
    box = delete.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    context.close()


def test_at_1280_px_the_dashboard_table_fits_with_every_column(web, app, browser) -> None:
    """At 1280 px the dashboard table was 1,366 px wide and "As of" was cut (issue 26, item 14): the
    whole table, every column to "As of", fits the page without scrolling sideways, each row on one
    line, with crosses in "Latest cross" and stale tags in "As of"."""
    run_via_rq(app, minutes(12))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.goto(web.url + "/")
    page.wait_for_selector('tr[data-ticker="AAPL"] td.price:not(:text("–"))')
    page.wait_for_function("document.querySelectorAll('#quotes td.alert .badge').length > 3")
    page.wait_for_function("document.querySelectorAll('#quotes tbody tr.stale').length > 3")
    got = page.evaluate("""() => {
        const table = document.getElementById('quotes');
        const heights = [...table.querySelectorAll('tbody tr')].map((r) => r.offsetHeight);
        const last = [...table.querySelectorAll('thead th')].pop();
        return {page: document.documentElement.scrollWidth, table: table.getBoundingClientRect().width,
                box: table.parentElement.clientWidth, scroll: table.parentElement.scrollWidth,
                lastRight: last.getBoundingClientRect().right, lastText: last.innerText,
                tallest: Math.max(...heights)};
    }""")
    shot(page, "dashboard-1280")
    assert got["page"] <= 1280, got
    assert got["scroll"] <= got["box"] + 1, got  # nothing to scroll to
    assert got["lastRight"] <= 1280 and "As of" in got["lastText"], got
    assert got["tallest"] < 45, got  # one line each: the time is short, its full form the title
    title = page.get_attribute('tr[data-ticker="AAPL"] td.time', "title")
    assert title and ("EST" in title or "EDT" in title)
    context.close()
