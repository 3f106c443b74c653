"""The stream's running state: closing, revisions, provider bars, incompleteness and throttled pushes."""
from __future__ import annotations

from webapp.core.tape import Tape
from webapp.core.trades import Trade

T0 = 1_795_000_020  # a bar boundary for 60 s bars (epoch s)


def tape(width: int = 60, started: int = T0) -> Tape:
    return Tape("alpaca", width, grace_ms=1000, started_ms=started * 1000)


def ms(s: float) -> int:
    return int(s * 1000)


def test_a_bar_closes_after_its_grace_and_late_prints_revise_it() -> None:
    t = tape()
    t.add([Trade("AAPL", 10.0, 100, ms(T0 + 1)), Trade("AAPL", 11.0, 100, ms(T0 + 30))])
    assert t.close(ms(T0 + 60.5))[1] == {}  # inside the grace
    t.add([Trade("AAPL", 9.0, 100, ms(T0 + 59.9))])  # late, still inside the grace
    until, out = t.close(ms(T0 + 61))
    assert until == T0 + 60 and out[T0 + 60]["AAPL"][:7] == [10.0, 11.0, 9.0, 9.0, 300.0, 10.0, 3]
    t.add([Trade("AAPL", 12.0, 10, ms(T0 + 0.5))])  # after the close: a revision
    revised = t.take_revised()[T0 + 60]["AAPL"]
    assert revised[:5] == [12.0, 12.0, 9.0, 9.0, 310.0] and t.late == 1
    assert t.book.last_price("AAPL") == 9.0  # the newest print stays the last price
    assert t.day_volume_of("AAPL") == 310.0


def test_behind_a_flood_a_bar_closes_by_the_trades_applied_not_the_clock() -> None:
    """A stream process 5 s behind (frames queued): at 10:01:03 by the clock its tape has applied
    trades to 10:00:58 only, and the bar to 10:01 still has trades in the queue.  Closed by the clock,
    each of them would come late (a revision each, and a short bar at the close); closed by the trades
    applied, the bar waits for them and is whole, with no late print."""
    clock = ms(T0 + 63)
    for backlog in (True, False):
        t = tape()
        t.add([Trade("AAPL", 10.0, 100, ms(T0 + 1)), Trade("MSFT", 20.0, 100, ms(T0 + 58))])
        assert t.clock(clock, backlog) == (ms(T0 + 58) if backlog else clock)
        closed = t.close(t.clock(clock, backlog))[1]
        assert closed == {} if backlog else set(closed[T0 + 60]) == {"AAPL", "MSFT"}
        t.add([Trade("AAPL", 11.0, 100, ms(T0 + 59.5)), Trade("MSFT", 21.0, 100, ms(T0 + 61.2))])
        until, out = t.close(t.clock(clock, backlog))
        if backlog:  # the trades now reach 10:01:01.2: the bar to 10:01 closes, with every trade of it
            assert until == T0 + 60 and out[T0 + 60]["AAPL"][:5] == [10.0, 11.0, 10.0, 11.0, 200.0]
            assert t.late == 0 and t.take_revised() == {}
        else:  # by the clock: it had closed short, and the queued print revises it
            assert t.late == 1 and t.take_revised()[T0 + 60]["AAPL"][:5] == [10.0, 11.0, 10.0, 11.0, 200.0]
    t = tape()
    assert t.clock(clock, True) == clock  # nothing applied yet: the clock
    t.add([Trade("AAPL", 10.0, 100, ms(T0 + 90))])  # a print stamped ahead of our clock: the clock
    assert t.clock(clock, True) == clock


def test_a_provider_bar_replaces_ours_before_and_after_the_close() -> None:
    t = tape()
    t.add([Trade("AAPL", 10.0, 100, ms(T0 + 1))])
    t.provider_bar("AAPL", T0, 10.0, 10.5, 9.9, 10.2, 5000, 10.1, 40)  # before our close
    out = t.close(ms(T0 + 61))[1]
    assert out[T0 + 60]["AAPL"] == [10.0, 10.5, 9.9, 10.2, 5000, 10.1, 40, True, "provider"]
    t.provider_bar("AAPL", T0, 10.0, 10.6, 9.9, 10.2, 5200, 10.1, 41)  # the corrected bar
    assert t.take_revised()[T0 + 60]["AAPL"][4] == 5200
    t.add([Trade("AAPL", 99.0, 1, ms(T0 + 2))])  # a late print does not touch the provider's bar
    assert t.take_revised() == {}


def test_bars_before_the_start_or_across_a_gap_are_incomplete() -> None:
    t = tape(width=10, started=T0 + 5)
    trades = [Trade("AAPL", 10.0, 1, ms(T0 + k)) for k in (6, 12, 25, 33)]
    t.add(trades)
    _, out = t.close(ms(T0 + 41), gaps=[(T0 + 21.0, T0 + 24.0)])
    assert {end: rows["AAPL"][7] for end, rows in out.items()} == {
        T0 + 10: False, T0 + 20: True, T0 + 30: False, T0 + 40: True}


