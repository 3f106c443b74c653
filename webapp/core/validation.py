"""Validation of tickers and provider quotes.

A quote that fails here never enters Redis or Postgres; the caller marks the
symbol stale with the returned reason instead, so a bad feed is visible
rather than silently frozen.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import numpy as np

from webapp.core.quotes import Quote, at_micros, micros, micros_of

TICKER_RE = re.compile(r"[A-Z0-9.\-]{1,10}")

# A provider timestamp this far ahead of our clock is a broken feed, not news.
MAX_FUTURE_SKEW = timedelta(minutes=5)


def normalise_ticker(raw: object) -> str | None:
    """Upper-cased ticker if ``raw`` is a well-formed one, else ``None``."""
    if not isinstance(raw, str):
        return None
    ticker = raw.strip().upper()
    return ticker if TICKER_RE.fullmatch(ticker) else None


def _bad_number(value: object) -> bool:
    return (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
    )


def quote_problem(quote: Quote, previous_time: datetime | None, now: datetime) -> str | None:
    """Why ``quote`` must be refused, or ``None`` when it is acceptable.

    ``previous_time`` is the provider time of the last accepted reading for
    the ticker; an unchanged (or older) timestamp means the provider has
    nothing new, and acting on it would fake a fresh signal.
    """
    price = quote.price
    if price is None:
        return "missing price"
    if _bad_number(price):
        return f"non-finite or non-numeric price {price!r}"
    if price <= 0:
        return f"non-positive price {price!r}"
    if quote.time is None or quote.time.tzinfo is None:
        return "missing or naive provider timestamp"
    if quote.time - now > MAX_FUTURE_SKEW:
        return f"provider timestamp {quote.time.isoformat()} is in the future"
    if previous_time is not None and quote.time == previous_time:
        return f"stale: provider timestamp unchanged since {previous_time.isoformat()}"
    if previous_time is not None and quote.time < previous_time:
        return (f"older than the latest reading: {quote.time.isoformat()} is before "
                f"{previous_time.isoformat()}")
    if quote.volume is not None and (_bad_number(quote.volume) or quote.volume < 0):
        return f"bad volume {quote.volume!r}"
    return None


def quote_problems(quotes: Sequence[Quote], previous_micros: np.ndarray, now: datetime) -> dict[int, str]:
    """:func:`quote_problem` for many quotes: the refused ones' positions, with why.

    ``previous_micros`` is each quote's ``previous_time`` in epoch
    microseconds (0 for none).  The checks run on columns; only a refused
    quote, or a batch holding values of unexpected types, goes through
    ``quote_problem`` itself, so the reasons are always its reasons.
    """
    if not quotes:
        return {}
    prices = [q.price for q in quotes]
    volumes = [q.volume for q in quotes]
    times: dict[datetime, int] = {}
    plain = set(map(type, prices)) <= {float, int} and set(map(type, volumes)) <= {float, int, type(None)}
    for q in quotes:
        if q.time not in times:
            if not isinstance(q.time, datetime) or q.time.tzinfo is None:
                plain = False
                break
            times[q.time] = micros(q.time)
    if not plain:
        return _one_by_one(quotes, previous_micros, now)
    price = np.array(prices, float)
    when = np.array([times[q.time] for q in quotes], np.int64)
    volume = np.array([np.nan if v is None else v for v in volumes], float)
    has_volume = np.array([v is not None for v in volumes], bool)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(price) | (price <= 0)
        bad |= when - micros(now) > micros_of(MAX_FUTURE_SKEW)
        bad |= (previous_micros > 0) & (when <= previous_micros)
        bad |= has_volume & (~np.isfinite(volume) | (volume < 0))
    refused = np.flatnonzero(bad).tolist()
    return _one_by_one(quotes, previous_micros, now, refused) if refused else {}


def _one_by_one(quotes: Sequence[Quote], previous_micros: np.ndarray, now: datetime,
                positions: Sequence[int] | None = None) -> dict[int, str]:
    out = {}
    for i in range(len(quotes)) if positions is None else positions:
        prev = int(previous_micros[i])
        problem = quote_problem(quotes[i], at_micros(prev) if prev else None, now)
        if problem:
            out[i] = problem
    return out


class SubscriptionError(ValueError):
    """A subscribe/unsubscribe payload that must be refused (the message says why)."""


class Subscription(NamedTuple):
    tickers: list[str]  # "*" means every ticker (room ``all``)
    scans: list[str]  # scanner list names


def subscription(
    payload: object, known: frozenset[str], limit: int, lists: Sequence[str] = ()
) -> Subscription:
    """What a ``{"tickers": [...], "scans": [...]}`` payload asks for.

    ``["*"]`` as tickers means all of them; ``["*"]`` as scans every list in
    ``lists``.  Raises :class:`SubscriptionError` for a malformed payload, an
    unknown or ill-formed ticker or list, or more than ``limit`` tickers.
    """
    if not isinstance(payload, dict):
        raise SubscriptionError('payload must be an object like {"tickers": ["AAPL"]}')
    allowed = {"tickers", "scans"} if lists else {"tickers"}
    extra = set(payload) - allowed
    if extra:
        raise SubscriptionError(f"unexpected field(s): {', '.join(sorted(map(str, extra)))}")
    tickers, scans = payload.get("tickers"), payload.get("scans")
    if tickers is None and scans is not None:
        tickers = []
    if not isinstance(tickers, list) or not (tickers or scans):
        raise SubscriptionError('"tickers" must be a non-empty list of strings')
    if len(tickers) > limit:
        raise SubscriptionError(f"too many tickers: {len(tickers)} (at most {limit})")
    out: list[str] = []
    unknown: list[str] = []
    for raw in tickers:
        if raw == "*":
            out.append("*")
            continue
        ticker = normalise_ticker(raw)
        if ticker is None:
            raise SubscriptionError(f"malformed ticker {raw!r}: 1-10 characters of A-Z 0-9 . -")
        if ticker not in known:
            unknown.append(ticker)
        elif ticker not in out:
            out.append(ticker)
    if unknown:
        raise SubscriptionError(f"unknown ticker(s): {', '.join(unknown)}")
    return Subscription(out, _scans(scans, lists))


def _scans(scans: object, lists: Sequence[str]) -> list[str]:
    if scans is None:
        return []
    if not isinstance(scans, list) or not scans or not all(isinstance(s, str) for s in scans):
        raise SubscriptionError('"scans" must be a non-empty list of list names')
    if "*" in scans:
        return list(lists)
    unknown = [s for s in scans if s not in lists]
    if unknown:
        raise SubscriptionError(f"unknown scanner list(s): {', '.join(unknown[:5])} "
                                f"(one of {', '.join(lists)})")
    return list(dict.fromkeys(scans))
