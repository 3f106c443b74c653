"""JSON endpoints.  Thin: each validates its query with a model, calls a
service and shapes the answer; the models also make the OpenAPI document."""
from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from typing import Any, Literal

from flask import Blueprint, jsonify, render_template, request
from pydantic import BaseModel, Field

from webapp.core import scanner as scan_core
from webapp.core.indicator_series import StudyError
from webapp.core.market import RANGES
from webapp.core.scanner import Filters
from webapp.core.validation import normalise_ticker
from webapp.extensions import db
from webapp.services import backfill as backfill_service
from webapp.services import charts, context, scanner
from webapp.services import health as health_service
from webapp.services import stocks as stocks_service
from webapp.services import symbols as symbols_service
from webapp.store import bars as bars_store
from webapp.store import missed, quotes, sma_alerts, symbols
from webapp.store.backfillstate import STATES as BACKFILL_STATES
from webapp.web import auth
from webapp.web.apispec import Query, Timestamp, endpoint, openapi_document
from webapp.web.errors import ApiError

bp = Blueprint("api", __name__)

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


Interval = Literal["1m", "5m", "15m", "1h", "1d"]  # bars_store.INTERVALS: bars' timeframes

# ---- response models (what integrators receive) ----

class LastAlert(BaseModel):
    kind: Literal["bullish", "bearish"]
    time: datetime
    price: float
    sma: float | None


class StockView(BaseModel):
    ticker: str
    price: float
    sma: float | None = Field(description="null until the window is full")
    alert: Literal["bullish", "bearish"] | None = Field(description="the cross this reading fired")
    time: datetime = Field(description="the provider's quote time")
    change: float | None
    change_pct: float | None
    prev_close: float | None
    open: float | None
    high: float | None
    low: float | None
    volume: int | None
    last_alert: LastAlert | None
    source: str
    stale: bool
    stale_reason: str | None


class Market(BaseModel):
    exchange: str
    state: Literal["open", "closed"]
    is_open: bool
    next_open: datetime
    next_close: datetime
    early_close: bool


class Snapshot(BaseModel):
    timestamp: datetime
    market: Market
    provider: str
    sma_period: int
    tick_seconds: int
    max_age_seconds: float | None = Field(description="a reading older than this is stale; null while a "
                                                      "real feed's market is closed")
    last_tick: dict[str, Any] | None
    stocks: list[StockView]
    awaiting_first_reading: list[str]


class StockDetail(BaseModel):
    ticker: str
    latest: StockView | None
    window: list[float] = Field(description="the last SMA_PERIOD prices, oldest first")
    sma_period: int
    market: Market


class HistoryPoint(BaseModel):
    time: datetime
    price: float
    volume: int | None
    sma: float | None


class HistoryBar(BaseModel):
    time: datetime = Field(description="bucket start")
    open: float
    high: float
    low: float
    close: float
    volume: int | None
    count: int = Field(description="quotes in the bucket")


class MissedRange(BaseModel):
    start: datetime
    end: datetime = Field(description="exclusive")
    slots: int = Field(description="tick slots in the range that got no data")
    reason: str


class HistoryPage(BaseModel):
    ticker: str
    interval: Interval | None
    items: list[HistoryPoint] | list[HistoryBar]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")
    missed: list[MissedRange] = Field(
        description="stretches of this page's span with no data for any ticker (a stall the tracker "
                    "could not run late), so a gap is never mistaken for a quiet market")


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


class ChartBar(BaseModel):
    time: int = Field(description="the bar's start, unix seconds")
    open: float
    high: float
    low: float
    close: float
    volume: int | None


class ChartValue(BaseModel):
    time: int
    value: float


class ChartStudy(BaseModel):
    key: str = Field(description="as asked, normalised: sma:20, bb:20:2, macd:12:26:9, vwap")
    kind: Literal["sma", "ema", "vwap", "bb", "rsi", "macd"]
    pane: Literal["price", "rsi", "macd"]
    lines: dict[str, list[ChartValue]] = Field(
        description="value; or middle/upper/lower (bb); or macd/signal/histogram (macd). A bar where "
                    "the indicator is not yet defined has no point")


class ChartMarker(BaseModel):
    time: int = Field(description="the start of the bar the alert fell in")
    iso: str
    kind: Literal["bullish", "bearish"]
    price: float
    sma: float


