"""``/api/symbols``, ``/api/search`` and ``/api/backfill``: the tracked symbols, finding one, and a
new one's history arriving.  The tracked set is shared by everyone: a member may add to it (within
``MEMBER_SYMBOL_LIMIT``, recorded with who added it); only an admin removes from it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field

from webapp.extensions import db
from webapp.services import backfill as backfill_service
from webapp.services import symbols as symbols_service
from webapp.store import symbols as symbols_store
from webapp.store.backfillstate import STATES as BACKFILL_STATES
from webapp.web.access import PUBLIC, me, writer
from webapp.web.apispec import Query, endpoint
from webapp.web.errors import ApiError
from webapp.web.params import ticker_or_404

bp = Blueprint("symbols", __name__)


class BackfillStatus(BaseModel):
    ticker: str
    state: Literal[("none", *BACKFILL_STATES)]  # type: ignore[valid-type]
    message: str
    done: int | None = Field(None, description="steps done: the daily bars, then each minute session "
                                                "fetched and stored")
    total: int | None = None
    readings: int | None = Field(None, description="minute readings stored by this run")
    daily_bars: int | None = None
    updated: int | None = Field(None, description="unix seconds")


class SearchQuery(Query):
    q: str = Field(min_length=1, max_length=40, description="a ticker's start, or part of a company name")
    limit: int = Field(10, ge=1, le=50)


class SearchHit(BaseModel):
    ticker: str
    name: str | None
    tracked: bool
    match: Literal["ticker", "name"] = Field(description="what matched: the ticker (or its start), or a name")


class SearchResult(BaseModel):
    query: str
    results: list[SearchHit]
    track: str | None = Field(description="the query as a valid ticker nobody tracks yet: POST /api/symbols")


@endpoint(bp, "/search", response=SearchResult, query=SearchQuery, summary="Find symbols",
          auth=PUBLIC)
def search(q: SearchQuery):
    return jsonify(symbols_service.search_symbols(q.q, q.limit))


@endpoint(bp, "/backfill/<ticker>", response=BackfillStatus, summary="A symbol's backfill progress",
          errors=(404,), auth=PUBLIC)
def backfill_status(ticker: str):
    """Where a newly tracked symbol's history stands: queued, running (done of total), waiting out a
    rate limit, done, unavailable from this provider (and why), or failed (a later run resumes)."""
    return jsonify(backfill_service.backfill_status(ticker_or_404(ticker)))


class SymbolItem(BaseModel):
    ticker: str
    added_at: datetime


class SymbolList(BaseModel):
    symbols: list[SymbolItem]


class SymbolChange(BaseModel):
    ticker: str
    active: bool
    changed: bool = Field(description="false when the symbol already was in that state")


class NewSymbol(BaseModel):
    model_config = {"extra": "forbid"}
    ticker: str = Field(pattern=r"^[A-Za-z0-9.\-]{1,10}$", description="1-10 of A-Z 0-9 . -")


@endpoint(bp, "/symbols", response=SymbolList, summary="Tracked symbols",
          auth=PUBLIC)
def list_symbols():
    return jsonify({"symbols": [{"ticker": t, "added_at": a.isoformat()}
                                for t, a in symbols_store.active(db.session)]})


@endpoint(bp, "/symbols", method="POST", status=201, response=SymbolChange, body=NewSymbol,
          auth=writer("symbols:write"), summary="Track a symbol (for everyone; a member within a limit)",
          bodies={200: SymbolChange}, errors=(404, 409))
def add_symbol(data: NewSymbol):
    ticker = data.ticker.upper()
    who = me()
    try:
        changed = symbols_service.track_symbol(ticker, who.id, limited=not who.user.is_admin)  # and backfills
    except symbols_service.SymbolLimit as exc:
        raise ApiError(409, "symbol_limit", str(exc)) from None
    except symbols_service.NotListed as exc:
        raise ApiError(404, "unknown_ticker", f"ticker: {exc}") from None
    return jsonify({"ticker": ticker, "active": True, "changed": changed}), 201 if changed else 200


@endpoint(bp, "/symbols/<ticker>", method="DELETE", response=SymbolChange, auth=writer("admin"),
          summary="Stop tracking a symbol, for everyone (an admin)", errors=(404,))
def remove_symbol(ticker: str):
    ticker = ticker.upper()
    if not symbols_service.untrack_symbol(ticker):
        raise ApiError(404, "unknown_ticker", f"{ticker} is not tracked")
    return jsonify({"ticker": ticker, "active": False, "changed": True})
