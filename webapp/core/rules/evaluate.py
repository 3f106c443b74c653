"""Alert rules: what a rule says, what its operands are over a bar series, and when it fires.

Pure, and the one evaluator: live ticks and replays both call
:func:`evaluate` with bars and rule state and get the same fires.

**A rule** is a condition (an operator over operands), a frequency, a
cooldown and an optional expiry (scope and channels are the store's).
Operands: bar fields (``open``, ``high``, ``low``, ``close``, ``volume``),
``price`` (the last: the bar's close), ``sma(n)`` and ``ema(n)`` of the
close, scanner metrics (``change_pct``, ``gap_pct``, ``vwap``, ``rvol``,
``day_volume``, ``prev_close``, ``day_high``, ``day_low``) and constants.

**Operators** (TradingView's set; ``x[1]`` is the previous bar's value):

* ``crossing_up``: ``a > b and a[1] <= b[1]`` (thinkorswim's crosses
  above, as the SMA alert has always been); ``crossing_down`` the mirror;
  ``crossing`` either;
* ``entering_channel``: outside ``[lower, upper]`` at ``[1]``, inside now;
  ``exiting_channel`` the reverse (edges);
* ``greater_than``, ``less_than``, ``inside_channel``, ``outside_channel``:
  states;
* ``moving_up`` / ``moving_down``: ``a - a[N] >= value`` (resp. ``a[N] - a
  >= value``) within ``bars`` = N, **against the value N bars ago**, not the
  window's low or high; ``moving_up_pct`` / ``moving_down_pct`` the same in
  percent of ``a[N]``.  These are states too.

A **state** fires when it *becomes* true and re-arms only after it was
false, so a price sitting above a level does not fire every bar (unless the
frequency is ``every_time``).  **Frequencies:** ``once`` (then the rule is
done for that ticker), ``once_per_bar``, ``once_per_bar_close`` (the
default) and ``every_time`` (whenever true, at most once a minute).  The
**cooldown** (default 300 s) holds further fires per rule and ticker; the
**storm breaker** stops a rule for a ticker (``stopped_too_often``) when it
would fire more than 15 times in 3 minutes.  A **stale** reading is never
fired on, and leaves the state as it was.  A missing value (NaN: an SMA
still filling, a metric the feed lacks) makes the condition false.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from webapp.core import indicator_series
from webapp.core.validation import normalise_ticker

FIELDS = ("open", "high", "low", "close", "volume")
METRICS = ("change_pct", "gap_pct", "vwap", "rvol", "day_volume", "prev_close", "day_high", "day_low")
PAIR_OPS = ("crossing", "crossing_up", "crossing_down", "greater_than", "less_than")
CHANNEL_OPS = ("entering_channel", "exiting_channel", "inside_channel", "outside_channel")
MOVING_OPS = ("moving_up", "moving_down", "moving_up_pct", "moving_down_pct")
OPERATORS = PAIR_OPS + CHANNEL_OPS + MOVING_OPS
STATE_OPS = frozenset({"greater_than", "less_than", "inside_channel", "outside_channel", *MOVING_OPS})
FREQUENCIES = ("once", "once_per_bar", "once_per_bar_close", "every_time")
MAX_PERIOD = 500  # longest SMA/EMA and N-bar reference a rule may ask for
STORM_FIRES, STORM_SECONDS = 15, 180
EVERY_TIME_FLOOR = 60


class RuleError(ValueError):
    """A rule that must be refused; the message says which part and why."""


@dataclass(frozen=True)
class Operand:
    kind: str  # field, price, sma, ema, metric, const
    arg: str | int | float | None = None

    @property
    def name(self) -> str:
        if self.kind in ("sma", "ema"):
            return f"{self.kind}({self.arg})"
        if self.kind == "const":
            return ""
        return "price" if self.kind == "price" else str(self.arg)

    def as_json(self) -> dict[str, Any]:
        return {"price": True} if self.kind == "price" else {self.kind: self.arg}


@dataclass(frozen=True)
class Condition:
    op: str
    a: Operand
    b: Operand | None = None
    lower: Operand | None = None
    upper: Operand | None = None
    bars: int | None = None
    value: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "a": self.a.as_json()}
        for k in ("b", "lower", "upper"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v.as_json()
        if self.bars is not None:
            out["bars"], out["value"] = self.bars, self.value
        return out

    @property
    def depth(self) -> int:
        """Bars a condition reads to judge its last one: ``[0]`` and ``[1]`` of every operand (an EMA gets
        four periods to settle: it is seeded with the SMA that many bars back)."""
        need = self.lookback + 1
        for o in (self.a, self.b, self.lower, self.upper):
            if o is not None and o.kind == "ema":
                need = max(need, 4 * int(o.arg) + 1)  # type: ignore[arg-type]
        return max(2, need)

    @property
    def lookback(self) -> int:
        """Bars of history the condition needs before the first one it judges."""
        need = [1, self.bars or 0]
        for o in (self.a, self.b, self.lower, self.upper):
            if o is not None and o.kind in ("sma", "ema"):
                need.append(int(o.arg) + 1)  # type: ignore[arg-type]
        return max(need)


@dataclass(frozen=True)
class Rule:
    id: int
    version: int
    condition: Condition
    frequency: str = "once_per_bar_close"
    cooldown_seconds: int = 300
    expires_at: int | None = None  # epoch seconds
    starts_at: int | None = None  # bars before this are not judged (a rule the tick met later than them)


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


# ---- operands over a series ------------------------------------------------------------

def reading_series(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Series from stored minute readings (``close``, ``volume``, ``prev_close``, ``day_high``,
    ``day_low``): a reading is one price, so it is also the bar's open, high and low; and
    ``change_pct`` against the previous close.  Replays and the live tick both read these."""
    close = cols["close"]
    series = {**cols, "open": close, "high": close, "low": close}
    with np.errstate(invalid="ignore", divide="ignore"):
        series["change_pct"] = (close / cols["prev_close"] - 1.0) * 100.0
    return series


