"""Alert rules inside the minute tick: the pure evaluator over its bars, in a constant number of round-trips.

Per tick, in :meth:`RuleEngine.load` (before the tick's COPYs start on the
same connection): one statement reads the active rules' fingerprint (and
the rules, when it changed), one their stored states when this process
cannot continue its own; the bars come from :class:`Bars`, which this
process keeps between ticks (the last readings of every ticker, as
Postgres stores them) and rebuilds with one statement when it cannot
continue (a restart, a gap, a deeper rule, another shard's tickers).
:meth:`RuleEngine.evaluate`, which reads nothing and so runs while
Postgres stores the quotes, then evaluates each rule over its scope at
once (:func:`webapp.core.rules.evaluate.evaluate_many`, the evaluator replays use).
The fires, their deliveries and the changed states are written inside the
transaction that stores the tick's quotes
(:func:`webapp.store.alerts.write_fires`): an event exists exactly when
its state moved, and a retried tick, whose fires are already stored or
whose states say the bar was seen, writes nothing twice.  The built-in SMA
crossover is not evaluated here (the tick computes it); the fingerprint
only says whether it is muted (:attr:`RuleEngine.builtin_muted`).

The series are the stored minute readings: ``close`` (= ``price`` =
``open`` = ``high`` = ``low``: a reading is one price), ``volume``,
``prev_close``, ``day_high``, ``day_low`` and ``change_pct``, exactly what
a replay reads back, so live and replay fire alike.  The scanner's
metrics (:data:`~webapp.core.rules.model.CURRENT_METRICS`) exist only for the
current bar (they are not stored per minute).  Every operand's value at a
bar depends on the bars it keeps (an EMA's on its last
:func:`~webapp.core.indicator_series.ema_depth` bars, which
:attr:`~webapp.core.rules.model.Condition.depth` keeps), so the tick and a
replay of the same bars compute the same numbers.  A stale or missing
reading is never fired on.

A tick that cannot read the rules (Postgres down) evaluates none; the
first one that can, once the spooled rows are stored, evaluates the bars
since the shard's last evaluated slot (``alert_rule_progress``, written
with the states), at most :data:`MAX_CATCH_UP`, so an outage delays fires
rather than losing them.

The rules' states are read from Postgres, then kept here: a tick that
follows this process's own last committed tick, with the same rules
(ids, versions, last change) and tickers, reuses them; anything else (a
retry, another worker's tick in between, a rule changed or re-enabled)
reads them again.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from webapp.core import scanner as scan_core
from webapp.core.quotes import Quote
from webapp.core.rules.evaluate import evaluate_many
from webapp.core.rules.model import CURRENT_METRICS, Rule, RuleError, judged_on_print
from webapp.core.rules.operands import reading_series
from webapp.core.rules.parse import parse_condition
from webapp.core.rules.state import TickerState
from webapp.core.shards import shard_of
from webapp.store import alert_events, evaluation, quotes, rule_states
from webapp.store.streamstate import stream_status

log = logging.getLogger(__name__)

STORED = ("close", "volume", "prev_close", "day_high", "day_low")
MAX_CATCH_UP = 60  # bars a tick evaluates late after a gap (Postgres was down); older ones are skipped
MIN_DEPTH = 2


def on_print(client: Any, stream_fed: bool, shards: int, symbols: Sequence[str]) -> frozenset[str]:
    """The tickers whose intra-bar rules an evaluate process judges now (the tick leaves them those):
    the stream feeds the prices and is connected, streams the ticker, and a process holds its shard.
    Anything else (snapshot prices, the stream down, a ticker past the plan's cap, no evaluate
    process) and the tick judges them, as before.  Two Redis reads."""
    if not stream_fed:
        return frozenset()
    status = stream_status(client)
    if not status or status.get("state") != "connected":
        return frozenset()
    held = evaluation.owned_shards(client, shards)
    if not held:
        return frozenset()
    unstreamed = set(status.get("unstreamed") or ())
    return frozenset(t for t in symbols if t not in unstreamed and shard_of(t, shards) in held)


@dataclass
class LiveRule:
    rule: Rule
    name: str
    scope: dict[str, Any]
    endpoints: tuple[int, ...]
    depth: int
    rows: tuple[int, np.ndarray | None] | None = None  # (symbols generation, its rows): a fixed scope


def live_rule(r: Any, slot: int) -> LiveRule | None:
    """A stored rule row (:func:`webapp.store.rule_states.live_rules`, with its JSON) parsed, judged
    from bar ``slot`` on; None (and an error logged) for one a stricter parser now refuses."""
    try:
        cond = parse_condition(r.condition)
    except RuleError as exc:
        log.error("rule %s cannot be evaluated: %s", r.id, exc)
        return None
    expires = int(r.expires_at.timestamp()) if r.expires_at else None
    endpoints = tuple(int(c.split(":", 1)[1]) for c in r.channels if c.startswith("webhook:"))
    return LiveRule(Rule(r.id, r.version, cond, r.frequency, r.cooldown_seconds, expires, slot),
                    r.name, dict(r.scope), endpoints, cond.depth)


@dataclass
class Bars:
    """The last ``depth`` readings of ``tickers`` (tickers × bars), oldest first; NaN where none is stored."""

    tickers: tuple[str, ...] = ()
    times: list[int] = field(default_factory=list)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    depth: int = 0

    def continues(self, tickers: Sequence[str], slot: int, tick_seconds: int, depth: int) -> bool:
        """Whether this tick's bar can be appended (else rebuild from Postgres)."""
        if tuple(tickers) != self.tickers or depth > self.depth:
            return False
        self.drop_from(slot)  # a retried tick appends its slot again
        return bool(self.times) and self.times[-1] == slot - tick_seconds

    def drop_from(self, slot: int) -> None:
        keep = sum(1 for t in self.times if t < slot)
        if keep < len(self.times):
            self.times = self.times[:keep]
            self.data = {k: v[:, :keep] for k, v in self.data.items()}

    @classmethod
    def stored(cls, session: Session, tickers: Sequence[str], depth: int, slot: int) -> Bars:
        """The last readings before ``slot`` from Postgres (one statement)."""
        got = quotes.recent_quotes(session, tickers, depth + 1)
        times = sorted({int(q.time.timestamp()) for qs in got.values() for q in qs
                        if int(q.time.timestamp()) < slot})[-depth:]
        at = {t: j for j, t in enumerate(times)}
        bars = cls(tuple(tickers), times, {k: np.full((len(tickers), len(times)), np.nan) for k in STORED},
                   depth)
        for i, t in enumerate(tickers):
            for q in got.get(t, ()):
                j = at.get(int(q.time.timestamp()))
                if j is not None:
                    bars._put(i, j, q)
        return bars

    def _put(self, i: int, j: int, q: Quote) -> None:
        d = self.data
        d["close"][i, j] = q.price
        d["volume"][i, j] = np.nan if q.volume is None else q.volume
        d["prev_close"][i, j] = np.nan if q.prev_close is None else q.prev_close
        d["day_high"][i, j] = np.nan if q.high is None else q.high
        d["day_low"][i, j] = np.nan if q.low is None else q.low

    def append(self, slot: int, rows: np.ndarray, readings: Mapping[str, np.ndarray]) -> None:
        """This tick's bar: the readings at ``rows`` (the accepted ones); NaN (stale) for the rest.

        ``readings`` are the tick's columns by symbol (``price``, ``volume``,
        ``prev_close``, ``high``, ``low``: :attr:`webapp.core.latest.Latest.cols`).
        """
        n = len(self.tickers)
        self.data = {k: np.concatenate([self.data[k], np.full((n, 1), np.nan)], axis=1)[:, -self.depth:]
                     for k in STORED}
        self.times = [*self.times, slot][-self.depth:]
        for k, src in zip(STORED, ("price", "volume", "prev_close", "high", "low"), strict=True):
            self.data[k][rows, -1] = readings[src][rows]


