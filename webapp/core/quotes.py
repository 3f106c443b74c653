"""The quote record every provider returns, and fixed-point prices.

Prices are compared as integers of ``PRICE_SCALE`` units (1/10,000 of a
dollar), so a sum of floats such as ``255.78000000000003`` can never decide a
crossover: the quote's own precision does.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import numpy as np

PRICE_DECIMALS = 4
PRICE_SCALE = 10**PRICE_DECIMALS


def to_ticks(price: float) -> int:
    """A price in integer 1/10,000 units (round half to even, like ``round``)."""
    return round(price * PRICE_SCALE)


def to_ticks_array(prices: Sequence[float] | np.ndarray) -> np.ndarray:
    """:func:`to_ticks` for many prices (``rint`` rounds half to even, like ``round``)."""
    return np.rint(np.asarray(prices, float) * PRICE_SCALE).astype(np.int64)


def from_ticks(ticks: int | float) -> float:
    """Ticks as a price, rounded to whole ticks (half to even) first."""
    return round(ticks) / PRICE_SCALE


def from_ticks_array(ticks: np.ndarray) -> np.ndarray:
    """:func:`from_ticks` for many (``rint`` and ``round`` agree, so the values do too)."""
    return np.rint(ticks) / PRICE_SCALE


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


def micros(when: datetime) -> int:
    """An aware time as integer microseconds since the epoch (exact, unlike timestamp())."""
    return (when - _EPOCH) // _MICRO


def micros_of(span: timedelta) -> int:
    return span // _MICRO


def at_micros(us: int) -> datetime:
    """The inverse of :func:`micros` (UTC)."""
    return _EPOCH + us * _MICRO


class Quote(NamedTuple):
    """One reading of one ticker, as a provider reported it.

    ``time`` is the provider's timestamp (UTC), never the time we received it.
    Optional fields are ``None`` when the source does not have them
    (Finnhub's REST quote has no volume, for example).  A NamedTuple because
    the scanner builds tens of thousands a minute (4x cheaper than a frozen
    dataclass).
    """

    ticker: str
    price: float
    time: datetime
    volume: int | None = None
    prev_close: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    source: str = ""
