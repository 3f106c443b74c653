"""Finnhub REST quotes: ``GET /quote?symbol=…`` with the key in a header.

What the free tier allows is enforced here rather than discovered by 429s:

* a shared per-minute call budget (default 60) kept in Redis with the
  ``limits`` library, reserved in one call per tick, so every worker process
  draws from the same allowance;
* a per-second cap (default 30) inside the process;
* on 429 the ``Retry-After`` is honoured: a short one is slept once, a long one
  stops the batch and starts a shared cool-down that later ticks respect;
* connection errors, read timeouts and 5xx are retried once by urllib3's
  ``Retry`` with backoff; after that the symbol is marked stale for this tick.

Symbols that waited longest are fetched first, so a short budget rotates
instead of starving the tail of the list.  The key travels in the
``X-Finnhub-Token`` header, never in a URL, so no log line can carry it.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import redis
import requests
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from webapp import names
from webapp.core.quotes import PRICE_DECIMALS, Quote
from webapp.providers.base import FetchResult, HistoryBar, NoHistory
from webapp.providers.http import Cooldown, ProviderSession, describe, retry_after

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class MalformedQuote(ValueError):
    """The body is JSON but not a Finnhub quote."""


class NoQuote(ValueError):
    """Finnhub's answer for a symbol it has no data for: every field zero."""


def _number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedQuote(f"field {key!r} is not a finite number: {value!r}")
    return float(value)


def parse_quote(ticker: str, body: Any) -> Quote:
    """A :class:`Quote` from Finnhub's wire format (``c``, ``t``, ``o``, ``h``, ``l``, ``pc``).

    Shape problems raise :class:`MalformedQuote`; value problems (a zero
    price for an unknown symbol, say) are left to validation.
    """
    if not isinstance(body, dict):
        raise MalformedQuote(f"expected a JSON object, got {type(body).__name__}")
    if "c" not in body or "t" not in body:
        raise MalformedQuote("missing field 'c' or 't'")
    price = _number(body, "c")
    stamp = body.get("t")
    if not price and stamp == 0:
        raise NoQuote("no data for this symbol (c=0, t=0): unknown ticker or never traded")
    if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp <= 0:
        raise MalformedQuote(f"field 't' is not a positive unix time: {stamp!r}")

    def opt(key: str) -> float | None:
        v = _number(body, key)
        return round(v, PRICE_DECIMALS) if v else None

    return Quote(
        ticker=ticker,
        price=round(price, PRICE_DECIMALS) if price is not None else None,  # type: ignore[arg-type]
        time=datetime.fromtimestamp(stamp, tz=timezone.utc),
        volume=None,  # Finnhub's REST quote carries no volume
        prev_close=opt("pc"),
        open=opt("o"),
        high=opt("h"),
        low=opt("l"),
        source="finnhub",
    )


class CallBudget:
    """The API key's allowance, shared by every process through Redis."""

    def __init__(
        self,
        client: redis.Redis,
        storage_uri: str,
        per_minute: int,
        per_second: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._minute = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._per_minute = RateLimitItemPerMinute(per_minute)
        self._second = MovingWindowRateLimiter(MemoryStorage())
        self._per_second = RateLimitItemPerSecond(per_second)
        self._sleep = sleep
        self.cooldown = Cooldown(client, "finnhub")

    def reserve(self, wanted: int) -> int:
        """Take up to ``wanted`` calls from this minute's allowance; returns how many."""
        for _ in range(3):
            stats = self._minute.get_window_stats(self._per_minute, names.FINNHUB_BUDGET_KEY)
            take = min(wanted, stats.remaining)
            if take <= 0:
                return 0
            if self._minute.hit(self._per_minute, names.FINNHUB_BUDGET_KEY, cost=take):
                return take
        return 0

    def pace(self) -> None:
        """Block until one more call fits under the per-second cap."""
        while not self._second.hit(self._per_second, "calls"):
            reset = self._second.get_window_stats(self._per_second, "calls").reset_time
            self._sleep(max(0.01, reset - time.time()))


class FinnhubProvider:
    name = "finnhub"
    follows_market_hours = True
    serves_past = False  # a REST quote is always "now"

    def __init__(
        self,
        api_key: str,
        budget: CallBudget,
        base_url: str = "https://finnhub.io/api/v1",
        timeout: float = 5.0,
        max_retry_after: float = 10.0,
        deadline_seconds: float = 45.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = base_url.rstrip("/") + "/quote"
        self._budget = budget
        self._deadline_seconds = deadline_seconds
        self.http = ProviderSession("finnhub", {"X-Finnhub-Token": api_key}, timeout,
                                    max_retry_after, sleep)

    def __repr__(self) -> str:  # never show the session headers (the key)
        return f"FinnhubProvider(url={self._url!r})"

    def fetch(
        self,
        symbols: Sequence[str],
        now: datetime,
        previous: Mapping[str, Quote],
    ) -> FetchResult:
        result = FetchResult()
        left = self._budget.cooldown.left()
        if left > 0:
            for s in symbols:
                result.problems[s] = f"deferred: provider asked us to wait {left:.0f} s more (429)"
            return result
        order = sorted(symbols, key=lambda s: previous[s].time if s in previous else _EPOCH)
        granted = self._budget.reserve(len(order))
        for s in order[granted:]:
            result.problems[s] = "deferred: per-minute call budget used up"
        deadline = time.monotonic() + self._deadline_seconds
        todo = order[:granted]
        for i, ticker in enumerate(todo):
            if time.monotonic() > deadline:
                for s in todo[i:]:
                    result.problems[s] = "deferred: tick deadline reached"
                break
            self._budget.pace()
            try:
                resp = self.http.get(self._url, {"symbol": ticker})
            except requests.RequestException as exc:
                result.problems[ticker] = describe(exc)
                continue
            if resp.status_code == 429:
                wait = retry_after(resp)
                self._budget.cooldown.start(wait)
                log.warning("finnhub 429 with Retry-After %.0f s; stopping this batch", wait)
                for s in todo[i:]:
                    result.problems[s] = f"rate limited (429); retry after {wait:.0f} s"
                break
            if resp.status_code in (401, 403):
                log.error("finnhub refused the API key (HTTP %s); check FINNHUB_API_KEY", resp.status_code)
                for s in todo[i:]:
                    result.problems[s] = f"API key refused (HTTP {resp.status_code})"
                break
            if resp.status_code != 200:
                result.problems[ticker] = f"HTTP {resp.status_code}"
                continue
            try:
                result.quotes.append(parse_quote(ticker, resp.json()))
            except NoQuote as exc:
                result.problems[ticker] = str(exc)
            except ValueError as exc:  # JSONDecodeError and MalformedQuote
                reason = str(exc) if isinstance(exc, MalformedQuote) else "malformed JSON body"
                log.warning("finnhub %s: %s", ticker, reason)
                result.problems[ticker] = f"malformed response: {reason}"
        return result


class FinnhubHistory:
    """Finnhub's candles (``/stock/candle``) are on its premium plans only: no history from it.

    Rather than call and fail, the backfill says so, and the page shows it.
    """

    name = "finnhub"
    REASON = ("no history from this provider: Finnhub's candles (/stock/candle) need a premium plan; "
              "charts fill in from live readings")

    def minute_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        raise NoHistory(self.REASON)

    def daily_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        raise NoHistory(self.REASON)
