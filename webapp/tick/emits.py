"""What a tick sends: ``stock_update``, the ``quote``s someone listens to, every ``alert``, the
rules' ``alert_event``s and the scanner's list changes, gathered into one batch.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from webapp.core.market import MarketState
from webapp.core.quotes import Quote
from webapp.store import alert_events
from webapp.tick import rules as live_rules
from webapp.tick import scanner
from webapp.tick.context import TickReport, TickServices
from webapp.tick.publisher import Batch

log = logging.getLogger(__name__)


def rule_emits(svc: TickServices, rules: live_rules.Evaluated, batch: Batch, now: datetime,
                report: TickReport) -> None:
    """``alert_event`` for each fire this run stored (a retried tick stores, and so sends, none twice)."""
    for f in rules.fires:
        event_id = rules.made.get(f.fire.dedupe_key)
        if event_id is not None:
            batch.alert_event(alert_events.fire_json(f, event_id, now), rules.owners.get(f.fire.dedupe_key))
    batch.wake_deliverers = report.deliveries > 0
    if rules.stopped:
        log.warning("storm breaker: %d rule/ticker pair(s) fired more than 15 times in 3 minutes and stopped "
                    "(stopped_too_often): %s", len(rules.stopped),
                    ", ".join(f"rule {r} {t}" for r, t in rules.stopped[:10]))


def every_shard(svc: TickServices, symbols: Sequence[str], accepted: Sequence[Quote], now: datetime,
                 limit: float | None) -> list[dict[str, Any]]:
    """Every shard's readings for a sharded slot's ``stock_update`` (one MGET)."""
    everything = svc.hot.read_all()
    fresh = np.zeros(len(everything.tickers), bool)
    mine = everything.rows_of([q.ticker for q in accepted])
    fresh[mine[mine >= 0]] = True
    return everything.views_of(symbols, now, limit, fresh)


def stock_update(stocks: list[dict[str, Any]], slot_time: datetime, market: MarketState) -> dict[str, Any]:
    """BRIEF's stock_update: every ticker's reading (fresh ones from this tick)."""
    return {"type": "stock_update", "timestamp": slot_time.isoformat(), "stocks": stocks,
            "market": market.as_json()}


def scan_emits(svc: TickServices, scan: scanner.ScanResult, batch: Batch, slot: int,
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


def tick_batch(svc: TickServices, shown: list[dict[str, Any]], fresh: set[str], report: TickReport,
           scan: scanner.ScanResult | None, muted: bool = False) -> Batch:
    """The tick's own messages: quotes where someone listens, and every alert (none while ``muted``:
    the built-in rule is paused; ``stock_update`` still says which readings crossed)."""
    listening = svc.publisher.listening()
    batch = svc.publisher.batch()
    batch.listening = listening
    for view in shown:
        ticker = view["ticker"]
        if ticker not in fresh:
            continue
        heard = ticker in listening
        if heard:
            row = scan.row(ticker) if scan else None
            batch.quote({**view, "scan": row} if row else view)
        if view["alert"]:
            payload = {"ticker": ticker, "kind": view["alert"], "price": view["price"],
                       "sma": view["sma"], "time": view["time"]}
            if not muted:
                batch.alert(payload, to_ticker_room=heard)
            report.alerts.append(payload)
    return batch
