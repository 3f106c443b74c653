"""The tick's entry points: which slot a job runs for, the slots a stall skipped, running one now,
replaying a recorded file, and where the simulated stream starts.

The scheduler, the worker's job and the CLI call these; the tick itself is
:mod:`webapp.tick.pipeline`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from webapp.core.market import (
    gap_slots,
    market_state,
    slot_of,
)
from webapp.core.shards import split
from webapp.extensions import db
from webapp.services.context import config, tick_services, tracked_symbols
from webapp.store import missed, pg, symbols
from webapp.store import quotes as quotes_store
from webapp.tick.context import TickReport, TickServices
from webapp.tick.pipeline import run_tick
from webapp.tick.rules import RuleEngine

log = logging.getLogger(__name__)


def stream_anchors(tickers: Sequence[str]) -> dict[str, float]:
    """Where the simulated stream starts each ticker: its latest reading (Redis's, else the last one
    stored, so a restart with an empty Redis continues the chart instead of jumping back to the
    seed's price), else the minute sim's start."""
    from webapp.providers.sim import SimProvider

    previous = tick_services().hot.read_all().previous()
    out = {t: previous[t].price for t in tickers if t in previous}
    new = [t for t in tickers if t not in out]
    if new:
        try:
            out.update({t: q[-1].price for t, q in quotes_store.recent_quotes(db.session, new, 1).items()})
        except pg.DB_DOWN as exc:
            db.session.rollback()
            log.warning("stream anchors: Postgres unavailable (%s); new walks start from the seed's prices",
                        type(exc).__name__)
        new = [t for t in tickers if t not in out]
    if new:
        out.update(SimProvider(config().SIM_SEED).start_prices(new))
    return out


def slot_time(queued_at: datetime | None, now: datetime | None = None) -> datetime:
    """The time a scheduled tick job runs for: the moment it was queued.

    A worker that was paused or busy runs a backlog of jobs late; each must
    run for its own slot, in order, not all for the current one.  Only a
    provider that can answer for a past minute (``serves_past``) can do
    that; a real feed's quote is "now", so its late job runs for now.
    """
    now = now or datetime.now(timezone.utc)
    if queued_at is None or not getattr(tick_services().provider, "serves_past", False):
        return now
    return queued_at if queued_at.tzinfo else queued_at.replace(tzinfo=timezone.utc)


CATCH_UP_HORIZON = timedelta(days=1)  # a Redis that lost its tick record looks this far back in Postgres


def catch_up(when: datetime) -> list[datetime]:
    """The slots that never ran before the one containing ``when``: those to run first, in order.

    After a stall (Redis or every worker down, the scheduler stopped), the
    scheduler enqueues from the next boundary on; the slots in between would
    be lost.  A provider that serves the past runs them now, oldest first (up
    to ``CATCH_UP_SLOTS``); the rest are recorded as missed, with the reason,
    for health and the history API.  The last slot that ran comes from Redis,
    or, when Redis lost it, from the newest quote in Postgres.
    """
    svc = tick_services()
    cfg = svc.config
    slot = slot_of(when, cfg.TICK_SECONDS)[0]
    last_tick = svc.hot.last_tick()
    last: int | None = last_tick["slot"] if last_tick else None
    if last is None:
        try:
            stored = missed.last_stored(db.session, when - CATCH_UP_HORIZON)
        except pg.DB_DOWN:
            db.session.rollback()
            stored = None
        last = slot_of(stored, cfg.TICK_SECONDS)[0] if stored else None
    if last is None or slot - last <= 1:
        return []
    provider = svc.provider
    serves_past = getattr(provider, "serves_past", False)

    def open_at(s: int) -> bool:
        if not provider.follows_market_hours:
            return True
        return market_state(datetime.fromtimestamp(s * cfg.TICK_SECONDS, timezone.utc)).is_open

    run, lost = gap_slots(last, slot, serves_past, cfg.CATCH_UP_SLOTS, open_at)
    if lost:
        why = (f"more than CATCH_UP_SLOTS={cfg.CATCH_UP_SLOTS} slots behind" if serves_past
               else f"provider {provider.name} cannot answer for a past minute")
        log.warning("%d slot(s) before %s never ran and are recorded as missed: %s", len(lost),
                    when.isoformat(), why)
        try:
            missed.record(db.session, lost, cfg.TICK_SECONDS, why)
        except pg.DB_DOWN as exc:
            db.session.rollback()
            log.error("could not record %d missed slot(s) (Postgres: %s)", len(lost), type(exc).__name__)
    if run:
        log.warning("%d slot(s) before %s never ran; running them now, oldest first", len(run),
                    when.isoformat())
    return [datetime.fromtimestamp(s * cfg.TICK_SECONDS, timezone.utc) for s in run]


def run_tick_now(at: datetime | None = None, shard: tuple[int, int] = (0, 1)) -> TickReport:
    """Run the tick (or one shard of it) for the slot containing ``at`` (default: now)."""
    symbols_now = tracked_symbols(fresh=True)
    mine = split(symbols_now, shard[1])[shard[0]] if shard[1] > 1 else symbols_now
    return run_tick(tick_services(), mine, at or datetime.now(timezone.utc), shard, symbols_now)


def replay(path: str, speed: float, each: Callable[[TickReport], None] | None = None) -> list[TickReport]:
    """Play a recorded file of minute bars through the tick pipeline.

    ``speed`` is recorded minutes per real minute (60: a minute a second;
    0: as fast as it goes).  The file's tickers are added to the tracked
    symbols so the pages show them.  Each recorded minute is its own slot, so
    replaying a file twice adds nothing.
    """
    from pathlib import Path

    from webapp.providers.replay import ReplayProvider, load_bars

    provider = ReplayProvider(load_bars(Path(path)))
    base = tick_services()
    svc = TickServices(base.config, provider, base.hot, db.session, base.publisher, spool=base.spool,
                       rules=RuleEngine())
    tickers = provider.tickers
    symbols.seed(db.session, tickers)
    for t in tickers:
        symbols.add(db.session, t)
    tracked_symbols(fresh=True)
    reports = []
    for minute in provider.minutes:
        started = time.monotonic()
        report = run_tick(svc, tickers, minute)
        reports.append(report)
        if each is not None:
            each(report)
        if speed > 0:
            time.sleep(max(0.0, 60.0 / speed - (time.monotonic() - started)))
    return reports
