"""Scanner metrics against hand-computed references."""
from __future__ import annotations

import math

import numpy as np

from webapp.core import metrics as m

nan = math.nan


def close(a, b) -> bool:
    return np.allclose(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


def test_pct_change_and_gap() -> None:
    # 255.78 vs 254.55: +1.23 = +0.48320...%; a missing or zero previous close is unknown
    assert close(m.pct_change([255.78, 10, 5], [254.55, 0, nan]), [1.23 / 254.55 * 100, nan, nan])
    # opened at 260 after closing at 250: a 4 % gap up
    assert close(m.gap_pct([260.0, 240.0], [250.0, 250.0]), [4.0, -4.0])


def test_vwap_accumulates_and_resets_at_the_open() -> None:
    pv, v = np.zeros(2), np.zeros(2)
    # ticker 0: (10 x 100), (11 x 300) -> (1000 + 3300) / 400 = 10.75
    # ticker 1: (20 x 50), then a new session (30 x 10) -> 30
    r = m.vwap_step(pv, v, np.array([10.0, 20.0]), np.array([100.0, 50.0]), np.array([True, True]))
    r = m.vwap_step(r.price_volume, r.volume, np.array([11.0, 30.0]), np.array([300.0, 10.0]),
                    np.array([False, True]))
    assert close(r.vwap, [10.75, 30.0]) and close(r.volume, [400, 10])
    # no volume yet (Finnhub has none): unknown, not a division by zero
    z = m.vwap_step(np.zeros(1), np.zeros(1), np.array([5.0]), np.array([nan]), np.array([True]))
    assert math.isnan(z.vwap[0])


def test_new_intraday_highs_and_lows() -> None:
    high, low = np.array([nan, 12.0, 12.0, 12.0]), np.array([nan, 9.0, 9.0, 9.0])
    price = np.array([10.0, 12.5, 8.5, 12.0])
    r = m.intraday_extremes(high, low, price, np.array([False, False, False, False]))
    # first reading of the day sets the range without counting as a new extreme;
    # touching the high (12.0) is not a new high
    assert list(r.new_high) == [False, True, False, False]
    assert list(r.new_low) == [False, False, True, False]
    assert close(r.high, [10.0, 12.5, 12.0, 12.0]) and close(r.low, [10.0, 9.0, 8.5, 9.0])
    reset = m.intraday_extremes(np.array([20.0]), np.array([5.0]), np.array([7.0]), np.array([True]))
    assert not reset.new_low[0] and close(reset.high, [7.0])


def test_relative_volume_with_its_fallback() -> None:
    history = np.array([
        [1000, 2000, 3000, nan],  # three sessions: average 2000
        [1000, nan, nan, nan],    # one session only: too short, unknown
        [0, 0, 0, 0],             # never traded at this time: unknown, not infinite
    ], dtype=float)
    r = m.relative_volume(np.array([5000.0, 5000.0, 10.0]), history, min_sessions=3)
    assert close(r, [2.5, nan, nan])
    assert close(m.relative_volume(np.array([5000.0]), history[1:2], min_sessions=1), [5.0])


def test_unusual_volume_needs_enough_bars() -> None:
    recent = np.array([[100.0] * 10, [100.0] * 5 + [nan] * 5])
    flags = m.unusual_volume(np.array([200.0, 1000.0]), recent, k=2.0, min_bars=10)
    assert list(flags) == [True, False]  # exactly 2x counts; five bars are too few to judge
    assert not m.unusual_volume(np.array([199.0]), recent[:1], k=2.0)[0]
