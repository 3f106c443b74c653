"""One symbol shard's rules on the print: their bars, their states, and the judgment of a hand-off.

Held by the evaluate process for each shard it leases.  The rules judged
here are those with an intra-bar frequency (``once_per_bar``,
``every_time``, ``once``) over tickers or every ticker; ``once_per_bar_close``
stays with the minute tick, as do rules over a scanner list (its members
change each minute).  The closed bars are the stored minute readings, as the
tick keeps them (:class:`webapp.tick.rules.Bars`), read again when a new bar
begins; a bar the tick has not stored yet is taken from its last hand-off.
The provisional bar is appended as the newest and judged at each of its
prints (:mod:`webapp.core.rules.intrabar`) by the one evaluator
(:func:`webapp.core.rules.evaluate.evaluate_many` with ``intrabar``), so the
fire, its inputs and its dedupe key are the tick's.

Nothing here is written: :meth:`judge` returns the fires and the changed
states, the process stores them in one transaction, and :meth:`committed`
makes them this engine's only after the commit.
"""
from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy.orm import Session

from webapp.core.handoff import WIDE, Handoffs
from webapp.core.market import EXCHANGE_TZ
from webapp.core.rules.evaluate import evaluate_many
from webapp.core.rules.intrabar import AT, CLOSED, Provisional, describe, print_columns, with_columns
from webapp.core.rules.model import STATUS_OPS, judged_on_print
from webapp.core.rules.operands import reading_series
from webapp.core.rules.state import TickerState
from webapp.core.shards import shard_of
from webapp.store import alert_events, rule_states
from webapp.tick.rules import Bars, LiveRule, live_rule

log = logging.getLogger(__name__)

_BAR_TIME, _HIGH, _LOW, _CLOSE, _VOLUME, _TRADES = (AT[k] for k in (
    "bar_time", "high", "low", "close", "volume", "trades"))  # hand-off columns

# the live tape's columns for some tickers (:meth:`webapp.evaluate.scanner.LiveScanner.columns`)
LiveColumns = Callable[[Sequence[str], Sequence[int]], Mapping[str, np.ndarray]]


class StatusChange(NamedTuple):
    """A halt or a resume the stream reported (in a hand-off of its shard)."""

    ticker: str
    what: str  # "halted" or "resumed"
    time_ms: int
    code: str = ""

    @classmethod
    def of(cls, row: object) -> StatusChange:
        """From a hand-off's ``status`` row ``[ticker, what, time_ms, code]``; ValueError when malformed."""
        if (type(row) is not list or len(row) != 4 or type(row[0]) is not str
                or row[1] not in ("halted", "resumed") or type(row[2]) is not int or row[2] <= 0):
            raise ValueError(f"a status row is [ticker, halted|resumed, time_ms, code], got {str(row)[:80]}")
        return cls(row[0], row[1], row[2], str(row[3] or ""))

    def describe(self) -> str:
        at = datetime.fromtimestamp(self.time_ms / 1000, EXCHANGE_TZ)
        code = f" ({self.code})" if self.code else ""
        return f"on the stream's status message: {self.what}{code} at {at:%H:%M:%S}.{self.time_ms % 1000:03d}"

RULES_EVERY_SECONDS = 1.0  # a new, changed or paused rule is seen within this (and a missing bar)
GAP_TRIES = 10  # times a bar the stream has not closed is asked for again (a ticker may not have traded)
# (bar end, tickers) -> each one's (high, low, close, volume) in the stream's closed bar, and whether the
# stream has closed that bar
ClosedBars = Callable[[int, Sequence[str]], tuple[Mapping[str, tuple[float, float, float, float]], bool]]

@dataclass
class Judged:
    fires: list[alert_events.FireRow] = field(default_factory=list)
    states: list[tuple[int, int, str, TickerState]] = field(default_factory=list)
    work: dict[int, dict[str, TickerState]] = field(default_factory=dict)
    # by the shard's rows: (the bar, its last print judged), -1 for none
    marks: np.ndarray = field(default_factory=lambda: np.full((0, 2), -1, np.int64))


class Scopes(NamedTuple):
    """The rules' tickers as a shard's rows: each scoped rule's (sorted) one after another in ``flat``,
    ending at ``ends``; ``scoped``: per rule, whether it names tickers (else it takes every one)."""

    flat: np.ndarray
    ends: np.ndarray
    scoped: list[bool]


