"""The stream's hand-offs as columns: what the stream writes is what the evaluator reads, a bad row is
refused with its reason and the rest of the entry counts, and the columns coalesce as the plain
per-object :func:`~webapp.core.rules.intrabar.coalesce` does."""
from __future__ import annotations

import random
from operator import attrgetter

import numpy as np
import orjson
import pytest

from webapp.core.handoff import Handoffs, coalesced, concat, decode, encode, per_second
from webapp.core.rules.intrabar import Provisional, coalesce, merged
from webapp.core.tape import Tape
from webapp.core.trades import Trade

T0 = 1_796_599_800  # a bar's start
W = 60
BY_BAR = attrgetter("bar_time", "ticker")  # the plain coalesce's order


def ms(seconds: float) -> int:
    return int(round((T0 + seconds) * 1000))


def row(ticker: str = "A", *segment: float | None) -> list:
    return [ticker, T0, 10.0, 10.4, 9.8, 10.1, 160.0, 3, ms(3), ms(2), ms(1),
            *(segment or (10.3, ms(2.5), 9.9, ms(1.5)))]


def test_what_the_stream_writes_the_evaluator_reads_as_bars_at_their_end() -> None:
    rows = [row("AAPL"), row("MSFT", 10.4, ms(2), 9.8, ms(1))]
    got, refused = decode(encode(rows), W)
    assert refused == []
    assert got.bars() == [Provisional(r[0], r[1] + W, *r[2:]) for r in rows]
    assert all(type(v) is int for v in got.bars()[0][7:11])  # times and counts come back as ints
    as_json, _ = decode({b"bars": orjson.dumps(rows)}, W)  # as the previous version wrote them
    assert as_json.bars() == got.bars()
    assert decode(encode([]), W)[0].bars() == []


@pytest.mark.parametrize("bad, says", [
    (row("A", 10.6, 1, 9.9, 1), "not inside its bar"),
    (row("A", 10.2, 1, 9.7, 1), "not inside its bar"),
    (row("A", 10.0, 1, 10.2, 1), "not inside its bar"),
    (row("A", 10.2, None, 9.9, 1), "missing or non-numeric"),
    (["A", T0, 10.0, 10.4, 10.5, 10.1, 160.0, 3, ms(3), ms(2), ms(1), 10.3, 1, 9.9, 1], "is not a bar"),
    (["A", T0, 10.0, 10.4, 9.8, 10.1, -1.0, 3, ms(3), ms(2), ms(1), 10.3, 1, 9.9, 1], "is not a bar"),
    (["A", T0, 10.0, 10.4, 9.8, 10.1, 160.0, None, ms(3), ms(2), ms(1), 10.3, 1, 9.9, 1], "non-numeric"),
    (["A", "x"], "missing or non-numeric"),
    (["", T0, 10.0, 10.4, 9.8, 10.1, 160.0, 3, ms(3), ms(2), ms(1), 10.3, 1, 9.9, 1], "no ticker"),
])
def test_a_bad_row_is_refused_with_its_reason_and_the_rest_counts(bad, says) -> None:
    got, refused = decode(encode([row("GOOD"), bad, row("ALSO")]), W)
    assert [b.ticker for b in got.bars()] == ["GOOD", "ALSO"]
    assert len(refused) == 1 and says in refused[0]


def test_a_json_row_of_the_wrong_shape_is_refused_and_the_rest_counts() -> None:
    got, refused = decode({b"bars": orjson.dumps([["A", 1], row("B"), [1, 2], "x"])}, W)
    assert [b.ticker for b in got.bars()] == ["B"]
    assert len(refused) == 3 and all("15 fields" in r for r in refused)


@pytest.mark.parametrize("fields, says", [
    ({b"bars": b"{not json"}, "not JSON"),
    ({b"bars": b'{"a": 1}'}, "not a list"),
    ({b"tickers": b"A\nB", b"cols": b"\x00" * 8 * 14}, "2 tickers has 112 bytes"),
    ({b"tickers": b"\xff", b"cols": b"\x00" * 8 * 14}, "not UTF-8"),
    ({b"at": b"1"}, "neither cols nor bars"),
])
def test_an_entry_that_cannot_be_read_is_refused_whole(fields, says) -> None:
    with pytest.raises(ValueError, match=says):
        decode(fields, W)


