"""Multi-symbol snapshot providers: one call covers many (or all) symbols.

What "thousands of symbols every minute" needs: the per-symbol REST quote of
Finnhub cannot do it inside any free budget.  The shared flow lives here;
``alpaca`` and ``polygon`` say where to call and how to read an entry.

Per tick: a cool-down started by a long 429 is respected by every process;
requests go out in chunks (or one full-market call); a symbol missing from
the answer, or an entry that does not parse, is marked stale on its own
while the rest of the tick goes on.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import requests

from webapp.core.quotes import PRICE_DECIMALS, Quote
from webapp.providers.base import FetchResult, HistoryBar, HistoryThrottled, MalformedHistory, NoHistory
from webapp.providers.http import Cooldown, ProviderSession, describe, retry_after

log = logging.getLogger(__name__)


class MalformedSnapshot(ValueError):
    """The body or an entry is not in the provider's wire format."""


def number(entry: Mapping[str, Any], key: str, *, required: bool = False) -> float | None:
    """A finite number from ``entry``; 0 reads as missing (providers' "no data yet")."""
    value = entry.get(key)
    if value is None or value == 0:
        if required:
            raise MalformedSnapshot(f"missing {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedSnapshot(f"{key!r} is not a finite number: {value!r}")
    return round(float(value), PRICE_DECIMALS)


def count(entry: Mapping[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise MalformedSnapshot(f"{key!r} is not a volume: {value!r}")
    return int(value)


def section(entry: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = entry.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedSnapshot(f"{key!r} is not an object")
    return value


def rfc3339(text: Any) -> datetime:
    """``2026-11-20T15:00:00.123456789Z`` -> aware UTC datetime (nanoseconds cut to micro)."""
    if not isinstance(text, str):
        raise MalformedSnapshot(f"time is not text: {text!r}")
    head, dot, frac = text.rstrip("Z").partition(".")
    zone = ""
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, rest = frac.partition(sign)
            zone = sign + rest
    micros = ("." + frac[:6].ljust(6, "0")) if dot else ""
    try:
        when = datetime.fromisoformat(head + micros + (zone or "+00:00"))
    except ValueError:
        raise MalformedSnapshot(f"time is not RFC 3339: {text!r}") from None
    return when.astimezone(timezone.utc)


def bars_quote(
    ticker: str, price: float, when: datetime, minute: Mapping[str, Any], day: Mapping[str, Any],
    prev: Mapping[str, Any], source: str,
) -> Quote:
    """A quote from a snapshot's last trade and its minute, day and previous-day bars."""
    return Quote(ticker, price, when, count(minute, "v"), number(prev, "c"), number(day, "o"),
                 number(day, "h"), number(day, "l"), source)


class SnapshotProvider:
    """Base of the snapshot providers; subclasses say where and how to read."""

    name = "snapshot"
    follows_market_hours = True
    serves_past = False

    def __init__(self, http: ProviderSession, cooldown: Cooldown) -> None:
        self.http = http
        self.cooldown = cooldown

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- what a subclass provides ---
    def requests_for(self, symbols: Sequence[str]) -> Iterator[tuple[list[str], str, dict[str, Any]]]:
        """(symbols covered, url, query params) per call."""
        raise NotImplementedError

    def entries(self, body: Any) -> Mapping[str, Any]:
        """ticker -> raw entry, from a decoded body (MalformedSnapshot if not the format)."""
        raise NotImplementedError

    def quote(self, ticker: str, entry: Any) -> Quote:
        raise NotImplementedError

    # --- the shared flow ---
    def fetch(self, symbols: Sequence[str], now: datetime, previous: Mapping[str, Quote]) -> FetchResult:
        result = FetchResult()
        left = self.cooldown.left()
        if left > 0:
            for s in symbols:
                result.problems[s] = f"deferred: provider asked us to wait {left:.0f} s more (429)"
            return result
        calls = list(self.requests_for(symbols))
        for i, (chunk, url, params) in enumerate(calls):
            try:
                resp = self.http.get(url, params)
            except requests.RequestException as exc:
                self._fail(result, chunk, describe(exc))
                continue
            if resp.status_code == 429:
                wait = retry_after(resp)
                self.cooldown.start(wait)
                log.warning("%s 429 with Retry-After %.0f s; stopping this tick", self.name, wait)
                for rest, _, _ in calls[i:]:
                    self._fail(result, rest, f"rate limited (429); retry after {wait:.0f} s")
                break
            if resp.status_code in (401, 403):
                log.error("%s refused the credentials (HTTP %s)", self.name, resp.status_code)
                for rest, _, _ in calls[i:]:
                    self._fail(result, rest, f"credentials refused (HTTP {resp.status_code})")
                break
            if resp.status_code != 200:
                self._fail(result, chunk, f"HTTP {resp.status_code}")
                continue
            try:
                entries = self.entries(resp.json())
            except ValueError as exc:  # JSON errors and MalformedSnapshot
                reason = str(exc) if isinstance(exc, MalformedSnapshot) else "malformed JSON body"
                self._fail(result, chunk, f"malformed response: {reason}")
                continue
            for ticker in chunk:
                entry = entries.get(ticker)
                if entry is None:
                    result.problems[ticker] = "not in the snapshot (unknown ticker or no trades yet)"
                    continue
                try:
                    result.quotes.append(self.quote(ticker, entry))
                except (MalformedSnapshot, AttributeError, TypeError) as exc:
                    result.problems[ticker] = f"malformed snapshot entry: {exc}"
        return result

    def _fail(self, result: FetchResult, tickers: Sequence[str], reason: str) -> None:
        for t in tickers:
            result.problems[t] = reason


# ---- history pages (the backfill's reads), shared by alpaca and polygon ----------------

def history_page(http: ProviderSession, url: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """One page of a history endpoint as JSON; a 429 raises :class:`HistoryThrottled` to wait on."""
    try:
        resp = http.get(url, params)
    except requests.RequestException as exc:
        raise MalformedHistory(describe(exc)) from None
    if resp.status_code == 429:
        raise HistoryThrottled(retry_after(resp))
    if resp.status_code in (401, 403):
        raise NoHistory(f"{http.name} refused the credentials for history (HTTP {resp.status_code})")
    if resp.status_code != 200:
        raise MalformedHistory(f"HTTP {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        raise MalformedHistory("malformed JSON body") from None
    if not isinstance(body, dict):
        raise MalformedHistory("expected a JSON object")
    return body


def history_bar(when: datetime, b: Any) -> HistoryBar:
    """A bar from ``{"o", "h", "l", "c", "v"}``, checked like a snapshot's numbers."""
    if not isinstance(b, dict):
        raise MalformedHistory("a bar is not an object")
    try:
        o, h, lo, c = (number(b, k, required=True) for k in ("o", "h", "l", "c"))
        return HistoryBar(when, o, h, lo, c, count(b, "v"))  # type: ignore[arg-type]
    except MalformedSnapshot as exc:
        raise MalformedHistory(f"bar at {when.isoformat()}: {exc}") from None
