"""``/api/watchlists`` and ``/api/me``: a signed-in user's own watchlists and page settings.

They belong to a user: the page's session (sign in at ``/login``; writes
carry the page's CSRF token in ``X-CSRFToken``) or a token of that user's
(``read``, and ``watchlists:write`` to change them or the settings).  Thin:
the store keeps them, scoped to the user, so someone else's list id is a 404.
"""
from __future__ import annotations

from typing import Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from webapp.extensions import db
from webapp.services import stocks
from webapp.services import symbols as symbols_service
from webapp.services.context import tracked_symbols
from webapp.store import users
from webapp.store import watchlists as store
from webapp.web import access
from webapp.web.access import PRIVATE, writer
from webapp.web.apispec import MAX_POSITION, NAME_PATTERN, endpoint
from webapp.web.errors import ApiError
from webapp.web.rules import Deleted

bp = Blueprint("watchlists", __name__)
TICKER = {"ticker": {"type": "string", "pattern": "^[A-Za-z0-9.\\-]{1,10}$"}}
# the dashboard's columns a user may show or hide (the ticker always shows), in their order
COLUMNS = ("price", "change", "volume", "open", "range", "prev_close", "spark", "sma", "alert", "time")


def _me() -> users.User:
    """The user the endpoint's door has already let in."""
    return access.me().user


def _me_json(username: str, settings: dict) -> dict:
    return {"username": username, "settings": Settings(**{
        k: v for k, v in settings.items() if k in Settings.model_fields}).model_dump()}


def _tickers(raw: list[str]) -> list[str]:
    out = []
    for t in raw:
        try:
            out.append(stocks.known_ticker(t))
        except stocks.UnknownTicker as exc:
            raise ApiError(404, "unknown_ticker", f"tickers: {exc}") from None
    return out


class Watchlist(BaseModel):
    id: int
    name: str
    position: int
    tickers: list[str]


class WatchlistList(BaseModel):
    watchlists: list[Watchlist]


class NewWatchlist(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=60, pattern=NAME_PATTERN)
    tickers: list[str] = Field([], max_length=store.MAX_TICKERS)


class WatchlistChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=60, pattern=NAME_PATTERN)
    tickers: list[str] | None = Field(None, max_length=store.MAX_TICKERS,
                                      description="the whole list, in the order to keep")
    position: int | None = Field(None, ge=0, le=MAX_POSITION,
                                 description="move the list to this place among yours")


class TickerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticker: str = Field(pattern=r"^[A-Za-z0-9.\-]{1,10}$")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dashboard_columns: list[Literal[COLUMNS]] | None = Field(  # type: ignore[valid-type]
        None, description=f"the dashboard's columns, in order: any of {', '.join(COLUMNS)}")
    alert_sound: bool | None = Field(None, description="a sound with each alert of your rules, on any page")
    alert_notify: bool | None = Field(None, description="a browser notice with each alert of your rules")


class Me(BaseModel):
    username: str
    settings: Settings


def _found(got: dict | None) -> dict:
    if got is None:
        raise ApiError(404, "not_found", "no such watchlist of yours")
    return got


def _changed(call):
    try:
        return call()
    except store.WatchlistError as exc:
        raise ApiError(409, "conflict", str(exc)) from None


@endpoint(bp, "/watchlists", response=WatchlistList, summary="Your watchlists", auth=PRIVATE)
def list_watchlists():
    return jsonify({"watchlists": store.lists(db.session, _me().id)})


@endpoint(bp, "/watchlists", method="POST", status=201, response=Watchlist, body=NewWatchlist,
          summary="Create a watchlist", auth=writer("watchlists:write"), errors=(404, 409))
def create_watchlist(data: NewWatchlist):
    user = _me()
    tickers = _tickers(data.tickers)
    return jsonify(_changed(lambda: store.create(db.session, user.id, data.name.strip(), tickers))), 201


@endpoint(bp, "/watchlists/<list_id>", method="PATCH", response=Watchlist, body=WatchlistChange,
          summary="Rename, reorder or refill a watchlist", auth=writer("watchlists:write"),
          errors=(404, 409))
def update_watchlist(list_id: str, data: WatchlistChange):
    user = _me()
    tickers = _tickers(data.tickers) if data.tickers is not None else None
    name = data.name.strip() if data.name is not None else None
    return jsonify(_found(_changed(lambda: store.update(db.session, user.id, int(list_id), name, tickers,
                                                        data.position))))


@endpoint(bp, "/watchlists/<list_id>", method="DELETE", response=Deleted, summary="Delete a watchlist",
          auth=writer("watchlists:write"), errors=(404,))
def delete_watchlist(list_id: str):
    if not store.delete(db.session, _me().id, int(list_id)):
        raise ApiError(404, "not_found", "no such watchlist of yours")
    return jsonify({"id": int(list_id), "deleted": True})


@endpoint(bp, "/watchlists/<list_id>/tickers", method="POST", response=Watchlist, body=TickerBody,
          summary="Add a ticker to a watchlist", auth=writer("watchlists:write"), errors=(404, 409))
def add_to_watchlist(list_id: str, data: TickerBody):
    """A ticker nobody tracks yet is tracked first (queueing its history), as the header's "Track"
    does, when the caller may track symbols (``symbols:write``; a member within the limit)."""
    who = access.me()
    ticker = data.ticker.upper()
    if ticker not in tracked_symbols() and who.can("symbols:write"):
        _found(store.get(db.session, who.id, int(list_id)))  # someone else's list tracks nothing
        try:
            symbols_service.track_symbol(ticker, who.id, limited=not who.is_admin)
        except symbols_service.NotListed as exc:
            raise ApiError(404, "unknown_ticker", f"ticker: {exc}") from None
        except symbols_service.SymbolLimit as exc:
            raise ApiError(409, "symbol_limit", f"ticker: {exc}") from None
    ticker = _tickers([ticker])[0]
    return jsonify(_found(_changed(lambda: store.add(db.session, who.id, int(list_id), ticker))))


@endpoint(bp, "/watchlists/<list_id>/tickers/<ticker>", method="DELETE", response=Watchlist,
          summary="Remove a ticker from a watchlist", auth=writer("watchlists:write"), errors=(404,),
          path_schemas=TICKER)
def remove_from_watchlist(list_id: str, ticker: str):
    return jsonify(_found(store.remove(db.session, _me().id, int(list_id), ticker.upper())))


@endpoint(bp, "/me", response=Me, summary="You and your page settings", auth=PRIVATE)
def me():
    user = _me()
    return jsonify(_me_json(user.username, user.settings))


@endpoint(bp, "/me/settings", method="PATCH", response=Me, body=Settings, summary="Change your page settings",
          auth=writer("watchlists:write"))
def change_settings(data: Settings):
    user = _me()
    return jsonify(_me_json(user.username,
                            users.update_settings(db.session, user.id, data.model_dump(exclude_none=True))))