def test_many_bad_rows_are_reported_without_one_line_each() -> None:
    got, refused = decode(encode([["X", "y"]] * 50 + [row("OK")]), W)
    assert len(got) == 1 and len(refused) == 4 and refused[-1].startswith("and 47 more")


def _flushes(seed: int, tickers: int = 6, flushes: int = 40, step: float = 3.0) -> list[Provisional]:
    """Hand-offs of a real tape over random trades: several per bar, across bar ends."""
    rng = random.Random(seed)
    tape = Tape("alpaca", W, grace_ms=1000, started_ms=T0 * 1000)
    out: list[Provisional] = []
    t = 0.0
    for _ in range(flushes):
        trades = []
        for _ in range(rng.randint(0, 8)):
            t += rng.random() * step
            trades.append(Trade(f"T{rng.randrange(tickers)}", round(10 + rng.random() * 10, 2),
                                rng.randint(1, 500), ms(t)))
        tape.add(trades)
        tape.close(ms(t) - 2000)
        out += decode(encode(tape.hand_off()), W)[0].bars()
    return out


@pytest.mark.parametrize("seed", range(12))
def test_columns_coalesce_as_the_plain_objects_do(seed) -> None:
    bars = _flushes(seed)
    rng = random.Random(seed)
    want = coalesce(bars)
    assert len(want) < len(bars)  # something was coalesced
    assert sorted(coalesced(Handoffs.of(bars)).bars(), key=BY_BAR) == want
    shuffled = bars[:]
    rng.shuffle(shuffled)  # the order they come in does not matter
    assert sorted(coalesced(Handoffs.of(shuffled)).bars(), key=BY_BAR) == want
    halves = concat([Handoffs.of(bars[:len(bars) // 2]), Handoffs.of(bars[len(bars) // 2:])])
    got = coalesced(halves).bars()
    assert sorted(got, key=BY_BAR) == want
    assert [b.bar_time for b in got] == sorted(b.bar_time for b in got)  # judged bar by bar, oldest first
    one_each = list({b.ticker: b for b in want}.values())  # a ticker once, as one flush hands it
    assert coalesced(Handoffs.of(one_each)).bars() == one_each  # nothing to merge: as it came


def test_a_tie_at_the_extreme_keeps_the_newer_hand_offs_time() -> None:
    one = Provisional("A", T0 + W, 10.0, 10.4, 9.8, 10.1, 100.0, 3, ms(3), ms(2), ms(1),
                      10.4, ms(2), 9.9, ms(3))
    two = Provisional("A", T0 + W, 10.0, 10.4, 9.8, 10.2, 150.0, 5, ms(5), ms(2), ms(1),
                      10.4, ms(4), 10.0, ms(5))
    (got,) = coalesced(Handoffs.of([one, two])).bars()
    assert got == coalesce([one, two])[0]
    assert got.segment() == (10.4, ms(4), 9.9, ms(3))
    assert np.isnan(Handoffs.of([one._replace(seg_high=float("nan"))]).col("seg_high")).all()


def _per_second_plainly(bars: list[Provisional]) -> dict[tuple[str, int], Provisional]:
    """Each (ticker, second of its last trade): the newest bar's state, hand-offs of it merged."""
    out: dict[tuple[str, int], Provisional] = {}
    for bar in bars:
        key = (bar.ticker, bar.last_ms // 1000)
        had = out.get(key)
        if had is not None and had.bar_time == bar.bar_time:
            out[key] = merged(had, bar)
        elif had is None or bar.bar_time > had.bar_time:
            out[key] = bar
    return out


@pytest.mark.parametrize("seed", range(8))
def test_the_seconds_kept_for_replays_are_the_newest_state_of_each_second(seed) -> None:
    bars = _flushes(seed, tickers=4, flushes=200, step=0.4)  # several hand-offs a second
    rng = random.Random(seed)
    rng.shuffle(bars)
    want = _per_second_plainly(bars)
    got, rows = per_second(Handoffs.of(bars))
    assert {(b.ticker, b.last_ms // 1000): b for b in got.bars()} == want
    assert len(got) == len(want) < len(bars)
    # each kept row says which hand-off it is (what travels beside it: whether it was halted)
    assert [bars[i][:11] for i in rows] == [b[:11] for b in got.bars()]
