"""The market data as users read it: the latest snapshot, one stock, the SMA alert feed, sparklines.

Staleness is judged here once (against the provider's and the market's
limits), so the API, the pages and Socket.IO never disagree about it.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from webapp.core.market import (
    market_state,
    range_start,
)
from webapp.core.validation import normalise_ticker
from webapp.extensions import db
from webapp.services.context import tick_services, tracked_symbols
from webapp.store import quotes as quotes_store
from webapp.store import sma_alerts
from webapp.tick.context import max_age


def snapshot(now: datetime | None = None, tickers: Sequence[str] | None = None) -> dict[str, Any]:
    """The latest reading of every tracked ticker (or of ``tickers``), as users see it."""
    now = now or datetime.now(timezone.utc)
    svc = tick_services()
    market = market_state(now)
    symbols = tracked_symbols() if tickers is None else tuple(dict.fromkeys(tickers))
    latest = svc.hot.read_all()
    limit_age = max_age(svc.config, svc.provider, market)
    stocks = latest.views_of(symbols, now, limit_age)
    have = {v["ticker"] for v in stocks}
    waiting = [s for s in symbols if s not in have]
    return {
        "timestamp": now.isoformat(),
        "market": market.as_json(),
        "provider": svc.provider.name,
        "sma_period": svc.config.SMA_PERIOD,
        "tick_seconds": svc.config.TICK_SECONDS,
        "max_age_seconds": limit_age,  # a reading older than this is stale (null: not while closed)
        "last_tick": svc.hot.last_tick(),
        "stocks": stocks,
        "awaiting_first_reading": waiting,
    }


MAX_FEED_ALERTS = 500


class UnknownTicker(LookupError):
    """A ticker we neither track nor have history for."""


def known_ticker(raw: str) -> str:
    """The normalised ticker if it is tracked or has history; else UnknownTicker."""
    ticker = normalise_ticker(raw)
    if ticker is None:
        raise UnknownTicker(f"{raw!r} is not a ticker (1-10 characters of A-Z 0-9 . -)")
    if ticker not in tracked_symbols() and not quotes_store.has_history(db.session, ticker):
        raise UnknownTicker(f"{ticker} is not tracked and has no stored history")
    return ticker


def stock_detail(ticker: str, now: datetime | None = None) -> dict[str, Any]:
    """One ticker's latest reading (with staleness), its Redis window and the market."""
    now = now or datetime.now(timezone.utc)
    svc = tick_services()
    latest = svc.hot.read_all()
    market = market_state(now)
    views = latest.views_of([ticker], now, max_age(svc.config, svc.provider, market))
    view = views[0] if views else None
    return {"ticker": ticker, "latest": view, "window": svc.hot.window(ticker),
            "sma_period": svc.config.SMA_PERIOD, "market": market.as_json()}


def alert_json(a: sma_alerts.AlertRow) -> dict[str, Any]:
    """An alert as the API, the feed page and the ``alert`` event show it."""
    return {"ticker": a.ticker, "kind": a.kind, "time": a.time.isoformat(), "price": a.price, "sma": a.sma}


def alert_feed(ticker: str | None, limit: int = MAX_FEED_ALERTS) -> list[dict[str, Any]]:
    """Stored alerts, newest first."""
    start = range_start(datetime.now(timezone.utc), "all")
    return [alert_json(a) for _, a in sma_alerts.alerts_page(db.session, ticker, None, start, None, limit)]


def sparklines(tickers: list[str], points: int = 30) -> dict[str, list[float]]:
    """The last ``points`` stored prices per ticker (one query), for dashboard sparklines."""
    return {t: [q.price for q in quotes]
            for t, quotes in quotes_store.recent_quotes(db.session, tickers, points).items()}
