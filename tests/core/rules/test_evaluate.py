"""Alert rules, promtool-style: a bar series in, the expected fires (with their inputs) out.

Then the vectorised evaluator against a plain per-ticker reference over
hypothesis-generated series and rules.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.core.rules.evaluate import evaluate
from webapp.core.rules.model import BAR_OPS, Rule, RuleError
from webapp.core.rules.parse import parse_condition
from webapp.core.rules.state import TickerState, step

T0 = 1_795_000_020
CLOSE = {"field": "close"}


def run(cond: dict, closes, *, frequency="once_per_bar_close", cooldown=0, every=60, stale=None,
        expires_at=None, states=None, **series):
    rule = Rule(7, 3, parse_condition(cond), frequency, cooldown, expires_at)
    times = np.array([T0 + every * i for i in range(len(closes))])
    data = {"close": np.array([closes], float), **{k: np.array([v], float) for k, v in series.items()}}
    for f in ("open", "high", "low", "volume"):
        data.setdefault(f, data["close"])
    out = evaluate(rule, ["AAPL"], data, times, states or {},
                   None if stale is None else np.array([stale], bool))
    return [((f.bar_time - T0) // every, f.explanation) for f in out.fires], out




def test_crossing_up_a_level_says_what_crossed_and_from_where() -> None:
    got, out = run({"op": "crossing_up", "a": CLOSE, "b": {"const": 101}}, [100, 100.8, 101.2, 100.5, 101.5])
    assert got == [(2, "close 101.20 crossed above 101.00; previous close 100.80"),
                   (4, "close 101.50 crossed above 101.00; previous close 100.50")]
    assert out.fires[0].inputs == {"a": 101.2, "a1": 100.8, "b": 101.0, "b1": 101.0}
    assert out.fires[0].dedupe_key == f"7:AAPL:{T0 + 120}:b{T0 + 120}" and out.fires[0].rule_version == 3


def test_a_touch_counts_as_below_and_the_cooldown_holds_the_second_cross() -> None:
    # thinkorswim: a > b and a[1] <= b[1]: through an exact touch it fires
    got, _ = run({"op": "crossing_up", "a": CLOSE, "b": {"const": 101}}, [100, 101, 102, 100, 102],
                 cooldown=300)
    assert [i for i, _ in got] == [2]  # the cross at bar 4 is 120 s later: inside the 300 s cooldown


def test_crossing_either_way_and_down_against_an_sma() -> None:
    closes = [10, 10, 10, 12, 12, 12, 9, 9]
    got, _ = run({"op": "crossing", "a": CLOSE, "b": {"sma": 3}}, closes)
    assert [i for i, _ in got] == [3, 6]
    got, _ = run({"op": "crossing_down", "a": CLOSE, "b": {"sma": 3}}, closes)
    assert got == [(6, "close 9.00 crossed below sma(3) 11.00; previous close 12.00 vs 12.00")]


def test_a_state_fires_when_it_becomes_true_and_re_arms_only_after_false() -> None:
    closes = [99, 101, 102, 103, 99, 101]
    cond = {"op": "greater_than", "a": CLOSE, "b": {"const": 100}}
    assert [i for i, _ in run(cond, closes)[0]] == [1, 5]
    assert [i for i, _ in run(cond, closes, frequency="every_time")[0]] == [1, 2, 3, 5]
    assert [i for i, _ in run(cond, closes, frequency="every_time", every=20)[0]] == [1, 5]  # ≤ 1 a minute
    once, out = run(cond, closes, frequency="once")
    assert [i for i, _ in once] == [1] and out.states["AAPL"].status == "done"
    assert out.fires[0].bucket == "once"


def test_channels() -> None:
    closes = [90, 95, 105, 112, 108, 95]
    band = {"lower": {"const": 100}, "upper": {"const": 110}}
    assert [i for i, _ in run({"op": "entering_channel", "a": CLOSE, **band}, closes)[0]] == [2, 4]
    assert [i for i, _ in run({"op": "exiting_channel", "a": CLOSE, **band}, closes)[0]] == [3, 5]
    assert [i for i, _ in run({"op": "inside_channel", "a": CLOSE, **band}, closes)[0]] == [2, 4]
    assert [i for i, _ in run({"op": "outside_channel", "a": CLOSE, **band}, closes)[0]] == [0, 3, 5]
    got, _ = run({"op": "entering_channel", "a": CLOSE, **band}, closes)
    assert got[0][1] == "close 105.00 entered the channel 100.00–110.00; previous close 95.00"


def test_moving_up_pct_is_measured_against_the_value_n_bars_ago() -> None:
    got, _ = run({"op": "moving_up_pct", "a": CLOSE, "bars": 3, "value": 3}, [100, 101, 102, 103.5, 104, 90])
    assert got == [(3, "close 103.50 moved up 3.50% in 3 bars (from 100.00; at least 3.00%)")]
    got, _ = run({"op": "moving_down", "a": CLOSE, "bars": 2, "value": 5}, [100, 99, 94, 93, 92])
    assert [i for i, _ in got] == [2]


def test_metrics_and_missing_values_never_fire() -> None:
    got, _ = run({"op": "greater_than", "a": {"metric": "rvol"}, "b": {"const": 3}}, [1, 1, 1, 1],
                 rvol=[1, math.nan, 3.5, 4])
    assert got == [(2, "rvol 3.50 rose above 3.00; previous rvol n/a")]
    got, _ = run({"op": "crossing_up", "a": CLOSE, "b": {"sma": 10}}, [1, 2, 3, 4])  # the SMA still fills
    assert got == []


def test_a_minute_without_a_reading_never_fakes_a_cross_against_an_average() -> None:
    """The close falls below its SMA(3) all along; one minute without a fresh reading (NaN, as the live
    tick and a replay hold it) leaves the averages over it undefined rather than counting it as zero,
    which would drag the SMA down and fire a cross down when the hole left the window."""
    closes = [100.7, 100.6, 100.5, math.nan, 100.3, 100.2, 100.1, 100.0]
    for b in ({"sma": 3}, {"ema": 3}):
        got, _ = run({"op": "crossing_down", "a": CLOSE, "b": b}, closes,
                     stale=[math.isnan(c) for c in closes])
        assert got == [], b
    # after the hole the EMA carries on from the bar before it; the SMA waits for three readings in a row
    got, _ = run({"op": "crossing_up", "a": CLOSE, "b": {"sma": 3}}, [10, 10, 10, math.nan, 9, 9, 9, 12])
    assert [i for i, _ in got] == [7]


def test_the_storm_breaker_stops_the_rule_for_that_ticker() -> None:
    closes = [99, 101] * 20  # a cross every 5 s bar
    got, out = run({"op": "crossing", "a": CLOSE, "b": {"const": 100}}, closes, frequency="once_per_bar",
                   every=5)
    assert len(got) == 15 and out.stopped == ["AAPL"] and out.states["AAPL"].status == "stopped_too_often"


def test_expiry_and_stale_readings() -> None:
    cond = {"op": "greater_than", "a": CLOSE, "b": {"const": 100}}
    assert run(cond, [99, 101, 99, 101], expires_at=T0 + 120)[0][0][0] == 1
    assert [i for i, _ in run(cond, [99, 101, 99, 101], expires_at=T0 + 60)[0]] == []
    # stale at the moment it became true: not fired on, and still armed for the next fresh reading
    got, _ = run(cond, [99, 101, 102], stale=[False, True, False])
    assert [i for i, _ in got] == [2]


def test_bars_before_a_rule_starts_are_not_judged() -> None:
    """A catch-up after a gap evaluates old bars; a rule the tick met only later is not judged on them."""
    cond = {"op": "crossing_up", "a": CLOSE, "b": {"const": 100}}
    closes = [99, 101, 99, 101, 99, 101]
    rule = Rule(7, 3, parse_condition(cond), "once_per_bar_close", 0, None, T0 + 120)
    times = np.array([T0 + 60 * i for i in range(len(closes))])
    series = {f: np.array([closes], float) for f in ("open", "high", "low", "close", "volume")}
    fires = evaluate(rule, ["AAPL"], series, times, {}).fires
    assert [(f.bar_time - T0) // 60 for f in fires] == [3, 5]  # not bar 1, before it started
    assert step(rule, TickerState(), True, T0 + 60, False) == (False, TickerState())


def test_a_retried_tick_fires_nothing_twice() -> None:
    cond = {"op": "crossing_up", "a": CLOSE, "b": {"const": 101}}
    got, out = run(cond, [100, 102])
    assert len(got) == 1
    again, _ = run(cond, [100, 102], states=out.states)
    assert again == []




# ---- the vectorised evaluator against a plain reference --------------------------------

def plain_condition(op: str, a: list[float], b: list[float], lo: list[float], hi: list[float], n: int,
                    v: float, t: int) -> bool:
    def ok(*xs: float) -> bool:
        return all(not math.isnan(x) for x in xs)

    a0, a1 = a[t], (a[t - 1] if t else math.nan)
    if op in ("crossing_up", "crossing_down", "crossing", "greater_than", "less_than"):
        b0, b1 = b[t], (b[t - 1] if t else math.nan)
        if op == "greater_than":
            return ok(a0, b0) and a0 > b0
        if op == "less_than":
            return ok(a0, b0) and a0 < b0
        up = ok(a0, a1, b0, b1) and a0 > b0 and a1 <= b1
        down = ok(a0, a1, b0, b1) and a0 < b0 and a1 >= b1
        return {"crossing_up": up, "crossing_down": down, "crossing": up or down}[op]
    if op.endswith("channel"):
        def inside(x: float, low: float, high: float) -> bool:
            return ok(x, low, high) and low <= x <= high

        def outside(x: float, low: float, high: float) -> bool:
            return ok(x, low, high) and (x < low or x > high)
        l1, h1 = (lo[t - 1], hi[t - 1]) if t else (math.nan, math.nan)
        return {"entering_channel": inside(a0, lo[t], hi[t]) and outside(a1, l1, h1),
                "exiting_channel": outside(a0, lo[t], hi[t]) and inside(a1, l1, h1),
                "inside_channel": inside(a0, lo[t], hi[t]), "outside_channel": outside(a0, lo[t], hi[t])}[op]
    ref = a[t - n] if t >= n else math.nan
    if not ok(a0, ref):
        return False
    return {"moving_up": a0 - ref >= v, "moving_down": ref - a0 >= v,
            "moving_up_pct": (a0 / ref - 1) * 100 >= v, "moving_down_pct": (1 - a0 / ref) * 100 >= v}[op]


def plain_sma(xs: list[float], n: int) -> list[float]:
    return [sum(xs[t - n + 1:t + 1]) / n if t >= n - 1 else math.nan for t in range(len(xs))]


prices = st.lists(st.integers(95, 105).map(float), min_size=2, max_size=30)


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(BAR_OPS), data=st.data(), freq=st.sampled_from(
    ["once", "once_per_bar", "once_per_bar_close", "every_time"]), cooldown=st.sampled_from([0, 60, 300]),
    every=st.sampled_from([5, 60]))
def test_the_vectorised_evaluator_matches_a_plain_reference(op, data, freq, cooldown, every) -> None:
    n_bars = data.draw(st.integers(2, 30))
    tickers = ["A", "B", "C"][:data.draw(st.integers(1, 3))]
    reading = st.integers(95, 105).map(float) | st.just(math.nan)  # NaN: a minute without a reading
    closes = [data.draw(st.lists(reading, min_size=n_bars, max_size=n_bars)) for _ in tickers]
    stale = [data.draw(st.lists(st.booleans(), min_size=n_bars, max_size=n_bars)) for _ in tickers]
    period = data.draw(st.integers(1, 4))
    level = float(data.draw(st.integers(96, 104)))
    b_kind = data.draw(st.sampled_from(["const", "sma"]))
    b = {"const": level} if b_kind == "const" else {"sma": period}
    if op.endswith("channel"):
        raw = {"op": op, "a": CLOSE, "lower": {"const": level - 2}, "upper": {"const": level + 2}}
    elif op.startswith("moving"):
        raw = {"op": op, "a": CLOSE, "bars": period, "value": 1.0 if op.endswith("pct") else 2.0}
    else:
        raw = {"op": op, "a": CLOSE, "b": b}
    rule = Rule(1, 1, parse_condition(raw), freq, cooldown)
    times = np.array([T0 + every * i for i in range(n_bars)])
    series = {f: np.array(closes, float) for f in ("open", "high", "low", "close", "volume")}
    got = evaluate(rule, tickers, series, times, {}, np.array(stale, bool))
    expected = []
    for k, ticker in enumerate(tickers):
        a = closes[k]
        bs = [level] * n_bars if b_kind == "const" else plain_sma(a, period)
        lo, hi = [level - 2] * n_bars, [level + 2] * n_bars
        state = TickerState()
        for t in range(n_bars):
            held = plain_condition(op, a, bs, lo, hi, period, rule.condition.value or 0.0, t)
            fired, state = step(rule, state, held, int(times[t]), stale[k][t])
            if fired:
                expected.append((ticker, int(times[t])))
    assert [(f.ticker, f.bar_time) for f in got.fires] == expected


def test_only_the_tickers_whose_state_changed_are_kept() -> None:
    n = 1000
    close = np.full((n, 2), 100.0)
    close[[5, 50, 500], 1] = 102.0
    rule = Rule(1, 1, parse_condition({"op": "greater_than", "a": CLOSE, "b": {"const": 101}}))
    series = {f: close for f in ("open", "high", "low", "close", "volume")}
    out = evaluate(rule, [f"T{i}" for i in range(n)], series, np.array([T0, T0 + 60]), {}, None, 1)
    assert sorted(out.states) == ["T5", "T50", "T500"] and len(out.fires) == 3
    assert out.states["T5"] == TickerState(False, T0 + 60, (T0 + 60,), "active", T0 + 60)


def test_rules_of_one_tick_share_an_sma_and_get_the_same_fires() -> None:
    closes = np.array([[10, 11, 12, 11, 10, 12, 13, 11], [5, 5, 6, 7, 6, 5, 6, 7]], float)
    series = {f: closes for f in ("open", "high", "low", "close", "volume")}
    times = np.array([T0 + 60 * i for i in range(8)])
    up = Rule(1, 1, parse_condition({"op": "crossing_up", "a": CLOSE, "b": {"sma": 3}}), cooldown_seconds=0)
    down = Rule(2, 1, parse_condition({"op": "crossing_down", "a": CLOSE, "b": {"sma": 3}}),
                cooldown_seconds=0)
    cache: dict = {}
    shared = [evaluate(r, ["A", "B"], series, times, {}, None, 0, cache).fires for r in (up, down)]
    alone = [evaluate(r, ["A", "B"], series, times, {}).fires for r in (up, down)]
    assert shared == alone and all(shared) and len(cache) == 1


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_rules_batched_together_fire_as_each_would_alone(data) -> None:
    """evaluate_many stacks rules that differ only in constants; each must fire as if evaluated alone."""
    from webapp.core.rules.evaluate import evaluate_many

    n, width = 4, 12
    closes = np.array([data.draw(st.lists(st.sampled_from([99.0, 100.0, 101.0, 102.0]), min_size=width,
                                          max_size=width)) for _ in range(n)])
    series = {"close": closes, "open": closes, "high": closes, "low": closes, "volume": closes}
    times = np.array([T0 + 60 * i for i in range(width)])
    tickers = [f"T{i}" for i in range(n)]
    rules, rows, states = [], [], []
    for k in range(data.draw(st.integers(2, 5))):
        level = data.draw(st.sampled_from([99.5, 100.5, 101.5]))
        cond = data.draw(st.sampled_from([
            {"op": "greater_than", "a": {"price": True}, "b": {"const": level}},
            {"op": "crossing", "a": {"field": "close"}, "b": {"const": level}},
            {"op": "inside_channel", "a": {"price": True}, "lower": {"const": level - 1},
             "upper": {"const": level + 1}},
            {"op": "moving_up", "a": {"price": True}, "bars": 2,
             "value": data.draw(st.sampled_from([1.0, 2.0]))},
        ]))
        freq = data.draw(st.sampled_from(["once", "once_per_bar_close", "every_time"]))
        rules.append(Rule(k + 1, 1, parse_condition(cond), freq, data.draw(st.sampled_from([0, 120]))))
        pick = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1)))
        rows.append(None if len(pick) == n else np.array(pick))
        states.append({tickers[i]: TickerState(armed=False) for i in pick[:1]} if data.draw(st.booleans())
                      else {})
    first = data.draw(st.integers(0, width - 1))
    batch = evaluate_many(rules, rows, tickers, series, times, states, None, first)
    for k, rule in enumerate(rules):
        at = list(range(n)) if rows[k] is None else rows[k].tolist()
        alone = evaluate(rule, [tickers[i] for i in at], {f: v[at] for f, v in series.items()}, times,
                         states[k], None, first)
        mine = sorted((f.ticker, f.bar_time, f.explanation) for f in batch.fires if f.rule_id == rule.id)
        assert mine == sorted((f.ticker, f.bar_time, f.explanation) for f in alone.fires)
        assert {t: s for kk, t, s in batch.states if kk == k} == alone.states


def test_the_days_high_before_this_bar_starts_again_each_day() -> None:
    """``day_high`` includes the bar itself, so "close crossing_up day_high" never held (0 fires in
    1,974 bars, issue 26 item 6); ``prior_day_high`` is the high before the bar, within its New York
    day, and none at a day's first bar."""
    import numpy as np

    from webapp.core.rules.operands import reading_series

    day1 = 1_795_000_000 - 1_795_000_000 % 86_400 + 15 * 3600  # 10:00 New York, winter
    times = [day1, day1 + 60, day1 + 120, day1 + 86_400, day1 + 86_460]
    high = np.array([[10.0, 11.0, 11.0, 9.0, 9.5]])
    low = np.array([[10.0, 9.0, 9.0, 9.0, 8.0]])
    cols = {"close": high.copy(), "volume": np.ones((1, 5)), "prev_close": np.full((1, 5), 9.0),
            "day_high": high, "day_low": low}
    s = reading_series(cols, times)
    assert np.array_equal(s["prior_day_high"], [[np.nan, 10.0, 11.0, np.nan, 9.0]], equal_nan=True)
    assert np.array_equal(s["prior_day_low"], [[np.nan, 10.0, 9.0, np.nan, 9.0]], equal_nan=True)
    assert "prior_day_high" not in reading_series(cols)  # without times, not guessed


