"""Polygon's full-market snapshot: ``GET /v2/snapshot/locale/us/markets/stocks/tickers``.

One call returns every US ticker: ``{"status": "OK", "tickers": [{"ticker",
"lastTrade": {"p", "t" (ns)}, "min": {"v", ...}, "day": {"o","h","l","c","v"},
"prevDay": {"c", ...}}, ...]}``.  We keep the symbols we track.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from webapp.core.quotes import Quote
from webapp.providers.snapshot import MalformedSnapshot, SnapshotProvider, bars_quote, number, section


def nanoseconds(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise MalformedSnapshot(f"time is not unix nanoseconds: {value!r}")
    seconds, nanos = divmod(value, 1_000_000_000)  # integers: no float rounding
    return datetime.fromtimestamp(seconds, tz=timezone.utc) + timedelta(microseconds=nanos // 1000)


class PolygonProvider(SnapshotProvider):
    name = "polygon"

    def __init__(self, *args: Any, base_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._url = base_url.rstrip("/") + "/v2/snapshot/locale/us/markets/stocks/tickers"

    def requests_for(self, symbols: Sequence[str]) -> Iterator[tuple[list[str], str, dict[str, Any]]]:
        yield list(symbols), self._url, {}

    def entries(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("tickers"), list):
            raise MalformedSnapshot("expected {'tickers': [...]}")
        if body.get("status") not in ("OK", None):
            raise MalformedSnapshot(f"status {body.get('status')!r}")
        return {e["ticker"]: e for e in body["tickers"]
                if isinstance(e, dict) and isinstance(e.get("ticker"), str)}

    def quote(self, ticker: str, entry: Any) -> Quote:
        trade = section(entry, "lastTrade")
        minute, day, prev = section(entry, "min"), section(entry, "day"), section(entry, "prevDay")
        price = number(trade, "p", required=True)
        when = nanoseconds(trade.get("t"))
        return bars_quote(ticker, price, when, minute, day, prev, self.name)  # type: ignore[arg-type]
