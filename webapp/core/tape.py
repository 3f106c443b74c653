"""The stream's running state: trades in; closed bars, revisions and live pushes out.

Pure (data in, values out, the time an argument), so the stream process,
the benchmark and the tests drive the same object.  What it keeps:

* a :class:`~webapp.core.trades.BarBook` of tick-width bars, closed
  ``grace_ms`` after they end (late prints inside the grace join their bar):
  by the clock, or, while the process is behind a flood, by the newest trade
  it applied (:meth:`Tape.clock`);
* the bars closed in the last few widths, so a later print or a provider's
  corrected bar revises them (``revised``) instead of being lost;
* provider bars (alpaca ``bars``/``updatedBars``, polygon ``AM``) that
  replace ours for their minute: the provider saw every trade;
* which bars are **incomplete**: a bar that began before this process took
  the feed, or overlaps a gap in the connection, says so; nothing pretends
  to be whole;
* for tickers somebody listens to: the newest eligible trade and its
  1-second bar, pushed at most every ``throttle_ms`` per ticker, the
  newest winning (:class:`~webapp.core.trades.Throttle`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

from webapp.core.trades import Bar, BarBook, Dedup, Throttle, Trade, counts_of

REVISE_WIDTHS = 5  # closed bars kept for revision (late prints, corrected provider bars)

_time_ms = attrgetter("time_ms")

Row = list[Any]  # [open, high, low, close, volume, vwap, trades, complete, source]

# a provisional (still open) bar as handed to the evaluation, one row per ticker that traded
PROVISIONAL_FIELDS = ("ticker", "start", "open", "high", "low", "close", "volume", "trades", "last_ms",
                      "high_ms", "low_ms", "seg_high", "seg_high_ms", "seg_low", "seg_low_ms")


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


class Tape:
    def __init__(self, provider: str, width: int, grace_ms: int, started_ms: int,
                 throttle_ms: int = 250) -> None:
        self.provider = provider
        self.width = width
        self.grace_ms = grace_ms
        self.started_ms = started_ms
        self.book = BarBook(width, provider)
        self.dedup = Dedup()
        self.throttle = Throttle(throttle_ms)
        self.listened: set[str] = set()
        self.second: dict[str, Bar] = {}
        self.newest: dict[str, Trade] = {}  # listened tickers: the newest eligible print
        self.closed: dict[tuple[str, int], Row] = {}  # recently closed, for revisions
        self.closed_bars: dict[tuple[str, int], Bar] = {}  # ... and the bars of ours among them
        self.revised: dict[tuple[str, int], Row] = {}  # closed bars changed since taken
        self.provider_bars: dict[tuple[str, int], Row] = {}  # for bars still open
        self.last_close: dict[str, float] = {}
        self.day_start_ms = 0
        self.day_volume: dict[str, float] = {}  # closed bars of the exchange day so far
        self.trades = 0
        self.late = 0
        self.moved: set[str] = set()  # tickers that traded since the last hand-off
        self.newest_ms = 0  # the newest trade applied, by its own time: how far the tape has read

    # ---- in
    def add(self, trades: Sequence[Trade]) -> None:
        if trades and trades[0].id is not None:
            trades = self.dedup.fresh(trades)
        self.trades += len(trades)
        if trades:
            self.newest_ms = max(self.newest_ms, max(map(_time_ms, trades)))
        self.moved.update([t.ticker for t in trades])
        late = self.book.add(trades)
        if late:
            self._revise(late)
        listened = self.listened
        if not listened:
            return
        provider = self.provider
        for t in trades:
            if t.ticker not in listened:
                continue
            counts = counts_of(provider, t.conditions)
            if counts.last:
                newest = self.newest.get(t.ticker)
                if newest is None or (t.time_ms, t.price, t.size) > (newest.time_ms, newest.price,
                                                                      newest.size):
                    self.newest[t.ticker] = t
                    self.throttle.offer(t.ticker, t)  # type: ignore[arg-type]
            second = t.time_ms // 1000
            bar = self.second.get(t.ticker)
            if bar is None or bar.start < second:
                bar = self.second[t.ticker] = Bar(t.ticker, second, 1)
            if bar.start == second:
                bar.add(t, counts)

    def _revise(self, late: Iterable[Trade]) -> None:
        for t in late:
            self.late += 1
            key = (t.ticker, self.book.start_of(t.time_ms))
            bar = self.closed_bars.get(key)
            if bar is None:
                continue  # older than the revision window, or the provider's own bar rules it
            old = self.closed[key]
            bar.add(t, counts_of(self.provider, t.conditions))
            new = _row(bar, old[7], old[8])
            self.closed[key] = self.revised[key] = new
            if key[1] * 1000 >= self.day_start_ms:
                self.day_volume[t.ticker] = self.day_volume.get(t.ticker, 0.0) + new[4] - old[4]

    def provider_bar(self, ticker: str, start: int, o: float, h: float, low: float, c: float, v: float,
                     vwap: float | None, n: int | None) -> None:
        """The provider's own bar for [start, start + 60): it replaces ours (60-second ticks only)."""
        if self.width != 60:
            return
        row = [o, h, low, c, v, vwap, n, True, "provider"]
        key = (ticker, start)
        if key in self.closed:
            old = self.closed[key]
            self.closed_bars.pop(key, None)
            self.closed[key] = self.revised[key] = row
            if start * 1000 >= self.day_start_ms:
                self.day_volume[ticker] = self.day_volume.get(ticker, 0.0) + v - old[4]
        else:
            self.provider_bars[key] = row

    def new_day(self, day_start_ms: int) -> None:
        if day_start_ms != self.day_start_ms:
            self.day_start_ms = day_start_ms
            self.day_volume.clear()

    # ---- out
    def clock(self, now_ms: int, backlog: bool) -> int:
        """The time bars close by (:meth:`close`'s ``now_ms``): the wall clock while the tape keeps up;
        while frames wait to be applied (``backlog``: the process fell behind a flood), the newest trade
        applied.  Closed by the wall clock then, a bar would close while its own last trades still
        queue: each would come late and revise it, a cost per trade that puts the process further
        behind, and the bar read at its close (the tick's, the rules' previous bar) would be short."""
        if backlog and 0 < self.newest_ms < now_ms:
            return self.newest_ms
        return now_ms

    def close(self, now_ms: int, gaps: Sequence[tuple[float, float]] = ()
              ) -> tuple[int, dict[int, dict[str, Row]]]:
        """Close every bar that ended ``grace_ms`` ago: (closed until, {bar end: {ticker: row}})."""
        until = (now_ms - self.grace_ms) // 1000
        until -= until % self.width
        out: dict[int, dict[str, Row]] = {}
        for bar in self.book.close_before(until):
            key = (bar.ticker, bar.start)
            complete = bar.start * 1000 >= self.started_ms and not _overlaps(bar, gaps)
            row = self.provider_bars.pop(key, None)
            if row is None:
                if bar.close is None:  # only odd lots or other prints that set no price
                    last = self.last_close.get(bar.ticker)
                    if last is None:
                        continue
                    bar.open = bar.high = bar.low = bar.close = last
                row = _row(bar, complete, "trades")
                self.closed_bars[key] = bar
            self.last_close[bar.ticker] = row[3]
            self.closed[key] = row
            out.setdefault(bar.start + self.width, {})[bar.ticker] = row
            if bar.start * 1000 >= self.day_start_ms:
                self.day_volume[bar.ticker] = self.day_volume.get(bar.ticker, 0.0) + row[4]
        for key, row in [(k, r) for k, r in self.provider_bars.items() if k[1] + self.width <= until]:
            del self.provider_bars[key]  # a provider bar for a minute we saw no trade in
            self.closed[key] = row
            out.setdefault(key[1] + self.width, {})[key[0]] = row
        horizon = until - REVISE_WIDTHS * self.width
        for key in [k for k in self.closed if k[1] < horizon]:
            del self.closed[key]
            self.closed_bars.pop(key, None)
        return until, out

    def take_revised(self) -> dict[int, dict[str, Row]]:
        out: dict[int, dict[str, Row]] = {}
        for (ticker, start), row in self.revised.items():
            out.setdefault(start + self.width, {})[ticker] = row
        self.revised.clear()
        return out

    def pushes(self, now_ms: int) -> list[dict[str, Any]]:
        """The ``trade`` events due now: at most one per ticker per ``throttle_ms``."""
        out = []
        for t in self.throttle.due(now_ms):
            trade: Trade = t  # type: ignore[assignment]
            sec = self.second.get(trade.ticker)
            out.append({
                "ticker": trade.ticker, "price": trade.price, "size": trade.size,
                "time": iso_ms(trade.time_ms),
                "day_volume": self.day_volume_of(trade.ticker),
                "bar": None if sec is None else {"start": iso_ms(sec.start * 1000), "open": sec.open,
                                                 "high": sec.high, "low": sec.low, "close": sec.close,
                                                 "volume": sec.volume},
            })
        return out

    def hand_off(self) -> list[list[Any]]:
        """The provisional bar of every ticker that traded since the last call (the newest open bar
        that has a price), as :data:`PROVISIONAL_FIELDS` rows: coalesced, so a burst of trades is one
        row with the bar's high, low and volume so far, its last trade's time, and the highest and
        lowest trade since the bar's last hand-off (``seg_*``), with their times.

        An older bar still open that took a priced trade since its last hand-off comes too, before
        it: the ticker's last prints of a bar and its first of the next often fall between two
        flushes, and with only the newest bar handed off, the last hand-off of the bar that ended
        missed its last prints.  Its close was then the previous close the next bar's first prints
        were judged against (``close crossing_down 12`` from 11.76 where the bar closed at 12.06),
        until the stream closed the bar, and a process that took the shard over judged against the
        closed bar instead."""
        moved, self.moved = self.moved, set()
        out: list[list[Any]] = []
        first = self.book.closed_until
        open_bars = self.book.open
        newest: dict[str, list[int]] = {}
        if not first:  # nothing closed yet: each ticker's open bars, newest first, in one pass
            for t, s in sorted(open_bars, key=lambda k: -k[1]):
                newest.setdefault(t, []).append(s)
        near = range(first + 2 * self.width, first - self.width, -self.width)
        for ticker in moved:
            starts = near if first else newest.get(ticker, ())
            rows: list[list[Any]] = []
            for start in starts:  # newest first
                bar = open_bars.get((ticker, start))
                if bar is None or bar.close is None:
                    continue
                if rows and bar.seg_high is None:
                    break  # an older bar with no priced trade since its last hand-off
                last_ms = bar.last_key[0] if bar.last_key else None
                seg = ([bar.close, last_ms or 0] * 2 if bar.seg_high is None  # no priced trade since
                       else [bar.seg_high, bar.seg_high_ms, bar.seg_low, bar.seg_low_ms])
                rows.append([ticker, start, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades,
                             last_ms, bar.high_ms, bar.low_ms, *seg])
                bar.seg_high = bar.seg_low = None
            out += reversed(rows)  # the older bar first
        return out

    def hand_back(self, rows: list[list[Any]]) -> None:
        """A hand-off that could not be written: its tickers are handed off again at the next flush,
        their segments still counting the trades it carried (else a cross in it would be unseen)."""
        for row in rows:
            self.moved.add(row[0])
            bar = self.book.open.get((row[0], row[1]))
            if bar is None:
                continue
            hi, hi_ms, lo, lo_ms = row[11:15]
            if bar.seg_high is None or hi > bar.seg_high:
                bar.seg_high, bar.seg_high_ms = hi, hi_ms
            if bar.seg_low is None or lo < bar.seg_low:
                bar.seg_low, bar.seg_low_ms = lo, lo_ms

    def day_volume_of(self, ticker: str) -> float:
        """The exchange day's volume: its closed bars, plus the bars still open (at most a few)."""
        total = self.day_volume.get(ticker, 0.0)
        first = self.book.closed_until
        starts = (range(first, first + 3 * self.width, self.width) if first
                  else [s for t, s in self.book.open if t == ticker])  # nothing closed yet: look at all
        for start in starts:
            bar = self.book.open.get((ticker, start))
            if bar is not None and start * 1000 >= self.day_start_ms:
                total += bar.volume
        return total

    def listen(self, tickers: Iterable[str]) -> None:
        self.listened = set(tickers)
        for gone in [t for t in self.second if t not in self.listened]:
            del self.second[gone]
            self.newest.pop(gone, None)


def _overlaps(bar: Bar, gaps: Sequence[tuple[float, float]]) -> bool:
    start, end = bar.start, bar.start + bar.width
    return any(g0 < end and (g1 == 0.0 or g1 > start) for g0, g1 in gaps)


def _row(bar: Bar, complete: bool, source: str) -> Row:
    return [bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap, bar.trades, complete, source]
