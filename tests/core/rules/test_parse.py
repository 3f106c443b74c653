"""A rule as sent: refused with a message that names the part that is wrong."""
from __future__ import annotations

import pytest

from webapp.core.rules.model import RuleError
from webapp.core.rules.parse import parse_condition

CLOSE = {"field": "close"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"op": "crosses", "a": CLOSE, "b": CLOSE}, "condition.op must be one of"),
    ({"op": "crossing_up", "a": CLOSE}, "missing b"),
    ({"op": "crossing_up", "a": {"field": "last"}, "b": CLOSE}, "field must be one of open, high"),
    ({"op": "crossing_up", "a": {"sma": 0}, "b": CLOSE}, "sma takes a whole period from 1 to 500"),
    ({"op": "moving_up", "a": CLOSE, "bars": 3, "value": -1}, "condition.value must be a positive"),
    ({"op": "greater_than", "a": CLOSE, "b": {"const": "abc"}}, "const must be a finite number"),
    ({"op": "inside_channel", "a": CLOSE, "lower": CLOSE, "upper": CLOSE, "x": 1}, "unexpected x"),
])
def test_a_bad_rule_is_refused_saying_which_part(raw, message) -> None:
    with pytest.raises(RuleError, match=message):
        parse_condition(raw)
