"""Trades into second and minute bars: the pure core of the streaming path.

A stream delivers trades late, out of order and with condition codes that
say what each print may move.  Everything here is data in, values out, with
the time an argument, so the stream process, replays and tests share it:

* a trade is bucketed by **its own timestamp**, never by when it arrived;
* a bar's open is its earliest eligible print and its close the latest (ties
  broken by price, then size), so any order of the same trades builds the
  same bars;
* a late trade updates its bucket, but the ticker's **last price never moves
  back** to an older print;
* each provider's condition codes decide what a print counts toward
  (:func:`eligibility`): odd lots and average-price prints add volume but do
  not set last, high or low; official open/close re-reports add nothing to
  volume (the SIP rules, as the providers table them).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from webapp.core.market import EXCHANGE_TZ
from webapp.core.quotes import Quote


class Trade(NamedTuple):
    ticker: str
    price: float
    size: float
    time_ms: int  # the trade's own time (exchange or SIP), Unix milliseconds
    conditions: tuple[str, ...] = ()
    id: tuple | None = None  # the provider's unique key, where it has one (None: never deduplicated)


class Counts(NamedTuple):
    """What one print may change."""

    volume: bool
    last: bool  # last price, high and low


# Consolidated (CTS/UTDF) letters as Alpaca sends them.  Letters are tape-specific; these
# are the ones both tapes agree on or Alpaca's minute-bar exclusion list names.
_ALPACA_NO_LAST = frozenset("B W C T U M Q N H I V 7 4 G P R Z 9".split())
_ALPACA_NO_VOLUME = frozenset("M Q 9".split())
# Massive/Polygon numeric condition ids (same rules, their numbering).
_POLYGON_NO_LAST = frozenset({2, 5, 7, 10, 12, 13, 15, 16, 20, 21, 22, 29, 33, 37, 38, 52, 53})
_POLYGON_NO_VOLUME = frozenset({15, 16, 38})


@lru_cache(maxsize=8192)
def _eligibility(provider: str, conditions: tuple) -> Counts:
    return eligibility(provider, conditions)


def eligibility(provider: str, conditions: Sequence[str | int]) -> Counts:
    """What a print with ``conditions`` counts toward, by ``provider``'s table.

    The simulated feed uses the consolidated letters as Alpaca does.
    Finnhub's codes are its own mapping with no published SIP meaning: its
    prints count fully.
    """
    if provider in ("alpaca", "sim"):
        codes = {str(c) for c in conditions}
        return Counts(not codes & _ALPACA_NO_VOLUME, not codes & _ALPACA_NO_LAST)
    if provider == "polygon":
        ids = {int(c) for c in conditions if str(c).lstrip("-").isdigit()}
        return Counts(not ids & _POLYGON_NO_VOLUME, not ids & _POLYGON_NO_LAST)
    return Counts(True, True)


_ALL = Counts(True, True)


def counts_of(provider: str, conditions: tuple) -> Counts:
    """:func:`eligibility`, cached per distinct code set (a feed repeats a handful of them)."""
    return _eligibility(provider, conditions) if conditions else _ALL


@dataclass(slots=True)
class Bar:
    """One ticker's OHLCV over [start, start + width), with VWAP and the trade count."""

    ticker: str
    start: int  # seconds since the epoch
    width: int
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    volume: float = 0.0
    price_volume: float = 0.0
    trades: int = 0
    first_key: tuple[int, float, float] | None = None  # (time, price, size) of the open
    last_key: tuple[int, float, float] | None = None  # ... and of the close
    high_ms: int | None = None  # when the high printed (its first print), for alerts on the print
    low_ms: int | None = None
    # the extremes since the bar was last handed off (Tape.hand_off resets them), with when they printed:
    # a price that crossed a level and came back between two hand-offs is judged at them
    seg_high: float | None = None
    seg_low: float | None = None
    seg_high_ms: int = 0
    seg_low_ms: int = 0

    @property
    def vwap(self) -> float | None:
        return self.price_volume / self.volume if self.volume else None

    def add(self, trade: Trade, counts: Counts) -> None:
        self.trades += 1
        if counts.volume:
            self.volume += trade.size
            self.price_volume += trade.price * trade.size
        if not counts.last:
            return
        key = (trade.time_ms, trade.price, trade.size)
        if self.first_key is None or key < self.first_key:
            self.first_key, self.open = key, trade.price
        if self.last_key is None or key > self.last_key:
            self.last_key, self.close = key, trade.price
        price = trade.price
        if self.high is None or price > self.high or (price == self.high and trade.time_ms < self.high_ms):
            self.high, self.high_ms = price, trade.time_ms
        if self.low is None or price < self.low or (price == self.low and trade.time_ms < self.low_ms):
            self.low, self.low_ms = price, trade.time_ms
        seg = self.seg_high
        if seg is None:
            self.seg_high = self.seg_low = price
            self.seg_high_ms = self.seg_low_ms = trade.time_ms
        elif price > seg:
            self.seg_high, self.seg_high_ms = price, trade.time_ms
        elif price < self.seg_low:  # type: ignore[operator]
            self.seg_low, self.seg_low_ms = price, trade.time_ms

    def as_json(self) -> dict[str, float | int | str | None]:
        return {"ticker": self.ticker, "start": self.start, "open": self.open, "high": self.high,
                "low": self.low, "close": self.close, "volume": self.volume, "vwap": self.vwap,
                "trades": self.trades}


