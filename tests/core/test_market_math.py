"""Market math at any price and any length, against TA-Lib and against exact integer arithmetic.

TA-Lib (the ``ta-lib`` wheel) is the reference for SMA, EMA, RSI, MACD and
Bollinger bands; pandas for session VWAP.  Series are tick walks (whole
1/10,000 $ steps) at price levels from $0.0001 to $1,000,000, up to 100,000
bars long, flat, one tick apart, and with holes.  The tolerance is the
quote's precision, and tighter: :data:`TOL` is 1/1,000 of a tick (TA-Lib's own running sums
drift by up to 2e-8 $ over 100,000 bars at $1,000,000).  Where
this project's convention differs from TA-Lib's on purpose, the difference
itself is asserted.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.core import averages
from webapp.core import indicator_series as ind
from webapp.core.indicators import step_columns
from webapp.core.quotes import PRICE_SCALE
from webapp.core.rules.evaluate import evaluate, evaluate_many
from webapp.core.rules.model import Rule
from webapp.core.rules.parse import parse_condition

TICK = 1 / PRICE_SCALE
TOL = TICK / 1000
LEVELS = [0.0001, 0.01, 1.0, 100.0, 3000.1234, 512_345.6789, 999_999.9999]
T0 = 1_795_000_020
PRICE = {"price": True}


def walk(level: float, length: int, seed: int, step: int = 3) -> np.ndarray:
    """A tick walk around ``level`` (never below one tick)."""
    rng = np.random.default_rng(seed)
    ticks = round(level * PRICE_SCALE) + np.cumsum(rng.integers(-step, step + 1, length))
    return np.maximum(ticks, 1) / PRICE_SCALE


def fires(cond: dict, closes: np.ndarray, frequency: str = "every_time") -> list[int]:
    """The bars where a rule over one ticker's closes fires (no cooldown)."""
    rule = Rule(1, 1, parse_condition(cond), frequency, 0)
    closes = np.asarray(closes, float)[None, :]
    series = {"close": closes, "open": closes, "high": closes, "low": closes,
              "volume": np.ones_like(closes)}
    times = T0 + 60 * np.arange(closes.shape[1])
    return [(f.bar_time - T0) // 60 for f in evaluate(rule, ["X"], series, times, {}).fires]


def exact_mean(ticks: np.ndarray, n: int, t: int) -> Fraction:
    return Fraction(int(ticks[t - n + 1:t + 1].sum()), n * PRICE_SCALE)


# ---- the failures that were reported, each as it was met -----------------------------

@pytest.mark.parametrize(("price", "bars"), [(512_345.6789, 70), (3000.1234, 2810), (999_999.9999, 100_000)])
def test_a_flat_series_never_crosses_its_own_average(price: float, bars: int) -> None:
    closes = np.full(bars, price)
    for op in ("crossing", "crossing_up", "crossing_down", "greater_than", "less_than"):
        assert fires({"op": op, "a": PRICE, "b": {"sma": 20}}, closes) == [], op
    assert np.all(ind.sma(closes, 20)[19:] == price)
    assert np.all(ind.ema(closes, 9)[8:] == price)
    mid, upper, lower = ind.bollinger(closes, 20, 2)
    assert np.all(upper[19:] == price) and np.all(lower[19:] == price)


def test_one_tick_up_after_a_long_flat_run_crosses_on_that_bar() -> None:
    closes = np.r_[np.full(5000, 3000.1234), 3000.1235]
    assert fires({"op": "crossing_up", "a": PRICE, "b": {"sma": 20}}, closes) == [5000]
    assert fires({"op": "crossing_up", "a": PRICE, "b": {"ema": 20}}, closes) == [5000]
    assert fires({"op": "crossing_down", "a": PRICE, "b": {"sma": 20}}, closes) == []


def test_bollinger_on_a_one_tick_range_is_half_a_tick_wide() -> None:
    closes = np.array([3000.0000, 3000.0001] * 10)
    mid, upper, lower = ind.bollinger(closes, 20, 1)
    assert abs((upper - mid)[-1] - TICK / 2) < TOL
    t_upper, t_mid, _ = talib.BBANDS(closes, 20, 1, 1, 0)
    assert abs(upper[-1] - t_upper[-1]) < TOL and abs(mid[-1] - t_mid[-1]) < TOL


@pytest.mark.parametrize("level", LEVELS)
def test_bollinger_equals_talib_and_the_exact_deviation_at_every_level(level: float) -> None:
    closes = walk(level, 3000, seed=int(level * 7) % 1000)
    mid, upper, lower = ind.bollinger(closes, 20, 2)
    t_upper, t_mid, t_lower = talib.BBANDS(closes, 20, 2, 2, 0)
    ok = ~np.isnan(t_mid)
    assert np.array_equal(ok, ~np.isnan(mid))
    assert np.max(np.abs(mid[ok] - t_mid[ok])) < TOL
    assert np.max(np.abs(upper[ok] - t_upper[ok])) < TOL and np.max(np.abs(lower[ok] - t_lower[ok])) < TOL
    ticks = np.rint(closes * PRICE_SCALE).astype(np.int64)
    for t in (19, 1000, 2999):  # against exact rational arithmetic
        window = [int(v) for v in ticks[t - 19:t + 1]]
        total = sum(window)
        exact = math.sqrt(sum((20 * v - total) ** 2 for v in window)) / (20 ** 1.5 * PRICE_SCALE)
        assert abs(averages.deviation(closes, 20)[t] - exact) <= 1e-14 * max(exact, TICK)


# ---- TA-Lib as the reference ---------------------------------------------------------

@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("length", [50, 5000, 100_000])
def test_sma_equals_talib_and_is_exact(level: float, length: int) -> None:
    closes = walk(level, length, seed=length)
    for n in (1, 5, 20, 200):
        ours, theirs = ind.sma(closes, n), talib.SMA(closes, n)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs))
        ok = ~np.isnan(ours)
        assert np.max(np.abs(ours[ok] - theirs[ok]), initial=0.0) < TOL, n
    ticks = np.rint(closes * PRICE_SCALE).astype(np.int64)
    sma20 = ind.sma(closes, 20)
    for t in (19, length // 2, length - 1):
        assert sma20[t] == float(exact_mean(ticks, 20, t))  # the correctly rounded exact mean


@pytest.mark.parametrize("level", LEVELS)
def test_ema_equals_talib_within_its_documented_seed_difference(level: float) -> None:
    """TA-Lib seeds once, at the series' start; ours at each bar over its last 10n+1 bars (so live and
    replay agree), where the seed's weight left is (1 - alpha)^(9n+1): a difference below that share of
    the series' range."""
    closes = walk(level, 5000, seed=11)
    for n in (1, 2, 9, 20, 50):
        ours, theirs = ind.ema(closes, n), talib.EMA(closes, n)
        assert np.array_equal(np.isnan(ours), np.isnan(theirs))
        ok = ~np.isnan(ours)
        alpha = 2 / (n + 1)
        bound = TOL + (1 - alpha) ** (ind.ema_depth(n) - n) * float(np.ptp(closes))
        assert np.max(np.abs(ours[ok] - theirs[ok])) <= bound, n
        first = ind.ema_depth(n) - 1  # until a whole window exists, both run from the series' start
        assert np.max(np.abs(ours[n - 1:first] - theirs[n - 1:first]), initial=0.0) < TOL, n


@pytest.mark.parametrize("level", LEVELS)
def test_rsi_equals_talib_except_that_a_flat_series_is_50_here(level: float) -> None:
    """Ours is windowed (each bar over its last 30n+1 changes, so live and replay agree): it equals
    TA-Lib's wherever the window moved (its averages hold at least 1e-3 of the largest change, so what
    is left of the seed, below 1e-13 of it, cannot show); where the price sat flat for nearly the
    whole window both are ratios of what is left of older moves and are not compared."""
    closes = walk(level, 3000, seed=5)
    ours, theirs = ind.rsi(closes, 14), talib.RSI(closes, 14)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    change = np.diff(closes)
    up, down = ind.wilder(np.maximum(change, 0.0), 14), ind.wilder(np.maximum(-change, 0.0), 14)
    moved = np.r_[False, up + down > 1e-3 * np.max(np.abs(change))]
    ok = ~np.isnan(ours) & moved
    assert ok.sum() > 300
    assert np.max(np.abs(ours[ok] - theirs[ok])) < 1e-8
    flat = np.full(100, level)
    assert np.all(ind.rsi(flat, 14)[14:] == 50.0) and np.all(talib.RSI(flat, 14)[14:] == 0.0)


@pytest.mark.parametrize("level", LEVELS)
def test_macd_is_our_ema_difference_and_talib_seeds_its_fast_ema_at_the_slow_ones_start(level: float) -> None:
    closes = walk(level, 3000, seed=9)
    line, signal, hist = ind.macd(closes, 12, 26, 9)
    assert np.allclose(line, ind.ema(closes, 12) - ind.ema(closes, 26), atol=TOL, equal_nan=True)
    t_line, t_signal, _ = talib.MACD(closes, 12, 26, 9)
    fast = np.full_like(closes, np.nan)
    fast[26 - 12:] = talib.EMA(closes[26 - 12:], 12)  # TA-Lib's convention, shown
    assert np.nanmax(np.abs(t_line - (fast - talib.EMA(closes, 26)))) < TOL
    ok = ~np.isnan(t_line)
    assert np.all(~np.isnan(line[ok]))
    # the two conventions meet once the fast EMA's seed has faded (ours is also windowed: see ema)
    late = slice(1000, None)
    assert np.max(np.abs(line[late] - t_line[late])) < max(TOL, 1e-9 * float(np.ptp(closes)))
    assert np.max(np.abs(signal[late] - t_signal[late])) < max(TOL, 1e-9 * float(np.ptp(closes)))
    assert np.allclose(hist, line - signal, atol=TOL, equal_nan=True)


@pytest.mark.parametrize("level", LEVELS)
def test_session_vwap_equals_pandas(level: float) -> None:
    closes = walk(level, 1200, seed=4)
    rng = np.random.default_rng(4)
    high, low = closes + TICK * rng.integers(0, 3, 1200), closes - TICK * rng.integers(0, 3, 1200)
    volume = rng.integers(0, 5000, 1200).astype(float)
    session = np.repeat([1, 2, 3], 400)
    frame = pd.DataFrame({"tp": (high + low + closes) / 3, "v": volume, "s": session})
    frame["pv"] = frame.tp * frame.v
    sums = frame.groupby("s")[["pv", "v"]].cumsum()
    want = (sums.pv / sums.v.where(sums.v > 0)).to_numpy()
    got = ind.vwap(high, low, closes, volume, session)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(got)
    assert np.max(np.abs(got[ok] - want[ok])) < max(TOL, 1e-12 * level)


def test_holes_leave_the_windows_over_them_undefined_and_the_rest_exact() -> None:
    closes = walk(3000.1234, 300, seed=2)
    closes[[50, 51, 200]] = np.nan
    sma = ind.sma(closes, 20)
    assert np.all(np.isnan(sma[50:71])) and np.all(np.isnan(sma[200:220]))
    clean = ind.sma(walk(3000.1234, 300, seed=2), 20)
    assert np.array_equal(sma[72:200], clean[72:200]) and np.array_equal(sma[220:], clean[220:])
    mid, upper, _ = ind.bollinger(closes, 20, 2)
    assert np.all(np.isnan(upper[50:71])) and np.array_equal(np.isnan(mid), np.isnan(sma))


# ---- exact decisions: against integer arithmetic -------------------------------------

@settings(max_examples=60, deadline=None)
@given(level=st.sampled_from(LEVELS), n=st.integers(2, 60), seed=st.integers(0, 10_000),
       step=st.integers(1, 4))
def test_price_against_its_sma_is_decided_as_integers_decide_it(level, n, seed, step) -> None:
    closes = walk(level, 400, seed, step)
    ticks = np.rint(closes * PRICE_SCALE).astype(np.int64)
    totals, whole = averages.window_totals(ticks, n)
    exact_side = averages.side(ticks, totals, n)
    sma = ind.sma(closes, n)
    float_side = np.sign(closes - sma)
    assert np.array_equal(exact_side[whole], float_side[whole])
    want = [t for t in range(n, len(ticks)) if exact_side[t] > 0 and exact_side[t - 1] <= 0]
    assert fires({"op": "crossing_up", "a": PRICE, "b": {"sma": n}}, closes) == want


@settings(max_examples=40, deadline=None)
@given(level=st.sampled_from(LEVELS), seed=st.integers(0, 10_000))
def test_two_smas_are_compared_as_integers_compare_them(level, seed) -> None:
    closes = walk(level, 400, seed, 2)
    ticks = np.rint(closes * PRICE_SCALE).astype(np.int64)
    fast_t, ok5 = averages.window_totals(ticks, 5)
    slow_t, ok20 = averages.window_totals(ticks, 20)
    exact = np.sign(fast_t * 20 - slow_t * 5)
    floats = np.sign(ind.sma(closes, 5) - ind.sma(closes, 20))
    both = ok5 & ok20
    assert np.array_equal(exact[both], floats[both])


def test_the_tick_and_the_rules_and_the_chart_share_one_average() -> None:
    closes = walk(512_345.6789, 60, seed=8)
    ticks = np.rint(closes * PRICE_SCALE).astype(np.int64)
    window = ticks[None, -6:-1]
    got = step_columns(window, np.array([5]), ticks[-1:], 5)
    totals, _ = averages.window_totals(ticks, 5)
    assert got.total[0] == totals[-1]
    assert averages.mean_price(got.total, 5)[0] == ind.sma(closes, 5)[-1]


# ---- replay equals live --------------------------------------------------------------

CONDITIONS = [
    {"op": "crossing", "a": PRICE, "b": {"sma": 7}},
    {"op": "crossing_up", "a": PRICE, "b": {"ema": 5}},
    {"op": "crossing_down", "a": {"sma": 3}, "b": {"ema": 4}},
    {"op": "greater_than", "a": PRICE, "b": {"sma": 4}},
    {"op": "entering_channel", "a": PRICE, "lower": {"sma": 6}, "upper": {"ema": 3}},
    {"op": "moving_up_pct", "a": PRICE, "bars": 3, "value": 0.001},
]


@settings(max_examples=60, deadline=None)
@given(level=st.sampled_from(LEVELS), seed=st.integers(0, 10_000), length=st.integers(5, 120),
       start=st.integers(1, 60), holes=st.lists(st.integers(0, 119), max_size=4),
       cond=st.sampled_from(CONDITIONS),
       freq=st.sampled_from(["once", "once_per_bar", "once_per_bar_close", "every_time"]))
def test_live_bar_by_bar_on_the_last_depth_bars_equals_replay_over_the_whole_series(
        level, seed, length, start, holes, cond, freq) -> None:
    closes = walk(level, length, seed, 2)
    closes[[h for h in holes if h < length]] = np.nan
    rule = Rule(1, 1, parse_condition(cond), freq, 0)
    series = {k: closes[None, :].copy() for k in ("close", "open", "high", "low")}
    series["volume"] = np.ones((1, length))
    times = T0 + 60 * np.arange(length, dtype=np.int64)
    first = min(start, length - 1)
    stale = np.isnan(series["close"])
    replay = evaluate(rule, ["X"], series, times, {}, stale, first)
    depth = rule.condition.depth
    states: dict = {}
    live = []
    for t in range(first, length):  # one tick at a time, seeing only the bars it keeps
        lo = max(0, t - depth + 1)
        part = {k: v[:, lo:t + 1] for k, v in series.items()}
        got = evaluate_many([rule], [None], ["X"], part, times[lo:t + 1], [states], stale[:, lo:t + 1],
                            t - lo)
        live += got.fires
        states = {**states, **{tk: s for _, tk, s in got.states}}
    key = [(f.bar_time, f.bucket, f.inputs) for f in replay.fires]
    assert [(f.bar_time, f.bucket, f.inputs) for f in live] == key
