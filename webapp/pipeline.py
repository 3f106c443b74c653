"""One tick of the tracker: fetch, validate, window, indicators, store, emit.

The order is chosen so that a retry repairs rather than duplicates:

1. take the tick lock and read Redis (2 round-trips); a slot already
   finished is skipped;
2. rebuild any ticker whose hot keys are gone from Postgres (0 or 2 queries);
3. fetch (not at all for a real feed while the exchange is closed);
4. validate (an unchanged provider time is stale) and compute SMA and
   crossover with the pure core;
5. write Postgres *before* Redis, so a crash between them is completed by
   the retry instead of losing history (unique keys keep rows single);
6. write Redis, mark the slot done and release the lock (1 round-trip);
7. emit: read which ticker rooms have listeners, then send ``stock_update``,
   the ``quote``s someone listens to and every ``alert`` (2 round-trips).
"""
from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from webapp import history, hot, scanner
from webapp.config import Config
from webapp.core import indicators
from webapp.core.indicators import Sma, Step
from webapp.core.market import MarketState, market_state, slot_of
from webapp.core.quotes import Quote, to_ticks
from webapp.core.readings import doc_quote, doc_sma, public_view, reading_doc
from webapp.core.validation import quote_problem
from webapp.hot import Apply, HotState, HotStore, Restore, Shard
from webapp.providers.base import FetchResult, Provider
from webapp.publisher import Batch, Publisher

log = logging.getLogger(__name__)


def max_age(config: Config, provider: Provider, market: MarketState) -> float | None:
    """How old a reading may be before it shows as stale (None: not while closed)."""
    if provider.follows_market_hours and not market.is_open:
        return None
    return 3.0 * config.TICK_SECONDS


@dataclass
class TickServices:
    """Everything a tick touches, built once per process by the caller."""

    config: Config
    provider: Provider
    hot: HotStore
    session: Session
    publisher: Publisher
    market: Callable[[datetime], MarketState] = market_state


@dataclass
class TickReport:
    slot: int
    at: datetime
    market: str
    skipped: str | None = None
    symbols: int = 0
    fetched: int = 0
    accepted: int = 0
    restored: int = 0
    stale: dict[str, str] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    emitted: int = 0
    duration_ms: float = 0.0
    phases_ms: dict[str, float] = field(default_factory=dict)

    def mark(self, phase: str, since: float) -> float:
        """Record the time spent in ``phase`` since ``since``; returns now."""
        now = time.perf_counter()
        self.phases_ms[phase] = round((now - since) * 1000, 1)
        return now

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot, "at": self.at.isoformat(), "market": self.market,
            "skipped": self.skipped, "symbols": self.symbols, "fetched": self.fetched,
            "accepted": self.accepted, "restored": self.restored,
            "stale": self.stale, "alerts": self.alerts, "emitted": self.emitted,
            "duration_ms": round(self.duration_ms, 1), "phases_ms": self.phases_ms,
        }


def _other_period(doc: dict[str, Any], period: int) -> bool:
    """A document whose window or SMA was kept for a different SMA_PERIOD."""
    return len(doc["w"]) > period or (doc["n"] is not None and doc["n"] != period)


def _restore(svc: TickServices, state: HotState, missing: Sequence[str]) -> list[Restore]:
    """Rebuild lost hot state from Postgres so SMAs continue without a false alert."""
    period = svc.config.SMA_PERIOD
    rows = history.recent_quotes(svc.session, missing, period)
    if not rows:
        return []
    alerts = history.last_alerts(svc.session, list(rows))
    restores = []
    for ticker, quotes in rows.items():
        prices = [q.price for q in quotes]
        window = [to_ticks(p) for p in prices]
        prior = alerts.get(ticker)
        last_alert = None
        if prior is not None:
            last_alert = {"kind": prior.kind, "time": prior.time.isoformat(),
                          "price": prior.price, "sma": prior.sma}
        doc = reading_doc(quotes[-1], window, indicators.sma(window, period), None, last_alert)
        state.latest[ticker] = doc
        restores.append(Restore(ticker, doc, prices))
    return restores


def _validate(
    svc: TickServices,
    symbols: Sequence[str],
    quotes: Sequence[Quote],
    previous: dict[str, Quote],
    now: datetime,
    stale: dict[str, str],
) -> list[Quote]:
    """The quotes that may enter the stores; the refused go into ``stale``."""
    wanted = set(symbols)
    seen: set[str] = set()
    accepted = []
    for q in quotes:
        if q.ticker not in wanted or q.ticker in seen:
            log.warning("provider %s returned unrequested or repeated ticker %r; ignored",
                        svc.provider.name, q.ticker)
            continue
        seen.add(q.ticker)
        prev = previous.get(q.ticker)
        problem = quote_problem(q, prev.time if prev else None, now)
        if problem:
            stale[q.ticker] = problem
        else:
            accepted.append(q)
    return accepted


