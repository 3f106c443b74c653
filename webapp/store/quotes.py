"""Minute quotes (table ``quotes``): the rows a tick stores, the reads that rebuild Redis, and the
backfill's readings.

The natural key (ticker, time) is unique, so a retried minute or a repeated
backfill adds nothing.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.market import EXCHANGE_TZ, exchange_day_start
from webapp.core.quotes import Quote
from webapp.store import retention
from webapp.store.pg import NULL, as_float, merge_copy

QUOTE_COLUMNS = "ticker, time, price, volume, prev_close, open, high, low, sma, source"


_RECENT = sa.text(
    """
    SELECT t.ticker, q.time, q.price, q.volume, q.prev_close, q.open, q.high, q.low, q.source
    FROM unnest(CAST(:tickers AS varchar[])) AS t(ticker)
    CROSS JOIN LATERAL (
        SELECT time, price, volume, prev_close, open, high, low, source FROM quotes
        WHERE quotes.ticker = t.ticker ORDER BY time DESC LIMIT :n
    ) AS q
    ORDER BY t.ticker, q.time
    """
)


_STORED_BETWEEN = sa.text(
    """
    SELECT DISTINCT ticker FROM quotes
    WHERE ticker = ANY(CAST(:tickers AS varchar[])) AND time >= :start AND time < :end
    """
)


class QuoteRow(NamedTuple):
    """A validated quote as stored, with the SMA it had (None while the window filled)."""

    quote: Quote
    sma: float | None


def quote_lines(rows: Sequence[QuoteRow]) -> io.StringIO:
    """COPY text format.  Tickers and sources are validated [A-Z0-9.-] / plain
    names and the rest are numbers or ISO times, so nothing needs escaping."""
    null = NULL
    times: dict[datetime, str] = {}
    lines = []
    for r in rows:
        q = r.quote
        when = times.get(q.time) or times.setdefault(q.time, q.time.isoformat())
        lines.append(
            f"{q.ticker}\t{when}\t{q.price}\t{null if q.volume is None else q.volume}"
            f"\t{null if q.prev_close is None else q.prev_close}\t{null if q.open is None else q.open}"
            f"\t{null if q.high is None else q.high}\t{null if q.low is None else q.low}"
            f"\t{null if r.sma is None else r.sma}\t{q.source}\n"
        )
    return io.StringIO("".join(lines))


def recent_quotes(session: Session, tickers: Sequence[str], n: int) -> dict[str, list[Quote]]:
    """The last ``n`` stored quotes per ticker, oldest first (one statement)."""
    out: dict[str, list[Quote]] = {}
    if not tickers:
        return out
    for row in session.execute(_RECENT, {"tickers": list(tickers), "n": n}):
        out.setdefault(row.ticker, []).append(
            Quote(
                row.ticker, float(row.price), row.time, row.volume, as_float(row.prev_close),
                as_float(row.open), as_float(row.high), as_float(row.low), row.source,
            )
        )
    return out


def stored_between(session: Session, tickers: Sequence[str], start: datetime, end: datetime) -> list[str]:
    """Which of ``tickers`` have a quote stored in [start, end) (one statement)."""
    if not tickers:
        return []
    return list(session.execute(_STORED_BETWEEN, {"tickers": list(tickers), "start": start, "end": end})
                .scalars())


class Span(NamedTuple):
    first_minute: datetime | None  # the oldest kept reading
    first_day: datetime | None  # the oldest daily bar (New York midnight)
    last: datetime | None  # the newest reading


def data_span(session: Session, ticker: str) -> Span:
    """What history ``ticker`` has: a chart picks its timeframe from it."""
    r = session.execute(sa.text(
        "SELECT (SELECT min(time) FROM quotes WHERE ticker = :t) AS first_minute, "
        "(SELECT min(day)::timestamp AT TIME ZONE 'America/New_York' FROM daily_bars WHERE ticker = :t) "
        "AS first_day, (SELECT max(time) FROM quotes WHERE ticker = :t) AS last"), {"t": ticker}).one()
    return Span(r.first_minute, r.first_day, r.last)


def has_history(session: Session, ticker: str) -> bool:
    return session.execute(
        sa.text("SELECT EXISTS (SELECT 1 FROM quotes WHERE ticker = :t)"), {"t": ticker}
    ).scalar_one()


class Point(NamedTuple):
    time: datetime
    price: float
    volume: int | None
    sma: float | None


def points(session: Session, ticker: str, start: datetime, end: datetime,
           after: datetime | None, limit: int) -> list[Point]:
    """Stored quotes in [start, end), oldest first, strictly after ``after``."""
    rows = session.execute(sa.text(
        "SELECT time, price, volume, sma FROM quotes WHERE ticker = :t AND time >= :start AND time < :end"
        " AND (CAST(:after AS timestamptz) IS NULL OR time > :after) ORDER BY time LIMIT :limit"),
        {"t": ticker, "start": start, "end": end, "after": after, "limit": limit})
    return [Point(r.time, float(r.price), r.volume, as_float(r.sma)) for r in rows]


_BACKFILL_COLUMNS = f"{QUOTE_COLUMNS}, bar_open, bar_high, bar_low"


def first_reading(session: Session, ticker: str) -> tuple[datetime, float] | None:
    """The oldest stored reading's time and price (a backfill never goes past it)."""
    r = session.execute(sa.text("SELECT time, price FROM quotes WHERE ticker = :t ORDER BY time LIMIT 1"),
                        {"t": ticker}).first()
    return (r.time, float(r.price)) if r else None


