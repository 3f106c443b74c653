"""The one evaluator: many rules over bars, batched by condition shape.

Live ticks and replays both call :func:`evaluate_many` (or :func:`evaluate`
for one rule) with bars and rule state, and get the same fires.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webapp.core.rules.explain import explain
from webapp.core.rules.model import MOVING_OPS, STATUS_OPS, Condition, Operand, Rule
from webapp.core.rules.operands import LIVE_COLUMNS, ROW, condition_values
from webapp.core.rules.state import Columns, Fire, Outcome, Params, TickerState, bucket_of, step_bar


def _shape(c: Condition) -> tuple[Any, ...]:
    """What rules must share to be evaluated as one batch: all but their constants and moving value
    (a joined condition batches only with the same one)."""
    def key(o: Operand | None) -> tuple[Any, ...] | None:
        return None if o is None else ("const",) if o.kind == "const" else (o.kind, o.arg)
    if c.op == "all":
        return ("all", c)
    return (c.op, key(c.a), key(c.b), key(c.lower), key(c.upper), c.bars, c.seconds)


def _valued(c: Condition) -> bool:
    """Its ``value`` (a move's size, a spike's k) is a row's own in a batch."""
    return c.op in MOVING_OPS or c.op == "volume_spike"


def _batched(c: Condition) -> Condition:
    if c.op == "all":
        return c

    def row(o: Operand | None, name: str) -> Operand | None:
        return None if o is None else Operand(ROW, name) if o.kind == "const" else o
    return Condition(c.op, row(c.a, "_a"), row(c.b, "_b"), row(c.lower, "_lower"),  # type: ignore[arg-type]
                     row(c.upper, "_upper"), c.bars, c.value, c.seconds)


def _needs(c: Condition) -> set[str]:
    out = {"close"}
    for leaf in c.leaves:
        for o in leaf.operands:
            if o.kind in ("field", "metric"):
                out.add("vwap" if o.arg == "vwap_distance_pct" else str(o.arg))
        if leaf.signals:
            out |= {"day_high", "day_low", "prior_day_high", "prior_day_low", *LIVE_COLUMNS,
                    f"ago_{leaf.seconds}s"}
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
                  first: int = 0, cache: dict[tuple[Operand, int], np.ndarray] | None = None,
                  intrabar: bool = False) -> Batch:
    """Many rules over bars ``first..``; rule k over the series rows ``rows[k]`` (sorted; None: all).
    ``intrabar``: the last bar is the provisional one, judged at a trade (:func:`step`).

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
        if _valued(cond):
            data["_value"] = np.array([float(r.condition.value) for r in group])[owner][:, None]  # type: ignore[arg-type]
        held, inputs = condition_values(cond, data, cache if whole and lo == 0 else None, first - lo)
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
        if any(leaf.op in STATUS_OPS for leaf in cond.leaves):
            st = np.zeros_like(st)  # a halt or resume is what it judges: the halt makes it no less true
        for t in range(first - lo, held.shape[1]):
            bar_time = int(times[t + lo])
            fired = step_bar(params, cols, held[:, t], st[:, t], bar_time, intrabar)
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
             cache: dict[tuple[Operand, int], np.ndarray] | None = None) -> Outcome:
    """One rule over bars ``first..`` of every ticker's series (tickers × times arrays).

    Conditions and the state machine both run over all tickers at once
    (:func:`step_bar`, which :func:`step` defines ticker by ticker); only the
    states that changed are returned.
    """
    got = evaluate_many([rule], [None], tickers, series, times, [states], stale, first, cache)
    order = {t: i for i, t in enumerate(tickers)}
    fires = sorted(got.fires, key=lambda f: (order[f.ticker], f.bar_time))
    return Outcome(fires, {t: s for _, t, s in got.states}, [t for _, t in got.stopped])
