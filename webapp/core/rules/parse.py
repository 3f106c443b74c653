"""A rule as a user sent it, checked part by part: a :class:`RuleSpec`, or a
:class:`~webapp.core.rules.model.RuleError` that names the part that is wrong.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webapp.core.rules.model import (
    CHANNEL_OPS,
    FIELDS,
    FREQUENCIES,
    MAX_PERIOD,
    METRICS,
    OPERATORS,
    PAIR_OPS,
    Condition,
    Operand,
    RuleError,
)
from webapp.core.validation import normalise_ticker


def parse_operand(raw: object, where: str) -> Operand:
    if isinstance(raw, bool) or not isinstance(raw, dict) or len(raw) != 1:
        raise RuleError(f"{where}: an operand is one of {{\"field\": \"close\"}}, {{\"price\": true}}, "
                        "{\"sma\": 20}, {\"ema\": 9}, {\"metric\": \"rvol\"} or {\"const\": 101.5}")
    (kind, arg), = raw.items()
    if kind == "field" and arg in FIELDS:
        return Operand("field", arg)
    if kind == "price" and arg is True:
        return Operand("price")
    if kind in ("sma", "ema"):
        if isinstance(arg, bool) or not isinstance(arg, int) or not 1 <= arg <= MAX_PERIOD:
            raise RuleError(f"{where}: {kind} takes a whole period from 1 to {MAX_PERIOD}, got {arg!r}")
        return Operand(kind, arg)
    if kind == "metric" and arg in METRICS:
        return Operand("metric", arg)
    if kind == "const":
        if isinstance(arg, bool) or not isinstance(arg, int | float) or not math.isfinite(arg):
            raise RuleError(f"{where}: const must be a finite number, got {arg!r}")
        return Operand("const", float(arg))
    if kind == "field":
        raise RuleError(f"{where}: field must be one of {', '.join(FIELDS)}, got {arg!r}")
    if kind == "metric":
        raise RuleError(f"{where}: metric must be one of {', '.join(METRICS)}, got {arg!r}")
    raise RuleError(f"{where}: unknown operand {kind!r} (field, price, sma, ema, metric or const)")


def parse_condition(raw: object) -> Condition:
    if not isinstance(raw, dict):
        raise RuleError('condition must be an object like {"op": "crossing_up", "a": {...}, "b": {...}}')
    op = raw.get("op")
    if op not in OPERATORS:
        raise RuleError(f"condition.op must be one of {', '.join(OPERATORS)}, got {op!r}")
    wanted = ({"op", "a", "b"} if op in PAIR_OPS else {"op", "a", "lower", "upper"} if op in CHANNEL_OPS
              else {"op", "a", "bars", "value"})
    missing, extra = wanted - set(raw), set(raw) - wanted
    if missing or extra:
        raise RuleError(f"condition for {op} takes {', '.join(sorted(wanted - {'op'}))}"
                        + (f"; missing {', '.join(sorted(missing))}" if missing else "")
                        + (f"; unexpected {', '.join(sorted(map(str, extra)))}" if extra else ""))
    a = parse_operand(raw["a"], "condition.a")
    if op in PAIR_OPS:
        return Condition(op, a, b=parse_operand(raw["b"], "condition.b"))
    if op in CHANNEL_OPS:
        return Condition(op, a, lower=parse_operand(raw["lower"], "condition.lower"),
                         upper=parse_operand(raw["upper"], "condition.upper"))
    bars, value = raw["bars"], raw["value"]
    if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_PERIOD:
        raise RuleError(f"condition.bars must be a whole number from 1 to {MAX_PERIOD}, got {bars!r}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value > 0):
        raise RuleError(f"condition.value must be a positive number, got {value!r}")
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
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise RuleError("name must be 1-100 characters")
    frequency = raw.get("frequency", "once_per_bar_close")
    if frequency not in FREQUENCIES:
        raise RuleError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
    cooldown = raw.get("cooldown_seconds", 300)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or not 0 <= cooldown <= 7 * 86400:
        raise RuleError(f"cooldown_seconds must be a whole number from 0 to 604800, got {cooldown!r}")
    expires = raw.get("expires_at")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise RuleError("expires_at must be epoch seconds or null")
    channels = raw.get("channels", ["browser"])
    if not isinstance(channels, list) or not channels or not all(
            isinstance(c, str) and (c in CHANNELS or WEBHOOK_CHANNEL.fullmatch(c)) for c in channels):
        raise RuleError('channels must be a non-empty list of "browser" and "webhook:<endpoint id>"')
    return RuleSpec(name.strip(), parse_condition(raw.get("condition")),
                    parse_scope(raw.get("scope"), scan_lists), frequency, cooldown, expires,
                    tuple(dict.fromkeys(channels)))