_LAST_CLOSES = sa.text("""
    SELECT t.ticker, c.close
    FROM unnest(CAST(:tickers AS varchar[])) AS t(ticker)
    CROSS JOIN LATERAL (
      SELECT close FROM (
        (SELECT price AS close, time FROM quotes WHERE quotes.ticker = t.ticker AND time < :start
         ORDER BY time DESC LIMIT 1)
        UNION ALL
        (SELECT close, day::timestamp AT TIME ZONE 'America/New_York' FROM daily_bars
         WHERE daily_bars.ticker = t.ticker AND day < :day ORDER BY day DESC LIMIT 1)
      ) AS both_ ORDER BY time DESC LIMIT 1
    ) AS c""")


def last_closes(session: Session, tickers: Sequence[str], day_start: datetime) -> dict[str, float]:
    """The previous close of each ticker that stored history has one for: the last close of a New
    York day before the one starting at ``day_start`` (a reading's, or a daily bar's when the
    readings are gone or were never kept).  One query however many tickers."""
    if not tickers:
        return {}
    rows = session.execute(_LAST_CLOSES, {"tickers": list(tickers), "start": day_start,
                                          "day": day_start.astimezone(EXCHANGE_TZ).date()})
    return {r.ticker: float(r.close) for r in rows}


def before(session: Session, ticker: str, when: datetime, n: int) -> tuple[list[float], float | None]:
    """The last ``n`` prices before ``when`` (oldest first), and the last close of an earlier
    New York day (:func:`last_closes`): a backfilled session's SMA and previous close."""
    prices = [float(r.price) for r in session.execute(sa.text(
        "SELECT price FROM quotes WHERE ticker = :t AND time < :w ORDER BY time DESC LIMIT :n"),
        {"t": ticker, "w": when, "n": n})][::-1]
    return prices, last_closes(session, [ticker], exchange_day_start(when)).get(ticker)


def store_readings(session: Session, rows: Sequence[Any]) -> None:
    """Backfilled readings (``core.backfill.BarReading``), skipping any stored already; commits."""
    if not rows:
        return
    retention.ensure_partitions(session, {r.quote.time.astimezone(timezone.utc).date() for r in rows})
    base = quote_lines([QuoteRow(r.quote, r.sma) for r in rows]).getvalue().splitlines()
    lines = "".join(f"{line}\t{r.bar_open}\t{r.bar_high}\t{r.bar_low}\n"
                    for line, r in zip(base, rows, strict=True))
    merge_copy(session, "quotes", _BACKFILL_COLUMNS, io.StringIO(lines), staging="backfill")
    session.commit()
