"""Alpaca market data v2 snapshots: ``GET /v2/stocks/snapshots?symbols=…``.

Each symbol's entry has ``latestTrade`` (``p`` price, ``t`` RFC 3339 time),
``minuteBar``, ``dailyBar`` and ``prevDailyBar`` (``o h l c v``).  Symbols go
in chunks of ``CHUNK`` per call; unknown symbols are simply absent.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from webapp.core.market import exchange_day_start
from webapp.core.quotes import Quote
from webapp.providers.base import HistoryBar, MalformedHistory
from webapp.providers.http import ProviderSession
from webapp.providers.snapshot import (
    MalformedSnapshot,
    SnapshotProvider,
    bars_quote,
    history_bar,
    history_page,
    number,
    rfc3339,
    section,
)

CHUNK = 500


class AlpacaProvider(SnapshotProvider):
    name = "alpaca"

    def __init__(self, *args: Any, base_url: str, feed: str = "iex", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._url = base_url.rstrip("/") + "/v2/stocks/snapshots"
        self._feed = feed

    def requests_for(self, symbols: Sequence[str]) -> Iterator[tuple[list[str], str, dict[str, Any]]]:
        for i in range(0, len(symbols), CHUNK):
            chunk = list(symbols[i : i + CHUNK])
            yield chunk, self._url, {"symbols": ",".join(chunk), "feed": self._feed}

    def entries(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body, dict):
            raise MalformedSnapshot("expected an object of symbol -> snapshot")
        # the multi-symbol answer is symbol -> snapshot (older SDKs wrapped it in "snapshots")
        return body["snapshots"] if isinstance(body.get("snapshots"), dict) else body

    def quote(self, ticker: str, entry: Any) -> Quote:
        if not isinstance(entry, dict):
            raise MalformedSnapshot("entry is not an object")
        trade = section(entry, "latestTrade")
        minute, day = section(entry, "minuteBar"), section(entry, "dailyBar")
        prev = section(entry, "prevDailyBar")
        price = number(trade, "p", required=True)
        when = rfc3339(trade.get("t"))
        return bars_quote(ticker, price, when, minute, day, prev, self.name)  # type: ignore[arg-type]


class AlpacaHistory:
    """Alpaca's bars: ``GET /v2/stocks/{symbol}/bars?timeframe=1Min|1Day`` with ``next_page_token``.

    Each bar is ``{"t": RFC 3339 start, "o", "h", "l", "c", "v", "n", "vw"}``; a
    page holds at most ``limit`` bars and a token for the next one.  429 raises
    :class:`HistoryThrottled` with the server's ``Retry-After``, so the backfill
    waits and resumes where it was.
    """

    name = "alpaca"
    PAGE = 10_000

    def __init__(self, http: ProviderSession, base_url: str, feed: str = "iex") -> None:
        self._http, self._base, self._feed = http, base_url.rstrip("/"), feed

    def _bars(self, ticker: str, timeframe: str, start: datetime, end: datetime) -> list[HistoryBar]:
        out: list[HistoryBar] = []
        token: str | None = None
        while True:
            params = {"timeframe": timeframe, "start": start.isoformat().replace("+00:00", "Z"),
                      "end": end.isoformat().replace("+00:00", "Z"), "limit": self.PAGE,
                      "adjustment": "raw", "feed": self._feed, "sort": "asc"}
            if token:
                params["page_token"] = token
            body = history_page(self._http, f"{self._base}/v2/stocks/{ticker}/bars", params)
            bars = body.get("bars") or []
            if not isinstance(bars, list):
                raise MalformedHistory("'bars' is not a list")
            for b in bars:
                when = rfc3339(b.get("t") if isinstance(b, dict) else None)
                out.append(history_bar(when, b))
            token = body.get("next_page_token")
            if not token:
                return [b for b in out if start <= b.time < end]

    def minute_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        return self._bars(ticker, "1Min", start, end)

    def daily_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        # a daily bar is stamped at its session's midnight in New York (04:00 or 05:00 UTC)
        return [b._replace(time=exchange_day_start(b.time)) for b in self._bars(ticker, "1Day", start, end)]
