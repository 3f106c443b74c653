"""The chart's data: bars at each timeframe, indicator lines from the pure module, daily bars kept forever."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import check, minutes
from webapp.core import indicator_series as ind
from webapp.services import ticks

STUDIES = "sma:5,ema:3,bb:5:2,rsi:5,macd:3:6:3,vwap"


@pytest.fixture
def seeded(app):
    for at in minutes(40):
        ticks.run_tick_now(at)
    return app.test_client()


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h", "1d"])
def test_chart_bars_are_the_history_endpoints_bars(seeded, interval) -> None:
    spec = seeded.get("/api/openapi.json").get_json()
    got = check(spec, "/api/stocks/{ticker}/chart",
                seeded.get(f"/api/stocks/AAPL/chart?range=all&interval={interval}&indicators={STUDIES}"))
    history = seeded.get(f"/api/stocks/AAPL/history?interval={interval}&limit=5000").get_json()["items"]
    assert got["interval"] == interval and len(got["bars"]) == len(history) > 0
    assert [(b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in got["bars"]] == \
        [(h["open"], h["high"], h["low"], h["close"], h["volume"]) for h in history]


def test_indicator_lines_are_the_pure_modules_values(seeded) -> None:
    got = seeded.get(f"/api/stocks/AAPL/chart?range=all&interval=1m&indicators={STUDIES}").get_json()
    bars = got["bars"]
    close = np.array([b["close"] for b in bars])
    times = [b["time"] for b in bars]
    typical = ind.vwap(np.array([b["high"] for b in bars]), np.array([b["low"] for b in bars]), close,
                       np.array([b["volume"] for b in bars], float), np.zeros(len(bars)))
    mid, upper, lower = ind.bollinger(close, 5, 2)
    line, sig, hist = ind.macd(close, 3, 6, 3)
    want = {"sma:5": {"value": ind.sma(close, 5)}, "ema:3": {"value": ind.ema(close, 3)},
            "bb:5:2": {"middle": mid, "upper": upper, "lower": lower}, "rsi:5": {"value": ind.rsi(close, 5)},
            "macd:3:6:3": {"macd": line, "signal": sig, "histogram": hist}, "vwap": {"value": typical}}
    assert [s["key"] for s in got["studies"]] == list(want)
    assert {s["key"]: s["pane"] for s in got["studies"]}["rsi:5"] == "rsi"
    for study in got["studies"]:
        for name, points in study["lines"].items():
            values = want[study["key"]][name].tolist()
            expected = [(t, v) for t, v in zip(times, values, strict=True) if v == v]
            assert [p["time"] for p in points] == [t for t, _ in expected], (study["key"], name)
            assert [p["value"] for p in points] == pytest.approx([v for _, v in expected]), study["key"]


def test_a_later_range_is_warmed_up_by_the_bars_before_it(seeded) -> None:
    """An SMA(5) drawn from a range's first bar reads the bars before the range (TradingView does)."""
    from datetime import timedelta

    from webapp.extensions import db
    from webapp.store import bars as bars_store

    start = minutes(1)[0] + timedelta(minutes=20)
    warm = bars_store.bars_before(db.session, "AAPL", "1m", start, 4)
    assert len(warm) == 4 and warm[-1].time == start - timedelta(minutes=1)


def test_daily_bars_come_from_the_rolled_up_days_and_today(seeded, pg) -> None:
    with pg.cursor() as cur:
        cur.execute("INSERT INTO daily_bars (ticker, day, open, high, low, close, volume, quotes) "
                    "VALUES ('AAPL', '2026-11-18', 1, 2, 0.5, 1.5, 1000, 390)")
        pg.commit()
    got = seeded.get("/api/stocks/AAPL/chart?range=all&interval=1d&indicators=none").get_json()
    assert [(b["open"], b["close"], b["volume"]) for b in got["bars"][:1]] == [(1.0, 1.5, 1000)]
    assert len(got["bars"]) == 2 and got["studies"] == []


@pytest.mark.parametrize(("query", "needle"), [
    ("indicators=foo", "unknown indicator"),
    ("indicators=sma:0", "whole numbers"),
    ("interval=2m", "interval: Input should be"),
    ("range=week", "range: Input should be"),
])
def test_bad_chart_parameters_are_400_with_a_reason(seeded, query, needle) -> None:
    resp = seeded.get(f"/api/stocks/AAPL/chart?{query}")
    assert resp.status_code == 400 and needle in resp.get_json()["error"]["message"], resp.get_json()
    page = seeded.get(f"/stocks/AAPL?{query}")
    assert page.status_code in (400, 404) and needle.split(":")[0] in page.get_data(as_text=True)
    if query.startswith("indicators"):  # said beside the box; the chart still draws (issue 26, item 13)
        body = page.get_data(as_text=True)
        assert 'id="study-error"' in body and 'id="chart"' in body and query.split("=")[1] in body


def test_the_chart_picks_a_timeframe_from_the_data_it_has(seeded) -> None:
    got = seeded.get("/api/stocks/AAPL/chart?range=all").get_json()
    assert got["interval"] == "1m" and len(got["bars"]) == 40  # forty minutes of data: minute candles
    assert [s["key"] for s in got["studies"]] == ["sma:5"]  # the tracker's own SMA by default
