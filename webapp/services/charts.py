"""What the chart page draws: bars at a timeframe, indicator lines and markers, built on the server.

The indicator values come from :mod:`webapp.core.indicator_series`, the same
functions the rules use, so a line on the chart and a rule's operand agree.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from webapp.core import indicator_series
from webapp.core.market import (
    EXCHANGE_TZ,
    RANGE_ALIASES,
    exchange_day_start,
    range_start,
)
from webapp.extensions import db
from webapp.services.backfill import backfill_status
from webapp.services.context import config
from webapp.services.stocks import stock_detail
from webapp.store import bars, quotes, sma_alerts

MAX_CHART_POINTS = 20_000


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


CHART_INTERVALS = bars.INTERVALS


def chart_interval(range_name: str, span: quotes.Span, now: datetime) -> str:
    """The finest timeframe that keeps a range's bars readable (TradingView's defaults: 1D in
    minutes, 5D in 5 minutes, a month in hours, longer in days), judged by the part of the range
    that holds data: a new install shows minute candles whatever the range.  Where the minute
    readings cover too little of the range (older days are daily bars only), days."""
    if span.first_minute is None and span.first_day is None:
        return "1m"  # nothing yet: the live readings, as they come
    start = range_start(now, range_name)
    have = min([t for t in (span.first_minute, span.first_day) if t is not None], default=now)
    begins = max(start, have)
    days = ((span.last or now) - begins).total_seconds() / 86_400
    interval = "1m" if days <= 1.5 else "5m" if days <= 8 else "1h" if days <= 45 else "1d"
    if interval != "1d" and (span.first_minute is None or span.first_minute > begins + timedelta(days=3)):
        return "1d"
    return interval


def _bucket(when: datetime, interval: str) -> int:
    """The start (epoch seconds) of the bar of ``interval`` that ``when`` falls in."""
    if interval == "1d":
        return _epoch(exchange_day_start(when))
    width = bars.INTERVAL_SECONDS[interval]
    return _epoch(when) // width * width


def chart_data(ticker: str, range_name: str, interval: str | None = None, studies: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    """Everything the chart page draws before any request: OHLCV bars at a timeframe, the
    indicator lines (computed here, by :mod:`webapp.core.indicator_series`, never in the browser),
    the SMA alerts and rule fires as markers on their bars.

    ``studies`` is the chart's ``indicators`` text (``sma:20,rsi:14``); None means the tracker's own
    SMA.  Raises :class:`indicator_series.StudyError` for one it cannot draw.
    """
    now = now or datetime.now(timezone.utc)
    range_name = RANGE_ALIASES.get(range_name, range_name)
    start = range_start(now, range_name)
    interval = interval or chart_interval(range_name, quotes.data_span(db.session, ticker), now)
    chosen = indicator_series.parse(f"sma:{config().SMA_PERIOD}" if studies is None else studies)
    warm = bars.bars_before(db.session, ticker, interval, start, indicator_series.lookback(chosen))
    shown = bars.bars(db.session, ticker, interval, start, now + timedelta(days=1), None, MAX_CHART_POINTS)
    every = [*warm, *shown]
    cols = {k: np.array([getattr(b, k) for b in every], float) for k in ("open", "high", "low", "close")}
    cols["volume"] = np.array([b.volume or 0 for b in every], float)
    cols["session"] = np.array([b.time.astimezone(EXCHANGE_TZ).date().toordinal() for b in every])
    times = [_epoch(b.time) for b in shown]
    lines = []
    for study in chosen:
        got = indicator_series.compute(study, cols)
        pane = indicator_series.PANE.get(study.kind, "price")
        lines.append({"key": study.key, "kind": study.kind, "pane": pane,
                      "lines": {name: [{"time": t, "value": float(v)}
                                       for t, v in zip(times, values[len(warm):].tolist(), strict=True)
                                       if v == v]
                                for name, values in got.items()}})
    alerts = [a for _, a in sma_alerts.alerts_page(db.session, ticker, None, start, None, MAX_CHART_POINTS)]
    return {
        **stock_detail(ticker, now),
        "range": range_name,
        "interval": interval,
        "intervals": list(CHART_INTERVALS),
        "bucket_seconds": bars.INTERVAL_SECONDS[interval],
        "today_start": _epoch(exchange_day_start(now)),
        "tick_seconds": config().TICK_SECONDS,
        "bars": [{"time": _epoch(b.time), "open": b.open, "high": b.high, "low": b.low, "close": b.close,
                  "volume": b.volume} for b in shown],
        "studies": lines,
        "backfill": backfill_status(ticker),
        "alerts": [{"time": _bucket(a.time, interval), "iso": a.time.isoformat(), "kind": a.kind,
                    "price": a.price, "sma": a.sma} for a in reversed(alerts)],
    }
