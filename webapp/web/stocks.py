"""``/api/stocks``: the latest snapshot, one stock, its history and its chart.

Thin: the views parse with pydantic (:mod:`webapp.web.apispec`) and call
:mod:`webapp.services.stocks` and :mod:`webapp.services.charts`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field

from webapp.core.indicator_series import StudyError
from webapp.core.market import RANGES
from webapp.core.validation import normalise_ticker
from webapp.extensions import db
from webapp.services import charts, context
from webapp.services import stocks as stocks_service
from webapp.store import bars as bars_store
from webapp.store import missed, quotes
from webapp.web.access import PUBLIC
from webapp.web.apispec import Query, Timestamp, endpoint
from webapp.web.errors import ApiError
from webapp.web.params import EPOCH, FAR_FUTURE, Interval, decode_cursor, encode_cursor, ticker_or_404
from webapp.web.symbols import BackfillStatus

bp = Blueprint("stocks", __name__)


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


class StocksQuery(Query):
    tickers: str | None = Field(None, description="comma-separated tickers to return (default: all tracked)",
                                max_length=2000,
                                pattern=r"^[ ,]*([A-Za-z0-9.\-]{1,10}( *,[ ,]*[A-Za-z0-9.\-]{1,10})*)?[ ,]*$")


class HistoryQuery(Query):
    start: Timestamp | None = Field(None, description="ISO 8601 or unix seconds (inclusive)")
    end: Timestamp | None = Field(None, description="ISO 8601 or unix seconds (exclusive)")
    limit: int = Field(500, ge=1, le=5000)
    cursor: str | None = None
    interval: Interval | None = Field(
        None, description="aggregate to OHLCV bars (computed in SQL)")


class ChartQuery(Query):
    range: Literal[RANGES] = Field("1d", description="1d, 5d, 1m, 6m, ytd, 1y or all, "  # type: ignore[valid-type]
                                                       "on XNYS sessions")
    interval: Interval | None = Field(
        None, description="the bars' timeframe (default: the finest that keeps the range readable)")
    indicators: str | None = Field(
        None, max_length=200, description="comma-separated: sma:N, ema:N, vwap, bb:N:K, rsi:N, "
                                          "macd:FAST:SLOW:SIGNAL, or none (default: the tracker's SMA)")


@endpoint(bp, "/stocks", response=Snapshot, summary="Latest snapshot", query=StocksQuery, errors=(404,),
          auth=PUBLIC)
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
          auth=PUBLIC)
def stock(ticker: str):
    ticker = ticker_or_404(ticker)
    data = stocks_service.stock_detail(ticker)
    return jsonify(data)


@endpoint(bp, "/stocks/<ticker>/history", response=HistoryPage, query=HistoryQuery,
          summary="Stock history", errors=(404,), auth=PUBLIC)
def stock_history(ticker: str, q: HistoryQuery):
    ticker = ticker_or_404(ticker)
    start, end = q.start or EPOCH, q.end or FAR_FUTURE
    if start >= end:
        raise ApiError(400, "bad_parameter", "start: must be before end")
    kind = f"h{q.interval or ''}"
    after = decode_cursor(q.cursor, kind, "time")[0] if q.cursor else None
    rows: list[Any] = (bars_store.bars(db.session, ticker, q.interval, start, end, after, q.limit)
                       if q.interval else quotes.points(db.session, ticker, start, end, after, q.limit))
    items = [dict(r._asdict(), time=r.time.isoformat()) for r in rows]
    next_cursor = encode_cursor(kind, rows[-1].time.isoformat()) if len(rows) == q.limit else None
    span_end = rows[-1].time if next_cursor else end
    gaps = missed.between(db.session, after or start, span_end)
    return jsonify({"ticker": ticker, "interval": q.interval, "items": items, "next_cursor": next_cursor,
                    "missed": gaps})


@endpoint(bp, "/stocks/<ticker>/chart", response=ChartData, query=ChartQuery,
          summary="Chart data: bars, indicators, markers", errors=(404,), auth=PUBLIC)
def stock_chart(ticker: str, q: ChartQuery):
    """What the chart page draws, for switching timeframe or indicators without a reload."""
    ticker = ticker_or_404(ticker)
    try:
        return jsonify(charts.chart_data(ticker, q.range, q.interval, q.indicators))
    except StudyError as exc:
        raise ApiError(400, "bad_parameter", f"indicators: {exc}") from None
