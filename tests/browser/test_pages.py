"""The pages in a real browser against the real web process, with ticks run by a
real RQ worker (and the pipeline itself, for a scripted alert)."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from tests.browser.conftest import shot
from tests.fakes.providers import ScriptedProvider
from tests.helpers import START, minutes, run_via_rq, scripted_services
from tests.processes import WebProcess
from webapp.core.market import EXCHANGE_TZ
from webapp.core.quotes import Quote
from webapp.tick.pipeline import run_tick

pytestmark = pytest.mark.slow

# connected (n times) and the server has acknowledged the page's subscription since
LIVE = ("document.body.dataset.connection === 'live' && window.__live.connects >= {n}"
        " && window.__live.acks >= window.__live.connects")


def cell(page, ticker: str, name: str) -> str:
    return page.inner_text(f'tr[data-ticker="{ticker}"] .{name}')


def prices_on_page(page) -> dict[str, str]:
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#quotes tbody tr')]"
        ".map((r) => [r.dataset.ticker, r.querySelector('.price').textContent]))")


def test_dashboard_price_cells_change_after_a_worker_tick(web, app, page) -> None:
    run_via_rq(app, minutes(1))
    page.goto(web.url + "/")
    page.wait_for_function(LIVE.format(n=1))
    before = prices_on_page(page)
    assert "–" not in before.values()
    # exchange time, though the browser is in Berlin: short in the cell, with the zone in its title
    assert cell(page, "AAPL", "time").startswith(START.astimezone(EXCHANGE_TZ).strftime("%b %d %H:%M"))
    assert "EST" in page.get_attribute('tr[data-ticker="AAPL"] td.time', "title")
    report = run_via_rq(app, [START + timedelta(minutes=1)])[0]
    assert report["accepted"] == 15
    page.wait_for_function("window.__live.stock_update >= 1")
    new_time = (START + timedelta(minutes=1)).isoformat()
    page.wait_for_function(
        f"[...document.querySelectorAll('#quotes tbody tr')].every((r) => r.dataset.time === '{new_time}')")
    after = prices_on_page(page)
    stocks = requests.get(web.url + "/api/stocks", timeout=5).json()["stocks"]
    assert after == {s["ticker"]: f"{s['price']:.2f}" for s in stocks}
    changed = [t for t in after if after[t] != before[t]]
    assert changed, "a minute of the sim moves some price"
    assert page.locator(f'tr[data-ticker="{changed[0]}"] .price.flash').count() == 1
    points = page.get_attribute('tr[data-ticker="AAPL"] .spark polyline', "points")
    assert len(points.split()) == 2  # the sparkline grew from the live reading
    shot(page, "dashboard")


def test_watchlist_subscribes_only_to_its_tickers(web, app, page) -> None:
    run_via_rq(app, minutes(1))
    page.add_init_script("localStorage.setItem('stock-tracker.watchlist', JSON.stringify(['AAPL', 'KO']));"
                         "localStorage.setItem('stock-tracker.watchlist-only', '1')")
    page.goto(web.url + "/")
    page.wait_for_function(LIVE.format(n=1))
    assert page.is_hidden('tr[data-ticker="MSFT"]') and page.is_visible('tr[data-ticker="KO"]')
    run_via_rq(app, [START + timedelta(minutes=1)])
    page.wait_for_function("window.__live.quote.AAPL >= 1 && window.__live.quote.KO >= 1")
    page.wait_for_timeout(500)  # anything wrongly routed would have arrived by now
    live = page.evaluate("window.__live")
    assert sorted(live["quote"]) == ["AAPL", "KO"] and live["stock_update"] == 0
    # un-watching KO leaves its room: the next tick brings AAPL only
    page.click('tr[data-ticker="KO"] .star')
    page.wait_for_timeout(300)
    run_via_rq(app, [START + timedelta(minutes=2)])
    page.wait_for_function("window.__live.quote.AAPL >= 2")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__live.quote.KO") == 1
    shot(page, "dashboard-watchlist")


def test_chart_draws_embedded_history_then_appends_live(web, app, page) -> None:
    run_via_rq(app, minutes(6))
    page.goto(web.url + "/stocks/AAPL?range=all")
    page.wait_for_function(LIVE.format(n=1))
    chart = page.locator("#chart")
    assert chart.get_attribute("data-points") == "6"  # drawn from the HTML, no request
    assert page.locator("#chart canvas").count() > 0
    run_via_rq(app, [START + timedelta(minutes=6)])
    page.wait_for_function("document.getElementById('chart').dataset.points === '7'")
    shot(page, "chart")


def test_unknown_ticker_is_a_404_page(web, page) -> None:
    resp = page.goto(web.url + "/stocks/NOPE")
    assert resp.status == 404 and "not tracked" in page.inner_text("main")
    shot(page, "unknown-ticker-404")


def test_alert_shows_in_feed_and_as_chart_marker(web, app, page, browser) -> None:
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    prices = [10, 10, 10, 10, 8, 9.5, 11]  # the 7th reading crosses above its SMA
    times = minutes(len(prices))
    for at, price in zip(times[:-1], prices[:-1], strict=True):
        provider.next = [Quote("AAPL", price, at, 100, 10.0, source="script")]
        run_tick(svc, ["AAPL"], at)
    page.goto(web.url + "/alerts")
    page.wait_for_function(LIVE.format(n=1))
    chart_page = page.context.new_page()
    chart_page.goto(web.url + "/stocks/AAPL?range=all")
    chart_page.wait_for_function(LIVE.format(n=1))
    markers_before = int(chart_page.get_attribute("#chart", "data-markers"))

    provider.next = [Quote("AAPL", prices[-1], times[-1], 100, 10.0, source="script")]
    report = run_tick(svc, ["AAPL"], times[-1])
    assert [a["kind"] for a in report.alerts] == ["bullish"]

    row = page.locator('#feed tbody tr[data-ticker="AAPL"]').first
    row.wait_for()
    assert "bullish" in row.inner_text()
    link = row.locator("a").get_attribute("href")
    assert link.startswith("/stocks/AAPL?range=all&at=")
    chart_page.wait_for_function(
        f"document.getElementById('chart').dataset.markers === '{markers_before + 1}'")
    shot(page, "alerts")
    shot(chart_page, "chart-alert")
    # the feed's link opens the chart focused on that alert
    page.click('#feed tbody tr[data-ticker="AAPL"] a')
    page.wait_for_url("**/stocks/AAPL?range=all&at=*")
    assert page.get_attribute("#chart", "data-markers") == str(markers_before + 1)


def test_page_reconnects_after_web_restart_and_resumes(service_urls, clean, app, page) -> None:
    run_via_rq(app, minutes(1))
    web = WebProcess(*service_urls).start()
    try:
        page.goto(web.url + "/")
        page.wait_for_function(LIVE.format(n=1))
        web.stop()
        page.wait_for_function("document.body.dataset.connection === 'down'")
        assert "reconnecting" in page.inner_text("#connection")
        shot(page, "dashboard-reconnecting")
        # the tick the page missed while the web process was down
        run_via_rq(app, [START + timedelta(minutes=1)])
        web = WebProcess(*service_urls, port=web.port).start()
        page.wait_for_function(LIVE.format(n=2), timeout=20_000)
        # the gap is filled from /api/stocks on reconnect, without waiting for a tick
        page.wait_for_function(
            "document.querySelector('tr[data-ticker=\"AAPL\"]').dataset.time === "
            f"'{(START + timedelta(minutes=1)).isoformat()}'")
        run_via_rq(app, [START + timedelta(minutes=2)])
        page.wait_for_function("window.__live.stock_update >= 1")
        shot(page, "dashboard-resumed")
    finally:
        web.stop()


def test_chart_fills_the_gap_after_a_restart(service_urls, clean, app, page) -> None:
    run_via_rq(app, minutes(3))
    web = WebProcess(*service_urls).start()
    try:
        page.goto(web.url + "/stocks/AAPL?range=all")
        page.wait_for_function(LIVE.format(n=1))
        assert page.get_attribute("#chart", "data-points") == "3"
        web.stop()
        page.wait_for_function("document.body.dataset.connection === 'down'")
        run_via_rq(app, [START + timedelta(minutes=3), START + timedelta(minutes=4)])  # missed
        web = WebProcess(*service_urls, port=web.port).start()
        page.wait_for_function(LIVE.format(n=2), timeout=20_000)
        page.wait_for_function("document.getElementById('chart').dataset.points === '5'")
        run_via_rq(app, [START + timedelta(minutes=5)])
        page.wait_for_function("document.getElementById('chart').dataset.points === '6'")
        shot(page, "chart-after-restart")
    finally:
        web.stop()


def scan_rows(page, name: str) -> list[str]:
    return page.evaluate(
        f"[...document.querySelectorAll('section[data-list=\"{name}\"] tbody tr[data-ticker]')]"
        ".map((r) => r.dataset.ticker)")


def test_scanner_lists_follow_the_worker_and_link_to_charts(web, app, page) -> None:
    run_via_rq(app, minutes(2))
    page.goto(web.url + "/scanner")
    page.wait_for_function(LIVE.format(n=1))
    api = requests.get(web.url + "/api/scanner/gainers", timeout=5).json()
    assert scan_rows(page, "gainers") == [r["ticker"] for r in api["rows"]] and api["rows"]
    run_via_rq(app, [START + timedelta(minutes=2)])
    page.wait_for_function("window.__live.scan >= 1")  # the changed lists come in one batch
    page.wait_for_timeout(500)
    for name in ("gainers", "losers", "gappers", "unusual_volume", "new_highs", "new_lows"):
        api = requests.get(web.url + f"/api/scanner/{name}", timeout=5).json()
        assert scan_rows(page, name) == [r["ticker"] for r in api["rows"]], name
    # a delta in sequence is applied in place: no refetch was needed
    assert page.evaluate("window.__live.scanFetches") == 0
    shot(page, "scanner")
    first = scan_rows(page, "losers")[0]
    page.click(f'section[data-list="losers"] tr[data-ticker="{first}"] a')
    page.wait_for_url(f"**/stocks/{first}")


def test_scanner_filters_are_applied_on_the_server(web, app, page) -> None:
    run_via_rq(app, minutes(2))
    page.goto(web.url + "/scanner?min_price=300")
    page.wait_for_function(LIVE.format(n=1))
    prices = page.evaluate("[...document.querySelectorAll('section[data-list=\"gainers\"] td.price')]"
                           ".map((c) => Number(c.textContent))")
    assert prices and all(p >= 300 for p in prices)
    assert page.input_value('input[name="min_price"]') == "300.0"
    assert page.goto(web.url + "/scanner?min_price=abc").status == 400


def test_a_full_web_process_tells_the_page_why_and_it_gets_in_later(service_urls, clean, app, page) -> None:
    import socketio

    run_via_rq(app, minutes(1))
    web = WebProcess(*service_urls, WEB_MAX_CLIENTS="1").start()
    other = socketio.Client(reconnection=False)
    try:
        other.connect(web.url, transports=["websocket"], wait_timeout=10)  # takes the only place
        page.goto(web.url + "/")
        page.wait_for_function("document.getElementById('connection').textContent.includes('server full')")
        assert "retrying in" in page.inner_text("#connection")
        assert page.evaluate("document.body.dataset.connection") == "down"
        shot(page, "dashboard-server-full")
        other.disconnect()  # a place frees up: the page's own retry (5 s, jittered) gets in
        page.wait_for_function(LIVE.format(n=1), timeout=15_000)
    finally:
        if other.connected:
            other.disconnect()
        web.stop()