def _steps(quotes: Sequence[Quote], latest: dict[str, dict[str, Any]], period: int) -> list[Step]:
    """Window, SMA and crossover for each quote, in order.

    Tickers in the steady state (a full window and a previous SMA) go through
    the vectorised ``step_many``; the few still filling take ``step``.
    """
    out: list[Step | None] = [None] * len(quotes)
    steady: list[int] = []
    for i, q in enumerate(quotes):
        before = latest.get(q.ticker)
        if before and before["s"] is not None and len(before["w"]) == period:
            steady.append(i)
        elif before:
            out[i] = indicators.step(before["w"], to_ticks(before["v"]["price"]), doc_sma(before),
                                     to_ticks(quotes[i].price), period)
        else:
            out[i] = indicators.step([], None, None, to_ticks(q.price), period)
    if steady:
        befores = [latest[quotes[i].ticker] for i in steady]
        many = indicators.step_many(
            [b["w"] for b in befores],
            [to_ticks(b["v"]["price"]) for b in befores],
            [Sma(b["s"], b["n"]) for b in befores],
            [to_ticks(quotes[i].price) for i in steady],
            period,
        )
        for i, window, total, alert in zip(steady, many.windows, many.totals, many.alerts, strict=True):
            out[i] = Step(window, Sma(total, period), alert)
    return out  # type: ignore[return-value]


def run_tick(
    svc: TickServices,
    symbols: Sequence[str],
    now: datetime,
    shard: Shard = (0, 1),
    all_symbols: Sequence[str] | None = None,
) -> TickReport:
    """Run the tick for the slot containing ``now``.  Safe to run twice.

    Ticks are serialised by a Redis lock (a slow tick makes the next one wait
    rather than interleave); the lock is released by the final Redis write.

    With ``shard=(i, n)`` this is one of n parallel parts of the slot, for
    ``symbols`` (its share of ``all_symbols``): each part emits its own quotes
    and alerts, and the last part to finish announces the whole slot with the
    one ``stock_update``.
    """
    started = time.perf_counter()
    cfg = svc.config
    slot, slot_time = slot_of(now, cfg.TICK_SECONDS)
    market = svc.market(now)
    report = TickReport(slot, slot_time, market.state, symbols=len(symbols))
    token = svc.hot.lock(hold_seconds=cfg.TICK_SECONDS + 30, wait_seconds=cfg.TICK_SECONDS, shard=shard)
    # A tick allocates tens of thousands of small dicts and lists that live
    # until it ends; the cyclic collector would rescan them again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _locked_tick(svc, symbols, now, market, token, report, shard, all_symbols or symbols)
    except BaseException:
        # leave nothing half-open for the next tick: no lock, no transaction
        svc.session.rollback()
        svc.hot.unlock(token, shard)
        raise
    finally:
        if gc_was_enabled:
            gc.enable()
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report


