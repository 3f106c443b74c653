"""JSON endpoints against real Redis and Postgres."""
from __future__ import annotations

import pytest

from tests.helpers import START, walk
from webapp.config import DEFAULT_SYMBOLS
from webapp.services import ticks


def test_stocks_before_and_after_a_tick(app) -> None:
    client = app.test_client()
    body = client.get("/api/stocks").get_json()
    assert body["stocks"] == [] and body["awaiting_first_reading"] == list(DEFAULT_SYMBOLS)
    assert body["market"]["exchange"] == "XNYS" and body["market"]["state"] in ("open", "closed")

    ticks.run_tick_now()
    body = client.get("/api/stocks").get_json()
    assert [s["ticker"] for s in body["stocks"]] == list(DEFAULT_SYMBOLS)
    for s in body["stocks"]:
        assert s["price"] > 0 and s["sma"] is None and s["stale"] is False
        assert "sma_total" not in s and "t" not in s  # internals stay internal
    assert body["last_tick"]["accepted"] == 15










# ---- contract and pagination ----







@pytest.mark.parametrize(
    "query, needle",
    [
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=ten", "limit: Input should be a valid integer"),
        ("interval=2m", "interval: Input should be"),
        ("start=yesterday", "start: Value error, expected ISO 8601 or unix seconds"),
        ("colour=red", "colour: unknown parameter"),
        ("cursor=bm9wZQ", "cursor: not a cursor this endpoint issued"),
        ("start=2026-11-20T16:00:00Z&end=2026-11-20T15:00:00Z", "start: must be before end"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(seeded, query, needle) -> None:
    resp = seeded.get(f"/api/stocks/AAPL/history?{query}")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_parameter"
    assert needle in resp.get_json()["error"]["message"]


def test_odd_but_valid_times_are_not_server_errors(seeded) -> None:
    # found by schemathesis: Postgres refuses offsets beyond ±15:59, Python allows ±24 h
    resp = seeded.get("/api/alerts?since=1360-11-09T03:59:11.451814%2B20:26")
    assert resp.status_code == 200
    resp = seeded.get("/api/alerts?since=0001-01-01T00:00:00%2B23:00")
    assert resp.status_code == 400 and "out of range" in resp.get_json()["error"]["message"]




def test_history_pages_walk_every_row_once(seeded) -> None:
    everything = seeded.get("/api/stocks/AAPL/history?limit=5000").get_json()["items"]
    assert len(everything) == 12 and everything[0]["time"] == START.isoformat()
    for limit in (1, 5, 6, 12):  # 12 divides exactly: one more, empty page ends the walk
        items, pages = walk(seeded, f"/api/stocks/AAPL/history?limit={limit}", "items")
        assert items == everything
        assert pages == 12 // limit + 1 if 12 % limit == 0 else pages == -(-12 // limit)
    window = seeded.get(f"/api/stocks/AAPL/history?start={int(START.timestamp()) + 120}"
                        "&end=2026-11-20T15:05:00Z").get_json()["items"]
    assert [i["time"][11:16] for i in window] == ["15:02", "15:03", "15:04"]


def test_bars_are_ohlcv_of_the_points(seeded) -> None:
    points = seeded.get("/api/stocks/AAPL/history").get_json()["items"]
    bars = seeded.get("/api/stocks/AAPL/history?interval=5m").get_json()["items"]
    assert [b["count"] for b in bars] == [5, 5, 2]
    # a reading is one price: each minute runs from the day's previous reading to it
    for n, (bar, chunk) in enumerate(zip(bars, [points[0:5], points[5:10], points[10:12]], strict=True)):
        opened = points[5 * n - 1]["price"] if n else chunk[0]["price"]
        prices = [opened, *(p["price"] for p in chunk)]
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
            opened, max(prices), min(prices), prices[-1])
        assert bar["volume"] == sum(p["volume"] for p in chunk)
        assert bar["time"] == chunk[0]["time"]
    day = seeded.get("/api/stocks/AAPL/history?interval=1d").get_json()["items"]
    assert len(day) == 1 and day[0]["time"] == "2026-11-20T05:00:00+00:00"  # New York midnight






def test_stocks_takes_a_tickers_filter(seeded) -> None:
    body = seeded.get("/api/stocks?tickers=aapl,BRK.B").get_json()
    assert [s["ticker"] for s in body["stocks"]] == ["AAPL", "BRK.B"]
    assert seeded.get("/api/stocks?tickers=").get_json()["stocks"].__len__() == 15  # empty: no filter
    bad = seeded.get("/api/stocks?tickers=AAPL,NOPE")
    assert bad.status_code == 404 and "not tracked: NOPE" in bad.get_json()["error"]["message"]
    worse = seeded.get("/api/stocks?tickers=AAPL,$$")
    assert worse.status_code == 400 and worse.get_json()["error"]["message"].startswith("tickers: ")
    long = seeded.get("/api/stocks?tickers=AAPL,ABCDEFGHIJKL")
    assert long.status_code == 400 and long.get_json()["error"]["message"].startswith("tickers: ")


def test_an_empty_parameter_means_no_bound(seeded) -> None:
    """What a browser form sends for empty boxes: min_price=100&max_price=&min_volume=&min_rvol="""
    resp = seeded.get("/api/scanner/gainers?min_price=100&max_price=&min_volume=&min_rvol=")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["filters"]["min_price"] == 100 and body["filters"]["max_price"] is None
    assert all(r["price"] >= 100 for r in body["rows"])
    assert seeded.get("/api/stocks/AAPL/history?limit=").status_code == 200