def operand_values(o: Operand, series: Mapping[str, np.ndarray],
                   cache: dict[Operand, np.ndarray] | None = None) -> np.ndarray:
    """The operand at every bar (the last axis is time; any leading axes are tickers).

    ``cache`` shares an SMA or EMA between the rules of one tick over the same series.
    """
    if cache is not None and o.kind in ("sma", "ema"):
        got = cache.get(o)
        if got is None:
            got = cache[o] = operand_values(o, series)
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
        return indicator_series.ema(close, int(o.arg))  # type: ignore[arg-type]
    got = series.get(str(o.arg))
    return got if got is not None else np.full(close.shape, np.nan)


def _prev(x: np.ndarray, n: int = 1) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    if x.shape[-1] > n:
        out[..., n:] = x[..., :-n]
    return out


def condition_values(c: Condition, series: Mapping[str, np.ndarray],
                     cache: dict[Operand, np.ndarray] | None = None
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Whether the condition holds at every bar (NaN inputs: False), and its inputs by name."""
    a = operand_values(c.a, series, cache)
    a1 = _prev(a)
    inputs = {"a": a, "a1": a1}
    with np.errstate(invalid="ignore"):
        if c.op in PAIR_OPS:
            b = operand_values(c.b, series, cache)  # type: ignore[arg-type]
            b1 = _prev(b)
            inputs.update(b=b, b1=b1)
            up = (a > b) & (a1 <= b1)
            down = (a < b) & (a1 >= b1)
            held = {"crossing_up": up, "crossing_down": down, "crossing": up | down,
                    "greater_than": a > b, "less_than": a < b}[c.op]
        elif c.op in CHANNEL_OPS:
            lo = operand_values(c.lower, series, cache)  # type: ignore[arg-type]
            hi = operand_values(c.upper, series, cache)  # type: ignore[arg-type]
            lo1, hi1 = _prev(lo), _prev(hi)
            inputs.update(lower=lo, upper=hi, lower1=lo1, upper1=hi1)
            inside = (a >= lo) & (a <= hi)
            inside1 = (a1 >= lo1) & (a1 <= hi1)
            outside = (a < lo) | (a > hi)
            outside1 = (a1 < lo1) | (a1 > hi1)
            held = {"entering_channel": inside & outside1, "exiting_channel": outside & inside1,
                    "inside_channel": inside, "outside_channel": outside}[c.op]
        else:
            ref = _prev(a, int(c.bars))  # type: ignore[arg-type]
            inputs["ref"] = ref
            v = series["_value"] if "_value" in series else float(c.value)  # type: ignore[arg-type]
            held = {"moving_up": a - ref >= v, "moving_down": ref - a >= v,
                    "moving_up_pct": (a / ref - 1.0) * 100.0 >= v,
                    "moving_down_pct": (1.0 - a / ref) * 100.0 >= v}[c.op]
    return np.asarray(held, bool), inputs


# ---- the state machine -----------------------------------------------------------------

@dataclass(frozen=True)
class TickerState:
    """One rule's state for one ticker."""

    armed: bool = True
    last_fire: int | None = None  # bar time of the last fire
    recent: tuple[int, ...] = ()  # fire times within the storm window
    status: str = "active"  # active, done (frequency once), stopped_too_often
    last_bar: int | None = None  # the last bar evaluated (a retried tick evaluates nothing twice)


@dataclass(frozen=True)
class Fire:
    rule_id: int
    rule_version: int
    ticker: str
    bar_time: int
    bucket: str
    inputs: dict[str, float | None]
    explanation: str

    @property
    def dedupe_key(self) -> str:
        return f"{self.rule_id}:{self.ticker}:{self.bar_time}:{self.bucket}"


@dataclass
class Outcome:
    fires: list[Fire] = field(default_factory=list)
    states: dict[str, TickerState] = field(default_factory=dict)  # only those that changed
    stopped: list[str] = field(default_factory=list)  # tickers the breaker stopped


def bucket_of(frequency: str, bar_time: int) -> str:
    if frequency == "once":
        return "once"
    if frequency == "every_time":
        return f"m{bar_time // 60}"
    return f"b{bar_time}"


def step(rule: Rule, state: TickerState, held: bool, bar_time: int, stale: bool) -> tuple[bool, TickerState]:
    """One bar for one ticker: does the rule fire, and the state after."""
    if state.status != "active" or (state.last_bar is not None and bar_time <= state.last_bar):
        return False, state
    if stale or (rule.expires_at is not None and bar_time >= rule.expires_at) or (
            rule.starts_at is not None and bar_time < rule.starts_at):
        return False, state
    state = replace(state, last_bar=bar_time)
    is_state_op = rule.condition.op in STATE_OPS and rule.frequency != "every_time"
    if not held:
        return False, (replace(state, armed=True) if not state.armed else state)
    if is_state_op and not state.armed:
        return False, state
    if is_state_op:
        state = replace(state, armed=False)
    cooldown = max(rule.cooldown_seconds, EVERY_TIME_FLOOR if rule.frequency == "every_time" else 0)
    if state.last_fire is not None and bar_time - state.last_fire < cooldown:
        return False, state
    recent = tuple(t for t in state.recent if bar_time - t < STORM_SECONDS)
    if len(recent) >= STORM_FIRES:
        return False, replace(state, recent=recent, status="stopped_too_often")
    state = replace(state, last_fire=bar_time, recent=(*recent, bar_time),
                    status="done" if rule.frequency == "once" else "active")
    return True, state


NEVER = np.iinfo(np.int64).min // 2  # "no fire yet" / "no bar yet" in the state columns
NO_EXPIRY = np.iinfo(np.int64).max
_STATUS = ("active", "done", "stopped_too_often")
_STATUS_CODE = {name: code for code, name in enumerate(_STATUS)}


class Columns:
    """Rule states for many rows (a rule's tickers, or a batch of rules' tickers) as arrays."""

    def __init__(self, n: int, states: Mapping[int, TickerState]) -> None:
        self.armed = np.ones(n, bool)
        self.last_fire = np.full(n, NEVER, np.int64)
        self.last_bar = np.full(n, NEVER, np.int64)
        self.status = np.zeros(n, np.int8)
        self.recent = {i: st_.recent for i, st_ in states.items() if st_.recent}
        if states:  # sparse: only rows whose state is not the default, set column by column
            at, held = np.fromiter(states, np.int64, len(states)), list(states.values())
            self.armed[at] = [st_.armed for st_ in held]
            self.last_fire[at] = [NEVER if st_.last_fire is None else st_.last_fire for st_ in held]
            self.last_bar[at] = [NEVER if st_.last_bar is None else st_.last_bar for st_ in held]
            self.status[at] = [_STATUS_CODE[st_.status] for st_ in held]

    def state(self, i: int) -> TickerState:
        lf, lb = int(self.last_fire[i]), int(self.last_bar[i])
        return TickerState(bool(self.armed[i]), None if lf == NEVER else lf, self.recent.get(i, ()),
                           _STATUS[int(self.status[i])], None if lb == NEVER else lb)


@dataclass(frozen=True)
class Params:
    """Each row's rule settings, so rules that differ only in them step together."""

    cooldown: np.ndarray  # seconds, with every_time's floor
    edge: np.ndarray  # a state operator that re-arms (every_time does not)
    once: np.ndarray
    expires: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, rules: Sequence[Rule], owner: np.ndarray) -> Params:
        cd = np.array([max(r.cooldown_seconds, EVERY_TIME_FLOOR if r.frequency == "every_time" else 0)
                       for r in rules], np.int64)
        edge = np.array([r.condition.op in STATE_OPS and r.frequency != "every_time" for r in rules], bool)
        once = np.array([r.frequency == "once" for r in rules], bool)
        exp = np.array([NO_EXPIRY if r.expires_at is None else r.expires_at for r in rules], np.int64)
        starts = np.array([NEVER if r.starts_at is None else r.starts_at for r in rules], np.int64)
        return cls(cd[owner], edge[owner], once[owner], exp[owner], starts[owner])


