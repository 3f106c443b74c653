"""A local HTTP server speaking Alpaca's bars and Polygon's aggregates wire formats.

Bars are a deterministic function of the symbol and the minute (or day), for
every regular-session minute in the asked range, so two backfills can be
compared row for row.  Answers are paged ``PAGE`` bars at a time, with
Alpaca's ``next_page_token`` and Polygon's absolute ``next_url`` (its
cursor).  ``script`` is a list of behaviours, one per request, the last
repeating: ``("ok", None)``, ``("429", seconds)``, ``("status", code)`` or
``("hook", callable)`` (calls it, then answers as ``ok``: a fault injected mid-run).
"""
from __future__ import annotations

import threading
import zlib
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.http import JsonHandler
from webapp.core.market import EXCHANGE_TZ, calendar_for, session_minute_starts

PAGE = 500


def bar(symbol: str, when: datetime, daily: bool) -> dict[str, float]:
    n = int(when.timestamp()) // (86_400 if daily else 60)
    base = 50 + zlib.crc32(symbol.encode()) % 100 + (n % 97) / 10
    return {"o": round(base, 2), "h": round(base + 0.3, 2), "l": round(base - 0.2, 2),
            "c": round(base + 0.1, 2), "v": 1000 + n % 500}


def bars_between(symbol: str, start: datetime, end: datetime, daily: bool) -> list[tuple[datetime, dict]]:
    if daily:
        cal = calendar_for(end)
        days = cal.sessions_in_range(start.astimezone(EXCHANGE_TZ).date(),
                                     (end - timedelta(seconds=1)).astimezone(EXCHANGE_TZ).date())
        times = [datetime.combine(d.date(), datetime.min.time(), tzinfo=EXCHANGE_TZ).astimezone(timezone.utc)
                 for d in days]
        times = [t for t in times if start <= t < end]
    else:
        times = session_minute_starts(start, end)
    return [(t, bar(symbol, t, daily)) for t in times]


class FakeHistory:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.script: list[tuple[str, Any]] = [("ok", None)]
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append({"path": url.path, "query": query})
                if any(self.headers.get(k) != v for k, v in fake.headers.items()):
                    return self._send(401, {"message": "unauthorized"})
                kind, arg = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
                if kind == "429":
                    return self._send(429, {"message": "too many"}, {"Retry-After": str(arg)})
                if kind == "status":
                    return self._send(arg, {"message": "error"})
                if kind == "hook":
                    arg()
                parts = url.path.strip("/").split("/")
                if parts[:2] == ["v2", "stocks"] and parts[3:] == ["bars"]:
                    return self._alpaca(parts[2], query)
                if parts[:3] == ["v2", "aggs", "ticker"]:
                    return self._polygon(parts[3], parts[6], int(parts[7]), int(parts[8]), query)
                return self._send(404, {"message": "not found"})

            def _alpaca(self, symbol: str, q: dict[str, str]) -> None:
                start = datetime.fromisoformat(q["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(q["end"].replace("Z", "+00:00"))
                got = bars_between(symbol, start, end, q["timeframe"] == "1Day")
                offset = int(q.get("page_token") or 0)
                page = got[offset:offset + min(PAGE, int(q.get("limit", PAGE)))]
                more = offset + len(page) < len(got)
                token = str(offset + len(page)) if more else None
                wire = [{"t": t.isoformat().replace("+00:00", "Z"), **b, "n": 10, "vw": b["c"]}
                        for t, b in page]
                self._send(200, {"symbol": symbol, "next_page_token": token, "bars": wire})

            def _polygon(self, symbol: str, span: str, start_ms: int, end_ms: int, q: dict[str, str]) -> None:
                start = datetime.fromtimestamp(start_ms / 1000, timezone.utc)
                end = datetime.fromtimestamp((end_ms + 1) / 1000, timezone.utc)
                got = bars_between(symbol, start, end, span == "day")
                offset = int(q.get("cursor") or 0)
                page = got[offset:offset + PAGE]
                more = offset + len(page) < len(got)
                host = f"http://127.0.0.1:{fake.server.server_address[1]}"
                body: dict[str, Any] = {
                    "ticker": symbol, "status": "OK", "resultsCount": len(page), "adjusted": False,
                    "results": [{"t": int(t.timestamp() * 1000), **b} for t, b in page]}
                if more:
                    body["next_url"] = f"{host}{urlparse(self.path).path}?cursor={offset + len(page)}"
                self._send(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
