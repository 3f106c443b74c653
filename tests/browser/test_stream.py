"""The stream's ``trade`` events on the pages, in a real browser, through the real web process.

The emit is put on the Socket.IO message queue exactly as the stream
process puts it (:func:`webapp.store.emits.emit_message`); the web process
relays it to the ticker's room, where the dashboard row and the chart's
header move with it between minutes.  The header shows the stream's state.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from tests.browser.conftest import shot
from tests.browser.test_pages import LIVE, cell
from tests.helpers import minutes, run_via_rq
from webapp import names
from webapp.extensions import get_redis
from webapp.store.emits import emit_message

pytestmark = pytest.mark.slow


def trade(ticker: str, price: float) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    payload = {"ticker": ticker, "price": price, "size": 100.0, "time": now, "day_volume": 12345.0,
               "bar": {"start": now, "open": price, "high": price, "low": price, "close": price,
                       "volume": 100.0}}
    get_redis().publish(names.SOCKETIO_CHANNEL, emit_message(names.EVENT_TRADE, payload,
                                                             names.ticker_room(ticker), "test"))


def test_trades_move_the_dashboard_row_and_the_chart_header(web, app, page) -> None:
    run_via_rq(app, minutes(1))
    page.goto(web.url + "/")
    page.wait_for_function(LIVE.format(n=1))
    page.wait_for_timeout(300)  # the row rooms' subscription is acknowledged with the page's first
    trade("AAPL", 321.09)
    page.wait_for_function("window.__live.trade.AAPL >= 1")
    assert cell(page, "AAPL", "price") == "321.09"
    assert cell(page, "MSFT", "price") != "321.09"  # only AAPL's row moved
    header = page.locator("#stream")
    page.wait_for_function("document.getElementById('stream').dataset.state !== undefined")
    assert header.get_attribute("data-state") == "not running"  # no stream process in this test
    assert header.inner_text() == "stream not running" and "jobs.stream" in header.get_attribute("title")
    change = cell(page, "AAPL", "change")  # against the reading's previous close
    prev_close = requests.get(web.url + "/api/stocks/AAPL", timeout=5).json()["latest"]["prev_close"]
    assert change.startswith("▲" if 321.09 > prev_close else "▼") and f"{321.09 - prev_close:+.2f}" in change
    shot(page, "dashboard-trade")
    page.goto(web.url + "/stocks/AAPL")
    page.wait_for_function(LIVE.format(n=1))
    trade("AAPL", 322.5)
    page.wait_for_function("window.__live.trade.AAPL >= 1")
    assert page.inner_text("#last-price") == "322.50"
    assert page.get_attribute("#chart", "data-last-trade")
    assert f"{322.5 - prev_close:+.2f}" in page.inner_text("#last-change")
    shot(page, "chart-trade")
