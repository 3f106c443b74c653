"""Alpaca market data v2 snapshots: ``GET /v2/stocks/snapshots?symbols=…``.

Each symbol's entry has ``latestTrade`` (``p`` price, ``t`` RFC 3339 time),
``minuteBar``, ``dailyBar`` and ``prevDailyBar`` (``o h l c v``).  Symbols go
in chunks of ``CHUNK`` per call; unknown symbols are simply absent.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from webapp.core.quotes import Quote
from webapp.providers.snapshot import (
    MalformedSnapshot,
    SnapshotProvider,
    bars_quote,
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
