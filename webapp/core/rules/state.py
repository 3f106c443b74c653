"""The state machine: whether a rule fires at a bar, given what it did before.

:func:`step` defines it for one ticker; :func:`step_bar` is the same for
many rows at once, over state columns, which is what the evaluator runs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from webapp.core.rules.model import EVERY_TIME_FLOOR, STORM_FIRES, STORM_SECONDS, Rule


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


def step(rule: Rule, state: TickerState, held: bool, bar_time: int, stale: bool, intrabar: bool = False
         ) -> tuple[bool, TickerState]:
    """One bar for one ticker: does the rule fire, and the state after.

    ``intrabar``: a judgment of the still-open bar at a trade (alerts on the print).  The same bar
    is judged again at later trades until it fires (``once_per_bar``, ``every_time``: at most once
    a bar) and never after that; a bar already passed is never judged.
    """
    if state.status != "active" or (state.last_bar is not None and (
            bar_time < state.last_bar or (bar_time == state.last_bar and not intrabar))):
        return False, state
    if intrabar and state.last_fire == bar_time:
        return False, state
    if stale or (rule.expires_at is not None and bar_time >= rule.expires_at) or (
            rule.starts_at is not None and bar_time < rule.starts_at):
        return False, state
    state = replace(state, last_bar=bar_time)
    is_state_op = rule.condition.is_state and rule.frequency != "every_time"
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
        edge = np.array([r.condition.is_state and r.frequency != "every_time" for r in rules], bool)
        once = np.array([r.frequency == "once" for r in rules], bool)
        exp = np.array([NO_EXPIRY if r.expires_at is None else r.expires_at for r in rules], np.int64)
        starts = np.array([NEVER if r.starts_at is None else r.starts_at for r in rules], np.int64)
        return cls(cd[owner], edge[owner], once[owner], exp[owner], starts[owner])


def step_bar(p: Params, cols: Columns, held: np.ndarray, stale: np.ndarray, bar_time: int,
             intrabar: bool = False) -> list[int]:
    """:func:`step` for every row at once, for one bar; the rows that fire.

    The arrays do the work; Python touches only the rows that pass every
    vectorised test (they fire, or the breaker stops them): a handful.
    """
    fresh = ((cols.last_bar <= bar_time) & (cols.last_fire != bar_time) if intrabar
             else cols.last_bar < bar_time)
    active = ((cols.status == 0) & fresh & ~stale & (bar_time < p.expires)
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
