"""The tick's repairs: what a crash, a lost Redis or a Postgres outage left behind, put right.

Each repair is decided from what the stores hold, never from memory of the
last run, so a retried or restarted tick makes the same repair once:
lost hot state is rebuilt from Postgres (:func:`restore`), a slot that
reached Postgres but not Redis is rebuilt and its alerts sent
(:func:`diverged`), rows wait in Redis while Postgres is down
(:func:`spool`, :func:`drain`), and slots whose rows never reached Postgres
are recorded as missed (:func:`redis_ahead`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from webapp.core.latest import Latest
from webapp.store import alert_events, missed, sma_alerts, tick_write
from webapp.store import quotes as quotes_store
from webapp.store.hot import Restore
from webapp.store.pg import DB_DOWN
from webapp.tick.context import TickReport, TickServices

log = logging.getLogger(__name__)


def restore(svc: TickServices, latest: Latest, missing: Sequence[str]) -> list[Restore]:
    """Rebuild lost hot state from Postgres so SMAs continue without a false alert."""
    stored = quotes_store.recent_quotes(svc.session, missing, svc.config.SMA_PERIOD)
    if not stored:
        return []
    alerts = sma_alerts.last_alerts(svc.session, list(stored))
    restores = []
    for (ticker, quotes), row in zip(stored.items(), latest.rows_of(list(stored)).tolist(), strict=True):
        prior = alerts.get(ticker)
        latest.restore(row, quotes, (prior.kind, prior.time, prior.price, prior.sma) if prior else None)
        restores.append(Restore(ticker, [q.price for q in quotes]))
    return restores


def diverged(svc: TickServices, symbols: Sequence[str], slot_time: datetime
              ) -> tuple[list[str], list[sma_alerts.AlertRow], list[tuple[dict[str, Any], int | None]]]:
    """Tickers Postgres holds a reading of from the previous slot that Redis never got, its alerts and
    its rules' events.

    The previous slot's done marker is missing: it did not run (a stall, a
    restart), or it died after its Postgres commit and before its Redis write.
    Only the second leaves rows behind; those tickers are rebuilt from Postgres
    like lost state, and that slot's stored alerts, which were never emitted,
    go out with this tick, as do the ``alert_event``s its rules stored
    (webhooks need no help: their deliveries were committed with the
    events).  One statement each, only on such a tick.
    """
    start = slot_time - timedelta(seconds=svc.config.TICK_SECONDS)
    try:
        diverged = quotes_store.stored_between(svc.session, symbols, start, slot_time)
        unsent = sma_alerts.alerts_between(svc.session, diverged, start, slot_time) if diverged else []
        events = (alert_events.events_between(svc.session, diverged, start, slot_time)
                  if diverged and svc.rules else [])
    except DB_DOWN:
        svc.session.rollback()
        return [], [], []
    if diverged:
        log.warning("slot before %s reached Postgres but not Redis for %d ticker(s): rebuilding them "
                    "from Postgres and sending its %d stored alert(s) and %d alert event(s)",
                    slot_time.isoformat(), len(diverged), len(unsent), len(events))
    return diverged, unsent, events


def spool(svc: TickServices, report: TickReport, slot: int, quotes: Sequence[quotes_store.QuoteRow],
           alerts: Sequence[sma_alerts.AlertRow], exc: BaseException) -> None:
    """Postgres is down: keep the rows in Redis and carry on with the live path."""
    svc.session.rollback()
    if svc.spool is None:
        raise exc
    report.spooled = svc.spool.put(slot, quotes, alerts)
    log.warning("Postgres unavailable (%s); %d quote(s) and %d alert(s) of slot %s spooled in Redis "
                "(%d tick(s) waiting)", type(exc).__name__, len(quotes), len(alerts), slot, report.spooled)


def drain(svc: TickServices, report: TickReport) -> list[int]:
    """Write what earlier ticks spooled, oldest first, once Postgres answers again.

    Returns the slots the spool had to drop while full (only once it is
    empty): Redis has them, Postgres never will.
    """
    assert svc.spool is not None
    entries = svc.spool.entries()
    stored = 0
    try:
        for _, quotes, alerts in entries:
            tick_write.insert_tick(svc.session, quotes, alerts)
            stored += 1
    except DB_DOWN:
        svc.session.rollback()
        log.info("Postgres still unavailable; %d tick(s) stay spooled", len(entries) - stored)
    left = len(entries) - stored
    if stored:
        left = svc.spool.drop(stored)
        report.drained = stored
        log.warning("Postgres is back: stored %d spooled tick(s); %d still wait", stored, left)
    if left:
        return []
    svc.hot.forget_stored_marks()  # every shard's rows are in Postgres now; each marks its next slot
    return svc.spool.take_lost()


def redis_ahead(svc: TickServices, symbols: Sequence[str], lost: Sequence[int]) -> list[str]:
    """Slots Redis ran whose rows never reached Postgres: record them missed, rebuild from Postgres.

    A spool that overflowed (or was deleted) during a Postgres outage leaves
    windows holding prices the history lacks; left alone, every later SMA
    and alert would disagree with the stored history.  Returns the tickers
    to rebuild (all of this shard's).
    """
    log.error("Redis is ahead of Postgres: %d slot(s) (%s .. %s) never reached Postgres; recording them "
              "as missed and rebuilding the windows from Postgres", len(lost), lost[0], lost[-1])
    try:
        missed.record(svc.session, lost, svc.config.TICK_SECONDS,
                      "ticks ran while Postgres was down and their spooled rows were lost")
    except DB_DOWN as exc:
        svc.session.rollback()
        log.error("could not record the missed slots (Postgres: %s)", type(exc).__name__)
    return list(symbols)
