"""What a rule is: operands, a condition, a rule's settings, and the vocabulary they draw from.

Frozen records, shared by the parser, the evaluator and the store, so a
rule means the same thing wherever it is read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.core.indicator_series import ema_depth, reads

FIELDS = ("open", "high", "low", "close", "volume")


METRICS = ("change_pct", "gap_pct", "vwap", "vwap_distance_pct", "rvol", "day_volume", "prev_close",
           "day_high", "day_low", "prior_day_high", "prior_day_low")
# the scanner's, known for the current bar only (not stored per minute): a replay cannot compute them
CURRENT_METRICS = ("vwap", "vwap_distance_pct", "rvol", "gap_pct", "day_volume")
# the day's high (low) before this bar: day_high includes the bar itself, so "close crossing_up
# day_high" can never hold; "close greater_than prior_day_high" is a new high of the day
PRIOR_METRICS = ("prior_day_high", "prior_day_low")


# the chart's studies as operands, the same numbers as its lines: operand kind -> (study, line)
STUDY_LINES = {"rsi": ("rsi", "value"), "bb_upper": ("bb", "upper"), "bb_middle": ("bb", "middle"),
               "bb_lower": ("bb", "lower"), "macd": ("macd", "macd"), "macd_signal": ("macd", "signal"),
               "macd_histogram": ("macd", "histogram")}


PAIR_OPS = ("crossing", "crossing_up", "crossing_down", "greater_than", "less_than")


CHANNEL_OPS = ("entering_channel", "exiting_channel", "inside_channel", "outside_channel")


MOVING_OPS = ("moving_up", "moving_down", "moving_up_pct", "moving_down_pct")


# the scanner's signals as conditions, judged on the print from the stream's live state: a new high
# (low) of the day at the trade, the last window's volume against the RVOL profile's (``value``: k),
# a halt or a resume from the provider's status messages; with ``moving_*_pct`` over ``seconds``
SIGNAL_OPS = ("new_high_of_day", "new_low_of_day", "volume_spike", "halted", "resumed")
STATUS_OPS = ("halted", "resumed")  # true of the ticker's status: a halt does not make them stale
MAX_SIGNAL_SECONDS = 300  # the longest move over seconds (the live tape keeps as many)
MAX_PARTS = 4  # conditions an "all" joins


BAR_OPS = PAIR_OPS + CHANNEL_OPS + MOVING_OPS  # over operands, at any bar


OPERATORS = BAR_OPS + SIGNAL_OPS + ("all",)


STATE_OPS = frozenset({"greater_than", "less_than", "inside_channel", "outside_channel", *MOVING_OPS,
                       *SIGNAL_OPS})


FREQUENCIES = ("once", "once_per_bar", "once_per_bar_close", "every_time")
INTRABAR = ("once", "once_per_bar", "every_time")  # judged inside the bar when the stream serves
# what each frequency does on real-time data, in one line (the rules form says it)
FREQUENCY_LINES = {
    "once_per_bar_close": "at the bar's close, when the closed minute holds it",
    "once_per_bar": "at the first trade in a bar that makes it true; then not again until the next bar",
    "every_time": "at each trade that makes it true, at most once a minute",
    "once": "at the first trade that makes it true; then the rule stops for that ticker",
}


def judged_on_print(frequency: str, scope: dict[str, Any]) -> bool:
    """Whether an evaluate process judges such a rule at the stream's trades (when the stream serves
    its tickers): an intra-bar frequency over tickers or every ticker; a scanner list's rule stays
    with the minute tick (its members change each minute)."""
    return frequency in INTRABAR and "scan" not in scope


MAX_PERIOD = 500  # longest SMA/EMA and N-bar reference a rule may ask for
MAX_NUMBER = 1e12  # largest constant or moving value (prices, percents and volumes all fit)
MAX_EPOCH = 253_402_300_799  # the last second of year 9999: the latest expiry


STORM_FIRES, STORM_SECONDS = 15, 180


EVERY_TIME_FLOOR = 60


class RuleError(ValueError):
    """A rule that must be refused; the message says which part and why."""


@dataclass(frozen=True)
class Operand:
    kind: str  # field, price, sma, ema, metric, const, or a study line (STUDY_LINES)
    arg: str | int | float | None = None

    @property
    def name(self) -> str:
        if self.kind in ("sma", "ema"):
            return f"{self.kind}({self.arg})"
        if self.kind in STUDY_LINES:
            return f"{self.kind}({','.join(f'{a:g}' for a in self.arg)})"  # type: ignore[union-attr]
        if self.kind == "const":
            return ""
        return "price" if self.kind == "price" else str(self.arg)

    def as_json(self) -> dict[str, Any]:
        if self.kind in STUDY_LINES:
            args = [int(a) if float(a).is_integer() else a for a in self.arg]  # type: ignore[union-attr]
            return {self.kind: args[0] if len(args) == 1 else args}
        return {"price": True} if self.kind == "price" else {self.kind: self.arg}

    @property
    def reads(self) -> int:
        """Bars its value at one bar depends on (1 for a bar's own values)."""
        if self.kind == "ema":
            return ema_depth(int(self.arg))  # type: ignore[arg-type]
        if self.kind == "sma":
            return int(self.arg)  # type: ignore[arg-type]
        if self.kind in STUDY_LINES:
            return reads(STUDY_LINES[self.kind][0], self.arg)  # type: ignore[arg-type]
        return 2 if self.kind == "metric" and self.arg in PRIOR_METRICS else 1


SIGNAL_PRICE = Operand("price")  # a signal's (and an "all"'s) ``a``: the trade judged


@dataclass(frozen=True)
class Condition:
    op: str
    a: Operand
    b: Operand | None = None
    lower: Operand | None = None
    upper: Operand | None = None
    bars: int | None = None
    value: float | None = None
    seconds: int | None = None  # a move over the live tape's seconds, in place of ``bars``
    parts: tuple[Condition, ...] = ()  # op "all": every one holds at the same trade

    def as_json(self) -> dict[str, Any]:
        if self.op == "all":
            return {"op": "all", "of": [p.as_json() for p in self.parts]}
        if self.op in SIGNAL_OPS:
            return {"op": self.op, "k": self.value} if self.op == "volume_spike" else {"op": self.op}
        out: dict[str, Any] = {"op": self.op, "a": self.a.as_json()}
        if self.seconds is not None:
            out["seconds"], out["value"] = self.seconds, self.value
        for k in ("b", "lower", "upper"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v.as_json()
        if self.bars is not None:
            out["bars"], out["value"] = self.bars, self.value
        return out

    @property
    def operands(self) -> tuple[Operand, ...]:
        if self.op == "all":
            return tuple(o for p in self.parts for o in p.operands)
        if self.op in SIGNAL_OPS:
            return ()
        return tuple(o for o in (self.a, self.b, self.lower, self.upper) if o is not None)

    @property
    def depth(self) -> int:
        """Bars a condition reads to judge its last one: ``[0]`` and ``[1]`` of every operand (each
        over the bars its value depends on: :attr:`Operand.reads`), and the N-bar reference."""
        return max(2, self.lookback + 1)

    @property
    def lookback(self) -> int:
        """Bars of history the condition needs before the first one it judges."""
        if self.op == "all":
            return max(p.lookback for p in self.parts)
        return max([1, self.bars or 0, *(o.reads for o in self.operands)])

    @property
    def is_state(self) -> bool:
        """A level (it fires once when it begins to hold, and re-arms when it stops) rather than an
        event; joined, a level only if every part is."""
        return all(p.is_state for p in self.parts) if self.op == "all" else self.op in STATE_OPS

    @property
    def signals(self) -> tuple[str, ...]:
        """The live signals it reads (:data:`SIGNAL_OPS`, and ``"seconds"`` for a move over seconds):
        such a condition is judged on the print only."""
        if self.op == "all":
            return tuple(dict.fromkeys(s for p in self.parts for s in p.signals))
        return (self.op,) if self.op in SIGNAL_OPS else ("seconds",) if self.seconds is not None else ()

    @property
    def leaves(self) -> tuple[Condition, ...]:
        return self.parts if self.op == "all" else (self,)


@dataclass(frozen=True)
class Rule:
    id: int
    version: int
    condition: Condition
    frequency: str = "once_per_bar_close"
    cooldown_seconds: int = 300
    expires_at: int | None = None  # epoch seconds
    starts_at: int | None = None  # bars before this are not judged (a rule the tick met later than them)
