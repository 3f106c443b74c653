"""Tracking a symbol (which queues its backfill) and finding one by ticker or company name."""
from __future__ import annotations

from typing import Any

from webapp.extensions import db
from webapp.providers import company_names, listed, source_name, unlisted_reason
from webapp.services.backfill import enqueue_backfill
from webapp.services.context import config, tracked_symbols
from webapp.store import symbols


class SymbolLimit(Exception):
    """A member has added as many symbols as ``MEMBER_SYMBOL_LIMIT`` allows (the message says so)."""


class NotListed(Exception):
    """The provider does not list this symbol (the simulated market's universe); the message says so."""


def track_symbol(ticker: str, added_by: int | None = None, limited: bool = False) -> bool:
    """Track ``ticker`` (recording who asked) and queue its backfill; False when it was tracked already
    (nothing queued).  ``limited``: a member, held to ``MEMBER_SYMBOL_LIMIT`` symbols of their own.
    Raises :class:`NotListed` for a symbol the provider does not list, :class:`SymbolLimit` past the
    member's limit."""
    why = unlisted_reason(config(), ticker)
    if why is not None and ticker not in tracked_symbols():
        raise NotListed(why)
    if limited and added_by is not None and ticker not in tracked_symbols():
        cap = config().MEMBER_SYMBOL_LIMIT
        if symbols.added_by_count(db.session, added_by) >= cap:
            raise SymbolLimit(f"you track {cap} symbols already, a member's limit (MEMBER_SYMBOL_LIMIT); "
                              "an admin can stop tracking some, or track more")
    changed = symbols.add(db.session, ticker, added_by)
    tracked_symbols(fresh=True)
    if changed:
        enqueue_backfill([ticker])
    return changed


def names() -> dict[str, str]:
    """Company names by ticker, where the provider gives them."""
    return company_names(config())


def simulated() -> bool:
    """Whether the prices come from the simulated market (every page says so)."""
    return source_name(config()) == "sim"


def untrack_symbol(ticker: str) -> bool:
    """Stop tracking ``ticker`` for everyone; False when it was not tracked."""
    changed = symbols.remove(db.session, ticker)
    tracked_symbols(fresh=True)
    return changed


def search_symbols(query: str, limit: int = 10) -> dict[str, Any]:
    """Tracked symbols and those the provider lists, for the header's search (with company names
    where the provider gives them)."""
    from webapp.core.symbol_search import search

    return search(query, tracked_symbols(), names(), limit, listed(config()))
