"""A local HTTP server speaking Alpaca's and Polygon's snapshot wire formats.

``script`` is a list of behaviours consumed one per request (the last one
repeats): ``("ok", None)`` answers the recorded payload (for Alpaca, only the
requested symbols: the real API leaves unknown ones out), ``("429", s)``,
``("status", code)``, ``("raw", bytes)`` or ``("slow", seconds)``.
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

DATA = Path(__file__).parent.parent / "data"
ALPACA = json.loads((DATA / "alpaca" / "snapshots.json").read_text())
POLYGON = json.loads((DATA / "polygon" / "snapshot.json").read_text())


class FakeSnapshots:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.script: list[tuple[str, Any]] = [("ok", None)]
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append({"path": url.path, "query": query,
                                      "headers": {k: self.headers.get(k) for k in fake.headers}})
                if any(self.headers.get(k) != v for k, v in fake.headers.items()):
                    return self._send(401, {"message": "unauthorized"})
                kind, arg = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                if kind == "429":
                    return self._send(429, {"message": "too many"}, {"Retry-After": str(arg)})
                if kind == "status":
                    return self._send(arg, {"message": "error"})
                if kind == "raw":
                    return self._send(200, None, raw=arg)
                if kind == "slow":
                    time.sleep(arg)
                if url.path == "/v2/stocks/snapshots":
                    wanted = query.get("symbols", "").split(",")
                    return self._send(200, {s: ALPACA[s] for s in wanted if s in ALPACA})
                if url.path == "/v2/snapshot/locale/us/markets/stocks/tickers":
                    return self._send(200, POLYGON)
                return self._send(404, {"message": "not found"})


        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
