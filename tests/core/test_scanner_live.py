"""The live lists against a plain reference over the same generated trades.

The trades go through the stream's own :class:`~webapp.core.tape.Tape`,
handed off every 100 ms as the stream leader does, coalesced per second as
the evaluate process does, into :class:`LiveTape`.  The reference reads the
raw trades with nothing but loops.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from webapp.core.handoff import Handoffs, coalesced, concat, decode, encode
from webapp.core.market import EXCHANGE_TZ
from webapp.core.rules.intrabar import Provisional
from webapp.core.scanner_live import LiveSettings, LiveTape, live_lists, merge
from webapp.core.tape import Tape
from webapp.core.trades import Trade

T0 = int(datetime(2026, 11, 20, 10, 0, tzinfo=EXCHANGE_TZ).timestamp())  # a session's 10:00
TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
SECONDS = 300


def _trades(seed: int = 3) -> list[Trade]:
    """A few trades a second per ticker, random walks; BBB runs up 3 % in its fourth minute, CCC
    trades ten times its usual size for 20 s, DDD sags to new lows, AAA breaks out late."""
    rng = np.random.default_rng(seed)
    out: list[Trade] = []
    price = {t: 20.0 + 10 * k for k, t in enumerate(TICKERS)}
    for s in range(SECONDS):
        for t in TICKERS:
            n = int(rng.integers(1, 4))
            times = sorted(rng.choice(1000, n, replace=False).tolist())
            for ms in times:
                drift = 0.0
                if t == "BBB" and 180 <= s < 240:
                    drift = 0.03 / 60 / 2
                if t == "DDD":
                    drift = -0.0004
                if t == "AAA" and s >= 270:
                    drift = 0.002
                price[t] *= float(np.exp(drift + 0.0004 * rng.standard_normal()))
                size = 100.0 * int(rng.integers(1, 5)) * (10 if t == "CCC" and 200 <= s < 220 else 1)
                out.append(Trade(t, round(price[t], 2), size, (T0 + s) * 1000 + ms))
    out.sort(key=lambda tr: (tr.time_ms, tr.ticker))
    return out


def _run(trades: list[Trade], settings: LiveSettings, expected: np.ndarray):
    """The live path: 100 ms hand-offs, a second's coalesced, recorded; the lists at the end."""
    tape = Tape("sim", 60, 2000, T0 * 1000)
    live = LiveTape(TICKERS, settings.window_seconds)
    k = 0
    for s in range(SECONDS):
        second: list[Handoffs] = []
        for chunk in range(10):
            end = (T0 + s) * 1000 + (chunk + 1) * 100
            batch = []
            while k < len(trades) and trades[k].time_ms < end:
                batch.append(trades[k])
                k += 1
            tape.add(batch)
            tape.close(end)
            second.append(decode(encode(tape.hand_off()), 60)[0])
        live.observe(coalesced(concat(second)), 60)
        live.tick(T0 + s)
    now_ms = (T0 + SECONDS) * 1000
    return live, live_lists(live, now_ms, settings, expected, 50), now_ms


