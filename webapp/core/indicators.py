"""Rolling window, simple moving average and crossover detection.

Semantics (BRIEF "Semantics"):

* the window is the last ``period`` prices; the SMA exists only once it is full;
* bullish when ``price > sma`` now and ``prev_price <= prev_sma`` at the
  previous reading; bearish is the mirror (thinkorswim's crosses above/below),
  so a cross that passes through an exact touch still fires;
* no alert until a previous SMA exists.

Prices are integer ticks (see :mod:`webapp.core.quotes`) and the SMA is kept
as an exact ``total / count`` pair, so comparisons are exact at the quote's
precision and never decided by float noise.  The vectorised step takes its
totals and comparisons from :mod:`webapp.core.averages`, as the rules' and
the chart's SMA do, so the three cannot disagree.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from webapp.core import averages
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


ALERT_CODES: tuple[Alert | None, ...] = (None, BULLISH, BEARISH)  # code -> alert


class Steps(NamedTuple):
    """:func:`step` applied to many tickers at once (arrays aligned with the input)."""

    window: np.ndarray  # (n, period) int64 ticks, right-aligned, zeros where unfilled
    length: np.ndarray  # how many of each row's entries are prices
    total: np.ndarray  # the SMA's total (count = period) where ``length == period``
    alert: np.ndarray  # int8 index into ALERT_CODES


def step_columns(window: np.ndarray, length: np.ndarray, prices: np.ndarray, period: int) -> Steps:
    """The same as :func:`step` per row, vectorised: one new price per ticker.

    ``window`` holds each ticker's last prices right-aligned (newest last)
    with zeros before the first, ``length`` how many are real.  The previous
    price is the last entry, the previous SMA exists when the window was
    full, so no alert fires before a previous SMA exists; comparisons are
    exact integer comparisons (``price * period`` against the total).
    """
    window = np.asarray(window, np.int64).reshape(len(prices), period)
    length = np.asarray(length, np.int64)
    prices = np.asarray(prices, np.int64)
    rolled = np.empty_like(window)
    rolled[:, :-1] = window[:, 1:]
    rolled[:, -1] = prices
    total = averages.window_totals(rolled, period)[0][:, -1]
    new_length = np.minimum(length + 1, period)
    had_sma = length >= period
    has_sma = new_length >= period
    now_side = averages.side(prices, total, period)
    before = averages.side(window[:, -1], averages.window_totals(window, period)[0][:, -1], period)
    both = had_sma & has_sma
    alert = np.zeros(len(prices), np.int8)
    alert[both & (now_side > 0) & (before <= 0)] = 1
    alert[both & (now_side < 0) & (before >= 0)] = 2
    return Steps(rolled, new_length, total, alert)
