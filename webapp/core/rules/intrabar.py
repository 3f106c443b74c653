"""Rules on the print: the still-open bar judged at its trades, as TradingView does on a real-time bar.

The stream hands over each ticker's provisional bar every flush (coalesced:
its open, high, low and volume so far, its last trade, and when its high and
low printed).  Judged here, that bar is the newest bar of the series: its
close is the price of the trade being judged, so an operand over bars
(``sma(n)``, ``rsi(n)``, a channel) takes it as its last value, and ``x[1]``
is the last *closed* bar.  A fire therefore means: the condition held on the
provisional bar at that trade.

Between two hand-offs many trades may print; judging only the last one could
miss a cross that happened and reverted.  So each hand-off carries the
highest and lowest trade since the previous one (the segment's extremes,
with their times; several hand-offs judged at once combine theirs), and is
judged at up to three prices, oldest first: the segment's low and high, each
only if it printed after the last trade judged, then the last trade.  A
condition that turns on the price being above or below something (crosses,
``greater_than``, ``less_than``, moves) holds at some trade of the segment
exactly when it holds at the segment's extreme on that side, and the extreme
is what is judged.  The bar's own high and low would not do: a segment
below an earlier high of the bar (a price back above a level after a dip,
with the rule re-armed by the dip) has its extreme nowhere else.  What
stays approximate is a segment with several turns on one side (above, below,
above again): its two extremes are judged, not each turn; and a condition
that needs the price *inside* a range (``entering_channel``) is judged at
those prices only.

Pure: data in, values out; the caller passes every time.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import numpy as np

from webapp.core.market import EXCHANGE_TZ

_tuple_new = tuple.__new__
NO_SEGMENT = (float("nan"), 0, float("nan"), 0)  # a hand-off that kept none (the fields' defaults)


class Provisional(NamedTuple):
    """One ticker's open bar as the stream handed it over (``bar_time``: the bar's end, its slot).

    A named tuple: thousands are made every 100 ms, and a frozen dataclass costs several times more.
    Read from the stream's hand-offs as columns (:mod:`webapp.core.handoff`), and made only for the
    tickers a rule names."""

    ticker: str
    bar_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    last_ms: int
    high_ms: int
    low_ms: int
    # the highest and lowest trade since the previous hand-off, and when (a stored second, or a
    # hand-off of 11 fields, has none: its bar's extremes stand in, as judged before they were kept)
    seg_high: float = float("nan")
    seg_high_ms: int = 0
    seg_low: float = float("nan")
    seg_low_ms: int = 0

    def segment(self) -> tuple[float, int, float, int]:
        """(high, when, low, when) since the previous hand-off; the bar's own when none was kept."""
        if self.seg_high == self.seg_high:  # not NaN
            return self.seg_high, self.seg_high_ms, self.seg_low, self.seg_low_ms
        return self.high, self.high_ms, self.low, self.low_ms


def coalesce(bars: Iterable[Provisional]) -> list[Provisional]:
    """The newest hand-off of each ticker's bar (a burst of flushes is judged once, at its latest
    state, which carries the bar's extremes so far), its segment the highest and lowest of the
    hand-offs it stands for, in bar order per ticker."""
    newest: dict[tuple[str, int], Provisional] = {}
    for b in bars:
        key = (b.ticker, b.bar_time)
        held = newest.get(key)
        newest[key] = b if held is None else merged(held, b)
    return sorted(newest.values(), key=lambda b: (b.bar_time, b.ticker))


def merged(a: Provisional, b: Provisional) -> Provisional:
    """Two hand-offs of one ticker's bar as one: the newer's state, the segment of both."""
    later, earlier = (b, a) if (b.trades, b.last_ms) >= (a.trades, a.last_ms) else (a, b)
    hi, hi_ms, lo, lo_ms = later.segment()
    e_hi, e_hi_ms, e_lo, e_lo_ms = earlier.segment()
    if e_hi > hi:
        hi, hi_ms = e_hi, e_hi_ms
    if e_lo < lo:
        lo, lo_ms = e_lo, e_lo_ms
    return _tuple_new(Provisional, (*later[:11], hi, hi_ms, lo, lo_ms))  # (_replace costs 3 times more)


class Print(NamedTuple):
    """A price the bar is judged at: which trade (its time) and what it was (low, high, last)."""

    time_ms: int
    price: float
    what: str


def prints(bar: Provisional, judged_ms: int | None) -> list[Print]:
    """The prices to judge ``bar`` at, oldest first: the lowest and highest trade since the previous
    hand-off when they printed after ``judged_ms`` (the last trade already judged in this bar; None:
    none yet), then its last trade.  An extreme of the bar says so ("high"); a segment's that is
    not is "trade"."""
    out: list[Print] = []
    hi, hi_ms, lo, lo_ms = bar.segment()
    for ms, price, what in ((lo_ms, lo, "low" if lo == bar.low else "trade"),
                            (hi_ms, hi, "high" if hi == bar.high else "trade")):
        if (judged_ms is None or ms > judged_ms) and ms < bar.last_ms:
            out.append(Print(ms, price, what))
    if judged_ms is None or bar.last_ms > judged_ms:
        out.append(Print(bar.last_ms, bar.close, "last"))
    out.sort(key=lambda p: (p.time_ms, p.what == "last"))
    return out