class ChartData(StockDetail):
    range: Literal[RANGES]  # type: ignore[valid-type]
    interval: Interval
    intervals: list[str]
    bucket_seconds: int
    today_start: int
    tick_seconds: int
    bars: list[ChartBar]
    studies: list[ChartStudy]
    backfill: BackfillStatus = Field(description="the symbol's history backfill, as /api/backfill/<ticker>")
    alerts: list[ChartMarker]


class AlertItem(BaseModel):
    ticker: str
    kind: Literal["bullish", "bearish"]
    time: datetime
    price: float
    sma: float


class AlertsPage(BaseModel):
    alerts: list[AlertItem]
    next_cursor: str | None


class Health(BaseModel):
    status: Literal["ok", "unhealthy"]
    problems: list[str]
    checks: dict[str, Any]


class StreamState(BaseModel):
    running: bool = Field(description="a stream process reported in the last 15 s")
    state: str = Field(description="connected, connecting, reconnecting, down (a fatal answer: not "
                                   "retried), standby, not running, or off (STREAM_PROVIDER=none)")
    provider: str
    reason: str = Field(description="why it is not connected")
    detail: dict[str, Any] = Field(description="the leader's own report: message and data ages, trades/s, "
                                               "reconnects, dropped and malformed frames, symbols streamed "
                                               "vs requested, and the gaps it marked")


# ---- query models ----

class StocksQuery(Query):
    tickers: str | None = Field(None, description="comma-separated tickers to return (default: all tracked)",
                                max_length=2000,
                                pattern=r"^[\s,]*([A-Za-z0-9.\-]{1,10}(\s*,[\s,]*[A-Za-z0-9.\-]{1,10})*)?[\s,]*$")


class HistoryQuery(Query):
    start: Timestamp | None = Field(None, description="ISO 8601 or unix seconds (inclusive)")
    end: Timestamp | None = Field(None, description="ISO 8601 or unix seconds (exclusive)")
    limit: int = Field(500, ge=1, le=5000)
    cursor: str | None = None
    interval: Interval | None = Field(
        None, description="aggregate to OHLCV bars (computed in SQL)")


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


class ChartQuery(Query):
    range: Literal[RANGES] = Field("1d", description="1d, 5d, 1m, 6m, ytd, 1y or all, "  # type: ignore[valid-type]
                                                       "on XNYS sessions")
    interval: Interval | None = Field(
        None, description="the bars' timeframe (default: the finest that keeps the range readable)")
    indicators: str | None = Field(
        None, max_length=200, description="comma-separated: sma:N, ema:N, vwap, bb:N:K, rsi:N, "
                                          "macd:FAST:SLOW:SIGNAL, or none (default: the tracker's SMA)")


class AlertsQuery(Query):
    ticker: str | None = Field(None, pattern=r"^[A-Za-z0-9.\-]{1,10}$")
    kind: Literal["bullish", "bearish"] | None = None
    since: Timestamp | None = Field(None, description="ISO 8601 or unix seconds")
    limit: int = Field(100, ge=1, le=stocks_service.MAX_FEED_ALERTS)
    cursor: str | None = None


# ---- cursors: opaque to clients, checked on the way in ----