def test_pushes_coalesce_to_the_newest_trade_every_250_ms() -> None:
    t = tape(width=60)
    t.listen(["AAPL"])
    t.add([Trade("AAPL", 10.0, 100, ms(T0 + 1.0)), Trade("KO", 5.0, 1, ms(T0 + 1.0))])
    first = t.pushes(ms(T0 + 1.01))
    assert [p["price"] for p in first] == [10.0]
    t.add([Trade("AAPL", 10.1, 100, ms(T0 + 1.1)), Trade("AAPL", 10.2, 50, ms(T0 + 1.2)),
           Trade("AAPL", 99.0, 5, ms(T0 + 1.15), ("I",))])  # an odd lot: never the pushed price
    assert t.pushes(ms(T0 + 1.2)) == []  # 190 ms after the last push
    (p,) = t.pushes(ms(T0 + 1.27))
    assert (p["price"], p["size"], p["time"]) == (10.2, 50, "2026-11-18T11:07:01.200+00:00")
    assert p["bar"] == {"start": "2026-11-18T11:07:01.000+00:00", "open": 10.0, "high": 10.2, "low": 10.0,
                        "close": 10.2, "volume": 255.0}
    assert p["day_volume"] == 255.0


def test_the_hand_off_is_each_moved_tickers_provisional_bar_once() -> None:
    """Issue 27's first part: per flush, the provisional bar of every ticker that traded since the
    last hand-off (coalesced: a burst is one row with the bar's high, low and volume so far and its
    last trade's time), nothing for a ticker that did not trade, and the new bar once one opens."""
    t = tape()
    assert t.hand_off() == []
    t.add([Trade("AAPL", 10.0, 100, ms(T0 + 1)), Trade("AAPL", 10.4, 50, ms(T0 + 2)),
           Trade("AAPL", 10.1, 10, ms(T0 + 3)), Trade("MSFT", 400.0, 5, ms(T0 + 2))])
    rows = {r[0]: r for r in t.hand_off()}
    assert rows["AAPL"] == ["AAPL", T0, 10.0, 10.4, 10.0, 10.1, 160.0, 3, ms(T0 + 3), ms(T0 + 2), ms(T0 + 1),
                            10.4, ms(T0 + 2), 10.0, ms(T0 + 1)]
    assert rows["MSFT"][1:] == [T0, 400.0, 400.0, 400.0, 400.0, 5.0, 1, ms(T0 + 2), ms(T0 + 2), ms(T0 + 2),
                                400.0, ms(T0 + 2), 400.0, ms(T0 + 2)]
    assert t.hand_off() == []  # nothing traded since
    t.add([Trade("AAPL", 9.9, 1, ms(T0 + 4))])
    assert t.hand_off() == [["AAPL", T0, 10.0, 10.4, 9.9, 9.9, 161.0, 4, ms(T0 + 4), ms(T0 + 2), ms(T0 + 4),
                             9.9, ms(T0 + 4), 9.9, ms(T0 + 4)]]
    # a segment below the bar's high: its own extremes, not the bar's (a rise back after a dip)
    t.add([Trade("AAPL", 10.3, 1, ms(T0 + 5)), Trade("AAPL", 10.0, 1, ms(T0 + 6))])
    assert t.hand_off()[0][8:] == [ms(T0 + 6), ms(T0 + 2), ms(T0 + 4), 10.3, ms(T0 + 5), 10.0, ms(T0 + 6)]
    # a hand-off Redis did not take is handed back: the next one still counts its trades
    t.add([Trade("AAPL", 10.35, 1, ms(T0 + 7))])
    t.hand_back(t.hand_off())
    t.add([Trade("AAPL", 10.05, 1, ms(T0 + 8))])
    assert t.hand_off()[0][11:] == [10.35, ms(T0 + 7), 10.05, ms(T0 + 8)]
    # the bar's last prints and the next bar's first between two hand-offs: both bars, the older
    # first, so the bar that ended is handed off whole (its close the previous close of the next)
    t.add([Trade("AAPL", 10.6, 2, ms(T0 + 59.9)), Trade("AAPL", 10.7, 3, ms(T0 + 60.1)),
           Trade("MSFT", 401.0, 1, ms(T0 + 60.2))])
    rows = t.hand_off()
    assert [(r[0], r[1], r[5], r[6]) for r in rows if r[0] == "AAPL"] == [
        ("AAPL", T0, 10.6, 167.0), ("AAPL", T0 + 60, 10.7, 3.0)]
    assert [(r[0], r[1]) for r in rows if r[0] == "MSFT"] == [("MSFT", T0 + 60)]  # its old bar: no print
    t.add([Trade("AAPL", 10.8, 1, ms(T0 + 60.3))])
    assert [r[1] for r in t.hand_off()] == [T0 + 60]  # the older bar took nothing since
    t.add([Trade("AAPL", 10.5, 1, ms(T0 + 59.95))])  # a late print for it, inside the grace
    assert [(r[1], r[5], r[8]) for r in t.hand_off()] == [(T0, 10.5, ms(T0 + 59.95)),
                                                          (T0 + 60, 10.8, ms(T0 + 60.3))]
    t = tape()
    t.add([Trade("AAPL", 10.0, 100, ms(T0 + 1))])
    t.hand_off()
    t.close(ms(T0 + 61))  # the first bar closed; a trade opens the next
    t.add([Trade("AAPL", 10.2, 7, ms(T0 + 62))])
    assert t.hand_off() == [["AAPL", T0 + 60, 10.2, 10.2, 10.2, 10.2, 7.0, 1, ms(T0 + 62), ms(T0 + 62),
                             ms(T0 + 62), 10.2, ms(T0 + 62), 10.2, ms(T0 + 62)]]