def _locked_tick(
    svc: TickServices,
    symbols: Sequence[str],
    now: datetime,
    market: MarketState,
    token: str,
    report: TickReport,
    shard: Shard,
    all_symbols: Sequence[str],
) -> None:
    cfg = svc.config
    slot, slot_time = report.slot, report.at
    t = time.perf_counter()
    scan_keys = scanner.ScanInputs.keys(cfg, shard, slot_time) if cfg.SCANNER else []
    state = svc.hot.read(symbols, slot, shard, scan_keys)
    if state.slot_done:
        svc.hot.unlock(token, shard)
        report.skipped = "slot already done"
        return

    latest = state.latest
    period = cfg.SMA_PERIOD
    # lost keys, or state kept for another SMA_PERIOD: rebuild both from Postgres
    missing = [s for s in symbols if s not in latest or _other_period(latest[s], period)]
    restores = _restore(svc, state, missing) if missing else []
    report.restored = len(restores)
    t = report.mark("read", t)

    times: dict[str, datetime] = {}
    previous = {s: doc_quote(d, times) for s, d in latest.items()}
    if svc.provider.follows_market_hours and not market.is_open:
        result = FetchResult()
        report.skipped = f"market closed; next open {market.next_open.isoformat()}"
    else:
        result = svc.provider.fetch(symbols, now, previous)
    report.fetched = len(result.quotes)
    t = report.mark("fetch", t)

    stale = dict(result.problems)
    accepted = _validate(svc, symbols, result.quotes, previous, now, stale)
    applies: list[Apply] = []
    rows: list[history.QuoteRow] = []
    alert_rows: list[history.AlertRow] = []
    views: dict[str, dict[str, Any]] = {}
    iso: dict[datetime, str] = {}
    for q, step in zip(accepted, _steps(accepted, latest, period), strict=True):
        ticker = q.ticker
        before = latest.get(ticker)
        when = iso.get(q.time) or iso.setdefault(q.time, q.time.isoformat())
        doc = reading_doc(q, step.window, step.sma, step.alert,
                          before["v"]["last_alert"] if before else None, when)
        view = views[ticker] = doc["v"]
        applies.append(Apply(ticker, q.price, doc))
        rows.append(history.QuoteRow(q, view["sma"]))
        if step.alert:
            alert_rows.append(history.AlertRow(ticker, q.time, step.alert, q.price, view["sma"]))
    report.accepted = len(applies)
    report.stale = stale
    if stale:
        shown = ", ".join(f"{t} ({r})" for t, r in list(stale.items())[:10])
        more = f" and {len(stale) - 10} more" if len(stale) > 10 else ""
        log.warning("marked stale: %s%s", shown, more)

    t = report.mark("compute", t)
    cleared = [s for s in state.stale if s in views]
    scan = None
    if cfg.SCANNER:
        marked = (set(state.stale) - set(cleared)) | set(stale)
        scan = scanner.scan(cfg, svc.session, symbols, accepted, previous,
                            scanner.ScanInputs.of(state.extra), now, slot, slot_time, shard,
                            max_age(cfg, svc.provider, market), marked)
        t = report.mark("scan", t)

    # Postgres first: if Redis fails after this, the retry finds the slot
    # unfinished and the unique keys keep the rows single.  The COPYs run on
    # a helper thread while the Redis write and the emits are prepared.
    pending = history.PendingInsert(svc.session, rows, alert_rows)
    summary = {"slot": slot, "at": slot_time.isoformat(), "ran_at": now.isoformat(),
               "market": market.state, "symbols": len(symbols), "accepted": len(applies),
               "stale": len(stale), "provider": svc.provider.name}
    prepared = svc.hot.prepare_write(slot, token, summary, restores, applies, stale, cleared, shard,
                                     scan.write if scan else hot.NO_SCAN)
    batch = _emits(svc, views, report, scan)
    t = report.mark("prepare", t)
    pending.finish()
    t = report.mark("postgres_wait", t)

    first, finished = svc.hot.write(prepared)
    t = report.mark("redis_write", t)
    if not first:
        log.error("slot %s was finished by another tick while this one held the lock; "
                  "not emitting twice", slot)
        return
    if shard[1] == 1 or finished == shard[1]:  # the whole slot is done: announce it, once
        if shard[1] == 1:
            latest, marks = state.latest, state.stale
        else:  # other shards' readings too (one MGET)
            everything = svc.hot.read(all_symbols, None)
            latest, marks = everything.latest, everything.stale
        batch.stock_update(_stock_update(svc, all_symbols, now, market, latest, marks, views, stale,
                                         slot_time))
        if scan is not None:
            _scan_emits(svc, scan, batch, slot, slot_time)
    report.emitted = len(batch.messages)
    batch.send()
    report.mark("emit", t)


def _stock_update(
    svc: TickServices,
    symbols: Sequence[str],
    now: datetime,
    market: MarketState,
    latest: dict[str, dict[str, Any]],
    marks: dict[str, str],
    views: dict[str, dict[str, Any]],
    stale: dict[str, str],
    slot_time: datetime,
) -> dict[str, Any]:
    """BRIEF's stock_update: every ticker's reading, fresh ones from this tick."""
    limit = max_age(svc.config, svc.provider, market)
    stocks = []
    for s in symbols:
        view = views.get(s)
        if view is None and s in latest:
            view = public_view(latest[s], stale.get(s, marks.get(s)), now, limit)
        if view is not None:
            stocks.append(view)
    return {"type": "stock_update", "timestamp": slot_time.isoformat(), "stocks": stocks,
            "market": market.as_json()}


def _scan_emits(svc: TickServices, scan: scanner.ScanResult, batch: Batch, slot: int,
                slot_time: datetime) -> None:
    """The lists' changes to their rooms, and ``in_play`` to listened tickers that entered one."""
    if scan.updates is not None:
        updates, entered = scan.updates, scan.entered
    else:  # sharded: the last shard reads what every shard wrote
        updates, entered = scanner.announce_sharded(svc.hot.client, svc.config, slot, slot_time)
    for payload in updates.values():
        batch.scan_update(payload)
    for ticker, lists in entered.items():
        if ticker in batch.listening:
            batch.in_play({"ticker": ticker, "lists": lists, "time": slot_time.isoformat()})


def _emits(svc: TickServices, views: dict[str, dict[str, Any]], report: TickReport,
           scan: scanner.ScanResult | None) -> Batch:
    """The tick's own messages: quotes where someone listens, and every alert."""
    listening = svc.publisher.listening()
    batch = svc.publisher.batch()
    batch.listening = listening
    for ticker, view in views.items():
        heard = ticker in listening
        if heard:
            row = scan.row(ticker) if scan else None
            batch.quote({**view, "scan": row} if row else view)
        if view["alert"]:
            payload = {"ticker": ticker, "kind": view["alert"], "price": view["price"],
                       "sma": view["sma"], "time": view["time"]}
            batch.alert(payload, to_ticker_room=heard)
            report.alerts.append(payload)
    return batch
