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
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from itertools import repeat

import numpy as np
import pandas as pd

from webapp.core.market import EXCHANGE_TZ, calendar_for, exchange_day_start, session_minute_starts, slot_of
from webapp.core.quotes import Quote
from webapp.providers.base import FetchResult, HistoryBar

# The simulated market's universe: the defaults and some well-known names, each with a company name
# (so the header's search finds "apple", "google" or "micro" as a user would type them) and roughly
# where it traded in late 2026, so the demo looks familiar.  It lists nothing else: a symbol outside
# it is refused, never given a fabricated history (issue 26, item 10).
LISTED: dict[str, tuple[str, float]] = {
    "AAPL": ("Apple Inc.", 255.0), "MSFT": ("Microsoft Corporation", 400.0),
    "AMZN": ("Amazon.com, Inc.", 230.0), "GOOGL": ("Alphabet Inc. (Google) Class A", 190.0),
    "TSLA": ("Tesla, Inc.", 420.0), "META": ("Meta Platforms, Inc.", 640.0),
    "NVDA": ("NVIDIA Corporation", 180.0), "NFLX": ("Netflix, Inc.", 1100.0),
    "BRK.B": ("Berkshire Hathaway Inc. Class B", 470.0), "JNJ": ("Johnson & Johnson", 160.0),
    "V": ("Visa Inc.", 330.0), "PG": ("The Procter & Gamble Company", 165.0),
    "DIS": ("The Walt Disney Company", 112.0), "JPM": ("JPMorgan Chase & Co.", 250.0),
    "KO": ("The Coca-Cola Company", 70.0),
    "GOOG": ("Alphabet Inc. (Google) Class C", 191.0), "AMD": ("Advanced Micro Devices, Inc.", 160.0),
    "INTC": ("Intel Corporation", 24.0), "MU": ("Micron Technology, Inc.", 110.0),
    "AVGO": ("Broadcom Inc.", 330.0), "QCOM": ("Qualcomm Incorporated", 165.0),
    "TXN": ("Texas Instruments Incorporated", 180.0), "ORCL": ("Oracle Corporation", 230.0),
    "CRM": ("Salesforce, Inc.", 260.0), "ADBE": ("Adobe Inc.", 350.0),
    "CSCO": ("Cisco Systems, Inc.", 68.0), "IBM": ("International Business Machines Corporation", 280.0),
    "PLTR": ("Palantir Technologies Inc.", 170.0), "UBER": ("Uber Technologies, Inc.", 95.0),
    "SHOP": ("Shopify Inc.", 150.0), "PYPL": ("PayPal Holdings, Inc.", 68.0),
    "COIN": ("Coinbase Global, Inc.", 320.0), "SNOW": ("Snowflake Inc.", 220.0),
    "ABNB": ("Airbnb, Inc.", 130.0), "BA": ("The Boeing Company", 215.0),
    "CAT": ("Caterpillar Inc.", 480.0), "GE": ("GE Aerospace", 290.0), "F": ("Ford Motor Company", 12.5),
    "GM": ("General Motors Company", 70.0), "XOM": ("Exxon Mobil Corporation", 115.0),
    "CVX": ("Chevron Corporation", 155.0), "WMT": ("Walmart Inc.", 100.0),
    "COST": ("Costco Wholesale Corporation", 920.0), "TGT": ("Target Corporation", 95.0),
    "HD": ("The Home Depot, Inc.", 380.0), "MCD": ("McDonald's Corporation", 300.0),
    "SBUX": ("Starbucks Corporation", 85.0), "NKE": ("NIKE, Inc.", 65.0), "PEP": ("PepsiCo, Inc.", 145.0),
    "PFE": ("Pfizer Inc.", 25.0), "MRK": ("Merck & Co., Inc.", 90.0), "LLY": ("Eli Lilly and Company", 950.0),
    "UNH": ("UnitedHealth Group Incorporated", 330.0), "BAC": ("Bank of America Corporation", 52.0),
    "WFC": ("Wells Fargo & Company", 85.0), "GS": ("The Goldman Sachs Group, Inc.", 780.0),
    "T": ("AT&T Inc.", 26.0), "VZ": ("Verizon Communications Inc.", 41.0),
    "SPY": ("SPDR S&P 500 ETF Trust", 680.0), "QQQ": ("Invesco QQQ Trust", 610.0),
    "SOFI": ("SoFi Technologies, Inc.", 27.0), "NIO": ("NIO Inc.", 6.5),
}
KNOWN_PRICES = {t: price for t, (_, price) in LISTED.items()}
NAMES = {t: name for t, (name, _) in LISTED.items()}

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

    def daily_volume(self, ticker: str) -> float:
        """The ticker's typical session volume (0.2 to 50 million shares, log-uniform by ticker): its
        history, its minute readings and the simulated stream all draw on it."""
        key = np.array([self._ticker_key(ticker)], np.uint64)
        return float(np.exp(math.log(2e5) + _uniform(key, 11)[0] * (math.log(5e7) - math.log(2e5))))

    def minute_volume(self, ticker: str, minute: int) -> float:
        """The volume expected in the minute starting at epoch ``minute`` × 60 (the intraday shape,
        no noise): what the simulated stream's sizes add up to, so its RVOL is about 1."""
        at = datetime.fromtimestamp(minute * 60, timezone.utc)
        return self.daily_volume(ticker) / MINUTES_PER_SESSION * intraday_volume_factor(at)

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

    def start_prices(self, symbols: Sequence[str]) -> dict[str, float]:
        """:meth:`base_prices` by ticker, at the quote's precision (the simulated stream's anchors)."""
        keys = np.array([self._ticker_key(s) for s in symbols], dtype=np.uint64)
        return dict(zip(symbols, np.round(self.base_prices(symbols, keys), 2).tolist(), strict=True))

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



