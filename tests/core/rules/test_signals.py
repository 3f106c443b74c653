"""The scanner's signals as rule conditions, against plain references: a new high or low of the day
at the print, a volume spike against the profile, a move over seconds, halts and resumes, and
``all`` of several at the same trade."""
from __future__ import annotations

import random

import numpy as np
import pytest

from webapp.core.handoff import Handoffs
from webapp.core.rules.evaluate import evaluate_many
from webapp.core.rules.intrabar import Provisional, with_columns
from webapp.core.rules.model import Rule, RuleError
from webapp.core.rules.operands import condition_values, reading_series
from webapp.core.rules.parse import parse_condition, parse_rule
from webapp.core.scanner_live import LiveTape

PRICE = {"price": True}
DAY_OPEN = 1_763_650_800  # 2025-11-20 15:00 UTC, a bar end inside the New York day


@pytest.mark.parametrize("raw", [
    {"op": "new_high_of_day"}, {"op": "new_low_of_day"}, {"op": "halted"}, {"op": "resumed"},
    {"op": "volume_spike", "k": 2.0},
    {"op": "moving_up_pct", "a": {"price": True}, "seconds": 60, "value": 2.0},
    {"op": "all", "of": [{"op": "new_high_of_day"}, {"op": "volume_spike", "k": 2.0}]},
    {"op": "all", "of": [{"op": "crossing_up", "a": {"field": "close"}, "b": {"sma": 20}},
                         {"op": "volume_spike", "k": 1.5}]},
])
def test_signal_conditions_read_back_as_they_were_written(raw) -> None:
    assert parse_condition(raw).as_json() == raw


@pytest.mark.parametrize(("raw", "says"), [
    ({"op": "volume_spike"}, "takes k; missing k"),
    ({"op": "volume_spike", "k": 0}, "k must be a positive number"),
    ({"op": "halted", "a": {"price": True}}, "takes nothing but op; unexpected a"),
    ({"op": "all", "of": [{"op": "halted"}]}, "of must be a list of 2 to 4"),
    ({"op": "all", "of": [{"op": "halted"}, {"op": "all", "of": []}]}, "of[1].op must be one of"),
    ({"op": "moving_up", "a": PRICE, "seconds": 30, "value": 1}, "a move over seconds is of the price"),
    ({"op": "moving_up_pct", "a": {"sma": 20}, "seconds": 30, "value": 1}, "a move over seconds is of"),
    ({"op": "moving_up_pct", "a": PRICE, "seconds": 301, "value": 1}, "seconds must be a whole number"),
    ({"op": "moving_up_pct", "a": PRICE, "seconds": 30, "bars": 3, "value": 1}, "unexpected bars"),
])
def test_a_malformed_signal_is_refused_with_what_is_wrong(raw, says) -> None:
    with pytest.raises(RuleError, match=".*" + says.replace("(", r"\(").replace("[", r"\[")):
        parse_condition(raw)


def test_a_signal_is_judged_on_the_print_so_its_rule_must_be_intra_bar_over_tickers() -> None:
    base = {"name": "hod", "condition": {"op": "new_high_of_day"}, "scope": {"tickers": ["AAPL"]}}
    made = parse_rule({**base, "frequency": "once_per_bar"}, ["gainers"])
    assert made.condition.signals == ("new_high_of_day",)
    with pytest.raises(RuleError, match="judged on the print: frequency must be one of once, once_per_bar"):
        parse_rule({**base, "frequency": "once_per_bar_close"}, ["gainers"])
    with pytest.raises(RuleError, match="not a scanner list"):
        parse_rule({**base, "frequency": "once", "scope": {"scan": "gainers"}}, ["gainers"])


def _judged_at(closed: dict[str, np.ndarray], times: list[int], bar: Provisional, price: float
               ) -> dict[str, np.ndarray]:
    raw, t = with_columns(closed, times, bar.bar_time, np.array([bar.high]), np.array([bar.low]),
                          np.array([bar.volume]), np.array([price]))
    return reading_series(raw, t)


