"""Finnhub's trade stream (``wss://ws.finnhub.io?token=…``).

No handshake: the key is in the query string (so the URL is never logged).
One ``{"type":"subscribe","symbol":…}`` per symbol.  Trades come batched
as ``{"type":"trade","data":[{"s","p","t","v","c"}]}`` with ``t`` in
milliseconds; a ``{"type":"ping"}`` about once a minute needs no answer.
The free plan streams 50 symbols and answers the 51st with
``{"type":"error","msg":"Subscribing to too many symbols"}``.  There is no
trade id, and identical prints are real trades: nothing is deduplicated.
Finnhub's condition codes have no published SIP meaning, so prints count
fully (:func:`webapp.core.trades.eligibility`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson

from webapp.core.trades import Trade
from webapp.streams.base import Parsed, frame

DEFAULT_URL = "wss://ws.finnhub.io"


class FinnhubStream:
    refuses_each = True  # one symbol-cap answer per refused symbol (else one for the whole request)
    name = "finnhub"

    def __init__(self, api_key: str, url: str | None = None, plan_cap: int | None = 50) -> None:
        self._key = api_key
        self.base = (url or DEFAULT_URL).rstrip("/")
        self.plan_cap = plan_cap

    def url(self) -> str:
        return f"{self.base}?token={quote(self._key)}"

    @property
    def where(self) -> str:
        return f"{self.base}?token=…"

    def headers(self) -> dict[str, str]:
        return {}

    async def handshake(self, ws: Any) -> None:
        return None  # the token in the URL is the auth; a bad one is refused at the upgrade

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return [orjson.dumps({"type": "subscribe", "symbol": s}).decode() for s in symbols]

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return [orjson.dumps({"type": "unsubscribe", "symbol": s}).decode() for s in symbols]

    def shrink(self, kept: Sequence[str], dropped: Sequence[str]) -> list[str]:
        return self.unsubscribe(dropped)

    def parse(self, message: str | bytes) -> Parsed:
        doc = frame(message, dict)
        kind = doc.get("type")
        if kind == "ping":
            return Parsed()
        if kind == "error":
            msg = str(doc.get("msg", ""))
            return Parsed(too_many="too many symbols" in msg.lower(), notices=[msg])
        if kind != "trade":
            return Parsed(notices=[f"unknown message type {kind!r}"])
        rows = doc.get("data")
        if not isinstance(rows, list):
            raise ValueError("a trade message without a data list")
        out = []
        for r in rows:
            try:
                out.append(Trade(r["s"], float(r["p"]), float(r["v"]), int(r["t"]),
                                 tuple(r.get("c") or ())))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"a trade without a valid {exc}") from None
        return Parsed(trades=out)
