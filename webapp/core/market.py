"""Market state from the exchange calendar (XNYS by default).

Weekends, holidays and early closes come from ``exchange_calendars``; no
hour is hard-coded, and every boundary is computed in UTC from the
calendar, so DST changes cannot shift a session.  The time is an argument.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

EXCHANGE = "XNYS"
EXCHANGE_TZ = ZoneInfo("America/New_York")


@lru_cache(maxsize=4)
def _calendar(name: str, year: int) -> xcals.ExchangeCalendar:
    # A calendar spanning the year before to the year after `year`: loading is
    # quick and next_open never runs off the end around New Year.
    return xcals.get_calendar(name, start=f"{year - 1}-01-01", end=f"{year + 1}-12-31")


def calendar_for(now: datetime, name: str = EXCHANGE) -> xcals.ExchangeCalendar:
    return _calendar(name, now.astimezone(timezone.utc).year)


@dataclass(frozen=True, slots=True)
class MarketState:
    """Whether the exchange is trading at ``at``, and when that changes."""

    at: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime
    early_close: bool  # the current (or next) session closes early
    exchange: str = EXCHANGE

    @property
    def state(self) -> str:
        return "open" if self.is_open else "closed"

    def as_json(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "state": self.state,
            "is_open": self.is_open,
            "next_open": self.next_open.isoformat(),
            "next_close": self.next_close.isoformat(),
            "early_close": self.early_close,
        }


def _utc(ts: pd.Timestamp) -> datetime:
    return ts.to_pydatetime().astimezone(timezone.utc)


def market_state(now: datetime, name: str = EXCHANGE) -> MarketState:
    """The exchange's state at ``now`` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("market_state needs an aware datetime")
    cal = calendar_for(now, name)
    minute = pd.Timestamp(now).tz_convert("UTC").floor("min")
    is_open = bool(cal.is_open_on_minute(minute))
    next_open = _utc(cal.next_open(minute))
    next_close = _utc(cal.next_close(minute))
    session = cal.minute_to_session(minute, direction="next")
    close_local = cal.session_close(session).tz_convert(EXCHANGE_TZ)
    open_local = cal.session_open(session).tz_convert(EXCHANGE_TZ)
    # Regular XNYS hours are 6.5 h; a shorter session is an early close.
    early = (close_local - open_local) < pd.Timedelta(hours=6, minutes=30)
    return MarketState(now, is_open, next_open, next_close, bool(early), name)


def slot_of(now: datetime, tick_seconds: int) -> tuple[int, datetime]:
    """The tick slot ``now`` falls in, and the slot's start time (UTC).

    Slots are counted from the epoch, so every process agrees on them.
    """
    slot = int(now.timestamp()) // tick_seconds
    return slot, datetime.fromtimestamp(slot * tick_seconds, tz=timezone.utc)


def exchange_date(at: datetime) -> str:
    """The calendar date at the exchange (America/New_York) as ISO text."""
    return at.astimezone(EXCHANGE_TZ).date().isoformat()


def exchange_day_start(at: datetime) -> datetime:
    """Midnight at the exchange on ``at``'s exchange date, as UTC."""
    local = at.astimezone(EXCHANGE_TZ)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(timezone.utc)


RANGES = ("1d", "5d", "1m", "6m", "ytd", "1y", "all")  # TradingView's chart ranges
RANGE_ALIASES = {"today": "1d"}  # the names earlier links used
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MONTHS_BACK = {"1m": 1, "6m": 6, "1y": 12}


def range_start(now: datetime, name: str, exchange: str = EXCHANGE) -> datetime:
    """Where a chart range begins, at midnight in New York of a session day.

    ``1d`` is the latest session (on a weekend or holiday, the last one;
    before today's open, the last one and today's pre-market), so
    pre-market readings count with their session; ``5d`` the last five
    sessions; ``1m``, ``6m`` and ``1y`` go back that many calendar months to
    the first session on or after; ``ytd`` starts at the year's first
    session; ``all`` is everything kept.
    """
    name = RANGE_ALIASES.get(name, name)
    if name == "all":
        return _EPOCH
    if name not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}")
    cal = calendar_for(now, exchange)
    today = pd.Timestamp(now.astimezone(EXCHANGE_TZ).date())
    session = cal.date_to_session(today, direction="previous")
    if session == today and now < cal.session_open(today):  # before the open: the last session, then today
        session = cal.previous_session(today)
    if name == "5d":
        session = cal.session_offset(session, -4)
    elif name in _MONTHS_BACK or name == "ytd":
        back = (pd.Timestamp(today.year, 1, 1) if name == "ytd"
                else today - pd.DateOffset(months=_MONTHS_BACK[name]))
        session = cal.date_to_session(max(back, cal.first_session), direction="next")
    midnight = datetime.combine(session.date(), datetime.min.time(), tzinfo=EXCHANGE_TZ)
    return midnight.astimezone(timezone.utc)


def gap_slots(
    last: int | None, slot: int, serves_past: bool, limit: int, open_at: Callable[[int], bool]
) -> tuple[list[int], list[int]]:
    """After a stall: (the missed slots to run before ``slot``, in order; those to record as missed).

    ``last`` is the last slot that ran (None: nothing to compare with).  Only
    slots the feed would have traded in count (``open_at``).  A provider that
    answers for a past minute runs up to ``limit`` of the newest of them; a
    live feed cannot, so every one is recorded as missed, never skipped.
    """
    if last is None or slot - last <= 1:
        return [], []
    gap = [s for s in range(last + 1, slot) if open_at(s)]
    if not serves_past:
        return [], gap
    cut = max(0, len(gap) - limit)
    return gap[cut:], gap[:cut]


def sessions_back(now: datetime, n: int, exchange: str = EXCHANGE) -> list[datetime]:
    """The midnights (New York, as UTC) of the ``n`` sessions before ``now``'s date, oldest first."""
    cal = calendar_for(now, exchange)
    today = pd.Timestamp(now.astimezone(EXCHANGE_TZ).date())
    last = cal.date_to_session(today - pd.Timedelta(days=1), direction="previous")
    first = cal.session_offset(last, -(n - 1)) if n > 0 else last
    days = cal.sessions_in_range(first, last) if n > 0 else []
    return [datetime.combine(d.date(), datetime.min.time(), tzinfo=EXCHANGE_TZ).astimezone(timezone.utc)
            for d in days]


def session_minute_starts(start: datetime, end: datetime, exchange: str = EXCHANGE) -> list[datetime]:
    """Every regular-session minute (its start, UTC) in [start, end), early closes included."""
    cal = calendar_for(end, exchange)
    lo = max(pd.Timestamp(start), cal.first_minute)
    hi = min(pd.Timestamp(end) - pd.Timedelta(minutes=1), cal.last_minute)
    if lo > hi:
        return []
    return [m.to_pydatetime().astimezone(timezone.utc) for m in cal.minutes_in_range(lo, hi)]
