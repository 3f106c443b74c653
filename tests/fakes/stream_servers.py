"""Local WebSocket servers that speak finnhub's, alpaca's and polygon's stream wire formats.

Built on ``websockets.asyncio.server.serve``.  Each connection follows a
scripted behaviour (by connection number, the last one repeating):

* ``ok``: the provider's exact handshake, then subscriptions are answered as
  the provider answers them (alpaca: the full set, or 405 past ``cap``;
  finnhub: an error per symbol past ``cap``; polygon: ``success``);
* ``auth_fail``: alpaca 402 / polygon ``auth_failed`` / finnhub HTTP 401;
* ``busy``: alpaca 406 right after auth / polygon ``max_connections``;
* ``http429``: the upgrade is refused with HTTP 429;
* ``silent``: handshake and subscribe acks, then nothing (pings are still
  answered: the library does that);

The test then pushes frames (``broadcast``) or cuts every socket without a
close frame (``abort``: the client sees 1006).  The fake counts connections,
the most open at once, and records what clients sent.
"""
from __future__ import annotations

import asyncio
import threading
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from websockets.asyncio.server import ServerConnection, serve


class FakeFeed:
    def __init__(self, provider: str, key: str = "test-key", secret: str = "test-secret",
                 cap: int | None = None) -> None:
        self.provider = provider
        self.key, self.secret = key, secret
        self.cap = cap
        self.behaviours: list[str] = ["ok"]
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.received: list[dict[str, Any]] = []
        self.subscribed: dict[int, list[str]] = {}
        self.clients: dict[ServerConnection, int] = {}
        self.port = 0
        self._server: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle
    async def start(self) -> str:
        self.loop = asyncio.get_running_loop()
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                                   ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}" + ("/stocks" if self.provider == "polygon" else
                                                 "/v2" if self.provider == "alpaca" else "")

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def start_in_thread(self) -> str:
        """For tests whose stream processes are real processes: serve from a thread."""
        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                await self.start()
                ready.set()
                await asyncio.Event().wait()
            asyncio.run(main())

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)
        return self.url

    # ---- scripting
    def behaviour(self, index: int) -> str:
        return self.behaviours[min(index, len(self.behaviours) - 1)]

    async def broadcast(self, frame: Any) -> None:
        text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        for ws in list(self.clients):
            try:
                await ws.send(text)
            except Exception:
                pass

    def abort(self) -> None:
        """Cut every connection without a close frame (the client sees 1006)."""
        for ws in list(self.clients):
            ws.transport.abort()

    # ---- the provider's side
    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        index = self.connections  # the number this connection will get
        if self.behaviour(index) == "http429":
            self.connections += 1
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
        if self.provider == "finnhub":
            token = parse_qs(urlparse(request.path).query).get("token", [""])[0]
            if token != self.key or self.behaviour(index) == "auth_fail":
                self.connections += 1
                return connection.respond(HTTPStatus.UNAUTHORIZED, "Invalid API key\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self.subscribed[index] = []
        try:
            if not await getattr(self, f"_hello_{self.provider}")(ws, self.behaviour(index)):
                return
            self.clients[ws] = index
            async for message in ws:
                doc = orjson.loads(message)
                self.received.append({"connection": index, **doc})
                await getattr(self, f"_on_{self.provider}")(ws, index, doc)
        except Exception:
            pass
        finally:
            self.open -= 1
            self.clients.pop(ws, None)

    async def _hello_alpaca(self, ws: ServerConnection, behaviour: str) -> bool:
        await ws.send('[{"T":"success","msg":"connected"}]')
        auth = orjson.loads(await ws.recv())
        if behaviour == "auth_fail" or auth.get("key") != self.key or auth.get("secret") != self.secret:
            await ws.send('[{"T":"error","code":402,"msg":"auth failed"}]')
            await ws.close()
            return False
        if behaviour == "busy":
            await ws.send('[{"T":"error","code":406,"msg":"connection limit exceeded"}]')
            await ws.close()
            return False
        await ws.send('[{"T":"success","msg":"authenticated"}]')
        return True

    async def _on_alpaca(self, ws: ServerConnection, index: int, doc: dict[str, Any]) -> None:
        current = self.subscribed[index]
        wanted = list(doc.get("trades") or [])
        if doc.get("action") == "subscribe":
            new = current + [s for s in wanted if s not in current]
            if self.cap is not None and len(new) > self.cap:
                await ws.send('[{"T":"error","code":405,"msg":"symbol limit exceeded"}]')
                return
        else:
            new = [s for s in current if s not in wanted]
        self.subscribed[index] = new
        await ws.send(orjson.dumps([{"T": "subscription", "trades": new, "quotes": [], "bars": new,
                                     "updatedBars": new, "statuses": new}]).decode())

    async def _hello_polygon(self, ws: ServerConnection, behaviour: str) -> bool:
        await ws.send('[{"ev":"status","status":"connected","message":"Connected Successfully"}]')
        auth = orjson.loads(await ws.recv())
        if behaviour == "auth_fail" or auth.get("params") != self.key:
            await ws.send('[{"ev":"status","status":"auth_failed","message":"authentication failed"}]')
            await ws.close()
            return False
        if behaviour == "busy":
            await ws.send('[{"ev":"status","status":"max_connections","message":"Maximum number of '
                          'websocket connections exceeded."}]')
            await ws.close()
            return False
        await ws.send('[{"ev":"status","status":"auth_success","message":"authenticated"}]')
        return True

    async def _on_polygon(self, ws: ServerConnection, index: int, doc: dict[str, Any]) -> None:
        params = [p for p in str(doc.get("params", "")).split(",") if p]
        syms = [p[2:] for p in params if p.startswith("T.")]
        if doc.get("action") == "subscribe":
            self.subscribed[index] += [s for s in syms if s not in self.subscribed[index]]
        else:
            self.subscribed[index] = [s for s in self.subscribed[index] if s not in syms]
        await ws.send(orjson.dumps([{"ev": "status", "status": "success",
                                     "message": f"subscribed to: {p}"} for p in params]).decode())

    async def _hello_finnhub(self, ws: ServerConnection, behaviour: str) -> bool:
        return True  # the token was checked on the upgrade

    async def _on_finnhub(self, ws: ServerConnection, index: int, doc: dict[str, Any]) -> None:
        symbol = doc.get("symbol")
        current = self.subscribed[index]
        if doc.get("type") == "subscribe":
            if self.cap is not None and len(current) >= self.cap:
                await ws.send('{"msg":"Subscribing to too many symbols","type":"error"}')
                return
            current.append(symbol)
        elif symbol in current:
            current.remove(symbol)


def polygon_trade(sym: str, price: float, size: float, t_ms: int, i: str, x: int = 4,
                  c: list[int] | None = None) -> dict[str, Any]:
    return {"ev": "T", "sym": sym, "x": x, "i": i, "z": 3, "p": price, "s": size, "c": c or [],
            "t": t_ms, "q": int(i) if i.isdigit() else 0}