class ShardEngine:
    def __init__(self, shard: tuple[int, int], width: int, resumed_seconds: int = 600,
                 closed_bars: ClosedBars | None = None) -> None:
        self.shard = shard
        self.first_bar: int | None = None  # the first bar judged (hand-offs before it were another's)
        self.closed_bars = closed_bars  # the stream's closed bars (webapp.store.streamstate.closed_bars)
        self._gaps = False  # some ticker has no bar before the judged one: asked again each second
        self._missing: set[str] = set()  # those tickers
        self._gaps_at = 0.0
        self._gap_tries = 0  # asked again for the bar judged now
        self.width = width
        self.resumed_ms = resumed_seconds * 1000
        self.resumed: dict[str, int] = {}  # ticker -> when the stream said its halt ended (ms)
        self.seconds: set[int] = set()  # the moves over seconds the rules read of the live tape
        self.signals = False  # whether any rule reads a signal (else no live column is made)
        self.rules: list[LiveRule] = []
        self._fingerprint: tuple[Any, ...] | None = None
        self.tickers: tuple[str, ...] = ()
        self._index: dict[str, int] = {}
        self.bars = Bars()
        self.bar_time = 0  # the bar the stored bars were read for (they end before it)
        self.states: dict[int, dict[str, TickerState]] = {}
        self.marks = np.full((0, 2), -1, np.int64)  # each row's (bar, last print judged in it), -1: none
        # each ticker's newest hand-off (a bar not yet stored), by its row here: hand-off columns
        self.last = np.full((0, WIDE), np.nan)
        self.watched: set[str] | None = None  # tickers the rules name (None: all, or not read yet)
        self._rules_at = float("-inf")
        self._symbols: Sequence[str] | None = None  # the symbol list ``tickers`` was drawn from
        self._mine: tuple[str, ...] = ()
        # (rules, tickers, their rows): :meth:`_scopes`; (watched, tickers, mask): :meth:`_watched_rows`
        self._scoped: tuple[list[LiveRule], tuple[str, ...], Scopes] | None = None
        self._watching: tuple[set[str] | None, tuple[str, ...], np.ndarray] | None = None

    def refresh(self, session: Session, symbols: Sequence[str], bar_time: int, at: float = 0.0) -> None:
        """Read what changed: the rules (and then their states; looked at once a second of ``at``,
        the caller's clock), the shard's tickers, and the stored bars when a new bar began."""
        if self.first_bar is None:
            self.first_bar = bar_time
        now = None
        if at - self._rules_at >= RULES_EVERY_SECONDS or not at:
            self._rules_at = at
            now = rule_states.rules_now(session, self.shard)
        if now is not None and now.fingerprint != self._fingerprint:
            rows = rule_states.live_rules(session)
            self.rules = [lr for r in rows if judged_on_print(r.frequency, dict(r.scope))
                          and (lr := live_rule(r, 0)) is not None]
            self.states = rule_states.states_of(session, [lr.rule.id for lr in self.rules])
            self._fingerprint = now.fingerprint
            # the tickers some rule names (None: every one): the rest of a hand-off is not judged
            named = [lr.scope["tickers"] for lr in self.rules if "tickers" in lr.scope]
            self.watched = None if len(named) < len(self.rules) else {t for ts in named for t in ts}
            self.seconds = {leaf.seconds for lr in self.rules for leaf in lr.rule.condition.leaves
                            if leaf.seconds is not None}
            self.signals = any(lr.rule.condition.signals for lr in self.rules)
        if symbols is not self._symbols:  # (the same list for 30 s: a CRC-32 of each ticker per batch
            self._symbols = symbols       # cost 1.5 ms at 10,000 symbols)
            self._mine = tuple(t for t in symbols if shard_of(t, self.shard[1]) == self.shard[0])
        mine = self._mine
        depth = max((lr.depth for lr in self.rules), default=2)
        if mine != self.tickers or bar_time != self.bar_time or depth > self.bars.depth:
            if mine != self.tickers:
                self.use(mine)
            self.bars = Bars.stored(session, mine, depth, bar_time)
            self.bar_time = bar_time
            self._gap_tries = 0
            self._patch_previous(bar_time, at)
        elif self._gaps and (not at or at - self._gaps_at >= RULES_EVERY_SECONDS):
            self._gap_tries += 1
            self._patch_previous(bar_time, at)

    def use(self, tickers: tuple[str, ...]) -> None:
        """Judge these tickers (the shard's, or a replay's), each one's last hand-off kept."""
        last, marks = np.full((len(tickers), WIDE), np.nan), np.full((len(tickers), 2), -1, np.int64)
        for i, t in enumerate(tickers):
            if (k := self._index.get(t)) is not None:
                last[i], marks[i] = self.last[k], self.marks[k]
        self.tickers, self._index = tickers, {t: i for i, t in enumerate(tickers)}
        self.last, self.marks = last, marks

    def _patch_previous(self, bar_time: int, at: float = 0.0) -> None:
        """The bar before ``bar_time`` where the tick has not stored it yet (it stores a bar a second or
        so after its end; the first prints of the next come first): the stream's closed bar, else the
        ticker's last hand-off of it.  Asked again each second (:meth:`refresh`) while some ticker has
        neither and the stream has not closed the bar: a process that took the shard over knows no
        hand-off from before, and judged without that bar, ``x[1]`` would be an older one."""
        before = bar_time - self.width
        bars, n = self.bars, len(self.tickers)
        has = bool(bars.times) and bars.times[-1] == before
        missing = np.flatnonzero(np.isnan(bars.data["close"][:, -1])) if has else np.arange(n)
        self._gaps, self._gaps_at, self._missing = False, at, set()
        if not len(missing):
            return
        names = [self.tickers[i] for i in missing]
        handed = self.last[missing]
        got = {names[k]: (r[_HIGH], r[_LOW], r[_CLOSE], r[_VOLUME])
               for k, r in enumerate(handed.tolist()) if r[_BAR_TIME] == before}
        if self.closed_bars is not None:
            closed, done = self.closed_bars(before, names)
            got.update(closed)  # the whole bar: newer than any hand-off of it
            self._gaps = len(got) < len(names) and not done and self._gap_tries < GAP_TRIES
            self._missing = {t for t in names if t not in got} if self._gaps else set()
        rows = [(self._index[t], got[t]) for t in names if t in got]
        if not rows:
            return
        if not has:  # nothing stored for it at all yet
            bars.data = {k: np.concatenate([v, np.full((n, 1), np.nan)], axis=1)[:, -bars.depth:]
                         for k, v in bars.data.items()}
            bars.times = [*bars.times, before][-bars.depth:]
        d, has_prev = bars.data, bars.data["close"].shape[1] > 1
        for i, (high, low, close, volume) in rows:
            d["close"][i, -1], d["volume"][i, -1] = close, volume
            d["prev_close"][i, -1] = d["prev_close"][i, -2] if has_prev else np.nan
            d["day_high"][i, -1] = np.fmax(d["day_high"][i, -2], high) if has_prev else high
            d["day_low"][i, -1] = np.fmin(d["day_low"][i, -2], low) if has_prev else low

    def missing_previous(self, bar_time: int, tickers: Iterable[str]) -> bool:
        """Whether judging these tickers at ``bar_time`` now (as :meth:`refresh` left it) would go
        without the bar before it for one that may yet get it: this engine began judging at that bar
        or later (it saw some of its hand-offs or none, another process the rest), the tick has not
        stored it and the stream has not closed it.  Judged so, ``x[1]`` would be an older bar, and a
        cross from the right previous close would never fire."""
        return (self._gaps and bar_time == self.bar_time and self.first_bar is not None
                and self.first_bar >= bar_time - self.width and not self._missing.isdisjoint(tickers))

    def bar_of(self, ms: int) -> int:
        """The bar (its end) a moment falls in."""
        return (ms // 1000 // self.width + 1) * self.width

    def status_bars(self, changes: Sequence[StatusChange]) -> list[Provisional]:
        """A status message as a judgment: the ticker's last price, at the message's time, in the bar
        it came in (no trade: nothing but a halt or resume condition is judged at it)."""
        out = []
        for ch in changes:
            if (row := self._index.get(ch.ticker)) is not None:
                p, ms = float(self.last[row, _CLOSE]), ch.time_ms  # NaN: never handed off
                out.append(Provisional(ch.ticker, self.bar_of(ms), p, p, p, p, 0.0, 0, ms, ms, ms))
        return out

    def judge(self, bars: Handoffs | Sequence[Provisional], halted: set[str], now_ms: int,
              live: LiveColumns | None = None, status: Mapping[str, StatusChange] | None = None) -> Judged:
        """Every rule over these hand-offs (one bar time, coalesced; as columns, or as bars), at each of
        their prints.

        ``live``: the live tape's columns for the rules' signals (None: a signal that reads it never
        holds).  ``status``: these bars are status messages (:meth:`status_bars`), and only the rules
        that judge a halt or resume are judged at them."""
        handed = bars if isinstance(bars, Handoffs) else Handoffs.of(bars)
        bar_time, every = self.bar_time, handed.tickers.tolist()
        row_of = self._rows_of(every)
        sel = np.flatnonzero(row_of >= 0)
        sel = sel[(handed.cols[sel, _BAR_TIME] == bar_time) & self._watched_rows()[row_of[sel]]]
        live_rules = self.rules if status is None else [
            lr for lr in self.rules if any(leaf.op in STATUS_OPS for leaf in lr.rule.condition.leaves)]
        for ch in (status or {}).values():
            if ch.what == "resumed":
                self.resumed[ch.ticker] = ch.time_ms
            else:
                self.resumed.pop(ch.ticker, None)
        if not live_rules or not len(sel):
            return Judged(work=self.states, marks=self.marks)  # nothing judged: nothing to copy
        # in the shard's order, so that a rule's rows (its tickers' places here) come out sorted
        rows = row_of[sel]
        order = np.argsort(rows, kind="stable")
        sel, rows = sel[order], rows[order]
        names = [every[i] for i in sel.tolist()]
        cols = handed.cols[sel]
        marks = self.marks[rows]
        said = print_columns(cols, np.where(marks[:, 0] == bar_time, marks[:, 1], -1))
        high, low, volume = cols[:, _HIGH], cols[:, _LOW], cols[:, _VOLUME]
        # the states are copied only for the rules that change (a burst judges every rule, few fire)
        out = Judged(work=dict(self.states), marks=self.marks.copy())
        copied: set[int] = set()
        changed: dict[tuple[int, str], tuple[int, int, str, TickerState]] = {}  # the last state of each
        place = np.full(len(self.tickers), -1, np.int64)  # a shard row -> its place in this step
        scopes = self._scopes(live_rules)
        for j in range(int(said.count.max(initial=0))):
            at = np.flatnonzero(said.count > j)  # the bars with a j-th print
            sub = rows[at]
            closed = {k: self.bars.data[k][sub] for k in CLOSED}
            raw, times = with_columns(closed, self.bars.times, bar_time, high[at], low[at], volume[at],
                                      said.price[at, j])
            series = reading_series(raw, times)
            tickers = [names[i] for i in at.tolist()]
            if self.signals:
                self._live(series, tickers, halted, live, status, said.time_ms[at, j].tolist())
            place[:] = -1
            place[sub] = np.arange(len(sub))
            # every scoped rule's tickers here at once, then split by rule (sorted: ``place`` follows
            # the shard's rows, as each rule's rows do)
            got_at = place[scopes.flat]
            kept = got_at >= 0
            pieces = iter(np.split(got_at[kept], np.r_[0, np.cumsum(kept)][scopes.ends[:-1]]))
            rules, rows_of = [], []
            for lr, scoped in zip(live_rules, scopes.scoped, strict=True):
                picked = next(pieces) if scoped else None
                if picked is not None and not len(picked):
                    continue
                rules.append(lr)
                rows_of.append(picked)
            if not rules:
                break
            stale = np.zeros(series["close"].shape, bool)
            if halted:
                stale[[i for i, t in enumerate(tickers) if t in halted], -1] = True
            got = evaluate_many([lr.rule for lr in rules], rows_of, tickers, series, times,
                                [out.work.get(lr.rule.id, {}) for lr in rules], stale, len(times) - 1, {},
                                intrabar=True)
            for k, t, st in got.states:
                lr = rules[k]
                rid = lr.rule.id
                if rid not in copied:
                    out.work[rid] = dict(out.work.get(rid, {}))
                    copied.add(rid)
                out.work[rid][t] = st
                changed[(rid, t)] = (rid, lr.rule.version, t, st)
            by_id = {lr.rule.id: lr for lr in rules}
            position = {t: i for i, t in enumerate(tickers)} if got.fires else {}
            for f in got.fires:
                p = said.at(int(at[position[f.ticker]]), j)
                lr = by_id[f.rule_id]
                said_of = describe(p) if status is None else status[f.ticker].describe()
                fire = replace(f, inputs={**f.inputs, "trade_price": p.price, "trade_time_ms": p.time_ms},
                               explanation=f"{f.explanation}; {said_of}")
                out.fires.append(alert_events.FireRow(fire, lr.name, lr.endpoints, "stream",
                                                      max(0.0, (now_ms - p.time_ms) / 1000),
                                                      float(max(0, now_ms - p.time_ms))))
        if status is None:  # a status message is no trade: the trades around it are still judged
            judged = np.flatnonzero(said.count > 0)
            out.marks[rows[judged]] = np.stack([np.full(len(judged), bar_time),
                                                said.time_ms[judged, said.count[judged] - 1]], axis=1)
        out.states = list(changed.values())
        return out

    def _scopes(self, rules: Sequence[LiveRule]) -> Scopes:
        """The rules' tickers as this shard's rows, kept while the rules (the same objects: the cache
        holds them) and the shard's tickers stay the same."""
        held = self._scoped
        if (held is None or held[1] is not self.tickers or len(held[0]) != len(rules)
                or not all(map(operator.is_, held[0], rules))):
            index = self._index
            each = [sorted(index[t] for t in lr.scope["tickers"] if t in index) for lr in rules
                    if "tickers" in lr.scope]
            flat = np.fromiter(itertools.chain.from_iterable(each), np.int64)
            scopes = Scopes(flat, np.cumsum([len(e) for e in each], dtype=np.int64),
                            ["tickers" in lr.scope for lr in rules])
            held = self._scoped = (list(rules), self.tickers, scopes)
        return held[2]

    def _rows_of(self, tickers: Sequence[str]) -> np.ndarray:
        """Each hand-off's row here, by its ticker (-1: not this shard's)."""
        return np.fromiter(map(self._index.get, tickers, itertools.repeat(-1)), np.int64, len(tickers))

    def _watched_rows(self) -> np.ndarray:
        """Whether some rule names each of the shard's rows (all, when a rule takes every ticker)."""
        held = self._watching
        if held is None or held[0] is not self.watched or held[1] is not self.tickers:
            w = self.watched
            mask = np.fromiter((w is None or t in w for t in self.tickers), bool, len(self.tickers))
            held = self._watching = (w, self.tickers, mask)
        return held[2]

    def _live(self, series: dict[str, np.ndarray], tickers: Sequence[str], halted: set[str],
              live: LiveColumns | None, status: Mapping[str, StatusChange] | None, at_ms: Sequence[int]
              ) -> None:
        """The signals' columns for the judged (last) bar; NaN at the closed bars before it."""
        n, width = len(tickers), series["close"].shape[1]
        cols: dict[str, np.ndarray] = dict(live(tickers, sorted(self.seconds))) if live is not None else {}
        if status is None:
            cols["halted"] = np.array([t in halted for t in tickers], float)
            cols["resumed"] = np.array([0 <= at - self.resumed.get(t, -10**15) <= self.resumed_ms
                                        for t, at in zip(tickers, at_ms, strict=True)], float)
        else:
            cols["halted"] = np.array([status[t].what == "halted" for t in tickers], float)
            cols["resumed"] = 1.0 - cols["halted"]
        for name, last in cols.items():
            column = np.full((n, width), np.nan)
            column[:, -1] = last
            series[name] = column

    def committed(self, judged: Judged, bars: Handoffs | Sequence[Provisional]) -> None:
        """The judgment was stored: its states and marks are this engine's now, and each ticker's newest
        of ``bars`` its last hand-off (unless it holds a newer one)."""
        self.states, self.marks = judged.work, judged.marks
        handed = bars if isinstance(bars, Handoffs) else Handoffs.of(bars)
        row_of = self._rows_of(handed.tickers.tolist())
        sel = np.flatnonzero(row_of >= 0)
        if not len(sel):
            return
        rows, cols = row_of[sel], handed.cols[sel]
        # the newest (bar, trade count) of each row, then only where no newer one is held
        order = np.lexsort((cols[:, _TRADES], cols[:, _BAR_TIME], rows))
        rows, cols = rows[order], cols[order]
        newest = np.r_[rows[1:] != rows[:-1], True]
        rows, cols = rows[newest], cols[newest]
        held = self.last[rows]
        newer = (np.isnan(held[:, _BAR_TIME]) | (cols[:, _BAR_TIME] > held[:, _BAR_TIME])
                 | ((cols[:, _BAR_TIME] == held[:, _BAR_TIME]) & (cols[:, _TRADES] >= held[:, _TRADES])))
        self.last[rows[newer]] = cols[newer]
