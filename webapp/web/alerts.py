"""``/api/alerts``: the built-in SMA crossover alerts, newest first, paged by cursor."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field

from webapp.extensions import db
from webapp.services import stocks as stocks_service
from webapp.store import sma_alerts
from webapp.web.access import PUBLIC
from webapp.web.apispec import Query, Timestamp, endpoint
from webapp.web.params import EPOCH, decode_cursor, encode_cursor

bp = Blueprint("alerts", __name__)


class AlertItem(BaseModel):
    ticker: str
    kind: Literal["bullish", "bearish"]
    time: datetime
    price: float
    sma: float


class AlertsPage(BaseModel):
    alerts: list[AlertItem]
    next_cursor: str | None


class AlertsQuery(Query):
    ticker: str | None = Field(None, pattern=r"^[A-Za-z0-9.\-]{1,10}$")
    kind: Literal["bullish", "bearish"] | None = None
    since: Timestamp | None = Field(None, description="ISO 8601 or unix seconds")
    limit: int = Field(100, ge=1, le=stocks_service.MAX_FEED_ALERTS)
    cursor: str | None = None


@endpoint(bp, "/alerts", response=AlertsPage, query=AlertsQuery, summary="Alerts",
          auth=PUBLIC)
def alerts(q: AlertsQuery):
    before = None
    if q.cursor:
        when, ident = decode_cursor(q.cursor, "a", "time", "int")
        before = (when, ident)
    rows = sma_alerts.alerts_page(db.session, q.ticker.upper() if q.ticker else None, q.kind,
                               q.since or EPOCH, before, q.limit)
    items = [stocks_service.alert_json(a) for _, a in rows]
    next_cursor = (encode_cursor("a", rows[-1].alert.time.isoformat(), rows[-1].id)
                   if len(rows) == q.limit else None)
    return jsonify({"alerts": items, "next_cursor": next_cursor})
