"""Postgres writes: COPY per tick, and the merge path a retried tick takes."""
from __future__ import annotations

from datetime import timedelta

from tests.conftest import utc
from webapp.core.quotes import Quote
from webapp.extensions import db
from webapp.store import quotes, sma_alerts, tick_write

T = utc("2026-11-20T15:00:00")


def rows(tickers, at=T, price=10.5):
    return [quotes.QuoteRow(Quote(t, price, at, 100, 10.0, 10.1, 10.9, 9.9, "sim"), 10.25) for t in tickers]


def counts(pg):
    with pg.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM quotes), (SELECT count(*) FROM alerts)")
        return cur.fetchone()


def test_retry_after_commit_merges_instead_of_duplicating(app, pg) -> None:
    first_alerts = [sma_alerts.AlertRow("AAPL", T, "bullish", 10.5, 10.25)]
    tick_write.insert_tick(db.session, rows(["AAPL", "MSFT"]), first_alerts)
    assert counts(pg) == (2, 1)
    # The same tick again (it died after committing), now with one more quote
    # and alert: the COPY meets existing keys, so the merge path stores only what is new.
    more_alerts = [*first_alerts, sma_alerts.AlertRow("KO", T, "bearish", 10.5, 10.25)]
    tick_write.insert_tick(db.session, rows(["AAPL", "MSFT", "KO"], price=99.0), more_alerts)
    assert counts(pg) == (3, 2)
    with pg.cursor() as cur:
        cur.execute("SELECT ticker, price::float8, open::float8 FROM quotes ORDER BY ticker")
        assert cur.fetchall() == [("AAPL", 10.5, 10.1), ("KO", 99.0, 10.1), ("MSFT", 10.5, 10.1)]
    # and the session is healthy for the next tick's plain COPY
    tick_write.insert_tick(db.session, rows(["AAPL"], at=T + timedelta(minutes=1)), [])
    assert counts(pg) == (4, 2)


