"""Tracking a symbol (which queues its backfill) and finding one by ticker or company name."""
from __future__ import annotations

from typing import Any

from webapp.extensions import db
from webapp.services.backfill import enqueue_backfill
from webapp.services.context import config, tracked_symbols
from webapp.store import symbols


def track_symbol(ticker: str) -> bool:
    """Track ``ticker`` and queue its backfill; False when it was tracked already (nothing queued)."""
    changed = symbols.add(db.session, ticker)
    tracked_symbols(fresh=True)
    if changed:
        enqueue_backfill([ticker])
    return changed


def search_symbols(query: str, limit: int = 10) -> dict[str, Any]:
    """Tracked symbols for the header's search (company names where the provider gives them)."""
    from webapp.core.symbol_search import search
    from webapp.providers import company_names

    return search(query, tracked_symbols(), company_names(config()), limit)
