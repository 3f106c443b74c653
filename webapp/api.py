"""JSON endpoints.  Thin: each calls a service and shapes the answer."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from webapp import services
from webapp.core.validation import normalise_ticker
from webapp.errors import ApiError

bp = Blueprint("api", __name__)


@bp.get("/stocks")
def stocks():
    return jsonify(services.snapshot())


@bp.get("/alerts")
def alerts():
    raw_ticker = request.args.get("ticker", "").strip()
    ticker = normalise_ticker(raw_ticker) if raw_ticker else None
    if raw_ticker and ticker is None:
        raise ApiError(400, "bad_parameter", f"ticker {raw_ticker!r}: 1-10 characters of A-Z 0-9 . -")
    raw_limit = request.args.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= services.MAX_FEED_ALERTS:
        raise ApiError(400, "bad_parameter",
                       f"limit {raw_limit!r}: an integer from 1 to {services.MAX_FEED_ALERTS}")
    return jsonify({"alerts": services.alert_feed(ticker, int(raw_limit))})


@bp.get("/health")
def health():
    ok, body = services.health()
    return jsonify(body), 200 if ok else 503
