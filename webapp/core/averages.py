"""Moving averages and deviations of prices, exact at the quote's precision whatever the price or length.

Prices are integers of :data:`~webapp.core.quotes.PRICE_SCALE` ticks
(1/10,000 $), so every statistic here starts from exact integers:

* **window totals** are differences of one running sum *of integers*
  (``int64``): exact, so a window's total does not depend on how long the
  series before it is, nor on the price level (a total of 500 prices of
  $1,000,000 is 5e12 ticks, far inside ``int64``), and the value at a bar
  depends on that bar's window alone;
* **the mean** is that total divided once by ``n × PRICE_SCALE``: one
  correctly rounded division.  A price and a mean that are equal as
  rationals round to the same float, and unequal ones stay in the same
  order, as long as their distance (at least one tick over ``n``, or over
  ``n × m`` between two means) exceeds one float ulp: true for every price
  below $1,000,000,000 at ``n`` ≤ 500 (two means: below about $10,000,000),
  so a float comparison of a price with an SMA, or of two SMAs, decides
  exactly what integer arithmetic would, and no float noise decides a
  touch;
* **the deviation** (Bollinger's) is two-pass on exact integers: each
  price's distance from its window's mean, ``n·x − total``, is an exact
  integer, and only the sum of their squares is rounded (no subtraction
  of large nearly equal numbers, whose cancellation made the old
  ``sqrt(mean(x²) − mean²)`` 22 % too wide on a one-tick range and 110
  times too wide at $512,345).  It costs O(length × n), done in chunks,
  where the running-sum form was O(length): a chart draws at most 20,000
  bars, so this is a few milliseconds.

The tick's SMA crossover (:mod:`webapp.core.indicators`), the rules'
``sma(n)`` and the chart's SMA and Bollinger bands all use these, so the
three cannot disagree.  A missing value (NaN: a minute without a fresh
reading) leaves every window it is part of undefined, as TradingView's
``na`` does.
"""
from __future__ import annotations

import numpy as np

from webapp.core.quotes import PRICE_SCALE

_CHUNK = 1 << 20  # elements per block of the deviation's windows (8 MB of float64)


def as_ticks(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prices as ``int64`` ticks (NaN as 0) and the mask of the missing ones."""
    prices = np.asarray(prices, float)
    hole = np.isnan(prices)
    return np.rint(np.where(hole, 0.0, prices) * PRICE_SCALE).astype(np.int64), hole


def window_totals(ticks: np.ndarray, n: int, hole: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each bar's total of its last ``n`` values (exact) and whether that window is whole.

    The last axis is time; a window is whole once ``n`` values exist and none
    of them is missing (``hole``).
    """
    ticks = np.asarray(ticks, np.int64)
    totals = np.zeros(ticks.shape, np.int64)
    whole = np.zeros(ticks.shape, bool)
    if n < 1:
        raise ValueError("n must be at least 1")
    if ticks.shape[-1] < n:
        return totals, whole
    run = np.cumsum(ticks, axis=-1)
    totals[..., n - 1:] = run[..., n - 1:]
    totals[..., n:] -= run[..., :-n]
    whole[..., n - 1:] = True
    if hole is not None and hole.any():
        holes = np.cumsum(hole, axis=-1, dtype=np.int64)
        count = holes[..., n - 1:].copy()
        count[..., 1:] -= holes[..., :-n]
        whole[..., n - 1:] &= count == 0
    return totals, whole


def mean_price(totals: np.ndarray, n: int) -> np.ndarray:
    """A total of ``n`` prices in ticks as their mean price: one correctly rounded division."""
    return np.asarray(totals, np.int64) / float(n * PRICE_SCALE)


def sma(prices: np.ndarray, n: int) -> np.ndarray:
    """The mean of the last ``n`` prices at every bar; NaN while fewer, or where one is missing."""
    ticks, hole = as_ticks(prices)
    totals, whole = window_totals(ticks, n, hole)
    return np.where(whole, mean_price(totals, n), np.nan)


def side(price_ticks: np.ndarray, totals: np.ndarray, n: int) -> np.ndarray:
    """-1, 0 or 1 as each price is below, on or above the mean ``totals / n`` (integers, exact)."""
    return np.sign(np.asarray(price_ticks, np.int64) * n - np.asarray(totals, np.int64))


def deviation(prices: np.ndarray, n: int) -> np.ndarray:
    """The population standard deviation of the last ``n`` prices at every bar (NaN as :func:`sma`).

    Two-pass over exact integers: ``Σ (n·x − total)²`` in float64 (each term exact
    below 2^53, only the sum rounds), over ``n³`` and the tick scale.
    """
    ticks, hole = as_ticks(prices)
    totals, whole = window_totals(ticks, n, hole)
    out = np.full(ticks.shape, np.nan)
    if ticks.shape[-1] < n:
        return out
    flat_t = ticks.reshape(-1, ticks.shape[-1])
    flat_tot = totals.reshape(-1, ticks.shape[-1])
    flat_out = out.reshape(-1, ticks.shape[-1])
    windows = np.lib.stride_tricks.sliding_window_view(flat_t, n, axis=-1)  # rows × (T-n+1) × n
    step = max(1, _CHUNK // n)
    scale = float(n) ** 1.5 * PRICE_SCALE
    for r in range(flat_t.shape[0]):
        for a in range(0, windows.shape[1], step):
            b = min(windows.shape[1], a + step)
            dist = (windows[r, a:b] * n - flat_tot[r, a + n - 1:b + n - 1, None]).astype(float)
            flat_out[r, a + n - 1:b + n - 1] = np.sqrt(np.einsum("ij,ij->i", dist, dist)) / scale
    return np.where(whole, out, np.nan)