def step_bar(p: Params, cols: Columns, held: np.ndarray, stale: np.ndarray, bar_time: int) -> list[int]:
    """:func:`step` for every row at once, for one bar; the rows that fire.

    The arrays do the work; Python touches only the rows that pass every
    vectorised test (they fire, or the breaker stops them): a handful.
    """
    active = ((cols.status == 0) & (cols.last_bar < bar_time) & ~stale & (bar_time < p.expires)
              & (bar_time >= p.starts))
    cols.last_bar[active] = bar_time
    cols.armed[active & ~held] = True
    candidate = active & held & (~p.edge | cols.armed)
    cols.armed[candidate & p.edge] = False
    candidate &= (cols.last_fire == NEVER) | (bar_time - cols.last_fire >= p.cooldown)
    fired = []
    for i in np.flatnonzero(candidate).tolist():
        recent = tuple(t for t in cols.recent.get(i, ()) if bar_time - t < STORM_SECONDS)
        if len(recent) >= STORM_FIRES:
            cols.recent[i] = recent
            cols.status[i] = 2
            continue
        cols.recent[i] = (*recent, bar_time)
        cols.last_fire[i] = bar_time
        if p.once[i]:
            cols.status[i] = 1
        fired.append(i)
    return fired


ROW = "row"  # an operand kind for batches only: a constant that differs per row (never parsed)


