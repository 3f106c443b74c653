"""The latest-readings table: stepping, views, packing, aligning and merging shards."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import utc
from tests.helpers import reference
from webapp.core.latest import Latest
from webapp.core.quotes import Quote, from_ticks, from_ticks_array
from webapp.core.tables import Unreadable

T = utc("2026-11-20T15:00:00")
FIELDS = {"ticker", "price", "sma", "alert", "time", "change", "change_pct", "prev_close", "open",
          "high", "low", "volume", "last_alert", "source", "stale", "stale_reason"}


def feed(latest: Latest, series: dict[str, list[float]], start=T, source="sim") -> list[list[str | None]]:
    """Apply each ticker's prices a minute apart; returns the alerts per minute."""
    fired = []
    offset = int((start - T).total_seconds() // 60)
    for k in range(max(map(len, series.values()))):
        at, volume = start + timedelta(minutes=k), 100 + offset + k
        quotes = [Quote(t, p[k], at, volume, 10.0, 10.0, 12.0, 8.0, source)
                  for t, p in series.items() if k < len(p)]
        steps = latest.apply(latest.rows_of([q.ticker for q in quotes]), quotes)
        fired.append([("bullish", "bearish")[a - 1] if a else None for a in steps.alert.tolist()])
    return fired


def test_alerts_and_views_follow_the_reference() -> None:
    prices = [10, 10, 10, 10, 8, 9.5, 11, 10.5, 9]
    latest = Latest.empty(["AAPL", "KO"], 5)
    fired = feed(latest, {"AAPL": prices, "KO": [50.0] * 3})
    assert [f[0] for f in fired] == reference(prices, 5)
    view_at = T + timedelta(minutes=len(prices) - 1)
    aapl, ko = latest.views(None, view_at, 180.0)
    assert set(aapl) == FIELDS
    assert aapl["price"] == 9 and aapl["sma"] == round(sum(prices[-5:]) / 5, 4)
    assert aapl["alert"] == "bearish" and aapl["change"] == -1.0 and aapl["change_pct"] == -10.0
    assert aapl["last_alert"] == {"kind": "bearish", "time": view_at.isoformat(), "price": 9.0,
                                  "sma": aapl["sma"]}
    assert aapl["volume"] == 108 and aapl["source"] == "sim" and not aapl["stale"]
    # KO's window never filled (no SMA) and its last reading is 6 minutes old
    assert ko["sma"] is None and ko["last_alert"] is None
    assert ko["stale"] and ko["stale_reason"] == "no new reading for 360 s"
    assert not latest.views(None, view_at, None)[1]["stale"]  # market closed: not stale by age
    fresh = np.array([False, True])
    assert not latest.views(None, view_at, 180.0, fresh)[1]["stale"]


def test_stale_marks_show_and_clear_on_the_next_good_reading() -> None:
    latest = Latest.empty(["AAPL"], 3)
    feed(latest, {"AAPL": [10.0]})
    latest.mark_stale({"AAPL": "non-finite price nan"})
    assert latest.views(None, T, 180.0)[0]["stale_reason"] == "non-finite price nan"
    feed(latest, {"AAPL": [10.5]}, start=T + timedelta(minutes=1))
    assert latest.views(None, T + timedelta(minutes=1), 180.0)[0]["stale"] is False


def test_pack_align_and_merge_keep_every_reading() -> None:
    one = Latest.empty(["AAPL", "MSFT"], 5)
    feed(one, {"AAPL": [10.0] * 6, "MSFT": [20.0] * 2}, source="alpaca")
    two = Latest.empty(["KO"], 5)
    feed(two, {"KO": [30.0] * 5}, source="polygon")
    two.mark_stale({"KO": "bad volume -1"})
    merged = Latest.merged([Latest.unpack(one.pack()), None, Latest.unpack(two.pack())], 5)
    assert merged.tickers == ["AAPL", "MSFT", "KO"]
    views = {v["ticker"]: v for v in merged.views(None, T, None)}
    assert views == {**{v["ticker"]: v for v in one.views(None, T, None)},
                     **{v["ticker"]: v for v in two.views(None, T, None)}}
    assert views["KO"]["source"] == "polygon" and views["KO"]["stale_reason"] == "bad volume -1"

    aligned, missing = merged.aligned(["KO", "NEW", "AAPL"], 5)
    assert missing == ["NEW"]
    assert [v["ticker"] for v in aligned.views(None, T, None)] == ["KO", "AAPL"]
    assert aligned.previous()["AAPL"] == Quote("AAPL", 10.0, T + timedelta(minutes=5), 105, 10.0, 10.0,
                                               12.0, 8.0, "alpaca")
    _, missing = merged.aligned(["KO", "AAPL"], 8)  # another SMA period: rebuild everything
    assert missing == ["KO", "AAPL"]
    assert Latest.merged([one], 8).tickers == []


def test_restore_continues_like_an_unbroken_run() -> None:
    prices = [10.0, 10.0, 10.0, 10.0, 8.0, 9.5, 11.0, 10.5, 9.0]
    unbroken = Latest.empty(["AAPL"], 5)
    feed(unbroken, {"AAPL": prices})
    rebuilt = Latest.empty(["AAPL"], 5)
    stored = [Quote("AAPL", p, T + timedelta(minutes=k), 100 + k, 10.0, 10.0, 12.0, 8.0, "sim")
              for k, p in enumerate(prices[:-1])]
    rebuilt.restore(0, stored, ("bullish", T + timedelta(minutes=6), 11.0, 9.7))
    feed(rebuilt, {"AAPL": prices[-1:]}, start=T + timedelta(minutes=len(prices) - 1))
    at = T + timedelta(minutes=9)
    assert rebuilt.views(None, at, None) == unbroken.views(None, at, None)


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e12, 1e12, allow_nan=False))
def test_from_ticks_one_and_many_agree(ticks) -> None:
    assert from_ticks_array(np.array([ticks]))[0] == from_ticks(ticks)


@pytest.mark.parametrize("blob", [b"no header", b'{"tickers": []}\n', b'{"tickers": [], "columns": []}\n',
                                  b'{"tickers": ["A"], "columns": [["win", "<i8", [1, 5]]]}\n'])
def test_a_value_that_is_not_a_latest_table_is_refused_as_unreadable(blob) -> None:
    with pytest.raises(Unreadable):
        Latest.unpack(blob)
