"""A local HTTP server that speaks Finnhub's REST quote wire format.

Each symbol can be scripted with a list of behaviours, consumed one per
request (the last one repeats): a recorded quote, 429 with Retry-After,
5xx, a slow answer (for client timeouts), a malformed body, or 401.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.http import JsonHandler

RECORDED = {
    k: v for k, v in json.loads(
        (Path(__file__).parent.parent / "data" / "finnhub" / "quotes.json").read_text()
    ).items() if not k.startswith("_")
}


class FakeFinnhub:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.script: dict[str, list[tuple[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                symbol = parse_qs(url.query).get("symbol", [""])[0]
                fake.requests.append({"path": self.path, "symbol": symbol,
                                      "token": self.headers.get("X-Finnhub-Token"),
                                      "at": time.monotonic()})
                if url.path != "/api/v1/quote":
                    return self._send(404, {"error": "not found"})
                if self.headers.get("X-Finnhub-Token") != fake.api_key:
                    return self._send(401, {"error": "Invalid API key"})
                steps = fake.script.get(symbol) or [("quote", None)]
                kind, arg = steps.pop(0) if len(steps) > 1 else steps[0]
                if kind == "quote":
                    body = arg if arg is not None else RECORDED.get(
                        symbol, {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0})
                    return self._send(200, body)
                if kind == "429":
                    return self._send(429, {"error": "API limit reached"}, {"Retry-After": str(arg)})
                if kind == "status":
                    return self._send(arg, {"error": "server error"})
                if kind == "slow":
                    time.sleep(arg)
                    return self._send(200, RECORDED.get(symbol, {}))
                if kind == "raw":
                    return self._send(200, None, raw=arg)
                raise AssertionError(f"unknown scripted behaviour {kind}")


        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def requests_for(self, symbol: str) -> int:
        return sum(1 for r in self.requests if r["symbol"] == symbol)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
