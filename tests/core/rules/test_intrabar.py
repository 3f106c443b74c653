"""The prices a provisional bar is judged at: the segment's extremes since the last judgment, then the
last trade; several hand-offs judged at once keep every segment's extremes."""
from __future__ import annotations

import numpy as np
import orjson

from webapp.core.handoff import decode, encode
from webapp.core.rules.intrabar import NO_SEGMENT, Provisional, coalesce, print_columns, prints
from webapp.core.tape import Tape
from webapp.core.trades import Trade

T0 = 1_796_599_800  # a bar's start
W = 60


def ms(seconds: float) -> int:
    return int(round((T0 + seconds) * 1000))


def handed(tape: Tape) -> list[Provisional]:
    return decode(encode(tape.hand_off()), W)[0].bars()


def test_a_rise_back_after_a_dip_below_the_bars_high_is_judged_at_its_own_high() -> None:
    """The bench's lost fire: the bar's high printed (and was judged) early; a later segment dipped,
    rose back above a level below that high and fell again before its hand-off.  The segment's high
    is judged, where only the bar's high (already judged) and the last trade were before."""
    tape = Tape("alpaca", W, grace_ms=1000, started_ms=T0 * 1000)
    tape.add([Trade("ZANYJ", 19.9, 100, ms(1))])
    (first,) = handed(tape)
    judged = [p.price for p in prints(first, None)]
    assert judged == [19.9]
    tape.add([Trade("ZANYJ", 10.0, 100, ms(2)), Trade("ZANYJ", 19.6, 100, ms(3)),
              Trade("ZANYJ", 12.0, 100, ms(4))])
    (second,) = handed(tape)
    got = prints(second, first.last_ms)
    assert [(p.what, p.price, p.time_ms) for p in got] == [("low", 10.0, ms(2)), ("trade", 19.6, ms(3)),
                                                            ("last", 12.0, ms(4))]
    assert any(p.price > 19.5 for p in got)  # ``price > 19.5``, re-armed by the dip, is true at a trade


def test_hand_offs_judged_together_keep_each_segments_extremes() -> None:
    tape = Tape("alpaca", W, grace_ms=1000, started_ms=T0 * 1000)
    tape.add([Trade("A", 15.0, 1, ms(1))])
    rows = handed(tape)
    tape.add([Trade("A", 11.0, 1, ms(2)), Trade("A", 14.0, 1, ms(3)), Trade("A", 12.0, 1, ms(4))])
    rows += handed(tape)
    tape.add([Trade("A", 12.5, 1, ms(5)), Trade("A", 13.0, 1, ms(6))])
    rows += handed(tape)
    (one,) = coalesce(rows[1:])  # the first was judged; the next two wait together
    assert (one.close, one.trades, one.high, one.low) == (13.0, 6, 15.0, 11.0)
    assert one.segment() == (14.0, ms(3), 11.0, ms(2))
    assert [(p.what, p.price) for p in prints(one, rows[0].last_ms)] == [("low", 11.0), ("trade", 14.0),
                                                                          ("last", 13.0)]
    assert coalesce(rows[2:][::-1]) == coalesce(rows[2:])  # the order they come in does not matter


def test_a_hand_off_without_the_segment_is_judged_at_the_bars_extremes_as_before() -> None:
    row = ["A", T0, 10.0, 10.4, 9.8, 10.1, 160.0, 3, ms(3), ms(2), ms(1)]  # JSON, as handed off before
    (bar,) = decode({b"bars": orjson.dumps([row])}, W)[0].bars()
    assert bar.segment() == (10.4, ms(2), 9.8, ms(1))
    assert [p.what for p in prints(bar, None)] == ["low", "high", "last"]


def test_the_prints_of_many_bars_at_once_are_each_bars_own() -> None:
    """The evaluator judges a hand-off's bars as columns (:func:`print_columns`); each row must be
    :func:`prints` of its bar: the same prices, times and names, in the same order, including ties
    (a segment's low and high at one moment, an extreme at the last trade's time) and bars whose
    segment was not kept or was judged already."""
    rng = np.random.default_rng(3)
    bars, judged = [], []
    for i in range(4000):
        t = [ms(float(x)) for x in rng.integers(0, 6, 4)]  # few distinct times: many ties
        hi, lo = (float(x) for x in np.sort(rng.choice([10.0, 11.0, 12.0, 13.0], 2))[::-1])
        bar_hi, bar_lo = max(hi, float(rng.choice([hi, 14.0]))), min(lo, float(rng.choice([lo, 9.0])))
        last = max(t)
        seg = (hi, t[0], lo, t[1]) if rng.random() < 0.8 else NO_SEGMENT
        bars.append(Provisional(f"T{i}", T0 + W, 11.0, bar_hi, bar_lo, float(rng.choice([lo, hi, 11.5])),
                                100.0, 3, last, t[2], t[3], *seg))
        judged.append(None if rng.random() < 0.4 else ms(float(rng.integers(-1, 6))))
    got = print_columns(np.array([b[1:] for b in bars], float),
                        np.array([-1 if j is None else j for j in judged], np.int64))
    for i, (bar, j) in enumerate(zip(bars, judged, strict=True)):
        assert [got.at(i, k) for k in range(int(got.count[i]))] == prints(bar, j), bar
    assert set(got.count.tolist()) == {0, 1, 2, 3}  # every case was met