def test_a_new_high_or_low_of_the_day_matches_a_plain_reference_print_by_print() -> None:
    """Each print handed off on its own, as the engine judges it: a new high is a print above every
    earlier print of the day (and at the high of its own bar so far); the day's first bar sets the
    levels and breaks nothing (nothing came before it)."""
    rnd = random.Random(7)
    high_cond = parse_condition({"op": "new_high_of_day"})
    low_cond = parse_condition({"op": "new_low_of_day"})
    closed = {k: np.empty((1, 0)) for k in ("close", "volume", "prev_close", "day_high", "day_low")}
    times: list[int] = []
    earlier: list[float] = []  # every print of the day in closed bars
    price, checked = 100.0, 0
    for bar_no in range(12):
        bar_time = DAY_OPEN + 60 * bar_no
        prints: list[float] = []
        for k in range(rnd.randint(1, 8)):
            price = round(price + rnd.choice([-0.3, -0.1, 0.0, 0.1, 0.3]), 2)
            prints.append(price)
            bar = Provisional("AAPL", bar_time, prints[0], max(prints), min(prints), price,
                              100.0 * len(prints), len(prints), k, k, k)
            series = _judged_at(closed, times, bar, price)
            for cond, beyond, best in ((high_cond, np.greater, max), (low_cond, np.less, min)):
                held, _ = condition_values(cond, series)
                reference = bool(earlier) and bool(beyond(price, best(earlier))) and price == best(prints)
                assert bool(held[0, -1]) == reference, (bar_no, k, cond.op, price, earlier and best(earlier))
                checked += 1
        # the bar closes: stored as the tick keeps it (its last price, the day's high and low so far)
        earlier += prints
        row = {"close": price, "volume": 100.0 * len(prints), "prev_close": 99.0,
               "day_high": max(earlier), "day_low": min(earlier)}
        closed = {k: np.concatenate([v, [[row[k]]]], axis=1) for k, v in closed.items()}
        times.append(bar_time)
    assert checked > 20


def _tape_with(volumes: list[float], prices: list[float]) -> LiveTape:
    """One ticker's tape, a hand-off per second: each second's volume and last price."""
    tape = LiveTape(["AAPL"], window=10, depth=30)
    total = 0.0
    for s, (v, p) in enumerate(zip(volumes, prices, strict=True)):
        total += v
        second = DAY_OPEN - 60 + s
        bar = Provisional("AAPL", DAY_OPEN, prices[0], max(prices[:s + 1]), min(prices[:s + 1]), p, total,
                          s + 1, second * 1000, second * 1000, second * 1000)
        tape.observe(Handoffs.of([bar]), 60)
        tape.tick(second)
    return tape


def test_the_tapes_columns_are_the_window_volume_and_the_price_seconds_ago() -> None:
    volumes = [float(10 + s) for s in range(40)]
    prices = [100.0 + 0.1 * s for s in range(40)]
    tape = _tape_with(volumes, prices)
    got = tape.columns(["AAPL", "NOPE"], [5, 30], np.array([50.0]))
    # the last 10 seconds' volume: seconds 30..39 (the window ends at the last second recorded)
    assert got["window_volume"][0] == pytest.approx(sum(volumes[30:40]))
    assert got["expected_window_volume"][0] == 50.0 and got["window_seconds"][0] == 10
    assert got["ago_5s"][0] == pytest.approx(prices[34]) and got["ago_30s"][0] == pytest.approx(prices[9])
    assert all(np.isnan(got[k][1]) for k in ("window_volume", "ago_5s", "expected_window_volume"))
    # younger than the window: no volume yet (never a spike from half a window), nor a price too long ago
    young = _tape_with(volumes[:5], prices[:5]).columns(["AAPL"], [30], np.array([1.0]))
    assert np.isnan(young["window_volume"][0]) and np.isnan(young["ago_30s"][0])