class BarBook:
    """Open bars of one width for every ticker, the last sale per ticker, and closing by time.

    ``add`` takes trades in any order; ``close_before(t)`` hands over the
    bars that ended by ``t`` (the caller waits a grace period for late
    prints); a trade for a bar already handed over is returned by ``add`` as
    late, for the caller to revise that bar, and still never moves the last
    price back.
    """

    def __init__(self, width: int, provider: str) -> None:
        self.width = width
        self.provider = provider
        self.open: dict[tuple[str, int], Bar] = {}
        self.last: dict[str, tuple[tuple[int, float, float], float]] = {}  # ticker -> (key, price)
        self.closed_until = 0  # bars starting before this were handed over

    def start_of(self, time_ms: int) -> int:
        return (time_ms // 1000) // self.width * self.width

    def add(self, trades: Iterable[Trade]) -> list[Trade]:
        """Apply ``trades``; returns those that fell in a bar already closed (late)."""
        late: list[Trade] = []
        provider = self.provider
        for t in trades:
            counts = _eligibility(provider, t.conditions) if t.conditions else _ALL
            if counts.last:
                key = (t.time_ms, t.price, t.size)
                seen = self.last.get(t.ticker)
                if seen is None or key > seen[0]:
                    self.last[t.ticker] = (key, t.price)
            start = self.start_of(t.time_ms)
            if start < self.closed_until:
                late.append(t)
                continue
            bar = self.open.get((t.ticker, start))
            if bar is None:
                bar = self.open[(t.ticker, start)] = Bar(t.ticker, start, self.width)
            bar.add(t, counts)
        return late

    def close_before(self, until: int) -> list[Bar]:
        """The bars that end at or before ``until`` (seconds), oldest first, removed from the book."""
        done = sorted((b for b in self.open.values() if b.start + self.width <= until),
                      key=lambda b: (b.start, b.ticker))
        for b in done:
            del self.open[(b.ticker, b.start)]
        self.closed_until = max(self.closed_until, until - until % self.width)
        return done

    def last_price(self, ticker: str) -> float | None:
        seen = self.last.get(ticker)
        return seen[1] if seen else None


def bars_of(trades: Iterable[Trade], width: int, provider: str) -> dict[tuple[str, int], Bar]:
    """Every bar the trades make, all at once (what a replay or a test compares against)."""
    book = BarBook(width, provider)
    book.add(trades)
    return dict(book.open)


class Throttle:
    """At most one push per ticker every ``interval_ms``: the newest payload wins, none queue up.

    A liquid name trades hundreds of times a second; a browser needs a few
    frames.  ``offer`` keeps only the latest payload per ticker; ``due``
    returns those whose ticker was last pushed ``interval_ms`` ago or more.
    """

    def __init__(self, interval_ms: int = 250) -> None:
        self.interval_ms = interval_ms
        self.pending: dict[str, dict] = {}
        self.sent_at: dict[str, int] = {}

    def offer(self, ticker: str, payload: dict) -> None:
        self.pending[ticker] = payload

    def due(self, now_ms: int) -> list[dict]:
        ready = [t for t in self.pending if now_ms - self.sent_at.get(t, -(1 << 62)) >= self.interval_ms]
        for t in ready:
            self.sent_at[t] = now_ms
        return [self.pending.pop(t) for t in ready]


class Dedup:
    """Drops a trade whose provider key was already seen (a re-sent frame, a duplicate id).

    Memory is bounded whatever the rate: the keys' hashes are kept in two
    generations of ``capacity`` each (the newer fills, then replaces the
    older), so the window is the last ``capacity``-``2 × capacity`` trades:
    seconds at a full-market burst, minutes on a watchlist, which is where
    re-sent prints come (the same frame twice, an id repeated within a frame).
    Trades without a key (Finnhub has none: identical prints are real
    trades) always pass.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.current: set[int] = set()
        self.older: set[int] = set()
        self.dropped = 0

    def fresh(self, trades: Iterable[Trade]) -> list[Trade]:
        out = []
        current, older = self.current, self.older
        for t in trades:
            if t.id is None:
                out.append(t)
                continue
            key = hash(t.id)
            if key in current or key in older:
                self.dropped += 1
                continue
            current.add(key)
            out.append(t)
            if len(current) >= self.capacity:
                self.older, self.current = current, set()
                current, older = self.current, self.older
        return out


def before_the_open(end: datetime | float) -> bool:
    """Whether a bar ending at ``end`` (a datetime, or epoch seconds) is pre-market: it ends at or
    before 09:30 New York."""
    at = end if isinstance(end, datetime) else datetime.fromtimestamp(end, timezone.utc)
    ny = at.astimezone(EXCHANGE_TZ)
    return (ny.hour, ny.minute) < (9, 30) or (ny.hour, ny.minute, ny.second, ny.microsecond) == (9, 30, 0, 0)


def day_open_of(end: datetime, o: float | None, c: float | None, earlier: Quote | None) -> float | None:
    """The day's open as the gap reads it, Trade Ideas' "expected open": before the open, the last
    pre-market trade (this bar's close); the first regular bar's open from then on (carried from
    ``earlier``, the day's previous reading, once it is a regular one)."""
    if before_the_open(end):
        return c
    if earlier is None or earlier.open is None or before_the_open(earlier.time):
        return o
    return earlier.open


def per_distinct(values: np.ndarray, f: Callable[[Any], Any]) -> np.ndarray:
    """``f`` of each value, computed once per distinct one (a second's bars share a few bar times)."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([f(v) for v in distinct.tolist()])[inverse] if len(values) else np.array([])


def day_opens(bar_time: np.ndarray, bar_open: np.ndarray, close: np.ndarray, same: np.ndarray,
              held: np.ndarray, held_time: np.ndarray) -> np.ndarray:
    """:func:`day_open_of` for many bars at once (epoch ends ``bar_time``; ``held``, ``held_time``: the
    day's previous reading's open and time where ``same`` is its day; NaN: none), as the live lists
    advance thousands of tickers a second."""
    def pre(t: float) -> bool:
        return t != t or before_the_open(t)  # no reading (NaN) counts as none before the open
    out = np.array(bar_open, float)
    carried = same & ~np.isnan(held) & ~per_distinct(held_time, pre).astype(bool)
    out[carried] = held[carried]
    before = per_distinct(bar_time, pre).astype(bool)
    out[before] = close[before]
    return out


def quote_of_bar(ticker: str, bar: Sequence[float | None], at: datetime, previous: Quote | None,
                 day_start: datetime, source: str) -> Quote:
    """The minute pipeline's reading from a closed stream bar ``(open, high, low, close, volume)``.

    The reading's price is the bar's close and its volume the bar's; the
    day's high and low carry on from the previous reading (a new exchange day
    starts them from this bar), and the previous close is the last reading of
    the day before, as the simulated market does it.  The day's open is what
    the gap reads (:func:`day_open`).
    """
    o, h, low, c, v = bar[:5]
    new_day = previous is None or previous.time < day_start
    if new_day:
        prev_close = previous.price if previous is not None else None
        high, low_ = h, low
    else:
        prev_close = previous.prev_close
        high = h if previous.high is None or h is None else max(previous.high, h)
        low_ = low if previous.low is None or low is None else min(previous.low, low)
    day_open = day_open_of(at, o, c, None if new_day else previous)
    return Quote(ticker, float(c), at.astimezone(timezone.utc), int(v or 0), prev_close, day_open,
                 high, low_, source)