def _shape(c: Condition) -> tuple[Any, ...]:
    """What rules must share to be evaluated as one batch: all but their constants and moving value."""
    def key(o: Operand | None) -> tuple[Any, ...] | None:
        return None if o is None else ("const",) if o.kind == "const" else (o.kind, o.arg)
    return (c.op, key(c.a), key(c.b), key(c.lower), key(c.upper), c.bars)


def _batched(c: Condition) -> Condition:
    def row(o: Operand | None, name: str) -> Operand | None:
        return None if o is None else Operand(ROW, name) if o.kind == "const" else o
    return Condition(c.op, row(c.a, "_a"), row(c.b, "_b"), row(c.lower, "_lower"),  # type: ignore[arg-type]
                     row(c.upper, "_upper"), c.bars, c.value)


def _needs(c: Condition) -> set[str]:
    out = {"close"}
    for o in (c.a, c.b, c.lower, c.upper):
        if o is not None and o.kind in ("field", "metric"):
            out.add(str(o.arg))
    return out


def _place(index: dict[int, TickerState], base: int, pick: np.ndarray, states: Mapping[str, TickerState],
           position: Mapping[str, int]) -> None:
    """Put each stored state of a rule at its row of the batch (``pick``: the rule's sorted rows)."""
    if len(pick) <= 64:  # a few tickers: plain Python beats five numpy calls
        offset = {row: base + o for o, row in enumerate(pick.tolist())}
        for t, st_ in states.items():
            at = offset.get(position.get(t, -1))
            if at is not None:
                index[at] = st_
        return
    held_by = list(states.items())
    wanted = np.fromiter((position.get(t, -1) for t, _ in held_by), np.int64, len(held_by))
    pos = np.minimum(np.searchsorted(pick, wanted), len(pick) - 1)
    for n in np.flatnonzero((wanted >= 0) & (pick[pos] == wanted)).tolist():
        index[base + int(pos[n])] = held_by[n][1]


