"""What several API resources parse the same way: a ticker in the path, opaque cursors, time bounds.

Cursors are opaque to clients and checked on the way in: a forged one is a
400 that says so, never a 500.
"""
from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from typing import Literal

from webapp.services import stocks as stocks_service
from webapp.web.errors import ApiError

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


Interval = Literal["1m", "5m", "15m", "1h", "1d"]  # bars_store.INTERVALS: bars' timeframes


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> list[str]:
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        parts = []
    if not parts or parts[0] != kind:
        raise ApiError(400, "bad_parameter", "cursor: not a cursor this endpoint issued")
    return parts[1:]


def ticker_or_404(raw: str) -> str:
    try:
        return stocks_service.known_ticker(raw)
    except stocks_service.UnknownTicker as exc:
        raise ApiError(404, "unknown_ticker", str(exc)) from None
