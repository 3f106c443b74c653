"""Massive's (Polygon's) stocks stream (``wss://socket.polygon.io/stocks``).

The server says ``connected``; we send ``{"action":"auth","params":KEY}``
and expect ``auth_success`` (``auth_failed`` is fatal).  We subscribe to
``T.<sym>``, ``AM.<sym>`` and ``LULD.<sym>``.  Trades are ``{"ev":"T","sym","x","i","z",
"p","s","c","t","q"}`` with ``t`` the SIP time in ms and numeric condition
ids; the unique key is (sym, x, trfi, i) (``q`` alone is not safe).  Minute
aggregates (``AM``) are re-sent when a late trade changes them: a repeated
bar time replaces the earlier one.  Limit-up/limit-down events
(``{"ev":"LULD","T","h","l","i","z","t","q"}``, ``t`` in ms) carry a halt
in their indicators as 17 and a resume as 18 (Nasdaq-listed securities
only); the rest are band updates, not kept.  A second connection closes
the older one with ``max_connections``: busy, wait before dialling again.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from webapp.core.trades import Trade
from webapp.streams.base import Halt, Parsed, ProviderBar, StreamRefused, frame

DEFAULT_URL = "wss://socket.polygon.io/stocks"
_CHUNK = 500  # symbols per subscribe message (keeps frames well under 64 KiB)
HALT, RESUME = 17, 18  # the LULD indicators of a trading halt and its resume


class PolygonStream:
    refuses_each = False  # one symbol-cap answer per refused symbol (else one for the whole request)
    name = "polygon"
    plan_cap = None  # no ticker cap "as long as you can consume the data"

    def __init__(self, api_key: str, url: str | None = None) -> None:
        self._key = api_key
        self.base = (url or DEFAULT_URL).rstrip("/")

    def url(self) -> str:
        return self.base

    @property
    def where(self) -> str:
        return self.base

    def headers(self) -> dict[str, str]:
        return {}

    async def handshake(self, ws: Any) -> None:
        self._status(orjson.loads(await ws.recv()), "connected")
        await ws.send(orjson.dumps({"action": "auth", "params": self._key}).decode())
        self._status(orjson.loads(await ws.recv()), "auth_success")

    @staticmethod
    def _status(doc: Any, wanted: str) -> None:
        first = doc[0] if isinstance(doc, list) and doc and isinstance(doc[0], dict) else {}
        status = first.get("status")
        if status == wanted:
            return
        if status == "auth_failed":
            raise StreamRefused("fatal", f"polygon auth_failed: {first.get('message', '')}")
        if status == "max_connections":
            raise StreamRefused("busy", f"polygon max_connections: {first.get('message', '')}")
        raise StreamRefused("retry", f"polygon: expected {wanted}, got {str(doc)[:120]}")

    def _messages(self, action: str, symbols: Sequence[str]) -> list[str]:
        syms = list(symbols)
        return [orjson.dumps({"action": action, "params": ",".join(
            p for s in syms[i:i + _CHUNK] for p in (f"T.{s}", f"AM.{s}", f"LULD.{s}"))}).decode()
            for i in range(0, len(syms), _CHUNK)]

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._messages("subscribe", symbols)

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return self._messages("unsubscribe", symbols)

    def shrink(self, kept: Sequence[str], dropped: Sequence[str]) -> list[str]:
        return self.unsubscribe(dropped)

    def parse(self, message: str | bytes) -> Parsed:
        doc = frame(message, list)
        out = Parsed()
        trades = out.trades
        for m in doc:
            try:
                ev = m["ev"]
                if ev == "T":
                    trades.append(Trade(m["sym"], float(m["p"]), float(m["s"]), int(m["t"]),
                                        tuple(m.get("c") or ()), (m["sym"], m["x"], m.get("trfi"), m["i"])))
                elif ev == "AM":
                    out.bars.append(ProviderBar(m["sym"], int(m["s"]) // 1000, float(m["o"]), float(m["h"]),
                                                float(m["l"]), float(m["c"]), float(m["v"]), m.get("vw"),
                                                None))
                elif ev == "status":
                    status = m.get("status")
                    if status == "auth_failed":
                        raise StreamRefused("fatal", f"polygon auth_failed: {m.get('message', '')}")
                    if status == "max_connections":
                        raise StreamRefused("busy", f"polygon max_connections: {m.get('message', '')}")
                    if status not in ("success", "connected", "auth_success"):
                        out.notices.append(f"polygon {status}: {m.get('message', '')}")
                elif ev == "LULD":
                    indicators = m.get("i") or ()
                    for code, halted, reason in ((HALT, True, "trading halt (LULD)"),
                                                 (RESUME, False, "trading resumed (LULD)")):
                        if code in indicators:
                            out.halts.append(Halt(m["T"], halted, str(code), reason, int(m["t"])))
                else:
                    continue  # quotes, per-second aggregates: not subscribed
            except (KeyError, TypeError) as exc:
                raise ValueError(f"a message without a valid {exc}: {str(m)[:80]}") from None
        return out
