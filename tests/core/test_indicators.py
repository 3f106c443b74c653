"""SMA and crossover: exact examples, the edge cases BRIEF names, and a
property test against a straightforward reference implementation."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import reference
from webapp.core import indicators as ind
from webapp.core.quotes import PRICE_SCALE, to_ticks


def run_series(prices: list[float], period: int) -> list[tuple[float | None, str | None]]:
    """Feed prices through ``step`` the way the pipeline does."""
    window: list[int] = []
    prev_price: int | None = None
    prev_sma: ind.Sma | None = None
    out = []
    for p in prices:
        t = to_ticks(p)
        s = ind.step(window, prev_price, prev_sma, t, period)
        out.append((s.sma.value if s.sma else None, s.alert))
        window, prev_price, prev_sma = s.window, t, s.sma
    return out


def test_sma_needs_a_full_window() -> None:
    assert ind.sma([to_ticks(1.0)] * 4, 5) is None
    avg = ind.sma([to_ticks(p) for p in (1, 2, 3, 4, 5)], 5)
    assert avg is not None and avg.value == 3.0


def test_window_keeps_last_period_prices() -> None:
    assert ind.roll_window([1, 2, 3, 4, 5], 6, 5) == [2, 3, 4, 5, 6]
    assert ind.roll_window([], 7, 5) == [7]


def test_no_alert_until_a_previous_sma_exists() -> None:
    # The 5th reading has the first SMA; nothing can fire before the 6th.
    out = run_series([10, 10, 10, 10, 9, 20], 5)
    assert [a for _, a in out[:5]] == [None] * 5
    assert out[5][1] == "bullish"


def test_bullish_and_bearish_crosses() -> None:
    prices = [10, 10, 10, 10, 10, 9, 12, 13, 8]
    alerts = [a for _, a in run_series(prices, 5)]
    assert alerts == [None, None, None, None, None, "bearish", "bullish", None, "bearish"]


def test_touch_then_cross_fires_once() -> None:
    # Reading 6 lands exactly on its SMA (a touch); reading 7 goes above.
    # The original strict-< rule missed this cross; BRIEF's rule catches it.
    prices = [10, 10, 10, 10, 8, 9.5, 11]
    out = run_series(prices, 5)
    assert out[5] == (9.5, None)  # window 10,10,10,8,9.5 -> 9.5: a touch, no alert
    assert out[6][1] == "bullish"
    assert reference(prices, 5)[6] == "bullish"


def test_comparison_is_exact_not_float_noise() -> None:
    # A flat price sits exactly on its average.  In floats the mean of five
    # 255.78s is not 255.78, so a naive comparison sees the price on one side
    # of its SMA and, with the previous reading "touching", fires a cross.
    float_sma = sum([255.78] * 5) / 5
    assert float_sma != 255.78
    out = run_series([255.78] * 7, 5)
    assert all(a is None for _, a in out)
    assert out[-1][0] == 255.78


def test_crossover_requires_both_smas() -> None:
    s = ind.Sma(500, 5)
    assert ind.crossover(None, s, 200, s) is None
    assert ind.crossover(50, None, 200, s) is None
    assert ind.crossover(50, s, 200, None) is None


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ind.sma([1], 0)


prices_st = st.lists(
    st.integers(min_value=1, max_value=40).map(lambda c: c / 4),  # coarse steps force touches
    min_size=0,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(prices=prices_st, period=st.integers(min_value=1, max_value=8))
def test_streaming_matches_reference(prices: list[float], period: int) -> None:
    assert [a for _, a in run_series(prices, period)] == reference(prices, period)


@settings(max_examples=200, deadline=None)
@given(
    prices=st.lists(
        st.integers(min_value=1, max_value=10**8).map(lambda t: t / PRICE_SCALE),
        max_size=40,
    ),
    period=st.integers(min_value=1, max_value=10),
)
def test_streaming_matches_reference_at_full_precision(prices: list[float], period: int) -> None:
    out = run_series(prices, period)
    assert [a for _, a in out] == reference(prices, period)
    for i, (value, _) in enumerate(out):
        if i >= period - 1:
            exact = sum(Fraction(Decimal(repr(p))) for p in prices[i - period + 1 : i + 1]) / period
            assert value == pytest.approx(float(exact), abs=0.5 / PRICE_SCALE + 1e-9)
        else:
            assert value is None


@settings(max_examples=300, deadline=None)
@given(
    period=st.integers(1, 6),
    series=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=14), min_size=1, max_size=12),
)
def test_step_columns_matches_step(period, series) -> None:
    """Each row a ticker's price series (coarse ticks so touches happen), stepped
    through step_columns a reading at a time (rows with no price left sit
    out), against step for each ticker on its own: windows filling and full."""
    n = len(series)
    window = np.zeros((n, period), np.int64)
    length = np.zeros(n, np.int64)
    scalar: list[tuple[list[int], int | None, ind.Sma | None]] = [([], None, None)] * n
    for k in range(max(map(len, series))):
        rows = [i for i in range(n) if k < len(series[i])]
        prices = np.array([series[i][k] * 2500 for i in rows], np.int64)
        got = ind.step_columns(window[rows], length[rows], prices, period)
        for j, i in enumerate(rows):
            w, prev_price, prev_sma = scalar[i]
            want = ind.step(w, prev_price, prev_sma, int(prices[j]), period)
            assert got.window[j, period - got.length[j]:].tolist() == want.window
            assert got.length[j] == len(want.window)
            assert (int(got.total[j]) if got.length[j] == period else None) == (
                want.sma.total if want.sma else None)
            assert ind.ALERT_CODES[got.alert[j]] == want.alert
            scalar[i] = (want.window, int(prices[j]), want.sma)
        window[rows], length[rows] = got.window, got.length
