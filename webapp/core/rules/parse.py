"""A rule as a user sent it, checked part by part: a :class:`RuleSpec`, or a
:class:`~webapp.core.rules.model.RuleError` that names the part that is wrong.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webapp.core import indicator_series
from webapp.core.rules.model import (
    CHANNEL_OPS,
    FIELDS,
    FREQUENCIES,
    INTRABAR,
    MAX_EPOCH,
    MAX_NUMBER,
    MAX_PARTS,
    MAX_PERIOD,
    MAX_SIGNAL_SECONDS,
    METRICS,
    OPERATORS,
    PAIR_OPS,
    SIGNAL_OPS,
    SIGNAL_PRICE,
    STUDY_LINES,
    Condition,
    Operand,
    RuleError,
)
from webapp.core.validation import normalise_ticker


def parse_operand(raw: object, where: str) -> Operand:
    if isinstance(raw, bool) or not isinstance(raw, dict) or len(raw) != 1:
        raise RuleError(f"{where}: an operand is one of {{\"field\": \"close\"}}, {{\"price\": true}}, "
                        "{\"sma\": 20}, {\"ema\": 9}, {\"rsi\": 14}, {\"bb_upper\": [20, 2]}, "
                        "{\"macd_signal\": [12, 26, 9]}, {\"metric\": \"rvol\"} or {\"const\": 101.5}")
    (kind, arg), = raw.items()
    if kind == "field" and arg in FIELDS:
        return Operand("field", arg)
    if kind == "price" and arg is True:
        return Operand("price")
    if kind in ("sma", "ema"):
        period = _whole(arg, 1, MAX_PERIOD)
        if period is None:
            raise RuleError(f"{where}: {kind} takes a whole period from 1 to {MAX_PERIOD}, got {_short(arg)}")
        return Operand(kind, period)
    if kind in STUDY_LINES:
        return Operand(kind, _study_args(kind, arg, where))
    if kind == "metric" and arg in METRICS:
        return Operand("metric", arg)
    if kind == "const":
        if not _bounded(arg, -MAX_NUMBER, MAX_NUMBER):
            raise RuleError(f"{where}: const must be a finite number from -{MAX_NUMBER:.0e} to "
                            f"{MAX_NUMBER:.0e}, got {_short(arg)}")
        return Operand("const", float(arg))
    if kind == "field":
        raise RuleError(f"{where}: field must be one of {', '.join(FIELDS)}, got {arg!r}")
    if kind == "metric":
        raise RuleError(f"{where}: metric must be one of {', '.join(METRICS)}, got {arg!r}")
    raise RuleError(f"{where}: unknown operand {kind!r} (field, price, sma, ema, {', '.join(STUDY_LINES)}, "
                    "metric or const)")


def _study_args(kind: str, arg: object, where: str) -> tuple[float, ...]:
    """A study line's numbers (a number, or a list of up to the study's count; the chart's defaults
    for the rest), checked as the chart checks them, so a rule and a chart line agree."""
    given = arg if isinstance(arg, list) else [arg]
    if not 1 <= len(given) <= 3 or not all(_bounded(v, 0, MAX_NUMBER) for v in given):
        example = indicator_series.example(STUDY_LINES[kind][0])
        raise RuleError(f"{where}: {kind} takes a number or a list of numbers, like "
                        f"{{\"{kind}\": {example}}}, got {_short(arg)}")
    try:
        return indicator_series.make(STUDY_LINES[kind][0], [float(v) for v in given], f"{where}: {kind}").args
    except indicator_series.StudyError as e:
        raise RuleError(str(e)) from None


def _bounded(value: object, low: float, high: float) -> bool:
    """A JSON number (not a bool) within [low, high]; NaN and infinities never are, and a huge
    integer is compared exactly, never converted."""
    return not isinstance(value, bool) and isinstance(value, int | float) and low <= value <= high


def _whole(value: object, low: int, high: int) -> int | None:
    """A whole number within [low, high] (``216`` or, as JSON allows, ``216.0``), else None."""
    if not _bounded(value, low, high) or (isinstance(value, float) and not value.is_integer()):
        return None
    return int(value)  # type: ignore[arg-type]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


MAX_SPIKE_K = 1000.0


def _takes(raw: dict[str, Any], wanted: set[str], op: str, where: str) -> None:
    missing, extra = wanted - set(raw), set(raw) - wanted
    if missing or extra:
        takes = ', '.join(sorted(wanted - {'op'})) or "nothing but op"
        raise RuleError(f"{where} for {op} takes {takes}"
                        + (f"; missing {', '.join(sorted(missing))}" if missing else "")
                        + (f"; unexpected {', '.join(sorted(map(str, extra)))}" if extra else ""))


def parse_condition(raw: object, where: str = "condition", joined: bool = True) -> Condition:
    """One condition; ``{"op": "all", "of": [...]}`` joins up to :data:`MAX_PARTS` of them (not
    nested: ``joined`` is False inside one)."""
    if not isinstance(raw, dict):
        raise RuleError(f'{where} must be an object like {{"op": "crossing_up", "a": {{...}}, "b": {{...}}}}')
    op = raw.get("op")
    if op not in OPERATORS or (op == "all" and not joined):
        allowed = OPERATORS if joined else tuple(o for o in OPERATORS if o != "all")
        raise RuleError(f"{where}.op must be one of {', '.join(allowed)}, got {op!r}")
    if op == "all":
        _takes(raw, {"op", "of"}, op, where)
        parts = raw["of"]
        if not isinstance(parts, list) or not 2 <= len(parts) <= MAX_PARTS:
            raise RuleError(f"{where}.of must be a list of 2 to {MAX_PARTS} conditions, all to hold at once")
        return Condition("all", SIGNAL_PRICE, parts=tuple(parse_condition(p, f"{where}.of[{k}]", False)
                                                          for k, p in enumerate(parts)))
    if op in SIGNAL_OPS:
        _takes(raw, {"op", "k"} if op == "volume_spike" else {"op"}, op, where)
        if op != "volume_spike":
            return Condition(op, SIGNAL_PRICE)
        if not _bounded(raw["k"], 0, MAX_SPIKE_K) or raw["k"] == 0:
            raise RuleError(f"{where}.k must be a positive number up to {MAX_SPIKE_K:g} (the volume's "
                            f"multiple of the expected), got {_short(raw['k'])}")
        return Condition(op, SIGNAL_PRICE, value=float(raw["k"]))
    moving = op not in PAIR_OPS and op not in CHANNEL_OPS
    over = "seconds" if moving and "seconds" in raw else "bars"
    _takes(raw, ({"op", "a", "b"} if op in PAIR_OPS else {"op", "a", "lower", "upper"} if op in CHANNEL_OPS
                 else {"op", "a", over, "value"}), op, where)
    a = parse_operand(raw["a"], f"{where}.a")
    if op in PAIR_OPS:
        return Condition(op, a, b=parse_operand(raw["b"], f"{where}.b"))
    if op in CHANNEL_OPS:
        return Condition(op, a, lower=parse_operand(raw["lower"], f"{where}.lower"),
                         upper=parse_operand(raw["upper"], f"{where}.upper"))
    value = raw["value"]
    if not _bounded(value, 0, MAX_NUMBER) or value == 0:
        raise RuleError(f"{where}.value must be a positive number up to {MAX_NUMBER:.0e}, "
                        f"got {_short(value)}")
    if over == "seconds":
        seconds = _whole(raw["seconds"], 1, MAX_SIGNAL_SECONDS)
        if seconds is None:
            raise RuleError(f"{where}.seconds must be a whole number from 1 to {MAX_SIGNAL_SECONDS}, "
                            f"got {_short(raw['seconds'])}")
        if a.kind != "price" or not op.endswith("_pct"):
            raise RuleError(f"{where}: a move over seconds is of the price, in percent "
                            '(moving_up_pct or moving_down_pct with {"price": true})')
        return Condition(op, a, seconds=seconds, value=float(value))
    bars = _whole(raw["bars"], 1, MAX_PERIOD)
    if bars is None:
        raise RuleError(f"{where}.bars must be a whole number from 1 to {MAX_PERIOD}, "
                        f"got {_short(raw['bars'])}")
    return Condition(op, a, bars=bars, value=float(value))


CHANNELS = ("browser",)


WEBHOOK_CHANNEL = re.compile(r"webhook:[1-9][0-9]{0,17}")  # an endpoint of /api/webhooks


MAX_SCOPE_TICKERS = 500


@dataclass(frozen=True)
class RuleSpec:
    """Everything a user sets on a rule, validated (what the store keeps)."""

    name: str
    condition: Condition
    scope: dict[str, Any]  # {"tickers": [...]} | {"all": true} | {"scan": "<list>"}
    frequency: str = "once_per_bar_close"
    cooldown_seconds: int = 300
    expires_at: int | None = None
    channels: tuple[str, ...] = ("browser",)


def parse_scope(raw: object, scan_lists: Sequence[str]) -> dict[str, Any]:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RuleError('scope is one of {"tickers": ["AAPL"]}, {"all": true} or {"scan": "gainers"}')
    (kind, value), = raw.items()
    if kind == "all" and value is True:
        return {"all": True}
    if kind == "scan":
        if value not in scan_lists:
            raise RuleError(f"scope.scan must be one of {', '.join(scan_lists)}, got {value!r}")
        return {"scan": value}
    if kind == "tickers":
        if not isinstance(value, list) or not value or len(value) > MAX_SCOPE_TICKERS:
            raise RuleError(f"scope.tickers must be a list of 1 to {MAX_SCOPE_TICKERS} tickers")
        out = []
        for t in value:
            ticker = normalise_ticker(t)
            if ticker is None:
                raise RuleError(f"scope.tickers has {t!r}: a ticker is 1-10 characters of A-Z 0-9 . -")
            if ticker not in out:
                out.append(ticker)
        return {"tickers": out}
    raise RuleError(f"scope: unknown kind {kind!r} (tickers, all or scan)")


def parse_rule(raw: Mapping[str, Any], scan_lists: Sequence[str]) -> RuleSpec:
    """A rule as a user sent it, or :class:`RuleError` naming the part that is wrong."""
    name = raw.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100 or not name.strip():
        raise RuleError("name must be 1-100 characters, not all spaces")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise RuleError("name must not contain control characters")
    frequency = raw.get("frequency", "once_per_bar_close")
    if frequency not in FREQUENCIES:
        raise RuleError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
    cooldown = _whole(raw.get("cooldown_seconds", 300), 0, 7 * 86400)
    if cooldown is None:
        raise RuleError(f"cooldown_seconds must be a whole number from 0 to 604800, "
                        f"got {_short(raw.get('cooldown_seconds'))}")
    expires = raw.get("expires_at")
    if expires is not None and (expires := _whole(expires, 0, MAX_EPOCH)) is None:
        raise RuleError(f"expires_at must be epoch seconds from 0 to {MAX_EPOCH} (year 9999) or null")
    channels = raw.get("channels", ["browser"])
    if not isinstance(channels, list) or not channels or not all(
            isinstance(c, str) and (c in CHANNELS or WEBHOOK_CHANNEL.fullmatch(c)) for c in channels):
        raise RuleError('channels must be a non-empty list of "browser" and "webhook:<endpoint id>"')
    condition = parse_condition(raw.get("condition"))
    scope = parse_scope(raw.get("scope"), scan_lists)
    if condition.signals:
        what = " and ".join(condition.signals).replace("seconds", "a move over seconds")
        if frequency not in INTRABAR:
            raise RuleError(f"{what} is judged on the print: frequency must be one of {', '.join(INTRABAR)}, "
                            f"got {frequency!r}")
        if "scan" in scope:
            raise RuleError(f"{what} is judged on the print, over tickers or every ticker: "
                            "scope must be tickers or all, not a scanner list")
    return RuleSpec(name.strip(), condition, scope, frequency, cooldown, expires,
                    tuple(dict.fromkeys(channels)))
