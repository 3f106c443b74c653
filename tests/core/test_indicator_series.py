"""The chart's indicators against straightforward loop implementations, over generated series."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.core import indicator_series as ind

prices = st.lists(st.floats(1.0, 1000.0, allow_nan=False).map(lambda x: round(x, 2)), min_size=0, max_size=80)
periods = st.integers(1, 30)


def ref_sma(xs, n):
    return [sum(xs[i - n + 1:i + 1]) / n if i >= n - 1 else math.nan for i in range(len(xs))]


def ref_smooth(xs, n, alpha):
    out, prev = [], None
    for i, x in enumerate(xs):
        if i < n - 1:
            out.append(math.nan)
            continue
        prev = sum(xs[:n]) / n if i == n - 1 else alpha * x + (1 - alpha) * prev
        out.append(prev)
    return out


def ref_rsi(xs, n):
    out = [math.nan] * len(xs)
    if len(xs) <= n:
        return out
    gains = [max(b - a, 0.0) for a, b in zip(xs, xs[1:], strict=False)]
    losses = [max(a - b, 0.0) for a, b in zip(xs, xs[1:], strict=False)]
    up, down = ref_smooth(gains, n, 1 / n), ref_smooth(losses, n, 1 / n)
    for i in range(n - 1, len(gains)):
        u, d = up[i], down[i]
        out[i + 1] = (50.0 if u == 0 else 100.0) if d == 0 else 100 - 100 / (1 + u / d)
    return out


def ref_std(xs, n):
    out = []
    for i in range(len(xs)):
        if i < n - 1:
            out.append(math.nan)
            continue
        w = xs[i - n + 1:i + 1]
        m = sum(w) / n
        out.append(math.sqrt(sum((x - m) ** 2 for x in w) / n))
    return out


def close(got, want, tol=1e-6):
    got = np.asarray(got, float)
    want = np.asarray(want, float)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-7, atol=tol)


@settings(max_examples=150, deadline=None)
@given(prices, periods)
def test_sma_ema_and_rsi_equal_their_definitions(xs, n) -> None:
    close(ind.sma(np.array(xs), n), ref_sma(xs, n))
    close(ind.ema(np.array(xs), n), ref_smooth(xs, n, 2 / (n + 1)))
    close(ind.rsi(np.array(xs), n), ref_rsi(xs, n), tol=1e-5)


def test_a_missing_value_leaves_the_averages_over_it_undefined() -> None:
    xs = np.array([1.0, 2.0, 3.0, math.nan, 5.0, 6.0, 7.0, 8.0])
    assert np.isnan(ind.sma(xs, 3)[[0, 1, 3, 4, 5]]).all() and ind.sma(xs, 3)[[2, 6, 7]].tolist() == [2, 6, 7]
    ema = ind.ema(xs, 2)  # alpha 2/3, seeded 1.5; the hole is skipped: 5 follows 3's value
    assert math.isnan(ema[3]) and ema[2] == pytest.approx(2.5) and ema[4] == pytest.approx(2.5 / 3 + 10 / 3)
    rows = np.array([[1.0, math.nan, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]])  # per ticker, not across
    assert np.isnan(ind.ema(rows, 2)[0, :3]).all() and ind.ema(rows, 2)[0, 3] == pytest.approx(3.5)
    assert ind.ema(rows, 2)[1].tolist() == pytest.approx(ind.ema(rows[1], 2).tolist(), nan_ok=True)


@settings(max_examples=150, deadline=None)
@given(prices, periods, st.floats(0.5, 3.0))
def test_bollinger_is_the_sma_plus_and_minus_k_population_deviations(xs, n, k) -> None:
    mid, upper, lower = ind.bollinger(np.array(xs), n, k)
    sd = ref_std(xs, n)
    close(mid, ref_sma(xs, n))
    close(upper, [m + k * s for m, s in zip(ref_sma(xs, n), sd, strict=False)], tol=1e-4)
    close(lower, [m - k * s for m, s in zip(ref_sma(xs, n), sd, strict=False)], tol=1e-4)


@settings(max_examples=100, deadline=None)
@given(prices, st.integers(2, 8), st.integers(9, 20), st.integers(2, 9))
def test_macd_is_the_ema_difference_and_its_signal(xs, fast, slow, signal) -> None:
    line, sig, hist = ind.macd(np.array(xs), fast, slow, signal)
    fast_ema, slow_ema = ref_smooth(xs, fast, 2 / (fast + 1)), ref_smooth(xs, slow, 2 / (slow + 1))
    want = [a - b for a, b in zip(fast_ema, slow_ema, strict=True)]
    close(line, want)
    defined = want[slow - 1:]
    want_sig = [math.nan] * (slow - 1) + ref_smooth(defined, signal, 2 / (signal + 1))
    close(sig, want_sig[:len(xs)])
    close(hist, [a - b for a, b in zip(want, want_sig, strict=False)])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 500).map(lambda x: round(x, 2)), st.integers(0, 10_000),
                          st.integers(0, 2)), max_size=60))
def test_vwap_starts_again_each_session(bars) -> None:
    bars.sort(key=lambda b: b[2])
    c = [b[0] for b in bars]
    h, lo = [x + 1 for x in c], [x - 1 for x in c]
    v, s = [b[1] for b in bars], [b[2] for b in bars]
    want, pv, vol, prev = [], 0.0, 0, None
    for hi_, lo_, c_, v_, s_ in zip(h, lo, c, v, s, strict=False):
        if s_ != prev:
            pv, vol, prev = 0.0, 0, s_
        pv += (hi_ + lo_ + c_) / 3 * v_
        vol += v_
        want.append(pv / vol if vol else math.nan)
    close(ind.vwap(np.array(h, float), np.array(lo, float), np.array(c, float), np.array(v, float),
                   np.array(s)), want, tol=1e-5)


def test_studies_are_parsed_with_defaults_and_refused_with_a_reason() -> None:
    got = ind.parse("sma:20, EMA:9,vwap,bb,rsi,macd:5:13:4,sma:20")
    assert [s.key for s in got] == ["sma:20", "ema:9", "vwap", "bb:20:2", "rsi:14", "macd:5:13:4"]
    assert ind.parse("bb:10:1.5")[0].key == "bb:10:1.5"
    assert ind.parse("none") == ind.parse("") == []
    too_many = ",".join(f"sma:{i}" for i in range(1, 13))
    for text, needle in [("foo", "unknown indicator"), ("sma:0", "whole numbers"),
                         ("sma:x", "not a positive"), ("sma:2.5", "whole numbers"),
                         ("macd:26:12", "fast period"), ("bb:20:0", "band"),
                         ("sma:1:2", "at most 1"), (too_many, "at most 10")]:
        with pytest.raises(ind.StudyError, match=needle):
            ind.parse(text)