@dataclass
class Evaluated:
    """A tick's rule work: what to write in its transaction, and what to emit after."""

    fires: list[alert_events.FireRow] = field(default_factory=list)
    states: list[tuple[int, int, str, TickerState]] = field(default_factory=list)
    rules: int = 0
    stopped: list[tuple[int, str]] = field(default_factory=list)
    made: dict[str, int] = field(default_factory=dict)  # dedupe key -> event id, after the write
    owners: dict[str, int | None] = field(default_factory=dict)  # dedupe key -> the event's owner
    engine: RuleEngine | None = None
    progress: tuple[tuple[int, int], int] | None = None  # (shard, slot) evaluated, stored with the states

    def write(self, conn: Connection) -> int:
        """Inside the tick's transaction: the events, their deliveries, the states, the progress."""
        written = alert_events.write_fires(conn, self.fires, self.states, self.progress)
        self.made, self.owners = written.made, written.owners
        return written.queued

    def committed(self) -> None:
        """The tick's transaction committed: the engine's states are Postgres's again."""
        if self.engine is not None:
            self.engine.committed(self)


class RuleEngine:
    """Held by a tick process: its bars and parsed rules outlive the tick."""

    def __init__(self) -> None:
        self.bars = Bars()
        self._parsed: dict[tuple[int, int], LiveRule] = {}
        self.refills = 0
        self._states: dict[int, dict[str, TickerState]] = {}
        self._states_key: tuple[Any, ...] | None = None  # ((rules, symbols), slot) the states hold after
        self._pending_key: tuple[Any, ...] | None = None
        self._fingerprint: tuple[Any, ...] | None = None  # of the active rules last read
        self._live_rules: list[LiveRule] = []
        self._symbols: tuple[str, ...] = ()
        self._generation = 0  # bumped when the tick's symbols change
        self._loaded: tuple[tuple[str, ...], int] | None = None  # (symbols, slot) :meth:`load` read for
        self._through: int | None = None  # the last slot evaluated before this tick's (a gap: catch up)
        self._shard: tuple[int, int] = (0, 1)
        self.builtin_muted = False  # the built-in SMA crossover paused: its ``alert`` events are not sent
        self._printed: frozenset[str] = frozenset()  # tickers whose intra-bar rules are judged on the print
        self._printed_at = 0  # bumped when that set changes (the states are read again)

    def _live(self, rows: Sequence[Any], slot: int) -> list[LiveRule]:
        """The active rules, parsed once per version; one first met now starts at this ``slot`` (it is
        not judged on bars a catch-up evaluates from before it)."""
        out, seen = [], {}
        for r in rows:
            key = (r.id, r.version)
            got = self._parsed.get(key) or live_rule(r, slot)  # new, or a new version: with its JSON
            if got is None:
                continue
            seen[key] = got
            out.append(got)
        self._parsed = seen
        return out

    def load(self, session: Session, symbols: Sequence[str], slot: int, tick_seconds: int,
             shard: tuple[int, int] = (0, 1), printed: frozenset[str] = frozenset()) -> bool:
        """This tick's Postgres reads (the rules, when they changed; the bars and the states, when this
        process cannot continue its own); whether any rule is active.

        Done before the tick's COPYs start on the same connection, so that
        :meth:`evaluate`, which reads nothing, runs while Postgres stores.
        When the shard's rules were last evaluated on an earlier slot than the
        previous one (ticks ran while Postgres was down, their rows spooled and
        now stored), the bars read reach back to it, and :meth:`evaluate`
        judges the missed bars too (at most :data:`MAX_CATCH_UP`).
        """
        now = rule_states.rules_now(session, shard)
        self.builtin_muted = now.builtin_muted
        fingerprint = now.fingerprint
        if fingerprint != self._fingerprint:  # something changed: read the rules (new ones with their JSON)
            self._live_rules = self._live(rule_states.live_rules(session, list(self._parsed)), slot)
            self._fingerprint = fingerprint
        live = self._live_rules
        self._loaded = None
        if not live:
            return False
        through = now.evaluated_through
        behind = through is not None and through < slot - tick_seconds
        missed = (slot - through) // tick_seconds - 1 if behind else 0  # type: ignore[operator]
        if missed > MAX_CATCH_UP:
            log.warning("alert rules: %d bars were not evaluated (Postgres was down); evaluating the last %d",
                        missed, MAX_CATCH_UP)
            missed = MAX_CATCH_UP
        self._through = slot - (missed + 1) * tick_seconds if missed else None
        self._shard = shard
        depth = max(r.depth for r in live) + missed
        if self.bars.continues(symbols, slot, tick_seconds, depth):
            self.bars.depth = depth  # back to what the rules need after a catch-up read more
        else:
            self.bars = Bars.stored(session, symbols, depth, slot)
            self.refills += 1
        if tuple(symbols) != self._symbols:
            self._symbols, self._generation = tuple(symbols), self._generation + 1
        if printed != self._printed:  # the evaluate process took or gave back tickers: its states count
            self._printed, self._printed_at = printed, self._printed_at + 1
        rules_key = (fingerprint, self._generation, self._printed_at)
        if self._states_key != (rules_key, slot - tick_seconds):
            self._states = rule_states.states_of(session, [r.rule.id for r in live])
        self._pending_key = (rules_key, slot)
        self._states_key = None  # valid again only once this tick commits
        self._loaded = (tuple(symbols), slot)
        return True

    def evaluate(self, symbols: Sequence[str], slot: int, rows: np.ndarray, accepted: Sequence[Quote],
                 readings: Mapping[str, np.ndarray], now: datetime, started: float,
                 scan_table: scan_core.Table | None = None, scan_position: Mapping[str, int] | None = None,
                 scan_settings: scan_core.Settings | None = None) -> Evaluated:
        """Every active rule over this tick's bar of ``symbols`` (``rows``: the accepted quotes' rows),
        after :meth:`load` for the same symbols and slot; reads nothing."""
        out = Evaluated(engine=self)
        live = self._live_rules
        if self._loaded != (tuple(symbols), slot) or not len(accepted):
            return out
        self.bars.append(slot, rows, readings)
        out.progress = (self._shard, slot)
        states = self._states
        index = {t: i for i, t in enumerate(symbols)}
        series_all = self._series(scan_table, scan_position, symbols)
        stale_all = np.isnan(series_all["close"])
        times = np.array(self.bars.times, np.int64)
        by_ticker = {q.ticker: q for q in accepted}
        chosen, rows_of = [], []
        mask: np.ndarray | None = None
        key = self._generation
        for lr in live:
            if lr.rows is not None and lr.rows[0] == key:
                picked = lr.rows[1]
            else:
                picked = self._scope(lr.scope, index, symbols, scan_table, scan_position, scan_settings)
                if "scan" not in lr.scope:  # a list's members change every tick; the rest do not
                    lr.rows = (key, picked)
            if self._printed and judged_on_print(lr.rule.frequency, lr.scope):  # the evaluate process's
                if mask is None:  # once per tick: the rows the tick still judges intra-bar rules on
                    mask = np.array([t not in self._printed for t in symbols], bool)
                picked = np.flatnonzero(mask) if picked is None else picked[mask[picked]]
            if picked is None or len(picked):
                chosen.append(lr)
                rows_of.append(picked)
        first = len(times) - 1  # this tick's bar, or from the first one after a gap
        if self._through is not None:
            first = min(first, int(np.searchsorted(times, self._through, side="right")))
        got = evaluate_many([lr.rule for lr in chosen], rows_of, symbols, series_all, times,
                            [states.get(lr.rule.id, {}) for lr in chosen], stale_all, first, {})
        out.rules = len(chosen)
        latency = round((time.perf_counter() - started) * 1000, 2)
        by_id = {lr.rule.id: lr for lr in chosen}
        for f in got.fires:
            q, lr = by_ticker.get(f.ticker), by_id[f.rule_id]
            if f.bar_time == slot and q is not None:  # this tick's reading
                source, age = q.source, (now - q.time).total_seconds()
            else:  # a bar caught up after a gap: as old as it is
                source, age = None, now.timestamp() - f.bar_time
            out.fires.append(alert_events.FireRow(f, lr.name, lr.endpoints, source, max(0.0, age), latency))
        out.states = [(chosen[k].rule.id, chosen[k].rule.version, t, st) for k, t, st in got.states]
        out.stopped = [(chosen[k].rule.id, t) for k, t in got.stopped]
        return out

    def committed(self, done: Evaluated) -> None:
        for rid, _, ticker, st in done.states:
            self._states.setdefault(rid, {})[ticker] = st
        self._states_key = self._pending_key

    def _series(self, table: scan_core.Table | None, position: Mapping[str, int] | None,
                symbols: Sequence[str]) -> dict[str, np.ndarray]:
        d = self.bars.data
        series = reading_series(d, self.bars.times)
        shape = d["close"].shape
        at = (np.array([position.get(t, -1) for t in symbols], np.int64)
              if table is not None and position else None)
        for k in CURRENT_METRICS:
            if k == "vwap_distance_pct":
                continue  # the operand derives it from close and vwap
            col = np.full(shape, np.nan)
            if at is not None:
                ok = at >= 0
                col[ok, -1] = table[k][at[ok]]  # type: ignore[index]
            series[k] = col
        return series

    @staticmethod
    def _scope(scope: Mapping[str, Any], index: Mapping[str, int], symbols: Sequence[str],
               table: scan_core.Table | None, position: Mapping[str, int] | None,
               settings: scan_core.Settings | None) -> np.ndarray | None:
        """Rows of the scope's tickers in this tick (None: all of them)."""
        if scope.get("all"):
            return None
        if "tickers" in scope:
            return np.array(sorted(index[t] for t in scope["tickers"] if t in index), np.int64)
        if table is None or not position or settings is None:
            return np.zeros(0, np.int64)
        _, qualifies = scan_core.list_values(table, scope["scan"], settings)
        rows = [index[t] for t, p in position.items() if t in index and qualifies[p]]
        return np.array(sorted(rows), np.int64)
