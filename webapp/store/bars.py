"""OHLCV bars at a timeframe, aggregated in SQL from the minute quotes and the daily bars
(table ``daily_bars``, kept forever), and the backfill's daily bars.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.market import EXCHANGE_TZ

# Bar buckets: fixed-width intraday bins on the UTC clock (New York's offset is
# whole hours, so they are also NY-aligned), and New York calendar days for 1d.
_BUCKETS = {
    "1m": "date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "5m": "date_bin(INTERVAL '5 minutes', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "15m": "date_bin(INTERVAL '15 minutes', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "1h": "date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "1d": "(date_trunc('day', time AT TIME ZONE 'America/New_York') AT TIME ZONE 'America/New_York')",
}


INTERVALS = tuple(_BUCKETS)


INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}


class Bar(NamedTuple):
    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int | None
    count: int


_DAILY_BARS = """
    SELECT (day::timestamp AT TIME ZONE 'America/New_York') AS bucket, open, high, low, close, volume,
           quotes AS n
    FROM daily_bars
    WHERE ticker = :t AND (day::timestamp AT TIME ZONE 'America/New_York') >= date_trunc('day', :start)
      AND (day::timestamp AT TIME ZONE 'America/New_York') < :end
    UNION ALL"""


# minute quotes not yet rolled up into daily_bars (today, and any day retention has not reached)
_UNROLLED = """ AND time >= coalesce((SELECT (max(day) + 1)::timestamp AT TIME ZONE 'America/New_York'
                                    FROM daily_bars WHERE ticker = :t), '-infinity')"""


def bars(session: Session, ticker: str, interval: str, start: datetime, end: datetime,
         after: datetime | None, limit: int) -> list[Bar]:
    """OHLCV bars aggregated in SQL, oldest first, buckets strictly after ``after``.

    A snapshot reading is one price, so its minute runs from the previous reading of that day
    (the bar's open) to it (the close); a reading that knows its own minute bar (backfilled,
    ``bar_open``/``bar_high``/``bar_low``) uses that.  ``1d`` bars come from ``daily_bars``
    (kept forever) for the days retention rolled up, and from the minute quotes for the rest
    (today).
    """
    bucket = _BUCKETS[interval]  # a fixed expression chosen by key, never user text
    daily = interval == "1d"
    rows = session.execute(sa.text(f"""
        SELECT * FROM ({_DAILY_BARS if daily else ""}
            SELECT {bucket} AS bucket,
                   (array_agg(coalesce(bar_open, prev, price) ORDER BY time))[1] AS open,
                   max(greatest(coalesce(bar_high, price), coalesce(bar_open, prev, price))) AS high,
                   min(least(coalesce(bar_low, price), coalesce(bar_open, prev, price))) AS low,
                   (array_agg(price ORDER BY time DESC))[1] AS close,
                   sum(volume) AS volume, count(*) AS n
            FROM (SELECT time, price, volume, bar_open, bar_high, bar_low,
                         lag(price) OVER (PARTITION BY (time AT TIME ZONE 'America/New_York')::date
                                          ORDER BY time) AS prev
                  FROM quotes WHERE ticker = :t AND time >= :start AND time < :end{_UNROLLED if daily else ""}
                 ) AS q
            GROUP BY 1
        ) AS b
        WHERE CAST(:after AS timestamptz) IS NULL OR bucket > :after
        ORDER BY bucket LIMIT :limit"""),
        {"t": ticker, "start": start, "end": end, "after": after, "limit": limit})
    return [Bar(r.bucket, float(r.open), float(r.high), float(r.low), float(r.close),
                None if r.volume is None else int(r.volume), r.n) for r in rows]


def bars_before(session: Session, ticker: str, interval: str, start: datetime, n: int) -> list[Bar]:
    """The ``n`` bars before ``start`` (oldest first): an indicator's warm-up, so a chart's lines
    are defined from its first bar.  Reads back over nights, weekends and holidays (a session is
    6.5 of 24 hours), never more than a year."""
    if n <= 0:
        return []
    spread = 2 if interval == "1d" else 4
    back = timedelta(seconds=n * INTERVAL_SECONDS[interval] * spread) + timedelta(days=5)
    got = bars(session, ticker, interval, start - min(back, timedelta(days=366)), start, None, 100_000)
    return got[-n:]


def store_daily_bars(session: Session, ticker: str, bars: Sequence[Any]) -> int:
    """Daily bars (``core.backfill.HistoryBar``, at New York midnights); a day kept already (rolled up
    from our own readings) is left as it is.  Commits; returns how many were added."""
    if not bars:
        return 0
    added = session.execute(sa.text("""
        INSERT INTO daily_bars (ticker, day, open, high, low, close, volume, quotes)
        SELECT :t, d.day, d.open, d.high, d.low, d.close, d.volume, 0
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(day date, open numeric, high numeric,
                                                            low numeric, close numeric, volume bigint)
        ON CONFLICT DO NOTHING"""), {"t": ticker, "rows": json.dumps([
            {"day": b.time.astimezone(EXCHANGE_TZ).date().isoformat(), "open": b.open, "high": b.high,
             "low": b.low, "close": b.close, "volume": b.volume} for b in bars])}).rowcount
    session.commit()
    return added or 0
