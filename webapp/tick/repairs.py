"""The tick's repairs: what a crash, a lost Redis or a Postgres outage left behind, put right.

Each repair is decided from what the stores hold, never from memory of the
last run, so a retried or restarted tick makes the same repair once:
lost hot state is rebuilt from Postgres (:func:`restore`), a slot that
reached Postgres but not Redis is rebuilt and its alerts sent
(:func:`diverged`), rows wait in Redis while Postgres is down
(:func:`spool`, :func:`drain`), slots whose rows never reached Postgres
are recorded as missed (:func:`redis_ahead`), and a reading that came
without its previous close (a stream's bar, a first tick before the
backfill) gets the one stored history holds (:func:`prev_closes`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from webapp.core.latest import Latest
from webapp.core.quotes import Quote
from webapp.store import alert_events, emitted_slots, missed, sma_alerts, tick_write
from webapp.store import quotes as quotes_store
from webapp.store.hot import Restore, Shard
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


def prev_closes(svc: TickServices, quotes: list[Quote], day_start: datetime) -> list[Quote]:
    """``quotes``, each lacking a previous close given the last close stored before ``day_start``.

    Asked every tick for the readings still lacking one, so history that lands later (a new
    symbol's backfill) is used at the next tick; a provider's own previous close is kept."""
    lacking = [q.ticker for q in quotes if q.prev_close is None]
    if not lacking:
        return quotes
    try:
        closes = quotes_store.last_closes(svc.session, lacking, day_start)
    except DB_DOWN as exc:
        svc.session.rollback()
        log.warning("previous closes unavailable this tick (Postgres: %s)", type(exc).__name__)
        return quotes
    return [q._replace(prev_close=closes[q.ticker]) if q.prev_close is None and q.ticker in closes else q
            for q in quotes]


def diverged(svc: TickServices, symbols: Sequence[str], slot: int, slot_time: datetime, shard: Shard
             ) -> tuple[list[str], list[sma_alerts.AlertRow], list[tuple[dict[str, Any], int | None]]]:
    """Tickers Postgres holds a reading of from the previous slot that Redis never got, its alerts and
    its rules' events when they never went out.

    The previous slot's done marker is missing: it did not run (a stall, a
    restart), it died after its Postgres commit and before its Redis write,
    or Redis lost its data (a FLUSHALL, a restart without persistence) at
    any moment after.  Where rows were left behind, those tickers are
    rebuilt from Postgres like lost state.  Whether that slot's stored
    alerts and its rules' ``alert_event``s went out, only Postgres can say
    (:mod:`webapp.store.emitted_slots`): those that never did go out with
    this tick, those that did are not sent again (webhooks need no help:
    their deliveries were committed with the events).  A few statements,
    only on such a tick.
    """
    start = slot_time - timedelta(seconds=svc.config.TICK_SECONDS)
    unsent: list[sma_alerts.AlertRow] = []
    events: list[tuple[dict[str, Any], int | None]] = []
    try:
        diverged = quotes_store.stored_between(svc.session, symbols, start, slot_time)
        sent = bool(diverged) and emitted_slots.was_emitted(svc.session, slot - 1, shard)
        if diverged and not sent:
            unsent = sma_alerts.alerts_between(svc.session, diverged, start, slot_time)
            if svc.rules:
                events = alert_events.events_between(svc.session, diverged, start, slot_time)
    except DB_DOWN:
        svc.session.rollback()
        return [], [], []
    if sent:
        log.warning("slot before %s is in Postgres but Redis lost it after its emits: rebuilding %d "
                    "ticker(s) from Postgres, sending nothing again", slot_time.isoformat(), len(diverged))
    elif diverged:
        log.warning("slot before %s reached Postgres but not Redis for %d ticker(s): rebuilding them "
                    "from Postgres and sending its %d stored alert(s) and %d alert event(s)",
                    slot_time.isoformat(), len(diverged), len(unsent), len(events))
    return diverged, unsent, events


def emitted(svc: TickServices, slot: int, shard: Shard) -> None:
    """Record in Postgres that ``slot``'s emits went out (see :func:`diverged`); called only for a
    slot that had alerts to send, since re-sending a quiet slot sends nothing.  With Postgres down
    the record waits for the next such slot's, which covers this one: only a Redis that loses its
    data in that same outage could send this slot's alerts twice."""
    try:
        emitted_slots.mark(svc.session, slot, shard)
    except DB_DOWN as exc:
        svc.session.rollback()
        log.warning("slot %s: could not record its emits (Postgres: %s)", slot, type(exc).__name__)


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
