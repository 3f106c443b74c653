"""A fire in words, with its inputs: what the alerts feed, the webhook and the replay show."""
from __future__ import annotations

from collections.abc import Mapping

from webapp.core.rules.model import CHANNEL_OPS, PAIR_OPS, SIGNAL_OPS, Condition, Operand


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100_000 else f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"


def _named(o: Operand, v: float | None) -> str:
    return f"{o.name} {_fmt(v)}" if o.name else _fmt(v)


VERBS = {"crossing_up": "crossed above", "crossing_down": "crossed below", "greater_than": "rose above",
         "less_than": "fell below", "entering_channel": "entered", "exiting_channel": "left",
         "inside_channel": "moved inside", "outside_channel": "moved outside"}


def _signal(c: Condition, v: Mapping[str, float | None]) -> str:
    price = _fmt(v.get("a"))
    if c.op in ("new_high_of_day", "new_low_of_day"):
        high = c.op == "new_high_of_day"
        return f"price {price} broke the day's {'high' if high else 'low'} {_fmt(v.get('level'))}"
    if c.op == "volume_spike":
        vol, expected, secs = v.get("volume"), v.get("expected"), v.get("window_seconds")
        ratio = None if not vol or not expected else vol / expected
        times = "n/a" if ratio is None else f"{ratio:.1f}"
        return (f"volume {'n/a' if vol is None else f'{vol:,.0f}'} in the last {secs or 0:g} s is "
                f"{times}× the {expected or 0:,.0f} expected at this time of day (at least {c.value:g}×); "
                f"price {price}")
    return f"{c.op} (price {price})"


def explain(c: Condition, v: Mapping[str, float | None]) -> str:
    """The fire in words, with its inputs: "close 101.20 crossed above 101.00; previous close 100.80"."""
    if c.op == "all":
        return "; and ".join(explain(p, {name.split(".", 1)[1]: x for name, x in v.items()
                                          if name.startswith(f"{k}.")}) for k, p in enumerate(c.parts))
    if c.op in SIGNAL_OPS:
        return _signal(c, v)
    a0, a1 = _named(c.a, v.get("a")), _fmt(v.get("a1"))
    if c.op in PAIR_OPS:
        above = (v.get("a") or 0) > (v.get("b") or 0)
        verb = VERBS.get(c.op) or ("crossed above" if above else "crossed below")
        versus = f" vs {_fmt(v.get('b1'))}" if c.b.kind != "const" else ""  # type: ignore[union-attr]
        prev = f"; previous {c.a.name or 'value'} {a1}{versus}"
        return f"{a0} {verb} {_named(c.b, v.get('b'))}{prev}"  # type: ignore[union-attr]
    if c.op in CHANNEL_OPS:
        return (f"{a0} {VERBS[c.op]} the channel {_fmt(v.get('lower'))}–{_fmt(v.get('upper'))}; "
                f"previous {c.a.name or 'value'} {a1}")
    ref = v.get("ref")
    a = v.get("a")
    pct = c.op.endswith("pct")
    moved = None if a is None or ref is None else ((a / ref - 1) * 100 if pct else a - ref)
    unit = "%" if pct else ""
    size = _fmt(abs(moved) if moved is not None else None)
    return (f"{a0} moved {'up' if 'up' in c.op else 'down'} {size}{unit} "
            f"in {f'{c.seconds} s' if c.seconds else f'{c.bars} bars'} (from {_fmt(ref)}; "
            f"at least {_fmt(c.value)}{unit})")