def _encode(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode().rstrip("=")


def _decode(cursor: str, kind: str) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        parts = []
    if not parts or parts[0] != kind:
        raise ApiError(400, "bad_parameter", "cursor: not a cursor this endpoint issued")
    return parts[1:]


def _ticker(raw: str) -> str:
    try:
        return stocks_service.known_ticker(raw)
    except stocks_service.UnknownTicker as exc:
        raise ApiError(404, "unknown_ticker", str(exc)) from None


# ---- endpoints ----

def require_read_token() -> None:
    """Reads are public unless API_READ_TOKEN_REQUIRED is set."""
    if context.config().API_READ_TOKEN_REQUIRED:
        require_token()


def require_token() -> None:
    """A write: a bearer token, or a signed-in page's session with its CSRF token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if auth.session_write_allowed():
            return
        raise ApiError(401, "unauthorized",
                       "send Authorization: Bearer <token> (flask --app wsgi tokens create), "
                       "or sign in at /login and send the page's X-CSRFToken")
    if not symbols.token_is_valid(db.session, token.strip()):
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")



@endpoint(bp, "/stocks", response=Snapshot, summary="Latest snapshot", query=StocksQuery, errors=(404,),
          auth=require_read_token, auth_kind="read")
def stocks(q: StocksQuery):
    wanted = None
    if q.tickers is not None:
        wanted = []
        for raw in (t for t in q.tickers.split(",") if t.strip()):
            ticker = normalise_ticker(raw.strip())
            if ticker is None:
                raise ApiError(400, "bad_parameter",
                               f"tickers: {raw.strip()!r} is not a ticker (1-10 characters of A-Z 0-9 . -)")
            wanted.append(ticker)
        untracked = [t for t in wanted if t not in context.tracked_symbols()]
        if untracked:
            raise ApiError(404, "unknown_ticker", f"tickers: not tracked: {', '.join(untracked)}")
    return jsonify(stocks_service.snapshot(tickers=wanted))


@endpoint(bp, "/stocks/<ticker>", response=StockDetail, summary="One stock", errors=(404,),
          auth=require_read_token, auth_kind="read")
def stock(ticker: str):
    ticker = _ticker(ticker)
    data = stocks_service.stock_detail(ticker)
    return jsonify(data)


@endpoint(bp, "/stocks/<ticker>/history", response=HistoryPage, query=HistoryQuery,
          summary="Stock history", errors=(404,), auth=require_read_token, auth_kind="read")
def stock_history(ticker: str, q: HistoryQuery):
    ticker = _ticker(ticker)
    start, end = q.start or EPOCH, q.end or FAR_FUTURE
    if start >= end:
        raise ApiError(400, "bad_parameter", "start: must be before end")
    kind = f"h{q.interval or ''}"
    after = datetime.fromisoformat(_decode(q.cursor, kind)[0]) if q.cursor else None
    rows: list[Any] = (bars_store.bars(db.session, ticker, q.interval, start, end, after, q.limit)
                       if q.interval else quotes.points(db.session, ticker, start, end, after, q.limit))
    items = [dict(r._asdict(), time=r.time.isoformat()) for r in rows]
    next_cursor = _encode(kind, rows[-1].time.isoformat()) if len(rows) == q.limit else None
    span_end = rows[-1].time if next_cursor else end
    gaps = missed.between(db.session, after or start, span_end)
    return jsonify({"ticker": ticker, "interval": q.interval, "items": items, "next_cursor": next_cursor,
                    "missed": gaps})


@endpoint(bp, "/stocks/<ticker>/chart", response=ChartData, query=ChartQuery,
          summary="Chart data: bars, indicators, markers", errors=(404,), auth=require_read_token,
          auth_kind="read")
def stock_chart(ticker: str, q: ChartQuery):
    """What the chart page draws, for switching timeframe or indicators without a reload."""
    ticker = _ticker(ticker)
    try:
        return jsonify(charts.chart_data(ticker, q.range, q.interval, q.indicators))
    except StudyError as exc:
        raise ApiError(400, "bad_parameter", f"indicators: {exc}") from None


@endpoint(bp, "/search", response=SearchResult, query=SearchQuery, summary="Find symbols",
          auth=require_read_token, auth_kind="read")
def search(q: SearchQuery):
    return jsonify(symbols_service.search_symbols(q.q, q.limit))


@endpoint(bp, "/backfill/<ticker>", response=BackfillStatus, summary="A symbol's backfill progress",
          errors=(404,), auth=require_read_token, auth_kind="read")
def backfill_status(ticker: str):
    """Where a newly tracked symbol's history stands: queued, running (done of total), waiting out a
    rate limit, done, unavailable from this provider (and why), or failed (a later run resumes)."""
    return jsonify(backfill_service.backfill_status(_ticker(ticker)))


@endpoint(bp, "/alerts", response=AlertsPage, query=AlertsQuery, summary="Alerts",
          auth=require_read_token, auth_kind="read")
def alerts(q: AlertsQuery):
    before = None
    if q.cursor:
        when, ident = _decode(q.cursor, "a")
        before = (datetime.fromisoformat(when), int(ident))
    rows = sma_alerts.alerts_page(db.session, q.ticker.upper() if q.ticker else None, q.kind,
                               q.since or EPOCH, before, q.limit)
    items = [stocks_service.alert_json(a) for _, a in rows]
    next_cursor = (_encode("a", rows[-1].alert.time.isoformat(), rows[-1].id)
                   if len(rows) == q.limit else None)
    return jsonify({"alerts": items, "next_cursor": next_cursor})


@endpoint(bp, "/health", response=Health, summary="Health", errors=(503,), bodies={503: Health})
def health():
    ok, body = health_service.health()
    return jsonify(body), 200 if ok else 503


@endpoint(bp, "/stream", response=StreamState, summary="Stream state")
def stream():
    return jsonify(health_service.stream_state())


# ---- scanner ----

class ScanRow(BaseModel):
    ticker: str
    price: float | None
    change_pct: float | None = Field(description="% change vs previous close")
    gap_pct: float | None = Field(description="% gap of the day's open vs previous close")
    volume: float | None = Field(description="the reading's (minute) volume")
    day_volume: float | None = Field(description="cumulative volume since the session began")
    vwap: float | None = Field(description="session VWAP from the minute readings")
    rvol: float | None = Field(description="relative volume at this time of day; null without history")
    rvol_sessions: int = Field(description="earlier sessions RVOL averages (0: none)")
    rvol_note: str | None = Field(None, description="why rvol is null, when it is")
    vol_ratio: float | None = Field(description="minute volume / average of the recent minutes")
    unusual: bool
    new_high: bool
    new_low: bool
    time: datetime | None = Field(description="the reading's quote time")
    value: float | None = Field(None, description="what the list ranks by")


class ScanFilters(BaseModel):
    min_price: float | None
    max_price: float | None
    min_volume: float | None
    min_rvol: float | None


class ScanList(BaseModel):
    list: str
    title: str
    rule: str
    as_of: datetime | None = Field(description="the tick the list comes from")
    stale: bool = Field(description="true when that tick is too old to act on")
    market: Market
    filters: ScanFilters = Field(description="the filters applied (configured, narrowed by the query)")
    rows: list[ScanRow]


class ScanIndex(BaseModel):
    lists: list[dict[str, str]]
    top: int
    depth: int


class ScanQuery(Query):
    limit: int = Field(25, ge=1, le=1000, description="at most SCAN_DEPTH rows without filters")
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    min_volume: float | None = Field(None, ge=0, description="cumulative volume today")
    min_rvol: float | None = Field(None, ge=0)


@endpoint(bp, "/scanner", response=ScanIndex, summary="Scanner lists",
          auth=require_read_token, auth_kind="read")
def scanner_index():
    cfg = context.config()
    return jsonify({"lists": [{"name": n, "title": scan_core.LIST_TITLES[n], "rule": scan_core.LIST_RULES[n]}
                              for n in scan_core.LISTS],
                    "top": cfg.SCAN_TOP, "depth": cfg.SCAN_DEPTH})


@endpoint(bp, "/scanner/<list_name>", response=ScanList, query=ScanQuery, summary="Scanner list",
          errors=(404,), auth=require_read_token, auth_kind="read",
          path_schemas={"list_name": {"type": "string", "enum": list(scan_core.LISTS)}})
def scanner_list(list_name: str, q: ScanQuery):
    if q.min_price is not None and q.max_price is not None and q.min_price > q.max_price:
        raise ApiError(400, "bad_parameter", "min_price: must not exceed max_price")
    extra = Filters(q.min_price, q.max_price, q.min_volume, q.min_rvol)
    limit = q.limit if extra != Filters() else min(q.limit, context.config().SCAN_DEPTH)
    try:
        return jsonify(scanner.scanner_list(list_name, limit, extra))
    except scanner.UnknownList as exc:
        raise ApiError(404, "unknown_list", str(exc)) from None


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@bp.get("/docs")
def docs():
    return render_template("api_docs.html", spec=openapi_document())


# ---- tracked symbols (writes need a token) ----

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
          auth=require_read_token, auth_kind="read")
def list_symbols():
    return jsonify({"symbols": [{"ticker": t, "added_at": a.isoformat()}
                                for t, a in symbols.active(db.session)]})


@endpoint(bp, "/symbols", method="POST", status=201, response=SymbolChange, body=NewSymbol,
          auth=require_token, summary="Track a symbol", bodies={200: SymbolChange})
def add_symbol(data: NewSymbol):
    ticker = data.ticker.upper()
    changed = symbols_service.track_symbol(ticker)  # and queues its backfill
    return jsonify({"ticker": ticker, "active": True, "changed": changed}), 201 if changed else 200


@endpoint(bp, "/symbols/<ticker>", method="DELETE", response=SymbolChange, auth=require_token,
          summary="Stop tracking a symbol", errors=(404,))
def remove_symbol(ticker: str):
    ticker = ticker.upper()
    if not symbols.remove(db.session, ticker):
        raise ApiError(404, "unknown_ticker", f"{ticker} is not tracked")
    context.tracked_symbols(fresh=True)
    return jsonify({"ticker": ticker, "active": False, "changed": True})
