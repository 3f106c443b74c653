"""One tick of the tracker: fetch, validate, window, indicators, store, emit.

The order is chosen so that a retry repairs rather than duplicates:

1. take the tick lock (a short TTL, renewed while the tick runs) and read
   Redis (2 round-trips); a slot already finished is skipped;
2. store what a Postgres outage left in the spool, then rebuild from
   Postgres any ticker whose hot state is gone, was kept for another SMA
   period, or whose previous slot reached Postgres but not Redis (0 or 2
   queries; 1 more only when the previous slot is not marked done).  When
   Redis is ahead instead (slots it ran whose rows were lost: the shard's
   stored-slot mark lags, or the spool overflowed), those slots are
   recorded as missed and the shard is rebuilt from Postgres, the record;
3. fetch (not at all for a real feed while the exchange is closed);
4. validate (an unchanged provider time is stale) and compute windows, SMA
   and crossover with the pure core, on columns (:mod:`webapp.core.latest`);
5. write Postgres *before* Redis, so a crash between them loses no history:
   the job's retry completes the slot (unique keys keep rows single), or the
   next slot finds it and repairs it (step 2); while Postgres is down the
   rows go to the spool and the tick carries on;
6. write Redis, mark the slot done and release the lock (1 round-trip);
7. emit: read which ticker rooms have listeners, then send ``stock_update``,
   the ``quote``s someone listens to and every ``alert`` (2 round-trips).
"""
from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from redis.exceptions import RedisError
from sqlalchemy import Connection

from webapp import names
from webapp.core.indicators import ALERT_CODES
from webapp.core.latest import Latest
from webapp.core.market import MarketState, exchange_day_start, slot_of
from webapp.core.quotes import Quote
from webapp.core.validation import quote_problems
from webapp.providers.base import FetchResult
from webapp.store import hot, sma_alerts
from webapp.store import quotes as quotes_store
from webapp.store.hot import Shard
from webapp.store.pg import DB_DOWN
from webapp.store.tick_write import PendingInsert
from webapp.tick import emits, repairs, scanner
from webapp.tick import rules as live_rules
from webapp.tick.context import TickReport, TickServices, max_age

log = logging.getLogger(__name__)