WHAT = ("low", "high", "trade", "last")  # a Print's ``what``, by its code in :func:`print_columns`
_NONE = np.iinfo(np.int64).max


class PrintColumns(NamedTuple):
    """:func:`prints` of many bars: row i's first ``count[i]`` prints, oldest first."""

    time_ms: np.ndarray  # (n, 3) int64
    price: np.ndarray  # (n, 3) float
    what: np.ndarray  # (n, 3) codes into WHAT
    count: np.ndarray  # (n,)

    def at(self, row: int, k: int) -> Print:
        return Print(int(self.time_ms[row, k]), float(self.price[row, k]), WHAT[int(self.what[row, k])])


# a hand-off matrix's columns (:mod:`webapp.core.handoff`): Provisional's fields after the ticker
COLUMNS = Provisional._fields[1:]
AT = {name: i for i, name in enumerate(COLUMNS)}


def print_columns(cols: np.ndarray, judged_ms: np.ndarray) -> PrintColumns:
    """:func:`prints` of many bars at once: ``cols`` their hand-off matrix (a row per bar, Provisional's
    fields after the ticker), ``judged_ms`` each one's last trade judged in its bar, -1 for none.  At a
    minute's first trades the evaluator judges thousands of bars a hand-off, and a list of Print
    objects each cost more than the rules judged at them."""
    n = len(cols)
    high, low, close = cols[:, AT["high"]], cols[:, AT["low"]], cols[:, AT["close"]]
    last_ms = cols[:, AT["last_ms"]].astype(np.int64)
    kept = ~np.isnan(cols[:, AT["seg_high"]])  # a segment was handed over (else the bar's extremes stand in)
    hi, lo = np.where(kept, cols[:, AT["seg_high"]], high), np.where(kept, cols[:, AT["seg_low"]], low)
    hi_ms = np.where(kept, cols[:, AT["seg_high_ms"]], cols[:, AT["high_ms"]]).astype(np.int64)
    lo_ms = np.where(kept, cols[:, AT["seg_low_ms"]], cols[:, AT["low_ms"]]).astype(np.int64)
    ms = np.stack([lo_ms, hi_ms, last_ms], axis=1)
    ok = ms > judged_ms[:, None]
    ok[:, :2] &= ms[:, :2] < last_ms[:, None]
    # oldest first; a tie between the low and the high keeps that order, and the last trade comes last
    order = np.argsort(np.where(ok, ms * 2 + np.array([0, 0, 1]), _NONE), axis=1, kind="stable")
    what = np.stack([np.where(lo == low, 0, 2), np.where(hi == high, 1, 2), np.full(n, 3)], axis=1)
    price = np.stack([lo, hi, close], axis=1)
    return PrintColumns(np.take_along_axis(ms, order, 1), np.take_along_axis(price, order, 1),
                        np.take_along_axis(what, order, 1), ok.sum(axis=1))


CLOSED = ("close", "volume", "prev_close", "day_high", "day_low")


def with_columns(closed: Mapping[str, np.ndarray], times: Sequence[int], bar_time: int, high: np.ndarray,
                 low: np.ndarray, volume: np.ndarray, price: np.ndarray
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The stored bars of some tickers (``closed``: tickers × times, :data:`CLOSED` columns as the tick
    keeps them) with each one's provisional bar (``high``, ``low``, ``volume``: rows in the same order)
    as the newest, its close ``price``; the day's high and low include it, the previous close carries
    within the New York day.  The provisional bars end at ``bar_time``, after every stored one."""
    n = len(price)
    last = {k: v[:, -1] if v.shape[1] else np.full(n, np.nan) for k, v in closed.items()}
    same_day = bool(len(times)) and _day(times[-1]) == _day(bar_time)
    column = {"close": np.asarray(price, float), "volume": np.asarray(volume, float)}
    if same_day:
        column["prev_close"] = last["prev_close"]
        column["day_high"] = np.fmax(last["day_high"], high)
        column["day_low"] = np.fmin(last["day_low"], low)
    else:  # the day's first bar: yesterday's last close is the previous close
        column["prev_close"] = last["close"]
        column["day_high"], column["day_low"] = high, low
    series = {k: np.concatenate([closed[k], column[k][:, None]], axis=1) for k in CLOSED}
    return series, np.array([*times, bar_time], np.int64)


def _day(epoch: int) -> int:
    return datetime.fromtimestamp(int(epoch) - 1, EXCHANGE_TZ).toordinal()  # a bar's end is in its day


def describe(p: Print) -> str:
    """Where the fire came from, for its explanation: "on the print: last 101.02 at 10:30:02.417"."""
    at = datetime.fromtimestamp(p.time_ms / 1000, EXCHANGE_TZ)
    return f"on the print: {p.what} {p.price:g} at {at:%H:%M:%S}.{p.time_ms % 1000:03d} (provisional bar)"
