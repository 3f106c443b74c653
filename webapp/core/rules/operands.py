"""Operands and conditions over a bar series: the values a rule compares, at every bar.

The last axis is time and any leading axes are tickers, so one call judges a
condition for every ticker and bar at once.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from webapp.core import indicator_series
from webapp.core.market import EXCHANGE_TZ
from webapp.core.rules.model import CHANNEL_OPS, PAIR_OPS, SIGNAL_OPS, STUDY_LINES, Condition, Operand


def reading_series(cols: Mapping[str, np.ndarray], times: Sequence[int] | np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
    """Series from stored minute readings (``close``, ``volume``, ``prev_close``, ``day_high``,
    ``day_low``): a reading is one price, so it is also the bar's open, high and low; and
    ``change_pct`` against the previous close.  With the bars' ``times`` (epoch seconds), also the
    day's high and low before each bar (``prior_day_high``/``_low``: the previous bar's, in the
    same New York day; none for a day's first bar).  Replays and the live tick both read these."""
    close = cols["close"]
    series = {**cols, "open": close, "high": close, "low": close}
    with np.errstate(invalid="ignore", divide="ignore"):
        series["change_pct"] = (close / cols["prev_close"] - 1.0) * 100.0
    if times is not None:
        day = np.array([datetime.fromtimestamp(int(t), EXCHANGE_TZ).toordinal() for t in times], np.int64)
        same = np.zeros(len(day), bool)
        same[1:] = day[1:] == day[:-1]
        for name, src in (("prior_day_high", "day_high"), ("prior_day_low", "day_low")):
            series[name] = np.where(same, _prev(cols[src]), np.nan)
    return series


def operand_values(o: Operand, series: Mapping[str, np.ndarray],
                   cache: dict[tuple[Operand, int], np.ndarray] | None = None, start: int = 0) -> np.ndarray:
    """The operand at every bar (the last axis is time; any leading axes are tickers); an EMA only
    from bar ``start`` on (NaN before: bars nothing judges).

    ``cache`` shares an indicator between the rules of one tick over the same series.
    """
    if cache is not None and (o.kind in ("sma", "ema") or o.kind in STUDY_LINES):
        got = cache.get((o, start))
        if got is None:
            got = cache[(o, start)] = operand_values(o, series, None, start)
        return got
    if o.kind == ROW:
        return series[str(o.arg)]
    close = series["close"]
    if o.kind == "const":
        return np.full(close.shape, float(o.arg))  # type: ignore[arg-type]
    if o.kind == "price":
        return close
    if o.kind == "field":
        return series[str(o.arg)]
    if o.kind == "sma":
        return indicator_series.sma(close, int(o.arg))  # type: ignore[arg-type]
    if o.kind == "ema":
        return indicator_series.ema(close, int(o.arg), start)  # type: ignore[arg-type]
    if o.kind in STUDY_LINES:
        study, line = STUDY_LINES[o.kind]
        return indicator_series.compute(indicator_series.Study(study, o.arg), {"close": close},  # type: ignore[arg-type]
                                        start)[line]
    if o.arg == "vwap_distance_pct":
        with np.errstate(invalid="ignore", divide="ignore"):
            return (close / series["vwap"] - 1.0) * 100.0
    got = series.get(str(o.arg))
    return got if got is not None else np.full(close.shape, np.nan)


def _prev(x: np.ndarray, n: int = 1) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    if x.shape[-1] > n:
        out[..., n:] = x[..., :-n]
    return out


