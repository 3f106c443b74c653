"""Scanner metrics, as pure functions over arrays (one entry per symbol).

Definitions (BRIEF "Facts of the field"):

* % change = (last − previous close) / previous close × 100
* gap %    = (open − previous close) / previous close × 100
* VWAP     = Σ(price·volume) / Σ volume since the session open
* new high / low: the reading goes above the day's high / below its low so far
* RVOL     = cumulative volume since the open ÷ the average cumulative volume
  at the same minute of the session over the last N sessions.  Fallback while
  history is short: with at least ``min_sessions`` earlier sessions the
  average of those is used; with fewer, RVOL is unknown (NaN) rather than a
  guess.
* unusual volume: a minute's volume ≥ k × the average of the recent minutes
  (thinkorswim: 1.4 × over 60 bars); unknown until ``min_bars`` exist.

Arrays are numpy float64; a missing input is NaN and gives NaN (or False for
flags), never an exception, because at 10,000 symbols some always lack data.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

FloatArray = np.ndarray


def _ratio_pct(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (numerator - denominator) / denominator * 100.0
    return np.where(denominator > 0, out, np.nan)


def pct_change(last: FloatArray, prev_close: FloatArray) -> FloatArray:
    return _ratio_pct(np.asarray(last, float), np.asarray(prev_close, float))


def gap_pct(day_open: FloatArray, prev_close: FloatArray) -> FloatArray:
    return _ratio_pct(np.asarray(day_open, float), np.asarray(prev_close, float))


class Vwap(NamedTuple):
    price_volume: FloatArray  # Σ price·volume since the open
    volume: FloatArray  # Σ volume since the open
    vwap: FloatArray


def vwap_step(
    price_volume: FloatArray, volume: FloatArray, price: FloatArray, minute_volume: FloatArray,
    new_session: FloatArray,
) -> Vwap:
    """Add one reading; sums restart where ``new_session`` is true."""
    keep = ~np.asarray(new_session, bool)
    pv = np.where(keep, price_volume, 0.0) + np.nan_to_num(price * minute_volume)
    v = np.where(keep, volume, 0.0) + np.nan_to_num(minute_volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        return Vwap(pv, v, np.where(v > 0, pv / v, np.nan))


class Extremes(NamedTuple):
    high: FloatArray
    low: FloatArray
    new_high: np.ndarray  # bool
    new_low: np.ndarray  # bool


def intraday_extremes(
    high: FloatArray, low: FloatArray, price: FloatArray, new_session: FloatArray
) -> Extremes:
    """Update the day's high/low; a new extreme needs a previous one to beat."""
    fresh = np.asarray(new_session, bool) | np.isnan(high)
    new_high = ~fresh & (price > high)
    new_low = ~fresh & (price < low)
    return Extremes(np.where(fresh, price, np.fmax(high, price)),
                    np.where(fresh, price, np.fmin(low, price)), new_high, new_low)


def _row_means(values: np.ndarray, rows: int) -> tuple[FloatArray, np.ndarray]:
    """Per-row mean ignoring NaN (NaN for an empty row) and the count of values."""
    values = np.asarray(values, float).reshape(rows, -1)
    counts = np.sum(~np.isnan(values), axis=1)
    sums = np.nansum(values, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / counts, np.nan), counts


def relative_volume(cumulative: FloatArray, history: FloatArray, min_sessions: int = 3) -> FloatArray:
    """RVOL against ``history``: shape (symbols, sessions), NaN where a session is missing."""
    cumulative = np.asarray(cumulative, float)
    average, sessions = _row_means(history, len(cumulative))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = cumulative / average
    return np.where((sessions >= min_sessions) & (average > 0), out, np.nan)


def volume_ratio(minute_volume: FloatArray, recent: FloatArray, min_bars: int = 10) -> FloatArray:
    """A minute's volume ÷ the average of ``recent`` (symbols × bars, NaN-padded).

    NaN until ``min_bars`` recent bars exist or while their average is zero.
    """
    minute_volume = np.asarray(minute_volume, float)
    average, bars = _row_means(recent, len(minute_volume))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = minute_volume / average
    return np.where((bars >= min_bars) & (average > 0), ratio, np.nan)


def unusual_volume(
    minute_volume: FloatArray, recent: FloatArray, k: float = 2.0, min_bars: int = 10
) -> np.ndarray:
    """Flag minutes with volume ≥ k × the average of ``recent`` (symbols × bars, NaN-padded)."""
    with np.errstate(invalid="ignore"):
        return volume_ratio(minute_volume, recent, min_bars) >= k
