"""What a backfill fetches and how a provider's past bars become stored readings (pure).

A newly tracked symbol gets minute bars for the last ``minute_sessions``
sessions (and today's minutes before its first live reading), and daily
bars for ``daily_days`` calendar days before those, so 5D and 1M charts,
RVOL and rules have history at once.  A minute bar becomes one reading:
its close is the price, its own open/high/low are kept beside it, and the
day's open/high/low, the previous close and the SMA are computed as the
live tick would have, so the history reads like the tracker's own.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

import numpy as np

from webapp.core.indicator_series import sma
from webapp.core.market import EXCHANGE_TZ, exchange_day_start, sessions_back
from webapp.core.quotes import Quote


class HistoryBar(NamedTuple):
    """One bar of a provider's history: ``time`` is its start (UTC)."""

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int | None


class BarReading(NamedTuple):
    """A backfilled reading: the quote as the tick stores it, its SMA, and the minute's own bar."""

    quote: Quote
    sma: float | None
    bar_open: float
    bar_high: float
    bar_low: float


@dataclass(frozen=True)
class Plan:
    minute_start: datetime
    minute_end: datetime  # the first stored reading (or now): live readings are never replaced
    sessions: tuple[datetime, ...]  # each minute session's New York midnight, oldest first
    daily_start: datetime
    daily_end: datetime


def plan(now: datetime, minute_sessions: int, daily_days: int, first_stored: datetime | None) -> Plan:
    """The spans to fetch for a ticker whose first stored reading is ``first_stored``."""
    end = min(first_stored, now) if first_stored else now
    days = sessions_back(now, minute_sessions) if minute_sessions else []
    sessions = tuple(d for d in [*days, exchange_day_start(now)] if d < end) if minute_sessions else ()
    start = sessions[0] if sessions else end
    return Plan(start, end, sessions, start - timedelta(days=daily_days), start)


def session_date(when: datetime) -> date:
    return when.astimezone(EXCHANGE_TZ).date()


def readings_of(ticker: str, bars: Sequence[HistoryBar], source: str, sma_period: int,
                prev_close: float | None, prior: Sequence[float]) -> list[BarReading]:
    """Minute bars (oldest first) as readings.  ``prev_close`` is the last close before the
    first bar's session and ``prior`` the closes just before the first bar (for the SMA)."""
    if not bars:
        return []
    warm = list(prior[-(sma_period - 1):]) if sma_period > 1 else []
    closes = [*warm, *(b.close for b in bars)]
    smas = sma(np.array(closes, float), sma_period)[len(closes) - len(bars):].tolist()
    out: list[BarReading] = []
    day: date | None = None
    day_open = high = low = 0.0
    last_close = prev_close
    for b, s in zip(bars, smas, strict=True):
        d = session_date(b.time)
        if d != day:
            if day is not None:
                prev_close = last_close
            day, day_open, high, low = d, b.open, b.high, b.low
        high, low = max(high, b.high), min(low, b.low)
        quote = Quote(ticker, b.close, b.time, b.volume, prev_close, day_open, high, low, source)
        out.append(BarReading(quote, None if s != s else round(s, 4), b.open, b.high, b.low))
        last_close = b.close
    return out