def condition_values(c: Condition, series: Mapping[str, np.ndarray],
                     cache: dict[tuple[Operand, int], np.ndarray] | None = None, judged: int = 0
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Whether the condition holds at every bar (NaN inputs: False), and its inputs by name; exact
    from bar ``judged`` on (what it reads of earlier bars, ``[1]`` or ``[N]``, is computed too)."""
    if c.op == "all":
        held_all: np.ndarray | None = None
        inputs_all: dict[str, np.ndarray] = {}
        for k, part in enumerate(c.parts):
            h, got = condition_values(part, series, cache, judged)
            held_all = h if held_all is None else held_all & h
            inputs_all.update({f"{k}.{name}": v for name, v in got.items()})
        return held_all, inputs_all  # type: ignore[return-value]
    if c.op in SIGNAL_OPS:
        return signal_values(c, series)
    start = max(0, judged - max(1, c.bars or 0))
    a = operand_values(c.a, series, cache, start)
    a1 = _prev(a)
    inputs = {"a": a, "a1": a1}
    with np.errstate(invalid="ignore"):
        if c.op in PAIR_OPS:
            b = operand_values(c.b, series, cache, start)  # type: ignore[arg-type]
            b1 = _prev(b)
            inputs.update(b=b, b1=b1)
            up = (a > b) & (a1 <= b1)
            down = (a < b) & (a1 >= b1)
            held = {"crossing_up": up, "crossing_down": down, "crossing": up | down,
                    "greater_than": a > b, "less_than": a < b}[c.op]
        elif c.op in CHANNEL_OPS:
            lo = operand_values(c.lower, series, cache, start)  # type: ignore[arg-type]
            hi = operand_values(c.upper, series, cache, start)  # type: ignore[arg-type]
            lo1, hi1 = _prev(lo), _prev(hi)
            inputs.update(lower=lo, upper=hi, lower1=lo1, upper1=hi1)
            inside = (a >= lo) & (a <= hi)
            inside1 = (a1 >= lo1) & (a1 <= hi1)
            outside = (a < lo) | (a > hi)
            outside1 = (a1 < lo1) | (a1 > hi1)
            held = {"entering_channel": inside & outside1, "exiting_channel": outside & inside1,
                    "inside_channel": inside, "outside_channel": outside}[c.op]
        else:
            ref = (live(series, f"ago_{c.seconds}s") if c.seconds is not None
                   else _prev(a, int(c.bars)))  # type: ignore[arg-type]
            inputs["ref"] = ref
            v = series["_value"] if "_value" in series else float(c.value)  # type: ignore[arg-type]
            held = {"moving_up": a - ref >= v, "moving_down": ref - a >= v,
                    "moving_up_pct": (a / ref - 1.0) * 100.0 >= v,
                    "moving_down_pct": (1.0 - a / ref) * 100.0 >= v}[c.op]
    return np.asarray(held, bool), inputs


def live(series: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A column of the live state (the trade's bar only; NaN where the caller has none: never holds)."""
    got = series.get(name)
    return got if got is not None else np.full(series["close"].shape, np.nan)


# the live columns a signal reads: set by the evaluate process for the bar judged on the print
LIVE_COLUMNS = ("window_volume", "expected_window_volume", "window_seconds", "halted", "resumed")


def signal_values(c: Condition, series: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A signal at every bar: a new high (low) of the day is the trade at the day's high so far and
    above the high before its bar (the print that breaks it, not the prints after at the same level
    in a later bar); a spike is the window's volume at least ``value`` times what the RVOL profile
    expects of it; a halt or resume is the status the stream reported."""
    close = series["close"]
    with np.errstate(invalid="ignore", divide="ignore"):
        if c.op in ("new_high_of_day", "new_low_of_day"):
            high = c.op == "new_high_of_day"
            day, prior = (series["day_high"], live(series, "prior_day_high")) if high else (
                series["day_low"], live(series, "prior_day_low"))
            held = (close >= day) & (close > prior) if high else (close <= day) & (close < prior)
            return held, {"a": close, "level": prior}
        if c.op == "volume_spike":
            vol, expected = live(series, "window_volume"), live(series, "expected_window_volume")
            k = series["_value"] if "_value" in series else float(c.value)  # type: ignore[arg-type]
            held = (expected > 0) & (vol >= k * expected)
            return held, {"a": close, "volume": vol, "expected": expected,
                          "window_seconds": live(series, "window_seconds")}
        return live(series, c.op) > 0, {"a": close}


ROW = "row"  # an operand kind for batches only: a constant that differs per row (never parsed)
