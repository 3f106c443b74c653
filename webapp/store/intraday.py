"""The scanner's reads of the minute quotes: a ticker's session so far, and volume by minute of
the day over earlier sessions (the RVOL profile).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.store.pg import as_float

_DAY_SO_FAR = sa.text(
    """
    SELECT t.ticker, agg.pv, agg.cv, agg.hi, agg.lo, agg.vols
    FROM unnest(CAST(:tickers AS varchar[]), CAST(:starts AS timestamptz[]),
                CAST(:ends AS timestamptz[])) AS t(ticker, day_start, upto)
    CROSS JOIN LATERAL (
        SELECT sum(price * volume) FILTER (WHERE volume IS NOT NULL) AS pv,
               sum(volume) AS cv, max(price) AS hi, min(price) AS lo,
               (array_agg(volume ORDER BY time DESC) FILTER (WHERE volume IS NOT NULL))[1:CAST(:bars AS int)]
                   AS vols
        FROM quotes WHERE quotes.ticker = t.ticker AND time >= t.day_start AND time <= t.upto
    ) AS agg
    WHERE agg.hi IS NOT NULL
    """
)


class DaySoFar(NamedTuple):
    """A ticker's session up to a reading: what the scanner keeps hot, rebuilt."""

    price_volume: float | None
    volume: float | None
    high: float
    low: float
    recent_volumes: list[int]  # oldest first


def day_so_far(
    session: Session, upto: dict[str, tuple[datetime, datetime]], bars: int
) -> dict[str, DaySoFar]:
    """Per ticker, its readings from ``(day start, last reading time)``, aggregated (one statement)."""
    if not upto:
        return {}
    tickers = list(upto)
    rows = session.execute(_DAY_SO_FAR, {
        "tickers": tickers, "starts": [upto[t][0] for t in tickers],
        "ends": [upto[t][1] for t in tickers], "bars": bars,
    })
    return {
        r.ticker: DaySoFar(as_float(r.pv), as_float(r.cv), float(r.hi), float(r.lo),
                           list(reversed(r.vols or [])))
        for r in rows
    }


_MINUTE_SUMS = sa.text(
    """
    SELECT ticker,
           CAST(extract(hour FROM time AT TIME ZONE :tz) * 60
                + extract(minute FROM time AT TIME ZONE :tz) AS int) AS minute,
           CAST(sum(volume) AS float8) AS volume
    FROM quotes
    WHERE time >= :start AND time < :end AND volume IS NOT NULL
      AND CAST(time AT TIME ZONE :tz AS date) = ANY(CAST(:days AS date[]))
    GROUP BY 1, 2
    """
)


_SESSIONS_PER_TICKER = sa.text(
    """
    SELECT ticker, count(DISTINCT CAST(time AT TIME ZONE :tz AS date)) AS sessions
    FROM quotes
    WHERE time >= :start AND time < :end AND volume IS NOT NULL
      AND CAST(time AT TIME ZONE :tz AS date) = ANY(CAST(:days AS date[]))
    GROUP BY 1
    """
)


def volume_by_minute(session: Session, days: Sequence[Any], start: datetime, end: datetime,
                     tz: str) -> tuple[list[tuple[str, int, float]], dict[str, int]]:
    """Σ volume per (ticker, minute of the day) over ``days``, and sessions per ticker."""
    params = {"days": list(days), "start": start, "end": end, "tz": tz}
    sums = [(r.ticker, r.minute, r.volume) for r in session.execute(_MINUTE_SUMS, params)]
    sessions = {r.ticker: int(r.sessions) for r in session.execute(_SESSIONS_PER_TICKER, params)}
    return sums, sessions