def _validate(
    svc: TickServices,
    position: dict[str, int],
    quotes: Sequence[Quote],
    latest: Latest,
    now: datetime,
    stale: dict[str, str],
) -> tuple[list[Quote], np.ndarray]:
    """The quotes that may enter the stores, with their rows; the refused go into ``stale``."""
    seen: set[str] = set()
    kept, rows = [], []
    for q in quotes:
        row = position.get(q.ticker)
        if row is None or q.ticker in seen:
            log.warning("provider %s returned unrequested or repeated ticker %r; ignored",
                        svc.provider.name, q.ticker)
            continue
        seen.add(q.ticker)
        kept.append(q)
        rows.append(row)
    at = np.array(rows, np.int64)
    problems = quote_problems(kept, latest.cols["time"][at], now)
    if not problems:
        return kept, at
    for i, why in problems.items():
        stale[kept[i].ticker] = why
    ok = [i for i in range(len(kept)) if i not in problems]
    return [kept[i] for i in ok], at[ok]


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
    hold = cfg.TICK_LOCK_TTL_SECONDS
    token = svc.hot.lock(hold_seconds=hold, wait_seconds=max(cfg.TICK_SECONDS, 2 * hold), shard=shard)
    # A tick allocates tens of thousands of small dicts and lists that live
    # until it ends; the cyclic collector would rescan them again and again.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with svc.hot.held(token, hold, shard):
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
    t = began = time.perf_counter()
    scan_keys = scanner.ScanInputs.keys(cfg, shard, slot_time) if cfg.SCANNER else []
    state = svc.hot.read(slot, shard, [*scan_keys, names.tick_done_key(slot - 1, *shard),
                                       names.SPOOL_COUNT_KEY, names.stored_slot_key(*shard)])
    stored_mark = state.extra.pop()
    spooled_before = state.extra.pop()
    previous_done = state.extra.pop() is not None
    if state.slot_done:
        svc.hot.unlock(token, shard)
        report.skipped = "slot already done"
        return

    # what an outage spooled goes to Postgres first, so a rebuild below reads it
    lost = repairs.drain(svc, report) if spooled_before is not None and svc.spool is not None else []
    if previous_done and spooled_before is None and stored_mark is not None and int(stored_mark) < slot - 1:
        lost = list(range(int(stored_mark) + 1, slot))  # Redis ran them; their rows are gone
    latest, missing = state.latest.aligned(symbols, cfg.SMA_PERIOD)
    unsent: list[sma_alerts.AlertRow] = []
    unsent_events: list[tuple[dict[str, Any], int | None]] = []
    if lost:  # Redis ahead of Postgres: Postgres is the record, so the windows follow it
        missing = repairs.redis_ahead(svc, symbols, lost)
    elif not previous_done:  # did the last slot reach Postgres but not Redis?
        diverged, unsent, unsent_events = repairs.diverged(svc, symbols, slot, slot_time, shard)
        missing = list(dict.fromkeys([*missing, *diverged]))
    # lost state, state kept for another SMA_PERIOD, or a store ahead of the other: rebuild from Postgres
    restores = repairs.restore(svc, latest, missing) if missing else []
    report.restored = len(restores)
    t = report.mark("read", t)

    previous = latest.previous()
    if svc.provider.follows_market_hours and not market.is_open:
        result = FetchResult()
        report.skipped = f"market closed; next open {market.next_open.isoformat()}"
    else:
        result = svc.provider.fetch(symbols, now, previous)
        result.quotes = repairs.prev_closes(svc, result.quotes, exchange_day_start(slot_time))
    report.fetched = len(result.quotes)
    t = report.mark("fetch", t)

    position = latest.index  # aligned: row i is symbols[i]
    stale = {s: why for s, why in result.problems.items() if s in position}
    accepted, rows = _validate(svc, position, result.quotes, latest, now, stale)
    steps = latest.apply(rows, accepted)
    latest.mark_stale(stale)
    smas = latest.sma_values(rows)
    quote_rows = [quotes_store.QuoteRow(q, sma) for q, sma in zip(accepted, smas, strict=True)]
    alert_rows = [sma_alerts.AlertRow(accepted[i].ticker, accepted[i].time, ALERT_CODES[steps.alert[i]],
                                   accepted[i].price, smas[i])
                  for i in np.flatnonzero(steps.alert).tolist()]
    report.accepted = len(accepted)
    report.stale = stale
    if stale:
        shown = ", ".join(f"{t} ({r})" for t, r in list(stale.items())[:10])
        more = f" and {len(stale) - 10} more" if len(stale) > 10 else ""
        log.warning("marked stale: %s%s", shown, more)

    t = report.mark("compute", t)
    scan = None
    if cfg.SCANNER:
        scan = scanner.scan(cfg, svc.session, symbols, accepted, previous,
                            scanner.ScanInputs.of(state.extra), now, slot, slot_time, shard,
                            max_age(cfg, svc.provider, market), set(latest.stale),
                            rebuild=[r.ticker for r in restores])
        t = report.mark("scan", t)
    loaded = _load_rules(svc, symbols, slot_time, shard) if svc.rules and accepted else False

    # Postgres first: if Redis fails after this, the retry finds the slot
    # unfinished and the unique keys keep the rows single.  The COPYs run on
    # a helper thread while the rules are evaluated and the Redis write and
    # the emits are prepared; the rules' events and states follow them there,
    # in the same transaction.
    try:
        pending: PendingInsert | None = PendingInsert(svc.session, quote_rows, alert_rows)
    except DB_DOWN as exc:
        pending = repairs.spool(svc, report, slot, quote_rows, alert_rows, exc)
    rules = None
    if loaded:
        assert svc.rules is not None
        rules = svc.rules.evaluate(symbols, int(slot_time.timestamp()), rows, accepted, latest.cols, now,
                                   began, scan.table if scan else None, scan.position if scan else None,
                                   scanner.settings(cfg))
        report.rules = rules.rules
        if pending is not None:  # its fires and states, and that this bar was evaluated
            pending.then(_rule_writer(report, rules))
    if svc.rules:
        t = report.mark("rules", t)
    summary = {"slot": slot, "at": slot_time.isoformat(), "ran_at": now.isoformat(),
               "market": market.state, "symbols": len(symbols), "accepted": len(accepted),
               "stale": len(stale), "provider": svc.provider.name}
    def prepare(stored: bool) -> tuple[list[str], list[Any]]:
        return svc.hot.prepare_write(slot, token, summary, latest, restores,
                                     [(q.ticker, q.price) for q in accepted], shard,
                                     scan.write if scan else hot.NO_SCAN, stored=stored)

    prepared = prepare(stored=not report.spooled)
    fresh = np.zeros(len(symbols), bool)
    fresh[rows] = True
    limit = max_age(cfg, svc.provider, market)
    whole = shard[1] == 1
    shown = latest.views(None if whole else rows, now, limit, fresh)
    muted = svc.rules is not None and svc.rules.builtin_muted  # the built-in rule paused on the rules page
    batch = emits.tick_batch(svc, shown, {q.ticker for q in accepted}, report, scan, muted)
    for a in unsent:  # stored by a tick that died before Redis and its emits: sent now, once
        payload = {"ticker": a.ticker, "kind": a.kind, "price": a.price, "sma": a.sma,
                   "time": a.time.isoformat()}
        if not muted:
            batch.alert(payload, to_ticker_room=a.ticker in batch.listening)
        report.alerts.append(payload)
    for event, owner in unsent_events:  # the rules' fires of that tick: stored, never sent
        batch.alert_event(event, owner)
    if whole:  # built while Postgres works; sent only if this run finishes the slot
        batch.stock_update(emits.stock_update(shown, slot_time, market))
    t = report.mark("prepare", t)
    if pending is not None:
        try:
            pending.finish()
        except DB_DOWN as exc:
            repairs.spool(svc, report, slot, quote_rows, alert_rows, exc)
            prepared = prepare(stored=False)
    if rules is not None and pending is not None and not report.spooled:
        rules.committed()
    if svc.after_commit is not None:  # tests: a crash exactly here
        svc.after_commit(slot)
    t = report.mark("postgres_wait", t)

    first, finished = svc.hot.write(prepared)
    t = report.mark("redis_write", t)
    if not first:
        log.error("slot %s was finished by another tick while this one held the lock; "
                  "not emitting twice", slot)
        return
    if whole or finished == shard[1]:  # the whole slot is done: announce it, once
        if not whole:
            batch.stock_update(emits.stock_update(emits.every_shard(svc, all_symbols, accepted, now, limit),
                                             slot_time, market))
        if scan is not None:
            emits.scan_emits(svc, scan, batch, slot, slot_time)
    if rules is not None and rules.made:
        emits.rule_emits(svc, rules, batch, now, report)
    report.emitted = len(batch.messages)
    if svc.before_emit is not None:  # tests: Redis lost exactly here
        svc.before_emit(slot)
    batch.send()
    if report.alerts or unsent_events or (rules is not None and rules.made):  # only a slot with alerts
        repairs.emitted(svc, slot, shard)  # could send one twice: a quiet slot costs no write
    report.mark("emit", t)
    if svc.after_emit is not None:
        svc.after_emit(slot)


def _load_rules(svc: TickServices, symbols: Sequence[str], slot_time: datetime, shard: Shard) -> bool:
    """Read what the tick's rules need; False (no rule fires) while Postgres, which holds rules and
    states, is down."""
    assert svc.rules is not None
    cfg = svc.config
    try:
        printed = live_rules.on_print(svc.hot.client, cfg.MARKET_DATA_PROVIDER == "stream",
                                      max(1, cfg.TICK_SHARDS), symbols)
    except (RedisError, OSError):
        printed = frozenset()  # the tick judges them all, as without the stream
    try:
        return svc.rules.load(svc.session, symbols, int(slot_time.timestamp()), cfg.TICK_SECONDS,
                              shard, printed)
    except DB_DOWN as exc:
        svc.session.rollback()
        log.warning("alert rules not evaluated this tick: Postgres unavailable (%s)", type(exc).__name__)
        return False


def _rule_writer(report: TickReport, rules: live_rules.Evaluated) -> Callable[[Connection], object]:
    def write(conn: Connection) -> None:
        report.deliveries = rules.write(conn)
        report.rule_fires = len(rules.made)
    return write