def _reference(trades: list[Trade], settings: LiveSettings, expected: np.ndarray, now_ms: int):
    w = settings.window_seconds
    last_s = T0 + SECONDS - 1
    out: dict[str, list] = {"running_up": [], "running_down": [], "hod_breaks": [], "lod_breaks": [],
                            "volume_spike": []}
    for i, t in enumerate(TICKERS):
        mine = [tr for tr in trades if tr.ticker == t]
        end_now = [tr for tr in mine if tr.time_ms < (last_s + 1) * 1000]
        then = [tr for tr in mine if tr.time_ms < (last_s - w + 1) * 1000]
        move = (end_now[-1].price / then[-1].price - 1) * 100
        vol = sum(tr.size for tr in mine if (last_s - w + 1) * 1000 <= tr.time_ms < (last_s + 1) * 1000)
        if vol >= settings.running_min_volume and move > 0:
            out["running_up"].append((-move, t))
        if vol >= settings.running_min_volume and move < 0:
            out["running_down"].append((move, t))
        if vol >= settings.spike_k * expected[i]:
            out["volume_spike"].append((-vol / expected[i], t))
        # breaks: a 100 ms hand-off above every earlier trade of the day (not the first); per second
        for name, better in (("hod_breaks", max), ("lod_breaks", min)):
            best, at, count, first = None, 0, 0, None
            chunks: dict[int, list[Trade]] = {}
            for tr in mine:
                chunks.setdefault(tr.time_ms // 100, []).append(tr)
            for c in sorted(chunks):
                top = better(tr.price for tr in chunks[c])
                if first is None:
                    best, first = top, c // 10  # the day's first second (of 100 ms chunks) sets it
                elif c // 10 == first:
                    best = better(best, top)
                elif better(top, best) != best and top != best:
                    new_at = min(tr.time_ms for tr in chunks[c] if tr.price == top)
                    count += new_at // 1000 != at // 1000  # seconds with a break
                    best, at = top, new_at
            if at and at >= now_ms - settings.breaks_minutes * 60_000:
                out[name].append((-at, t, count, best))
    return {name: sorted(rows) for name, rows in out.items()}


def test_the_live_lists_equal_a_plain_reference_over_the_same_trades() -> None:
    settings = LiveSettings(window_seconds=60, running_min_volume=2_000, breaks_minutes=5, spike_k=3.0)
    expected = np.full(len(TICKERS), 12_000.0)  # ~2 trades/s × 250 shares × 60 s: a spike is 3×
    trades = _trades()
    live, got, now_ms = _run(trades, settings, expected)
    want = _reference(trades, settings, expected, now_ms)
    assert live.warm()
    for name in ("running_up", "running_down"):
        assert [r["ticker"] for r in got[name]] == [t for _, t in want[name]], name
        assert [r["value"] for r in got[name]] == pytest.approx([round(-v if name == "running_up" else v, 3)
                                                                 for v, _ in want[name]], abs=1e-3)
    assert [r["ticker"] for r in got["volume_spike"]] == [t for _, t in want["volume_spike"]]
    assert [r["value"] for r in got["volume_spike"]] == pytest.approx([round(-v, 2) for v, _ in
                                                                       want["volume_spike"]], abs=0.01)
    for name in ("hod_breaks", "lod_breaks"):
        assert [(r["ticker"], r["value"], r["breaks"], r["level"]) for r in got[name]] == [
            (t, -at, count, best) for at, t, count, best in want[name]], name
    # the generated market has each signal in it, so the comparison is not of empty lists
    assert "DDD" in [r["ticker"] for r in got["lod_breaks"]]
    assert "AAA" in [r["ticker"] for r in got["hod_breaks"]] and "AAA" == got["running_up"][0]["ticker"]
    assert got["running_down"] and all(r["value"] < 0 for r in got["running_down"])


def test_a_spike_and_a_run_show_while_they_happen() -> None:
    settings = LiveSettings(window_seconds=60, running_min_volume=2_000, spike_k=3.0)
    expected = np.full(len(TICKERS), 12_000.0)
    trades = [tr for tr in _trades() if tr.time_ms < (T0 + 221) * 1000]
    global SECONDS
    keep, SECONDS = SECONDS, 221
    try:
        _, got, _ = _run(trades, settings, expected)
    finally:
        SECONDS = keep
    assert got["volume_spike"][0]["ticker"] == "CCC" and "expected volume" in got["volume_spike"][0]["why"]
    assert got["running_up"][0]["ticker"] == "BBB" and got["running_up"][0]["why"].endswith("in 60 s")


def test_not_warm_until_the_window_is_whole_and_halts_resume() -> None:
    live = LiveTape(["AAA", "BBB"], 60)
    first = Provisional("AAA", T0 + 60, 10, 10, 10, 10, 100, 1, T0 * 1000, T0 * 1000, T0 * 1000)
    live.observe(Handoffs.of([first]), 60)
    live.tick(T0)
    assert not live.warm()
    got = live_lists(live, T0 * 1000, LiveSettings(), np.full(2, np.nan), 10)
    assert got["running_up"] == [] and got["volume_spike"] == []
    live.halted({"BBB": {"code": "T1", "reason": "news pending", "time_ms": T0 * 1000}}, T0 * 1000)
    halted = live_lists(live, T0 * 1000 + 5000, LiveSettings(), np.full(2, np.nan), 10)["halted"]
    assert [(r["ticker"], r["status"], r["code"]) for r in halted] == [("BBB", "halted", "T1")]
    live.halted({}, T0 * 1000 + 60_000)
    after = live_lists(live, T0 * 1000 + 120_000, LiveSettings(), np.full(2, np.nan), 10)["halted"]
    assert [(r["ticker"], r["status"]) for r in after] == [("BBB", "resumed")]
    gone = live_lists(live, T0 * 1000 + 60_000 + 601_000, LiveSettings(), np.full(2, np.nan), 10)["halted"]
    assert gone == []  # resumed shows for 10 minutes
    live.tick(T0 + 60)
    assert live.warm()


def test_merging_shards_keeps_the_lists_order() -> None:
    a = [{"ticker": "X", "value": 3.0}, {"ticker": "Y", "value": 1.0}]
    b = [{"ticker": "Z", "value": 2.0}, {"ticker": "A", "value": 1.0}]
    assert [r["ticker"] for r in merge([a, b], "running_up", 3)] == ["X", "Z", "A"]
    down = [{"ticker": "X", "value": -3.0}], [{"ticker": "Z", "value": -5.0}]
    assert [r["ticker"] for r in merge(down, "running_down", 5)] == ["Z", "X"]


def test_a_seconds_hand_offs_count_once_in_any_order_and_an_older_one_again_adds_nothing() -> None:
    """The evaluate process hands the tape every hand-off of the second (several per bar); only the
    newest of each bar counts, and one handed again later (a batch retried after an outage) is
    refused by its trade count, so no volume is counted twice."""
    def bar(n: int, volume: float, close: float) -> Provisional:
        return Provisional("AAA", T0 + 60, 20.0, max(20.0, close), 20.0, close, volume, n,
                           (T0 + n) * 1000, (T0 + n) * 1000, T0 * 1000)

    tape = LiveTape(["AAA"], window=10)
    tape.observe(Handoffs.of([bar(3, 300.0, 20.3), bar(1, 100.0, 20.1), bar(2, 200.0, 20.2)]), 60)
    assert tape.volume[0] == 300.0 and tape.last[0] == 20.3 and tape.touched[0]
    tape.observe(Handoffs.of([bar(2, 200.0, 20.2)]), 60)  # retried: older than what the tape holds
    assert tape.volume[0] == 300.0 and tape.last[0] == 20.3
    tape.observe(Handoffs.of([bar(5, 450.0, 20.5)]), 60)
    assert tape.volume[0] == 450.0 and tape.bar_volume[0] == 450.0


def test_seconds_the_loop_missed_carry_the_last_recorded_values_so_a_move_after_them_shows() -> None:
    """The evaluate loop was held up for 30 s; what it then hands over counts at the second it
    records, and the seconds between carry the last recorded ones: the move over the window is
    the whole move, not nothing (the skipped seconds taking the new price too)."""
    tape = LiveTape(["AAA"], window=5)
    for s in range(10):
        tape.observe(Handoffs.of([Provisional("AAA", T0 + 60, 20.0, 20.0, 20.0, 20.0, 100.0 * (s + 1), s + 1,
                                              (T0 + s) * 1000, T0 * 1000, T0 * 1000)]), 60)
        tape.tick(T0 + s)
    tape.observe(Handoffs.of([Provisional("AAA", T0 + 60, 20.0, 21.0, 20.0, 21.0, 5000.0, 40,
                                          (T0 + 40) * 1000, (T0 + 40) * 1000, T0 * 1000)]), 60)
    tape.tick(T0 + 40)
    move, volume = tape.window_move()
    assert move[0] == pytest.approx(5.0) and volume[0] == pytest.approx(4000.0)


def test_the_days_high_and_low_are_seeded_only_over_a_tape_of_that_day_or_none() -> None:
    tape = LiveTape(["AAA", "BBB", "CCC"], 60)
    tape.day[2] = 700_000  # CCC's tape is of another day: the tick's today does not mix into it
    tape.hod[1], tape.lod[1], tape.day[1] = 12.0, 9.0, 700_001
    tape.seed(np.array([0, 1, 2]), 700_001, np.array([11.0, 11.5, 13.0]), np.array([10.0, 8.5, 9.5]))
    assert tape.day.tolist() == [700_001, 700_001, 700_000]
    assert tape.hod[:2].tolist() == [11.0, 12.0] and tape.lod[:2].tolist() == [10.0, 8.5]
    assert np.isnan(tape.hod[2]) and np.isnan(tape.lod[2])
