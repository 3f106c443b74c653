"""Cold data in Postgres: batched inserts per tick and the reads that rebuild Redis.

Each tick writes its quotes in one statement and its alerts in one more,
inside one transaction, with ON CONFLICT DO NOTHING on the natural keys:
a retried minute adds nothing.  Postgres is written before Redis, so a
failure between the two is repaired by the retry rather than lost.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.quotes import Quote

log = logging.getLogger(__name__)

_INSERT_QUOTES = sa.text(
    """
    INSERT INTO quotes (ticker, time, price, volume, prev_close, open, high, low, sma, source)
    SELECT * FROM unnest(
        CAST(:tickers AS varchar[]), CAST(:times AS timestamptz[]), CAST(:prices AS numeric[]),
        CAST(:volumes AS bigint[]), CAST(:prev_closes AS numeric[]), CAST(:opens AS numeric[]),
        CAST(:highs AS numeric[]), CAST(:lows AS numeric[]), CAST(:smas AS numeric[]),
        CAST(:sources AS varchar[]))
    ON CONFLICT (ticker, time) DO NOTHING
    """
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


def insert_tick(session: Session, quotes: Sequence[QuoteRow], alerts: Sequence[AlertRow]) -> None:
    """Store one tick's accepted quotes and fired alerts: two statements, one commit."""
    if quotes:
        session.execute(
            _INSERT_QUOTES,
            {
                "tickers": [r.quote.ticker for r in quotes],
                "times": [r.quote.time for r in quotes],
                "prices": [r.quote.price for r in quotes],
                "volumes": [r.quote.volume for r in quotes],
                "prev_closes": [r.quote.prev_close for r in quotes],
                "opens": [r.quote.open for r in quotes],
                "highs": [r.quote.high for r in quotes],
                "lows": [r.quote.low for r in quotes],
                "smas": [r.sma for r in quotes],
                "sources": [r.quote.source for r in quotes],
            },
        )
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
