"""Rolling window, simple moving average and crossover detection.

Semantics (BRIEF "Semantics"):

* the window is the last ``period`` prices; the SMA exists only once it is full;
* bullish when ``price > sma`` now and ``prev_price <= prev_sma`` at the
  previous reading; bearish is the mirror (thinkorswim's crosses above/below),
  so a cross that passes through an exact touch still fires;
* no alert until a previous SMA exists.

Prices are integer ticks (see :mod:`webapp.core.quotes`) and the SMA is kept
as an exact ``total / count`` pair, so comparisons are exact at the quote's
precision and never decided by float noise.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from webapp.core.quotes import from_ticks

Alert = Literal["bullish", "bearish"]
BULLISH: Alert = "bullish"
BEARISH: Alert = "bearish"


class Sma(NamedTuple):
    """An exact moving average: ``total`` ticks over ``count`` prices."""

    total: int
    count: int

    @property
    def value(self) -> float:
        """The average as a price, rounded to the quote precision for display."""
        return from_ticks(self.total / self.count)


def roll_window(window: Sequence[int], price: int, period: int) -> list[int]:
    """Append ``price`` and keep the last ``period`` entries (RPUSH + LTRIM)."""
    out = list(window)
    out.append(price)
    return out[-period:]


def sma(window: Sequence[int], period: int) -> Sma | None:
    """Mean of the last ``period`` prices, or ``None`` while the window is short."""
    if period < 1:
        raise ValueError("period must be at least 1")
    if len(window) < period:
        return None
    last = window[-period:] if len(window) > period else window
    return Sma(sum(last), period)


def compare(price: int, average: Sma) -> int:
    """-1, 0 or 1 as ``price`` is below, on or above ``average`` (exactly)."""
    scaled = price * average.count
    return (scaled > average.total) - (scaled < average.total)


def crossover(
    prev_price: int | None,
    prev_sma: Sma | None,
    price: int,
    current_sma: Sma | None,
) -> Alert | None:
    """The alert fired by this reading, if any."""
    if prev_price is None or prev_sma is None or current_sma is None:
        return None
    now_side = compare(price, current_sma)
    before = compare(prev_price, prev_sma)
    if now_side > 0 and before <= 0:
        return BULLISH
    if now_side < 0 and before >= 0:
        return BEARISH
    return None


class Step(NamedTuple):
    """What one new reading does to a ticker's indicators."""

    window: list[int]
    sma: Sma | None
    alert: Alert | None


def step(
    window: list[int],
    prev_price: int | None,
    prev_sma: Sma | None,
    price: int,
    period: int,
) -> Step:
    """Apply one accepted price: roll the window, compute SMA and crossover."""
    new_window = (window[-(period - 1) :] if period > 1 else []) + [price]
    current = Sma(sum(new_window), period) if len(new_window) == period else None
    return Step(new_window, current, crossover(prev_price, prev_sma, price, current))


class Steps(NamedTuple):
    """:func:`step` applied to many tickers at once (lists aligned with the input)."""

    windows: list[list[int]]
    totals: list[int]
    alerts: list[Alert | None]


def step_many(
    windows: list[list[int]],
    prev_prices: list[int],
    prev_smas: list[Sma],
    prices: list[int],
    period: int,
) -> Steps:
    """The same as ``step`` per ticker, vectorised for the steady state.

    Every window must already hold ``period`` prices (so every previous SMA
    exists) — what all tickers look like after their first few readings.
    At 10,000 symbols this is an order of magnitude faster than the loop.
    """
    if not prices:
        return Steps([], [], [])
    w = np.array(windows, dtype=np.int64)
    if w.shape != (len(prices), period):
        raise ValueError("step_many needs full windows of `period` prices")
    p = np.array(prices, dtype=np.int64)
    rolled = np.concatenate([w[:, 1:], p[:, None]], axis=1)
    totals = rolled.sum(axis=1)
    now_side = np.sign(p * period - totals)
    prev_total = np.array([s.total for s in prev_smas], dtype=np.int64)
    prev_count = np.array([s.count for s in prev_smas], dtype=np.int64)
    before = np.sign(np.array(prev_prices, dtype=np.int64) * prev_count - prev_total)
    bullish = (now_side > 0) & (before <= 0)
    bearish = (now_side < 0) & (before >= 0)
    kinds: list[Alert | None] = [
        BULLISH if b else BEARISH if r else None
        for b, r in zip(bullish.tolist(), bearish.tolist(), strict=True)
    ]
    return Steps(rolled.tolist(), totals.tolist(), kinds)