class SimHistory:
    """Believable past sessions for the simulated market, for a backfill.

    Seeded like the live walk (every number a function of seed, ticker and
    minute), and walked *backwards* from an anchor, the ticker's first stored
    reading (or where its live walk will start), so the history runs
    straight into today's price.  Regular sessions only, early closes
    included; each session opens with a gap.  Daily bars before the minute
    history continue the same way, one seeded return per session.
    """

    name = "sim"

    def __init__(self, seed: int, anchor: Callable[[str], tuple[datetime, float | None]]) -> None:
        self._sim = SimProvider(seed)
        self._anchor = anchor  # ticker -> (first stored reading's time, its price or None)

    def _anchor_price(self, ticker: str) -> tuple[datetime, float]:
        when, price = self._anchor(ticker)
        if price is None:
            key = np.array([self._sim._ticker_key(ticker)], dtype=np.uint64)
            price = float(np.round(self._sim.base_prices([ticker], key)[0], 2))
        return when, price

    def _keys(self, ticker: str, epochs: np.ndarray) -> np.ndarray:
        base = np.full(len(epochs), self._sim._ticker_key(ticker), dtype=np.uint64)
        return _mix(base ^ _mix(epochs.astype(np.uint64) ^ np.uint64(0xB4C4F11E)))

    def _minutes(self, ticker: str, start: datetime, anchor_at: datetime, anchor_price: float
                 ) -> tuple[list[datetime], np.ndarray, np.ndarray, np.ndarray]:
        """Minutes in [start, anchor_at), their closes, opens and volumes."""
        times = session_minute_starts(start, anchor_at)
        if not times:
            return [], np.array([]), np.array([]), np.array([])
        # the anchor's own minute last: its return is the step from the history into it
        epochs = np.array([*(int(t.timestamp()) for t in times), int(anchor_at.timestamp())], np.int64)
        keys = self._keys(ticker, epochs)
        ret = self._sim.sigma * _normal(keys, 21)
        ret = np.where(_uniform(keys, 23) < 0.003, ret * 4.0, ret)
        opens_day = np.r_[True, np.diff(epochs) > 60]  # a session's first minute: the overnight gap
        ret = np.where(opens_day, ret + 0.005 * _normal(keys, 25), ret)
        # closes[i] * exp(ret[i + 1]) == closes[i + 1], and the last close * exp(ret[-1]) is the anchor
        log_close = math.log(anchor_price) - np.cumsum(ret[1:][::-1])[::-1]
        keys, ret = keys[:-1], ret[:-1]
        close = np.exp(log_close)
        opened = close / np.exp(ret)
        daily = self._sim.daily_volume(ticker)
        factor = np.array([intraday_volume_factor(t) for t in times])
        volume = np.maximum(daily / MINUTES_PER_SESSION * factor * np.exp(0.35 * _normal(keys, 29)), 1)
        return times, close, opened, volume.astype(np.int64)

    @staticmethod
    def _price(x: np.ndarray) -> np.ndarray:
        return np.where(x >= 1.0, np.round(x, 2), np.round(x, 4))

    def minute_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        anchor_at, anchor_price = self._anchor_price(ticker)
        times, close, opened, volume = self._minutes(ticker, start, anchor_at, anchor_price)
        keep = np.array([t < end for t in times], bool)  # the walk always runs from the anchor
        times = [t for t, k in zip(times, keep.tolist(), strict=True) if k]
        close, opened, volume = close[keep], opened[keep], volume[keep]
        if not times:
            return []
        keys = self._keys(ticker, np.array([int(t.timestamp()) for t in times], np.int64))
        wick = np.abs(self._sim.sigma * 0.6 * _normal(keys, 31))
        high = np.maximum(opened, close) * (1 + wick)
        low = np.minimum(opened, close) * (1 - np.abs(self._sim.sigma * 0.6 * _normal(keys, 33)))
        o, h, lo, c = (self._price(a).tolist() for a in (opened, high, low, close))
        return [HistoryBar(t, o[i], max(h[i], o[i], c[i]), min(lo[i], o[i], c[i]), c[i], int(volume[i]))
                for i, t in enumerate(times)]

    def daily_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        anchor_at, anchor_price = self._anchor_price(ticker)
        minutes = self._minutes(ticker, end, anchor_at, anchor_price)  # the minute history after ``end``
        first_open = float(minutes[2][0]) if len(minutes[0]) else anchor_price
        cal = calendar_for(end)
        days = [d for d in cal.sessions_in_range(pd.Timestamp(start.astimezone(EXCHANGE_TZ).date()),
                                                 pd.Timestamp(end.astimezone(EXCHANGE_TZ).date()))
                if datetime.combine(d.date(), datetime.min.time(), tzinfo=EXCHANGE_TZ) < end]
        if not days:
            return []
        epochs = np.array([int(d.timestamp()) for d in days], np.int64)
        keys = self._keys(ticker, epochs)
        sigma_day = self._sim.sigma * math.sqrt(MINUTES_PER_SESSION)
        ret = sigma_day * _normal(keys, 41)  # a session's open -> close
        gap = 0.005 * _normal(keys, 43)  # the previous close -> this open
        # walk back from the open after the last day: close[i] = next open / exp(gap[i + 1])
        next_gap = 0.005 * float(_normal(self._keys(ticker, epochs[-1:] + 86_400), 43)[0])
        log_open_next = math.log(first_open)
        closes, opens = np.empty(len(days)), np.empty(len(days))
        for i in range(len(days) - 1, -1, -1):
            closes[i] = math.exp(log_open_next - (gap[i + 1] if i + 1 < len(days) else next_gap))
            opens[i] = closes[i] / math.exp(ret[i])
            log_open_next = math.log(opens[i])
        range_ = np.abs(sigma_day * 0.5 * _normal(keys, 45))
        high = np.maximum(opens, closes) * (1 + range_)
        low = np.minimum(opens, closes) * (1 - np.abs(sigma_day * 0.5 * _normal(keys, 47)))
        base_volume = np.exp(math.log(2e5) + _uniform(np.array([self._sim._ticker_key(ticker)], np.uint64),
                                                         11)[0] * (math.log(5e7) - math.log(2e5)))
        volume = (base_volume * np.exp(0.3 * _normal(keys, 49))).astype(np.int64)
        o, h, lo, c = (self._price(a).tolist() for a in (opens, high, low, closes))
        return [HistoryBar(datetime.combine(d.date(), datetime.min.time(), tzinfo=EXCHANGE_TZ)
                           .astimezone(timezone.utc), o[i], max(h[i], o[i], c[i]), min(lo[i], o[i], c[i]),
                           c[i], int(volume[i]))
                for i, d in enumerate(days)]
