"""One tick of the tracker: fetch, validate, window, indicators, store, emit.

The order is chosen so that a retry repairs rather than duplicates:

1. read Redis (1 round-trip); a slot already finished is skipped;
2. rebuild any ticker whose hot keys are gone from Postgres (0 or 2 queries);
3. fetch (not at all for a real feed while the exchange is closed);
4. validate and compute SMA/crossover with the pure core;
5. write Postgres (ON CONFLICT DO NOTHING) *before* Redis, so a crash
   between them is completed by the retry instead of losing history;
6. write Redis (1 round-trip); the script applies a reading only if its
   provider time is newer, and says which ones it applied;
7. emit for the applied readings only (1 round-trip).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from sqlalchemy.orm import Session

from webapp import history
from webapp.config import Config
from webapp.core import indicators
from webapp.core.market import MarketState, market_state
from webapp.core.quotes import to_ticks
from webapp.core.readings import doc_quote, doc_sma, public_view, reading_doc
from webapp.core.validation import quote_problem
from webapp.hot import Apply, HotState, HotStore, Restore
from webapp.providers.base import FetchResult, Provider
from webapp.publisher import Publisher

log = logging.getLogger(__name__)


def slot_of(now: datetime, tick_seconds: int) -> tuple[int, datetime]:
    """The tick slot ``now`` falls in, and the slot's start time (UTC)."""
    epoch = int(now.timestamp())
    slot = epoch // tick_seconds
    return slot, datetime.fromtimestamp(slot * tick_seconds, tz=timezone.utc)


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
    applied: int = 0
    restored: int = 0
    stale: dict[str, str] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    emitted: int = 0
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot, "at": self.at.isoformat(), "market": self.market,
            "skipped": self.skipped, "symbols": self.symbols, "fetched": self.fetched,
            "accepted": self.accepted, "applied": self.applied, "restored": self.restored,
            "stale": self.stale, "alerts": self.alerts, "emitted": self.emitted,
            "duration_ms": round(self.duration_ms, 1),
        }


def _restore(svc: TickServices, state: HotState, missing: Sequence[str]) -> list[Restore]:
    """Rebuild lost hot state from Postgres so SMAs continue without a false alert."""
    period = svc.config.SMA_PERIOD
    rows = history.recent_quotes(svc.session, missing, period)
    if not rows:
        return []
    alerts = history.last_alerts(svc.session, list(rows))
    restores = []
    for ticker, quotes in rows.items():
        window = [q.price for q in quotes]
        prior = alerts.get(ticker)
        last_alert = None
        if prior is not None:
            last_alert = {"kind": prior.kind, "time": prior.time.isoformat(),
                          "price": prior.price, "sma": prior.sma}
        average = indicators.sma([to_ticks(p) for p in window], period)
        doc = reading_doc(quotes[-1], average, None, last_alert)
        state.latest[ticker] = doc
        state.windows[ticker] = window
        restores.append(Restore(ticker, doc, window))
    return restores


def run_tick(svc: TickServices, symbols: Sequence[str], now: datetime) -> TickReport:
    """Run the tick for the slot containing ``now``.  Safe to run twice."""
    started = time.perf_counter()
    cfg = svc.config
    slot, slot_time = slot_of(now, cfg.TICK_SECONDS)
    market = svc.market(now)
    report = TickReport(slot, slot_time, market.state, symbols=len(symbols))

    state = svc.hot.read(symbols, slot)
    if state.slot_done:
        report.skipped = "slot already done"
        report.duration_ms = (time.perf_counter() - started) * 1000
        return report

    missing = [s for s in symbols if s not in state.latest]
    restores = _restore(svc, state, missing) if missing else []
    report.restored = len(restores)

    previous = {s: doc_quote(d) for s, d in state.latest.items()}
    if svc.provider.follows_market_hours and not market.is_open:
        result = FetchResult()
        report.skipped = f"market closed; next open {market.next_open.isoformat()}"
    else:
        result = svc.provider.fetch(symbols, now, previous)
    report.fetched = len(result.quotes)

    stale = dict(result.problems)
    applies: list[Apply] = []
    rows: list[history.QuoteRow] = []
    alert_rows: list[history.AlertRow] = []
    wanted = set(symbols)
    period = cfg.SMA_PERIOD
    for q in result.quotes:
        if q.ticker not in wanted:
            log.warning("provider %s returned unrequested ticker %r; ignored", svc.provider.name, q.ticker)
            continue
        before = state.latest.get(q.ticker)
        prev_time = previous[q.ticker].time if before else None
        problem = quote_problem(q, prev_time, now)
        if problem:
            stale[q.ticker] = problem
            continue
        window = [to_ticks(p) for p in state.windows.get(q.ticker, ())]
        step = indicators.step(
            window,
            to_ticks(before["price"]) if before else None,
            doc_sma(before) if before else None,
            to_ticks(q.price),
            period,
        )
        doc = reading_doc(q, step.sma, step.alert, before.get("last_alert") if before else None)
        applies.append(Apply(q.ticker, doc["t"], q.price, doc))
        rows.append(history.QuoteRow(q, doc["sma"]))
        if step.alert:
            alert_rows.append(history.AlertRow(q.ticker, q.time, step.alert, q.price, doc["sma"]))
    report.accepted = len(applies)
    if stale:
        shown = ", ".join(f"{t} ({r})" for t, r in list(stale.items())[:10])
        more = f" and {len(stale) - 10} more" if len(stale) > 10 else ""
        log.warning("marked stale: %s%s", shown, more)

    history.insert_tick(svc.session, rows, alert_rows)

    summary = {"slot": slot, "at": slot_time.isoformat(), "ran_at": now.isoformat(),
               "market": market.state, "symbols": len(symbols), "accepted": len(applies),
               "stale": len(stale), "provider": svc.provider.name}
    written = svc.hot.write(slot, summary, restores, applies, stale)
    report.applied = len(written.applied)
    report.stale = stale

    new_docs = {a.ticker: a.latest for a in applies}
    applied = set(written.applied)
    limit = max_age(cfg, svc.provider, market)
    sent_before = svc.publisher.sent
    with svc.publisher.batch() as pub:
        if written.first_for_slot:
            stocks = []
            for s in symbols:
                doc = new_docs.get(s) if s in applied else state.latest.get(s)
                if doc is not None:
                    reason = None if s in applied else stale.get(s, state.stale.get(s))
                    stocks.append(public_view(doc, reason, now, limit))
            pub.stock_update({
                "type": "stock_update", "timestamp": slot_time.isoformat(),
                "stocks": stocks, "market": market.as_json(),
            })
        for ticker in written.applied:
            view = public_view(new_docs[ticker], None, now, limit)
            pub.quote(view)
            if view["alert"]:
                payload = {"ticker": ticker, "kind": view["alert"], "price": view["price"],
                           "sma": view["sma"], "time": view["time"]}
                pub.alert(payload)
                report.alerts.append(payload)
    report.emitted = svc.publisher.sent - sent_before
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report
