"""The scanner every second: each ticker's last minute of seconds, its breaks, and the day trader's lists.

Fed with the stream's provisional bars (:class:`~webapp.core.handoff.Handoffs`, columns)
once a second by the evaluate process, which holds one
:class:`LiveTape` per symbol shard.  Per ticker it keeps, as numpy columns:

* a ring of the last ``window`` seconds: the last trade price at the end of
  each second, and the volume seen so far (every hand-off adds what its bar
  gained since the previous one), so a move and a volume over the last 60 s
  are two subtractions;
* the high and low of the day from the trades (the provisional bars' highs
  and lows, started from the tick's day high and low when the tape begins,
  or by the day's first second of trades),
  and each break of them: when, and in how many seconds today (a second
  with a new high counts once, so the count does not depend on how often
  the hand-offs come);
* the halts the stream reported, and when each ended.

The lists (:data:`LIVE_LISTS`, defined in :data:`LIVE_RULES`) are ranked
from these by :func:`live_lists`.  Pure: the caller passes the time.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from webapp.core.handoff import Handoffs
from webapp.core.market import EXCHANGE_TZ

LIVE_LISTS = ("running_up", "running_down", "hod_breaks", "lod_breaks", "volume_spike", "halted")
LIVE_TITLES = {
    "running_up": "Running up now", "running_down": "Running down now", "hod_breaks": "New high of day",
    "lod_breaks": "New low of day", "volume_spike": "Volume spike", "halted": "Halted / resumed",
}
LIVE_RULES = {
    "running_up": "% move over the last window (60 s), once the ticker traded the minimum volume in it; "
                  "largest first",
    "running_down": "the same, falling; largest fall first",
    "hod_breaks": "a trade above the day's high so far in the last N minutes (not the day's first "
                  "trades); most recent first, with how many times today",
    "lod_breaks": "a trade below the day's low so far in the last N minutes; most recent first",
    "volume_spike": "volume in the last window ≥ k × the volume expected in that window at this time "
                    "of day (the RVOL profile); highest ratio first",
    "halted": "halted now (the provider's status messages), with the code and since when; "
              "resumed ones for N minutes after the resume",
}


class LiveSettings(NamedTuple):
    window_seconds: int = 60
    running_min_volume: float = 1_000.0
    breaks_minutes: int = 5
    spike_k: float = 3.0
    resumed_minutes: int = 10


def day_of(ms: int) -> int:
    """The New York date (ordinal) of an epoch millisecond."""
    return datetime.fromtimestamp(ms / 1000, EXCHANGE_TZ).toordinal()


class LiveTape:
    """One shard's tickers, second by second (see the module's docstring)."""

    def __init__(self, tickers: Sequence[str], window: int = 60, depth: int = 0) -> None:
        n = len(tickers)
        self.tickers = list(tickers)
        self.index = {t: i for i, t in enumerate(tickers)}
        self.window = window
        self.ring = max(window, depth) + 1  # seconds kept: the window, or a rule's longer move
        self.price = np.full((n, self.ring), np.nan)  # ring by second % ring
        self.seen = np.full((n, self.ring), np.nan)  # volume seen by then, same ring
        self.second = -1  # the last second recorded
        self.started = -1  # the first second recorded (the windows are whole once it is window old)
        self.last = np.full(n, np.nan)
        self.volume = np.zeros(n)  # volume seen since the tape began
        self.bar = np.zeros(n, np.int64)  # the bar of the last hand-off, and its open and volume
        self.bar_open = np.full(n, np.nan)
        self.bar_volume = np.zeros(n)
        self.bar_trades = np.zeros(n, np.int64)
        self.touched = np.zeros(n, bool)  # handed off since the caller last cleared it
        self.day = np.zeros(n, np.int64)
        self.first_s = np.zeros(n, np.int64)  # the second of the day's first trade
        self.hod = np.full(n, np.nan)
        self.lod = np.full(n, np.nan)
        self.hod_ms = np.zeros(n, np.int64)  # the last break (0: none today)
        self.lod_ms = np.zeros(n, np.int64)
        self.hod_count = np.zeros(n, np.int64)
        self.lod_count = np.zeros(n, np.int64)
        self.halts: dict[str, dict[str, Any]] = {}
        self.resumed: dict[str, int] = {}  # ticker -> when its halt ended (ms)

    def seed(self, at: np.ndarray, day: int, high: np.ndarray, low: np.ndarray) -> None:
        """The day's high and low before the tape began (the tick's), so the first trades after a
        start are not taken for breaks: ``at`` the tickers' rows here, ``high``/``low`` theirs."""
        at = np.asarray(at, np.int64)
        ok = (self.day[at] == 0) | (self.day[at] == day)
        at, high, low = at[ok], np.asarray(high, float)[ok], np.asarray(low, float)[ok]
        self.day[at] = day
        self.hod[at] = np.fmax(self.hod[at], high)
        self.lod[at] = np.fmin(self.lod[at], low)

    def observe(self, bars: Handoffs, width: int) -> None:
        """The hand-offs since the last call, in any order and any number per ticker and bar (the
        newest of each bar counts), as columns: at 10,000 tickers and tens of thousands of hand-offs
        a second, a loop per hand-off costs more than the rest of the scan."""
        index = self.index
        idx = np.fromiter(map(index.get, bars.tickers.tolist(), repeat(-1)), np.int64, len(bars))
        mine = idx >= 0
        if not mine.any():
            return
        idx = idx[mine]
        col = {name: bars.col(name)[mine] for name in ("open", "high", "low", "close", "volume")}
        col.update({name: bars.col(name)[mine].astype(np.int64)
                    for name in ("bar_time", "trades", "last_ms", "high_ms", "low_ms")})
        # by ticker, its older bars first, and of a bar's hand-offs only the newest (the most trades)
        order = np.lexsort((col["last_ms"], col["trades"], col["bar_time"], idx))
        idx, col = idx[order], {name: v[order] for name, v in col.items()}
        last = np.r_[(idx[1:] != idx[:-1]) | (col["bar_time"][1:] != col["bar_time"][:-1]), True]
        idx, col = idx[last], {name: v[last] for name, v in col.items()}
        self.touched[idx] = True
        # a ticker's older bars first, then its newer ones: each pass touches a ticker once
        starts = np.r_[0, np.flatnonzero(idx[1:] != idx[:-1]) + 1]
        rank = np.arange(len(idx)) - np.repeat(starts, np.diff(np.r_[starts, len(idx)]))
        days = {t: day_of((t - width) * 1000) for t in set(col["bar_time"].tolist())}
        col["day"] = np.array([days[t] for t in col["bar_time"].tolist()], np.int64)
        for k in range(int(rank.max()) + 1):
            part = rank == k
            self._observe({name: v[part] for name, v in col.items()}, idx[part])

    def _observe(self, b: dict[str, np.ndarray], i: np.ndarray) -> None:
        new_day = b["day"] != self.day[i]  # the day's first hand-off: its extremes start the day
        n = np.flatnonzero(new_day)
        self.day[i[n]], self.hod[i[n]], self.lod[i[n]] = b["day"][n], b["high"][n], b["low"][n]
        for col in (self.hod_ms, self.lod_ms, self.hod_count, self.lod_count):
            col[i[n]] = 0
        self.first_s[i[n]] = np.minimum(b["high_ms"][n], b["low_ms"][n]) // 1000
        first = ~new_day & (b["last_ms"] // 1000 == self.first_s[i])  # still its first second: no break
        f = np.flatnonzero(first)
        self.hod[i[f]] = np.fmax(self.hod[i[f]], b["high"][f])
        self.lod[i[f]] = np.fmin(self.lod[i[f]], b["low"][f])
        r = np.flatnonzero(~new_day & ~first)
        ir = i[r]
        for level, at, count, value, when, beyond in (
                (self.hod, self.hod_ms, self.hod_count, b["high"][r], b["high_ms"][r], np.greater),
                (self.lod, self.lod_ms, self.lod_count, b["low"][r], b["low_ms"][r], np.less)):
            with np.errstate(invalid="ignore"):
                broke = beyond(value, level[ir])  # a break: counted once per second, whatever the cadence
            k = ir[broke]
            count[k] += (when[broke] // 1000 != at[k] // 1000)
            level[k], at[k] = value[broke], when[broke]
            unset = np.isnan(level[ir])
            level[ir[unset]] = value[unset]
        # the same bar again (not an older hand-off of it: a retried batch), or a newer bar
        same = (b["bar_time"] == self.bar[i]) & (b["trades"] >= self.bar_trades[i])
        newer = b["bar_time"] > self.bar[i]
        gained = np.where(same, np.maximum(0.0, b["volume"] - self.bar_volume[i]), b["volume"])
        m = np.flatnonzero(same | newer)  # an older bar's late hand-off: its volume was counted
        im = i[m]
        self.volume[im] += gained[m]
        self.bar[im], self.bar_volume[im], self.last[im] = b["bar_time"][m], b["volume"][m], b["close"][m]
        self.bar_open[im], self.bar_trades[im] = b["open"][m], b["trades"][m]

    def halted(self, halts: Mapping[str, Mapping[str, Any]], now_ms: int) -> None:
        """The halts as the stream reports them now; one that ended is resumed from ``now_ms``."""
        for t in self.halts.keys() - halts.keys():
            self.resumed[t] = now_ms
        for t in halts:
            self.resumed.pop(t, None)
        self.halts = {t: dict(h) for t, h in halts.items() if t in self.index}

    def tick(self, second: int) -> None:
        """Record the end of ``second``.  Seconds skipped since the last one (the loop was held up)
        carry that one's values: what was handed off meanwhile counts at ``second``, so a move is
        never measured against a start that already includes it."""
        if self.started < 0:
            self.started = second
        if second < self.second:
            return  # recorded already
        w = self.ring
        if self.second >= 0:
            held = self.second % w
            for s in range(max(self.second + 1, second - w + 1), second):
                self.price[:, s % w] = self.price[:, held]
                self.seen[:, s % w] = self.seen[:, held]
        self.price[:, second % w] = self.last
        self.seen[:, second % w] = self.volume
        self.second = max(self.second, second)

    def warm(self) -> bool:
        """Whether the window is whole (the tape has seen ``window`` seconds)."""
        return self.started >= 0 and self.second - self.started >= self.window

    def window_move(self) -> tuple[np.ndarray, np.ndarray]:
        """(% move, volume) over the last window, per ticker (NaN move where the start is unknown)."""
        w = self.ring
        now, then = self.second % w, (self.second - self.window) % w
        with np.errstate(invalid="ignore", divide="ignore"):
            move = (self.price[:, now] / self.price[:, then] - 1.0) * 100.0
        return move, self.seen[:, now] - self.seen[:, then]

    def columns(self, tickers: Sequence[str], seconds: Iterable[int], expected_window: np.ndarray
                ) -> dict[str, np.ndarray]:
        """What a rule's signals read of these tickers (NaN for one the tape lacks): the window's
        volume as of the last second recorded and what the profile expects of it, and the price
        ``s`` seconds before it (``ago_<s>s``; NaN until the tape is that old)."""
        rows = np.array([self.index.get(t, -1) for t in tickers], np.int64)
        known = rows >= 0
        at = np.where(known, rows, 0)

        def pick(col: np.ndarray) -> np.ndarray:
            return np.where(known, col[at], np.nan)

        w = self.ring
        out = {"window_seconds": np.full(len(rows), float(self.window))}
        if self.second < 0:
            nan = np.full(len(rows), np.nan)
            return {**out, "window_volume": nan, "expected_window_volume": nan,
                    **{f"ago_{s}s": nan for s in seconds}}
        now, then = self.second % w, (self.second - self.window) % w
        out["window_volume"] = pick(self.seen[:, now] - self.seen[:, then]) if self.warm() else np.full(
            len(rows), np.nan)
        out["expected_window_volume"] = pick(expected_window) if len(expected_window) == len(self.tickers) \
            else np.full(len(rows), np.nan)
        for s in seconds:
            old = self.second - s >= self.started and s < w
            out[f"ago_{s}s"] = (pick(self.price[:, (self.second - s) % w]) if old
                                else np.full(len(rows), np.nan))
        return out


def session_of(ms: int) -> str:
    """Which session a moment is in, by the New York clock on a weekday: "pre-market" (04:00–09:30),
    "regular" (to 16:00), "after-hours" (to 20:00), else "closed" (holidays are the caller's)."""
    at = datetime.fromtimestamp(ms / 1000, EXCHANGE_TZ)
    minute = at.hour * 60 + at.minute
    if at.weekday() >= 5 or not 240 <= minute < 1200:
        return "closed"
    return "pre-market" if minute < 570 else "regular" if minute < 960 else "after-hours"


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, EXCHANGE_TZ).isoformat(timespec="milliseconds")


def _top(order_value: np.ndarray, keep: np.ndarray, tickers: np.ndarray, limit: int) -> list[int]:
    """Rows where ``keep``, by ``order_value`` highest first then ticker; at most ``limit``."""
    idx = np.flatnonzero(keep & np.isfinite(order_value))
    if not len(idx):
        return []
    order = np.lexsort((tickers[idx], -order_value[idx]))[:limit]
    return idx[order].tolist()


def live_lists(tape: LiveTape, now_ms: int, settings: LiveSettings, expected_window: np.ndarray,
               limit: int) -> dict[str, list[dict[str, Any]]]:
    """Each list of :data:`LIVE_LISTS`, best first: rows ``{"ticker", "price", "value", ...}`` with
    what the page says of them.  ``expected_window``: each ticker's expected volume in a window of
    this time of day (NaN: unknown, so never a spike)."""
    tickers = np.array(tape.tickers, dtype=str) if tape.tickers else np.array([], dtype=str)
    out: dict[str, list[dict[str, Any]]] = {}
    move, vol = tape.window_move()
    enough = vol >= settings.running_min_volume
    secs = tape.window

    def price(i: int) -> float | None:
        p = tape.last[i]
        return None if p != p else round(float(p), 4)

    with np.errstate(invalid="ignore"):
        for name, sign in (("running_up", 1.0), ("running_down", -1.0)):
            rows = _top(sign * move, enough & (sign * move > 0), tickers, limit)
            out[name] = [{"ticker": tape.tickers[i], "price": price(i), "value": round(float(move[i]), 3),
                          "volume": float(vol[i]), "why": f"{move[i]:+.2f} % in {secs} s"} for i in rows]
        since = now_ms - settings.breaks_minutes * 60_000
        for name, at, count, word in (("hod_breaks", tape.hod_ms, tape.hod_count, "HOD"),
                                      ("lod_breaks", tape.lod_ms, tape.lod_count, "LOD")):
            rows = _top(at.astype(float), (at > 0) & (at >= since), tickers, limit)
            level = tape.hod if word == "HOD" else tape.lod
            out[name] = [{"ticker": tape.tickers[i], "price": price(i), "value": int(at[i]),
                          "level": round(float(level[i]), 4), "since": _iso_ms(int(at[i])),
                          "breaks": int(count[i]),
                          "why": f"broke {word} {float(level[i]):g} ({int(count[i])}× today)"} for i in rows]
        ratio = vol / expected_window
        rows = _top(ratio, (expected_window > 0) & (ratio >= settings.spike_k), tickers, limit)
        out["volume_spike"] = [{"ticker": tape.tickers[i], "price": price(i),
                                "value": round(float(ratio[i]), 2), "volume": float(vol[i]),
                                "why": f"{ratio[i]:.1f}× the expected volume in {secs} s"} for i in rows]
    halted = [{"ticker": t, "price": price(tape.index[t]), "value": float(h.get("time_ms") or 0),
               "status": "halted", "code": h.get("code"), "reason": h.get("reason"),
               "since": _iso_ms(int(h.get("time_ms") or now_ms)), "why": f"halted: {h.get('code') or '?'}"}
              for t, h in tape.halts.items()]
    recent = now_ms - settings.resumed_minutes * 60_000
    resumed = [{"ticker": t, "price": price(tape.index[t]), "value": float(at), "status": "resumed",
                "since": _iso_ms(at), "why": "resumed"}
               for t, at in tape.resumed.items() if at >= recent and t in tape.index]
    out["halted"] = sorted(halted, key=lambda r: (-r["value"], r["ticker"]))[:limit] + sorted(
        resumed, key=lambda r: (-r["value"], r["ticker"]))[:max(0, limit - len(halted))]
    return out


# what a live row carries of the minute lists' columns (the ticker's reading advanced to its last
# hand-off), so the filters on volume today and RVOL apply to the live lists as to the others
CONTEXT = ("day_volume", "rvol", "change_pct", "gap_pct")


def within(row: Mapping[str, Any], low_price: float | None, high_price: float | None,
           min_volume: float | None, min_rvol: float | None) -> bool:
    """A live row within the scanner's filters (as :func:`webapp.core.scanner.passes` judges a
    minute row: no price never passes, nor an unknown RVOL against a minimum)."""
    price, volume, rvol = row.get("price"), row.get("day_volume"), row.get("rvol")
    return price is not None and not (
        (low_price is not None and price < low_price) or (high_price is not None and price > high_price)
        or (min_volume is not None and (volume or 0) < min_volume)
        or (min_rvol is not None and (rvol is None or rvol < min_rvol)))


def merge(parts: Iterable[Sequence[Mapping[str, Any]]], name: str, limit: int) -> list[dict[str, Any]]:
    """One list from each shard's rows, in the order :func:`live_lists` gives (``value`` highest first,
    then ticker; ``running_down`` lowest first; ``halted`` the halted ones before the resumed)."""
    rows = [dict(r) for part in parts for r in part]
    if name == "running_down":
        rows.sort(key=lambda r: (r["value"], r["ticker"]))
    elif name == "halted":
        rows.sort(key=lambda r: (r["status"] != "halted", -r["value"], r["ticker"]))
    else:
        rows.sort(key=lambda r: (-r["value"], r["ticker"]))
    return rows[:limit]
