"""Trade aggregation against a plain reference: order never matters, last never goes back."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.core.quotes import Quote
from webapp.core.trades import (
    BarBook,
    Trade,
    bars_of,
    before_the_open,
    day_open_of,
    day_opens,
    eligibility,
    quote_of_bar,
)

T0 = 1_795_000_020_000  # ms, on a minute boundary

trades_st = st.lists(
    st.builds(Trade, st.sampled_from(["AAA", "BBB"]),
              st.floats(1, 500, allow_nan=False).map(lambda p: round(p, 2)),
              st.integers(1, 500).map(float), st.integers(T0, T0 + 180_000),
              st.sampled_from([(), ("@",), ("I",), ("@", "I"), ("M",), ("T",)])),
    min_size=1, max_size=60)


def reference(trades: list[Trade], width: int) -> dict[tuple[str, int], dict]:
    """The definition, written out: group by the trade's own time, then read off the bar."""
    groups: dict[tuple[str, int], list[Trade]] = defaultdict(list)
    for t in trades:
        groups[(t.ticker, t.time_ms // 1000 // width * width)].append(t)
    out = {}
    for key, group in groups.items():
        vol = [t for t in group if eligibility("alpaca", t.conditions).volume]
        last = sorted((t for t in group if eligibility("alpaca", t.conditions).last),
                      key=lambda t: (t.time_ms, t.price, t.size))
        out[key] = {"open": last[0].price if last else None, "close": last[-1].price if last else None,
                    "high": max((t.price for t in last), default=None),
                    "low": min((t.price for t in last), default=None),
                    "volume": sum(t.size for t in vol), "trades": len(group)}
    return out


def shape(bars) -> dict:
    return {k: {"open": b.open, "close": b.close, "high": b.high, "low": b.low, "volume": b.volume,
                "trades": b.trades} for k, b in bars.items()}


@settings(max_examples=200, deadline=None)
@given(trades_st, st.randoms(use_true_random=False), st.sampled_from([1, 60]))
def test_any_order_of_the_same_trades_gives_the_reference_bars(trades, rnd, width) -> None:
    shuffled = list(trades)
    rnd.shuffle(shuffled)
    got = shape(bars_of(shuffled, width, "alpaca"))
    want = reference(trades, width)
    assert got.keys() == want.keys()
    for k in want:
        for field in ("open", "close", "high", "low", "trades"):
            assert got[k][field] == want[k][field], (k, field)
        assert abs(got[k]["volume"] - want[k]["volume"]) < 1e-6


@settings(max_examples=200, deadline=None)
@given(trades_st, st.randoms(use_true_random=False))
def test_late_trades_never_move_the_last_price_back(trades, rnd) -> None:
    shuffled = list(trades)
    rnd.shuffle(shuffled)
    book = BarBook(60, "alpaca")
    newest: dict[str, tuple] = {}
    for t in shuffled:
        book.add([t])
        if eligibility("alpaca", t.conditions).last:
            key = (t.time_ms, t.price, t.size)
            if t.ticker not in newest or key > newest[t.ticker][0]:
                newest[t.ticker] = (key, t.price)
        for ticker, (_, price) in newest.items():
            assert book.last_price(ticker) == price  # always the newest eligible print's


def test_odd_lots_and_official_prints_count_as_the_sip_rules_say() -> None:
    assert eligibility("alpaca", ["@", "I"]) == (True, False)  # odd lot: volume only
    assert eligibility("alpaca", ["M"]) == (False, False)  # official close re-report: nothing
    assert eligibility("alpaca", ["@", "F"]) == (True, True)
    assert eligibility("polygon", [37]) == (True, False) and eligibility("polygon", [15]) == (False, False)
    assert eligibility("finnhub", ["1", "8"]) == (True, True)  # its own codes: counted fully
    bars = bars_of([Trade("AAA", 10.0, 100, T0), Trade("AAA", 99.0, 5, T0 + 1000, ("I",))], 60, "alpaca")
    bar = bars[("AAA", T0 // 1000)]
    assert (bar.close, bar.high, bar.volume, bar.trades) == (10.0, 10.0, 105, 2)
    assert abs(bar.vwap - (1000 + 495) / 105) < 1e-9


def test_closing_hands_over_finished_bars_and_later_prints_come_back_as_late() -> None:
    book = BarBook(60, "sim")
    start = T0 // 1000
    assert book.add([Trade("AAA", 10.0, 1, T0 + 5_000), Trade("AAA", 11.0, 1, T0 + 65_000)]) == []
    done = book.close_before(start + 60)
    assert [(b.start, b.close) for b in done] == [(start, 10.0)]
    late = Trade("AAA", 9.0, 1, T0 + 30_000)
    assert book.add([late]) == [late]  # for the caller to revise that minute
    assert book.last_price("AAA") == 11.0
    assert [(b.start, b.close) for b in book.close_before(start + 120)] == [(start + 60, 11.0)]


def test_the_throttle_sends_the_newest_payload_at_most_every_interval() -> None:
    from webapp.core.trades import Throttle

    th = Throttle(250)
    th.offer("AAA", {"p": 1})
    assert th.due(0) == [{"p": 1}]
    th.offer("AAA", {"p": 2})
    th.offer("AAA", {"p": 3})  # coalesced: only the newest goes
    th.offer("BBB", {"p": 9})
    assert th.due(100) == [{"p": 9}]  # BBB had not been sent; AAA must wait
    assert th.due(249) == []
    assert th.due(250) == [{"p": 3}]
    assert th.due(1000) == []  # nothing new, nothing sent


def test_dedup_drops_repeated_keys_within_a_bounded_window() -> None:
    from webapp.core.trades import Dedup

    d = Dedup(capacity=3)
    a, b = Trade("AAPL", 1.0, 1, 1, (), ("AAPL", 1)), Trade("AAPL", 1.0, 1, 1, (), ("AAPL", 2))
    anon = Trade("AAPL", 1.0, 1, 1)
    assert d.fresh([a, a, b, anon, anon]) == [a, b, anon, anon] and d.dropped == 1
    for i in range(3, 10):  # the window moves on: memory stays at two generations
        d.fresh([Trade("AAPL", 1.0, 1, 1, (), ("AAPL", i))])
    assert len(d.current) + len(d.older) <= 6
    assert d.fresh([a]) == [a]  # long forgotten


def test_the_gap_reads_the_last_pre_market_trade_before_the_open_and_the_regular_open_after() -> None:
    """Trade Ideas' "expected open": at 09:29 the gap is the last pre-market trade against the
    previous close; from 09:31 on it is the first regular bar's open, whatever traded before."""
    from webapp.core import metrics
    from webapp.core.market import exchange_day_start

    def at(hh: int, mm: int) -> datetime:
        return datetime(2026, 11, 20, hh + 5, mm, tzinfo=timezone.utc)  # New York is UTC-5 in November

    yesterday = Quote("AAPL", 100.0, at(15, 59) - timedelta(days=1), 10, 99.0, 99.5, 101.0, 98.0, "stream")
    day_start = exchange_day_start(at(4, 1))
    got, previous = [], yesterday
    for (hh, mm), bar in (((4, 1), (101.0, 101.5, 101.0, 101.2, 100)),  # the day's first trades
                          ((9, 29), (103.0, 104.0, 103.0, 104.0, 500)),
                          ((9, 30), (104.0, 104.5, 103.5, 103.8, 900)),  # ends at the open: still pre-market
                          ((9, 31), (105.0, 106.0, 104.5, 105.5, 5000)),  # the first regular bar
                          ((9, 32), (105.5, 107.0, 105.0, 106.5, 4000)),
                          ((16, 5), (106.0, 106.0, 105.0, 105.2, 50))):  # after hours: the open stays
        previous = quote_of_bar("AAPL", bar, at(hh, mm), previous, day_start, "stream")
        got.append((previous.open, metrics.gap_pct(previous.open, previous.prev_close)))
    assert [o for o, _ in got] == [101.2, 104.0, 103.8, 105.0, 105.0, 105.0]
    assert got[1][1] == pytest.approx(4.0) and got[3][1] == pytest.approx(5.0)
    assert before_the_open(at(9, 30)) and not before_the_open(at(9, 30) + timedelta(seconds=1))


def test_the_day_open_of_many_bars_is_each_ones_as_the_tick_reads_it() -> None:
    """The live minute lists advance each ticker with the same expected open the tick's readings
    carry (:func:`day_open_of`), vectorised (:func:`day_opens`): before 09:30 the last trade,
    then the first regular bar's open, carried."""

    def ny(hh: int, mm: int) -> int:
        return int(datetime(2026, 11, 20, hh + 5, mm, tzinfo=timezone.utc).timestamp())

    cases = [(ny(9, 29), ny(9, 28), True, 50.0), (ny(9, 31), ny(9, 30), True, 50.0),
             (ny(9, 32), ny(9, 31), True, 50.0), (ny(9, 32), ny(9, 31), False, 50.0),
             (ny(9, 33), ny(9, 32), True, float("nan")), (ny(16, 5), ny(15, 59), True, 49.0)]
    ends = np.array([float(c[0]) for c in cases])
    got = day_opens(ends, np.full(len(cases), 51.0), np.full(len(cases), 51.5),
                    np.array([c[2] for c in cases]), np.array([c[3] for c in cases]),
                    np.array([float(c[1]) for c in cases]))
    for (end, held_at, same, held), value in zip(cases, got.tolist(), strict=True):
        earlier = Quote("AAPL", 51.0, datetime.fromtimestamp(held_at, timezone.utc), 1, 50.0,
                        None if held != held else held) if same else None
        assert value == day_open_of(datetime.fromtimestamp(end, timezone.utc), 51.0, 51.5, earlier)