@dataclass
class Batch:
    """What :func:`evaluate_many` found: fires, and changed states by (rule index, ticker)."""

    fires: list[Fire] = field(default_factory=list)
    states: list[tuple[int, str, TickerState]] = field(default_factory=list)
    stopped: list[tuple[int, str]] = field(default_factory=list)


def evaluate_many(rules: Sequence[Rule], rows: Sequence[np.ndarray | None], tickers: Sequence[str],
                  series: Mapping[str, np.ndarray], times: np.ndarray,
                  states: Sequence[Mapping[str, TickerState]], stale: np.ndarray | None = None,
                  first: int = 0, cache: dict[Operand, np.ndarray] | None = None) -> Batch:
    """Many rules over bars ``first..``; rule k over the series rows ``rows[k]`` (sorted; None: all).

    Rules whose conditions differ only in constants (``price > 100`` and
    ``price > 250``) are stacked into one batch of rows, each row with its
    own constant, cooldown, frequency and expiry, and evaluated at once: the
    cost follows the number of distinct condition shapes, not of rules.
    ``cache`` shares SMAs and EMAs between batches that cover every row.
    """
    n_rows = series["close"].shape[0]
    stale = np.zeros(series["close"].shape, bool) if stale is None else stale
    groups: dict[tuple[Any, ...], list[int]] = {}
    for k, r in enumerate(rules):
        groups.setdefault(_shape(r.condition), []).append(k)
    out = Batch()
    position = {t: i for i, t in enumerate(tickers)} if any(states) else {}
    for members in groups.values():
        picks = [np.arange(n_rows) if rows[k] is None else rows[k] for k in members]
        whole = len(members) == 1 and rows[members[0]] is None
        at = picks[0] if len(picks) == 1 else np.concatenate(picks)
        if not len(at):
            continue
        owner = np.repeat(np.arange(len(members)), [len(p) for p in picks])
        group = [rules[k] for k in members]
        cond = _batched(group[0].condition)
        lo = max(0, first - cond.depth + 1)  # bars before these cannot change what ``first..`` judge
        data: dict[str, np.ndarray] = ({k: v[:, lo:] for k, v in series.items()} if whole else
                                       {k: series[k][at, lo:] for k in _needs(cond) if k in series})
        width = data["close"].shape[1]
        for name, pick in (("_a", lambda c: c.a), ("_b", lambda c: c.b), ("_lower", lambda c: c.lower),
                           ("_upper", lambda c: c.upper)):
            if (o := pick(group[0].condition)) is not None and o.kind == "const":
                values = np.array([float(pick(r.condition).arg) for r in group])[owner]
                data[name] = np.broadcast_to(values[:, None], (len(at), width))
        if cond.op in MOVING_OPS:
            data["_value"] = np.array([float(r.condition.value) for r in group])[owner][:, None]  # type: ignore[arg-type]
        held, inputs = condition_values(cond, data, cache if whole and lo == 0 else None)
        index: dict[int, TickerState] = {}
        base = 0
        for j, k in enumerate(members):
            if states[k] and len(picks[j]):  # sparse: place each stored state at its row (picks sorted)
                _place(index, base, picks[j], states[k], position)
            base += len(picks[j])
        cols = Columns(len(at), index)
        start = (cols.armed.copy(), cols.last_fire.copy(), cols.status.copy())
        params = Params.of(group, owner)
        st = stale[:, lo:] if whole else stale[at, lo:]
        for t in range(first - lo, held.shape[1]):
            bar_time = int(times[t + lo])
            fired = step_bar(params, cols, held[:, t], st[:, t], bar_time)
            if not fired:
                continue
            at_fired = np.array(fired)
            gathered = {k: v[at_fired, t].tolist() for k, v in inputs.items()}  # one gather per input
            for j, i in enumerate(fired):
                rule = group[int(owner[i])]
                vals = {k: (None if x != x else x) for k, col in gathered.items() for x in (col[j],)}
                out.fires.append(Fire(rule.id, rule.version, tickers[int(at[i])], bar_time,
                                      bucket_of(rule.frequency, bar_time), vals,
                                      explain(rule.condition, vals)))
        # A row whose only change is ``last_bar`` needs no keeping: evaluated again at that bar (a
        # retried tick) it comes to the same nothing.  So a rule over 10,000 tickers that holds for
        # three keeps three rows.
        changed = (cols.armed != start[0]) | (cols.last_fire != start[1]) | (cols.status != start[2])
        for i in np.flatnonzero(changed).tolist():
            k, t = members[int(owner[i])], tickers[int(at[i])]
            out.states.append((k, t, cols.state(i)))
            if cols.status[i] == 2 and start[2][i] != 2:
                out.stopped.append((k, t))
    return out


