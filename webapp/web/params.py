"""What several API resources parse the same way: a ticker in the path, opaque cursors, time bounds.

Cursors are opaque to clients and checked on the way in: a forged one is a
400 that says so, never a 500.
"""
from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from typing import Any, Literal

from webapp.services import stocks as stocks_service
from webapp.web.errors import ApiError

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


Interval = Literal["1m", "5m", "15m", "1h", "1d"]  # bars_store.INTERVALS: bars' timeframes


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode().rstrip("=")


def _ascii_int(text: str) -> int:
    """Only 1-18 ASCII digits: ``int()`` would also take ``²``-like digits, spaces and underscores."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ValueError(text)
    return int(text)


def _aware_time(text: str) -> datetime:
    got = datetime.fromisoformat(text)
    if got.tzinfo is None:
        raise ValueError(text)
    return got


CURSOR_PARTS = {"int": _ascii_int, "time": _aware_time}


def decode_cursor(cursor: str, kind: str, *types: str) -> list[Any]:
    """The parts of a cursor this endpoint issued, each parsed as ``types`` says (``int``, ``time``);
    anything else, forged or cut short, is a 400."""
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        if parts[0] != kind or len(parts) != len(types) + 1:
            raise ValueError(cursor)
        return [CURSOR_PARTS[t](p) for t, p in zip(types, parts[1:], strict=True)]
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise ApiError(400, "bad_parameter", "cursor: not a cursor this endpoint issued") from None


def ticker_or_404(raw: str) -> str:
    try:
        return stocks_service.known_ticker(raw)
    except stocks_service.UnknownTicker as exc:
        raise ApiError(404, "unknown_ticker", str(exc)) from None
