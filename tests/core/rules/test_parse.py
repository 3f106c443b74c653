"""A rule as sent: refused with a message that names the part that is wrong."""
from __future__ import annotations

import pytest

from webapp.core.rules.model import RuleError
from webapp.core.rules.parse import parse_condition, parse_rule

CLOSE = {"field": "close"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"op": "crosses", "a": CLOSE, "b": CLOSE}, "condition.op must be one of"),
    ({"op": "crossing_up", "a": CLOSE}, "missing b"),
    ({"op": "crossing_up", "a": {"field": "last"}, "b": CLOSE}, "field must be one of open, high"),
    ({"op": "crossing_up", "a": {"sma": 0}, "b": CLOSE}, "sma takes a whole period from 1 to 500"),
    ({"op": "moving_up", "a": CLOSE, "bars": 3, "value": -1}, "condition.value must be a positive"),
    ({"op": "greater_than", "a": CLOSE, "b": {"const": "abc"}}, "const must be a finite number"),
    ({"op": "inside_channel", "a": CLOSE, "lower": CLOSE, "upper": CLOSE, "x": 1}, "unexpected x"),
    ({"op": "greater_than", "a": CLOSE, "b": {"const": 10 ** 400}}, "const must be a finite number from"),
    ({"op": "greater_than", "a": CLOSE, "b": {"const": float("nan")}}, "const must be a finite number"),
    ({"op": "greater_than", "a": {"ema": 2.5}, "b": CLOSE}, "ema takes a whole period"),
    ({"op": "moving_up", "a": CLOSE, "bars": 3, "value": float("inf")}, "condition.value must be a positive"),
])
def test_a_bad_rule_is_refused_saying_which_part(raw, message) -> None:
    with pytest.raises(RuleError, match=message):
        parse_condition(raw)


@pytest.mark.parametrize(("raw", "message"), [
    ({"name": "a\x00b"}, "name must not contain control characters"),
    ({"name": "a\x85b"}, "name must not contain control characters"),
    ({"name": "   "}, "name must be 1-100 characters, not all spaces"),
    ({"name": "x" * 101}, "name must be 1-100 characters"),
    ({"expires_at": 10 ** 20}, "expires_at must be epoch seconds from 0 to"),
    ({"expires_at": -1}, "expires_at must be epoch seconds from 0 to"),
    ({"cooldown_seconds": 1.5}, "cooldown_seconds must be a whole number"),
])
def test_a_rule_with_unbounded_numbers_or_control_characters_is_refused(raw, message) -> None:
    rule = {"name": "r", "condition": {"op": "greater_than", "a": CLOSE, "b": {"const": 1}},
            "scope": {"all": True}, **raw}
    with pytest.raises(RuleError, match=message):
        parse_rule(rule, ("gainers",))


def test_whole_numbers_given_as_floats_are_taken_as_whole() -> None:
    spec = parse_rule({"name": " r ", "condition": {"op": "moving_up", "a": {"sma": 20.0}, "bars": 3.0,
                                                    "value": 1}, "scope": {"all": True},
                       "expires_at": 2_000_000_000.0}, ("gainers",))
    assert spec.name == "r" and spec.condition.a.arg == 20 and spec.condition.bars == 3
    assert spec.expires_at == 2_000_000_000 and isinstance(spec.expires_at, int)
