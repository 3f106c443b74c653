"""Polygon's full-market snapshot: ``GET /v2/snapshot/locale/us/markets/stocks/tickers``.

One call returns every US ticker: ``{"status": "OK", "tickers": [{"ticker",
"lastTrade": {"p", "t" (ns)}, "min": {"v", ...}, "day": {"o","h","l","c","v"},
"prevDay": {"c", ...}}, ...]}``.  We keep the symbols we track.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
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
    section,
)


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


class PolygonHistory:
    """Polygon's aggregates: ``GET /v2/aggs/ticker/{T}/range/1/{minute|day}/{from}/{to}``.

    Times are unix milliseconds in and out; ``results`` is a list of
    ``{"t", "o", "h", "l", "c", "v", "vw", "n"}`` and ``next_url`` (absolute,
    with its cursor) fetches the rest.  429 raises :class:`HistoryThrottled`.
    """

    name = "polygon"
    PAGE = 50_000

    def __init__(self, http: ProviderSession, base_url: str) -> None:
        self._http, self._base = http, base_url.rstrip("/")

    def _aggs(self, ticker: str, span: str, start: datetime, end: datetime) -> list[HistoryBar]:
        url: str | None = (f"{self._base}/v2/aggs/ticker/{ticker}/range/1/{span}/"
                           f"{int(start.timestamp() * 1000)}/{int(end.timestamp() * 1000) - 1}")
        params: dict[str, Any] | None = {"adjusted": "false", "sort": "asc", "limit": self.PAGE}
        out: list[HistoryBar] = []
        while url:
            body = history_page(self._http, url, params)
            if body.get("status") not in ("OK", "DELAYED", None):
                raise MalformedHistory(f"status {body.get('status')!r}")
            results = body.get("results") or []
            if not isinstance(results, list):
                raise MalformedHistory("'results' is not a list")
            for b in results:
                ms = b.get("t") if isinstance(b, dict) else None
                if isinstance(ms, bool) or not isinstance(ms, int):
                    raise MalformedHistory(f"time is not unix milliseconds: {ms!r}")
                out.append(history_bar(datetime.fromtimestamp(ms / 1000, tz=timezone.utc), b))
            url, params = body.get("next_url"), None  # the cursor is in the URL
        return [b for b in out if start <= b.time < end]

    def minute_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        return self._aggs(ticker, "minute", start, end)

    def daily_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        return [b._replace(time=exchange_day_start(b.time)) for b in self._aggs(ticker, "day", start, end)]
