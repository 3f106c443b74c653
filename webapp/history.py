"""Cold data in Postgres: batched inserts per tick and the reads that rebuild Redis.

Each tick writes its quotes with one COPY and its alerts with one INSERT,
inside one transaction.  The natural keys are unique, so a retried minute
adds nothing: alerts use ON CONFLICT DO NOTHING, and quotes fall back to a
staging-table merge in the rare retry where COPY meets rows already there.
Postgres is written before Redis, so a failure between the two is repaired by
the retry rather than lost.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.quotes import Quote

log = logging.getLogger(__name__)

_QUOTE_COLUMNS = "ticker, time, price, volume, prev_close, open, high, low, sma, source"
_COPY_QUOTES = f"COPY quotes ({_QUOTE_COLUMNS}) FROM STDIN"
_STAGE = "CREATE TEMP TABLE IF NOT EXISTS quotes_in (LIKE quotes) ON COMMIT DELETE ROWS"
_COPY_STAGED = f"COPY quotes_in ({_QUOTE_COLUMNS}) FROM STDIN"
_MERGE_STAGED = (
    f"INSERT INTO quotes ({_QUOTE_COLUMNS}) SELECT {_QUOTE_COLUMNS} FROM quotes_in ON CONFLICT DO NOTHING"
)

_INSERT_ALERTS = sa.text(
    """
    INSERT INTO alerts (ticker, time, kind, price, sma)
    SELECT * FROM unnest(
        CAST(:tickers AS varchar[]), CAST(:times AS timestamptz[]), CAST(:kinds AS varchar[]),
        CAST(:prices AS numeric[]), CAST(:smas AS numeric[]))
    ON CONFLICT (ticker, time) DO NOTHING
    """
)

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

_LAST_ALERTS = sa.text(
    """
    SELECT DISTINCT ON (ticker) ticker, kind, time, price, sma FROM alerts
    WHERE ticker = ANY(CAST(:tickers AS varchar[]))
    ORDER BY ticker, time DESC
    """
)


@dataclass(frozen=True, slots=True)
class QuoteRow:
    """A validated quote as stored, with the SMA it had (None while the window filled)."""

    quote: Quote
    sma: float | None


@dataclass(frozen=True, slots=True)
class AlertRow:
    ticker: str
    time: datetime
    kind: str
    price: float
    sma: float


def _copy_text(rows: Sequence[QuoteRow]) -> io.StringIO:
    """COPY text format.  Tickers and sources are validated [A-Z0-9.-] / plain
    names and the rest are numbers or ISO times, so nothing needs escaping."""

    def v(x: object) -> str:
        return "\\N" if x is None else str(x)

    times: dict[datetime, str] = {}
    lines = []
    for r in rows:
        q = r.quote
        when = times.get(q.time) or times.setdefault(q.time, q.time.isoformat())
        lines.append(
            f"{q.ticker}\t{when}\t{q.price!r}\t{v(q.volume)}\t{v(q.prev_close)}\t{v(q.open)}"
            f"\t{v(q.high)}\t{v(q.low)}\t{v(r.sma)}\t{q.source}\n"
        )
    return io.StringIO("".join(lines))


def _copy_quotes(session: Session, rows: Sequence[QuoteRow]) -> None:
    """COPY the rows straight in; if some are already stored (the retry of a
    tick that died after committing), merge through a staging table instead."""
    cursor = session.connection().connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(_COPY_QUOTES, _copy_text(rows))
    except psycopg2.errors.UniqueViolation:
        session.rollback()
        log.info("quotes for this tick were partly stored already; merging instead")
        cursor = session.connection().connection.dbapi_connection.cursor()
        cursor.execute(_STAGE)
        cursor.copy_expert(_COPY_STAGED, _copy_text(rows))
        cursor.execute(_MERGE_STAGED)


def insert_tick(session: Session, quotes: Sequence[QuoteRow], alerts: Sequence[AlertRow]) -> None:
    """Store one tick's accepted quotes (one COPY) and alerts (one INSERT), one commit."""
    if quotes:
        _copy_quotes(session, quotes)
    if alerts:
        session.execute(
            _INSERT_ALERTS,
            {
                "tickers": [a.ticker for a in alerts],
                "times": [a.time for a in alerts],
                "kinds": [a.kind for a in alerts],
                "prices": [a.price for a in alerts],
                "smas": [a.sma for a in alerts],
            },
        )
    session.commit()


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def recent_quotes(session: Session, tickers: Sequence[str], n: int) -> dict[str, list[Quote]]:
    """The last ``n`` stored quotes per ticker, oldest first (one statement)."""
    out: dict[str, list[Quote]] = {}
    if not tickers:
        return out
    for row in session.execute(_RECENT, {"tickers": list(tickers), "n": n}):
        out.setdefault(row.ticker, []).append(
            Quote(
                row.ticker, float(row.price), row.time, row.volume, _float(row.prev_close),
                _float(row.open), _float(row.high), _float(row.low), row.source,
            )
        )
    return out


def last_alerts(session: Session, tickers: Sequence[str]) -> dict[str, AlertRow]:
    """The most recent alert per ticker (one statement)."""
    if not tickers:
        return {}
    return {
        r.ticker: AlertRow(r.ticker, r.time, r.kind, float(r.price), float(r.sma))
        for r in session.execute(_LAST_ALERTS, {"tickers": list(tickers)})
    }


def ensure_symbols(session: Session, tickers: Sequence[str]) -> None:
    """Record configured symbols so the table lists what is tracked."""
    session.execute(
        sa.text(
            "INSERT INTO symbols (ticker) SELECT unnest(CAST(:t AS varchar[])) "
            "ON CONFLICT (ticker) DO NOTHING"
        ),
        {"t": list(tickers)},
    )
    session.commit()
