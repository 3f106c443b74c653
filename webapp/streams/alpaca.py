"""Alpaca's market-data stream v2 (``wss://stream.data.alpaca.markets/v2/{iex|sip|test}``).

The server welcomes with ``[{"T":"success","msg":"connected"}]``; we send
``{"action":"auth","key","secret"}`` and expect ``authenticated``.  We
subscribe to ``trades``, ``bars``, ``updatedBars`` and ``statuses``; every
change is answered with the full current set (``T: subscription``).
Error codes: 402 auth failed and 409 insufficient subscription are fatal;
406 (connection limit: a dropped connection holds the slot ~90 s) is busy;
405 (symbol limit) leaves the subscription as it was, so we subscribe again
with fewer.  Trades are ``{"T":"t","S","i","x","p","s","t","c","z"}`` with
``t`` in RFC 3339 (nanoseconds); the unique key is (S, day, x, i): the same
time, price, size and exchange with another id is a real trade.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from webapp.core.trades import Trade
from webapp.streams.base import Halt, Parsed, ProviderBar, StreamRefused, frame

DEFAULT_URL = "wss://stream.data.alpaca.markets/v2"
FATAL = {402: "auth failed", 408: "v2 not enabled", 409: "insufficient subscription"}
BUSY = {406: "connection limit exceeded"}
TRADING = frozenset({"T", "3"})  # UTDF "T" trading resumed, CTS 3 trading resumption


def epoch_ms(rfc3339: str) -> int:
    """RFC 3339 with up to nanoseconds (``2021-02-22T15:51:44.208123456Z``) as epoch ms."""
    text = rfc3339.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    return int(datetime.fromisoformat(text).timestamp() * 1000 // 1)


def refusal(code: int, msg: str) -> StreamRefused:
    if code in FATAL:
        return StreamRefused("fatal", f"alpaca {code} {msg or FATAL[code]}")
    if code in BUSY:
        return StreamRefused("busy", f"alpaca {code} {msg or BUSY[code]}")
    return StreamRefused("retry", f"alpaca {code} {msg}")


class AlpacaStream:
    refuses_each = False  # one symbol-cap answer per refused symbol (else one for the whole request)
    name = "alpaca"

    def __init__(self, key_id: str, secret: str, feed: str = "iex", url: str | None = None,
                 plan_cap: int | None = None) -> None:
        self._key, self._secret = key_id, secret
        self.feed = feed
        self.base = (url or DEFAULT_URL).rstrip("/")
        self.plan_cap = plan_cap if plan_cap is not None else (30 if feed == "iex" else None)

    def url(self) -> str:
        return f"{self.base}/{self.feed}"

    @property
    def where(self) -> str:
        return self.url()

    def headers(self) -> dict[str, str]:
        return {}

    async def handshake(self, ws: Any) -> None:
        welcome = orjson.loads(await ws.recv())
        if not (isinstance(welcome, list) and welcome and welcome[0].get("msg") == "connected"):
            raise StreamRefused("retry", f"alpaca: unexpected welcome {str(welcome)[:120]}")
        await ws.send(orjson.dumps({"action": "auth", "key": self._key, "secret": self._secret}).decode())
        answer = orjson.loads(await ws.recv())
        first = answer[0] if isinstance(answer, list) and answer else {}
        if first.get("T") == "error":
            raise refusal(int(first.get("code", 0)), str(first.get("msg", "")))
        if first.get("msg") != "authenticated":
            raise StreamRefused("retry", f"alpaca: unexpected auth answer {str(answer)[:120]}")

    def _message(self, action: str, symbols: Sequence[str]) -> str:
        syms = list(symbols)
        return orjson.dumps({"action": action, "trades": syms, "bars": syms, "updatedBars": syms,
                             "statuses": syms}).decode()

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        return [self._message("subscribe", symbols)] if symbols else []

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]:
        return [self._message("unsubscribe", symbols)] if symbols else []

    def shrink(self, kept: Sequence[str], dropped: Sequence[str]) -> list[str]:
        return self.subscribe(kept)  # a 405 leaves the subscription as it was before the request

    def parse(self, message: str | bytes) -> Parsed:
        doc = frame(message, list)
        out = Parsed()
        for m in doc:
            kind = m.get("T") if isinstance(m, dict) else None
            try:
                if kind == "t":
                    ms = epoch_ms(m["t"])
                    out.trades.append(Trade(m["S"], float(m["p"]), float(m["s"]), ms,
                                            tuple(m.get("c") or ()), (m["S"], m["t"][:10], m["x"], m["i"])))
                elif kind in ("b", "u"):
                    out.bars.append(ProviderBar(m["S"], epoch_ms(m["t"]) // 1000, float(m["o"]),
                                                float(m["h"]), float(m["l"]), float(m["c"]), float(m["v"]),
                                                m.get("vw"), m.get("n")))
                elif kind == "s":
                    code = str(m.get("sc", ""))
                    out.halts.append(Halt(m["S"], code not in TRADING, code,
                                          str(m.get("rm") or m.get("sm") or ""), epoch_ms(m["t"])))
                elif kind == "subscription":
                    out.subscribed = list(m.get("trades") or [])
                elif kind == "error":
                    code = int(m.get("code", 0))
                    if code == 405:
                        out.too_many = True
                        out.notices.append(f"alpaca 405 {m.get('msg', 'symbol limit exceeded')}")
                    else:
                        raise refusal(code, str(m.get("msg", "")))
                elif kind in ("success", "d", "c", "x", "q", "l"):
                    continue  # acks, daily bars, corrections, cancels, quotes, LULD: not used yet
                else:
                    raise ValueError(f"unknown message {str(m)[:80]}")
            except (KeyError, TypeError) as exc:
                raise ValueError(f"a {kind!r} message without a valid {exc}") from None
        return out