STUDY_OPERANDS = [{"rsi": 14}, {"rsi": [3]}, {"bb_upper": [20, 2]}, {"bb_middle": 10}, {"bb_lower": [5, 1.5]},
                  {"macd": [12, 26, 9]}, {"macd_signal": [3, 6, 2]}, {"macd_histogram": 5}]


def test_every_chart_study_is_an_operand_with_the_charts_numbers_and_a_bars_own_window() -> None:
    """Issue 26 item 6: RSI, the Bollinger bands and MACD's lines are operands, equal to the chart's
    lines; and each value depends only on the condition's depth (what the live tick keeps), so the
    tick, holding only those bars, computes what a replay over the whole stored series does."""
    from webapp.core import indicator_series
    from webapp.core.rules.model import STUDY_LINES
    from webapp.core.rules.operands import operand_values

    rng = np.random.default_rng(3)
    closes = np.round(100 + np.cumsum(rng.normal(0, 0.3, (2, 1500)), axis=1), 2)
    closes[1, 700:705] = np.nan  # a minute without a reading
    kinds = set()
    for raw in STUDY_OPERANDS:
        c = parse_condition({"op": "crossing_up", "a": CLOSE, "b": raw})
        o = c.b
        kinds.add(o.kind)
        study, line = STUDY_LINES[o.kind]
        chart = indicator_series.compute(indicator_series.Study(study, o.arg), {"close": closes[0]})[line]
        ours = operand_values(o, {"close": closes})
        assert np.allclose(ours[0], chart, equal_nan=True, rtol=0, atol=1e-12), raw
        assert np.count_nonzero(~np.isnan(ours[0])) > 1000
        d = c.depth
        for end in (d + 3, 900, 1500):  # the tick's last two bars from its depth alone
            tail = operand_values(o, {"close": closes[:, end - d:end]})
            assert np.allclose(tail[:, -2:], ours[:, end - 2:end], equal_nan=True, rtol=0,
                               atol=1e-12), (raw, end)
    assert kinds == set(STUDY_LINES)


def test_study_operands_are_refused_with_what_was_wrong() -> None:
    for raw, said in (({"rsi": 0}, "periods are whole numbers"), ({"macd": [26, 12]}, "fast period"),
                      ({"bb_upper": [20, 11]}, "band width"), ({"rsi": "x"}, "takes a number"),
                      ({"macd": [1, 2, 3, 4]}, "takes a number")):
        with pytest.raises(RuleError, match=said):
            parse_condition({"op": "crossing_up", "a": CLOSE, "b": raw})
    c = parse_condition({"op": "greater_than", "a": {"metric": "vwap_distance_pct"}, "b": {"const": 1}})
    assert c.a.name == "vwap_distance_pct"
