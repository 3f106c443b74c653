"""A seeded simulated market, the default provider.

Every number is a pure function of (seed, ticker, quote time, previous
quote), so a retried tick produces the same quotes, and after a restart the
walk continues from the last stored price instead of jumping.  Moves are a
log-normal random walk with occasional jumps; volume follows the intraday
U-shape with random spikes; a new exchange day opens with a gap.

Vectorised with numpy because the scanner runs it over 10,000 symbols a tick.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import repeat

import numpy as np

from webapp.core.market import EXCHANGE_TZ, exchange_day_start, slot_of
from webapp.core.quotes import Quote
from webapp.providers.base import FetchResult

# Roughly where the default watchlist traded in late 2026, so the demo looks familiar.
KNOWN_PRICES = {
    "AAPL": 255.0, "MSFT": 400.0, "AMZN": 230.0, "GOOGL": 190.0, "TSLA": 420.0,
    "META": 640.0, "NVDA": 180.0, "NFLX": 1100.0, "BRK.B": 470.0, "JNJ": 160.0,
    "V": 330.0, "PG": 165.0, "DIS": 112.0, "JPM": 250.0, "KO": 70.0,
}

MINUTES_PER_SESSION = 390
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-spread hash of uint64 arrays."""
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def _uniform(keys: np.ndarray, stream: int) -> np.ndarray:
    """Uniform (0, 1) numbers, one per key, independent per ``stream``."""
    with np.errstate(over="ignore"):
        h = _mix(keys ^ np.uint64(stream * 0xD1B54A32D192ED03 & 0xFFFFFFFFFFFFFFFF))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _normal(keys: np.ndarray, stream: int) -> np.ndarray:
    u1, u2 = _uniform(keys, stream), _uniform(keys, stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)


def intraday_volume_factor(at: datetime) -> float:
    """Relative volume at this minute: high at the open, dip at lunch, rise into the close.

    Outside the regular session a trickle (pre/post-market).  Mean ~1 in-session.
    """
    local = at.astimezone(EXCHANGE_TZ)
    minute = (local.hour - 9) * 60 + local.minute - 30
    if local.weekday() >= 5 or not 0 <= minute < MINUTES_PER_SESSION:
        return 0.05
    return 0.55 + 2.2 * math.exp(-minute / 25.0) + 1.3 * math.exp(-(MINUTES_PER_SESSION - minute) / 20.0)


class SimProvider:
    name = "sim"

    def __init__(
        self,
        seed: int = 42,
        tick_seconds: int = 60,
        follows_market_hours: bool = False,
        volatility_per_minute: float = 0.0012,
    ) -> None:
        self.seed = seed
        self.tick_seconds = tick_seconds
        self.follows_market_hours = follows_market_hours
        self.serves_past = True  # any minute can be simulated
        self.sigma = volatility_per_minute * math.sqrt(tick_seconds / 60.0)
        self._ids: dict[str, int] = {}

    def _ticker_key(self, ticker: str) -> int:
        key = self._ids.get(ticker)
        if key is None:
            key = (zlib.crc32(ticker.encode()) << 20) ^ (self.seed * 0x9E3779B1)
            key &= 0xFFFFFFFFFFFFFFFF
            self._ids[ticker] = key
        return key

    def quote_time(self, now: datetime) -> datetime:
        """The simulated feed stamps each quote with the tick boundary at or before ``now``."""
        return slot_of(now, self.tick_seconds)[1]

    def base_prices(self, symbols: Sequence[str], keys: np.ndarray) -> np.ndarray:
        """Where a ticker's walk starts when nothing is stored for it yet."""
        # log-uniform between $5 and $500 for symbols we have no anchor for
        drawn = np.exp(math.log(5) + _uniform(keys, 97) * (math.log(500) - math.log(5)))
        known = np.array([KNOWN_PRICES.get(s, np.nan) for s in symbols])
        return np.where(np.isnan(known), drawn, known)

    def fetch(
        self,
        symbols: Sequence[str],
        now: datetime,
        previous: Mapping[str, Quote],
    ) -> FetchResult:
        at = self.quote_time(now)
        # A ticker whose readings came from elsewhere (a replayed file) is not
        # part of the simulated market: inventing a price would overwrite them.
        foreign = {s: f"no {self.name} feed: its readings come from {previous[s].source}"
                   for s in symbols if s in previous and previous[s].source not in (self.name, None)}
        todo = [s for s in symbols if s not in foreign and (s not in previous or previous[s].time < at)]
        if not todo:
            return FetchResult([], foreign)
        slot = int(at.timestamp()) // self.tick_seconds
        tick_keys = np.array([self._ticker_key(s) for s in todo], dtype=np.uint64)
        keys = _mix(tick_keys ^ _mix(np.full(len(todo), slot, dtype=np.uint64)))

        day_start = exchange_day_start(at)
        prev = [previous.get(s) for s in todo]
        has_prev = np.array([p is not None for p in prev])
        new_day = np.array([p is None or p.time < day_start for p in prev])
        if all(p is not None for p in prev):
            last = np.array([p.price for p in prev])
            base = last
        else:
            base = self.base_prices(todo, tick_keys)
            last = np.array([p.price if p is not None else b for p, b in zip(prev, base, strict=True)])

        shock = self.sigma * _normal(keys, 1)
        jump = _uniform(keys, 3) < 0.003
        shock = np.where(jump, shock * 4.0, shock)
        gap = 0.005 * _normal(keys, 5)
        big_gap = _uniform(keys, 7) < 0.03
        gap = np.where(big_gap, np.sign(gap) * (0.03 + 0.07 * _uniform(keys, 8)), gap)
        gap = np.where(new_day, gap, 0.0)

        price = last * np.exp(gap + shock)
        price = np.where(price >= 1.0, np.round(price, 2), np.round(price, 4))
        price = np.maximum(price, 0.0001)

        daily_volume = np.exp(math.log(2e5) + _uniform(tick_keys, 11) * (math.log(5e7) - math.log(2e5)))
        per_tick = daily_volume / MINUTES_PER_SESSION * (self.tick_seconds / 60.0)
        noise = np.exp(0.35 * _normal(keys, 13))
        spike = np.where(_uniform(keys, 15) < 0.004, 4.0 + 6.0 * _uniform(keys, 16), 1.0)
        volume = np.maximum(per_tick * intraday_volume_factor(at) * noise * spike, 1).astype(np.int64)

        # the day's open/high/low carry on from the previous quote; a new day starts them
        def carried(field: str) -> np.ndarray:
            values = np.array([getattr(p, field) if p is not None else None for p in prev], float)
            return np.where(np.isnan(values) | (values == 0), last, values)  # missing: its price

        if new_day.all():
            prev_close = np.where(has_prev, last, np.round(base, 2))
            day_open = high = low = price
        else:
            prev_close = np.where(new_day, np.where(has_prev, last, np.round(base, 2)), carried("prev_close"))
            day_open = np.where(new_day, price, carried("open"))
            high = np.where(new_day, price, np.maximum(carried("high"), price))
            low = np.where(new_day, price, np.minimum(carried("low"), price))
        quotes = list(map(Quote._make, zip(
            todo, price.tolist(), repeat(at), volume.tolist(), prev_close.tolist(), day_open.tolist(),
            high.tolist(), low.tolist(), repeat(self.name), strict=False)))
        return FetchResult(quotes, foreign)

