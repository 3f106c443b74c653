"""The built-in SMA crossover alerts (table ``alerts``): the rows a tick stores and the pages that
read them.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

ALERT_COLUMNS = "ticker, time, kind, price, sma"


_LAST_ALERTS = sa.text(
    """
    SELECT DISTINCT ON (ticker) ticker, kind, time, price, sma FROM alerts
    WHERE ticker = ANY(CAST(:tickers AS varchar[]))
    ORDER BY ticker, time DESC
    """
)


_ALERTS_BETWEEN = sa.text(
    """
    SELECT ticker, time, kind, price, sma FROM alerts
    WHERE ticker = ANY(CAST(:tickers AS varchar[])) AND time >= :start AND time < :end
    ORDER BY time, ticker
    """
)


class AlertRow(NamedTuple):
    ticker: str
    time: datetime
    kind: str
    price: float
    sma: float


def alert_lines(rows: Sequence[AlertRow]) -> io.StringIO:
    return io.StringIO("".join(
        f"{a.ticker}\t{a.time.isoformat()}\t{a.kind}\t{a.price}\t{a.sma}\n" for a in rows
    ))


def alerts_between(session: Session, tickers: Sequence[str], start: datetime, end: datetime
                   ) -> list[AlertRow]:
    """The alerts of ``tickers`` stored in [start, end), oldest first (one statement)."""
    if not tickers:
        return []
    rows = session.execute(_ALERTS_BETWEEN, {"tickers": list(tickers), "start": start, "end": end})
    return [AlertRow(r.ticker, r.time, r.kind, float(r.price), float(r.sma)) for r in rows]


def last_alerts(session: Session, tickers: Sequence[str]) -> dict[str, AlertRow]:
    """The most recent alert per ticker (one statement)."""
    if not tickers:
        return {}
    return {
        r.ticker: AlertRow(r.ticker, r.time, r.kind, float(r.price), float(r.sma))
        for r in session.execute(_LAST_ALERTS, {"tickers": list(tickers)})
    }


class AlertPageRow(NamedTuple):
    id: int
    alert: AlertRow


def alerts_page(session: Session, ticker: str | None, kind: str | None, since: datetime,
                before: tuple[datetime, int] | None, limit: int) -> list[AlertPageRow]:
    """Alerts newest first, older than the ``before`` (time, id) cursor."""
    rows = session.execute(sa.text(
        "SELECT id, ticker, time, kind, price, sma FROM alerts"
        " WHERE (CAST(:ticker AS varchar) IS NULL OR ticker = :ticker)"
        " AND (CAST(:kind AS varchar) IS NULL OR kind = :kind) AND time >= :since"
        " AND (CAST(:bt AS timestamptz) IS NULL OR (time, id) < (:bt, :bid))"
        " ORDER BY time DESC, id DESC LIMIT :limit"),
        {"ticker": ticker, "kind": kind, "since": since, "bt": before[0] if before else None,
         "bid": before[1] if before else 0, "limit": limit})
    return [AlertPageRow(r.id, AlertRow(r.ticker, r.time, r.kind, float(r.price), float(r.sma)))
            for r in rows]