def _series_with(live: dict[str, float], close: float = 101.0) -> dict[str, np.ndarray]:
    series = {"close": np.array([[100.0, close]]), "day_high": np.array([[100.0, close]]),
              "day_low": np.array([[99.0, 99.0]]), "prior_day_high": np.array([[np.nan, 100.0]]),
              "prior_day_low": np.array([[np.nan, 99.0]])}
    for k, v in live.items():
        series[k] = np.array([[np.nan, v]])
    return series


@pytest.mark.parametrize(("raw", "live", "holds"), [
    ({"op": "volume_spike", "k": 2}, {"window_volume": 2000.0, "expected_window_volume": 1000.0}, True),
    ({"op": "volume_spike", "k": 2}, {"window_volume": 1999.0, "expected_window_volume": 1000.0}, False),
    ({"op": "volume_spike", "k": 2}, {"window_volume": 5000.0}, False),  # no profile: never a spike
    ({"op": "volume_spike", "k": 2}, {"window_volume": 5.0, "expected_window_volume": 0.0}, False),
    ({"op": "moving_up_pct", "a": {"price": True}, "seconds": 30, "value": 1}, {"ago_30s": 100.0}, True),
    ({"op": "moving_up_pct", "a": {"price": True}, "seconds": 30, "value": 1}, {"ago_30s": 100.01}, False),
    ({"op": "moving_down_pct", "a": {"price": True}, "seconds": 30, "value": 1}, {"ago_30s": 101.5}, False),
    ({"op": "moving_up_pct", "a": {"price": True}, "seconds": 30, "value": 1}, {}, False),  # not that old
    ({"op": "halted"}, {"halted": 1.0}, True), ({"op": "halted"}, {"halted": 0.0}, False),
    ({"op": "resumed"}, {"resumed": 1.0}, True),
    ({"op": "all", "of": [{"op": "new_high_of_day"}, {"op": "volume_spike", "k": 2}]},
     {"window_volume": 3000.0, "expected_window_volume": 1000.0}, True),
    ({"op": "all", "of": [{"op": "new_low_of_day"}, {"op": "volume_spike", "k": 2}]},
     {"window_volume": 3000.0, "expected_window_volume": 1000.0}, False),
])
def test_each_signal_holds_exactly_when_its_reference_does(raw, live, holds) -> None:
    held, _ = condition_values(parse_condition(raw), _series_with(live))
    assert bool(held[0, -1]) is holds and not held[0, 0]  # a closed bar has no live state: never


def test_a_joined_rule_fires_once_with_each_parts_inputs_and_a_halt_is_not_stale_to_itself() -> None:
    joined = {"op": "all", "of": [{"op": "new_high_of_day"}, {"op": "volume_spike", "k": 2}]}
    hod = Rule(1, 1, parse_condition(joined), "once_per_bar", 0)
    series = _series_with({"window_volume": 3000.0, "expected_window_volume": 1000.0, "window_seconds": 60.0})
    got = evaluate_many([hod], [None], ["AAPL"], series, np.array([DAY_OPEN, DAY_OPEN + 60]), [{}], None, 1,
                        intrabar=True)
    assert len(got.fires) == 1
    f = got.fires[0]
    assert f.inputs["0.level"] == 100.0 and f.inputs["1.volume"] == 3000.0
    assert f.explanation == ("price 101.00 broke the day's high 100.00; and volume 3,000 in the last 60 s is "
                             "3.0× the 1,000 expected at this time of day (at least 2×); price 101.00")
    # halted: the ticker's halt marks its data stale, which stops every other rule, not this one
    stale = np.array([[False, True]])
    halted = Rule(2, 1, parse_condition({"op": "halted"}), "once", 0)
    over = Rule(3, 1, parse_condition({"op": "greater_than", "a": PRICE, "b": {"const": 1}}), "once", 0)
    got = evaluate_many([halted, over], [None, None], ["AAPL"], _series_with({"halted": 1.0}),
                        np.array([DAY_OPEN, DAY_OPEN + 60]), [{}, {}], stale, 1, intrabar=True)
    assert [f.rule_id for f in got.fires] == [2]