def evaluate(rule: Rule, tickers: Sequence[str], series: Mapping[str, np.ndarray], times: np.ndarray,
             states: Mapping[str, TickerState], stale: np.ndarray | None = None, first: int = 0,
             cache: dict[Operand, np.ndarray] | None = None) -> Outcome:
    """One rule over bars ``first..`` of every ticker's series (tickers × times arrays).

    Conditions and the state machine both run over all tickers at once
    (:func:`step_bar`, which :func:`step` defines ticker by ticker); only the
    states that changed are returned.
    """
    got = evaluate_many([rule], [None], tickers, series, times, [states], stale, first, cache)
    order = {t: i for i, t in enumerate(tickers)}
    fires = sorted(got.fires, key=lambda f: (order[f.ticker], f.bar_time))
    return Outcome(fires, {t: s for _, t, s in got.states}, [t for _, t in got.stopped])


def _num(v: Any) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100_000 else f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"


def _named(o: Operand, v: float | None) -> str:
    return f"{o.name} {_fmt(v)}" if o.name else _fmt(v)


VERBS = {"crossing_up": "crossed above", "crossing_down": "crossed below", "greater_than": "rose above",
         "less_than": "fell below", "entering_channel": "entered", "exiting_channel": "left",
         "inside_channel": "moved inside", "outside_channel": "moved outside"}


def explain(c: Condition, v: Mapping[str, float | None]) -> str:
    """The fire in words, with its inputs: "close 101.20 crossed above 101.00; previous close 100.80"."""
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
            f"in {c.bars} bars (from {_fmt(ref)}; at least {_fmt(c.value)}{unit})")
