"""What a tick runs with (:class:`TickServices`, built once per process) and what it reports
(:class:`TickReport`), and how old a reading may be before it shows as stale.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from webapp.config import Config
from webapp.core.market import MarketState, market_state
from webapp.providers.base import Provider
from webapp.store.hot import HotStore
from webapp.store.spool import Spool
from webapp.tick import rules as live_rules
from webapp.tick.publisher import Publisher


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
    spool: Spool | None = None  # where rows wait while Postgres is down (None: a failed store fails the tick)
    rules: live_rules.RuleEngine | None = None  # alert rules people chose (None: only the built-in SMA alert)
    after_commit: Callable[[int], None] | None = None  # tests only: runs between Postgres and Redis
    before_emit: Callable[[int], None] | None = None  # tests only: runs between the Redis write and emits
    after_emit: Callable[[int], None] | None = None  # tests only: runs once the slot's emits are out


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
    rules: int = 0  # rules evaluated
    rule_fires: int = 0  # alert events this tick stored
    deliveries: int = 0  # webhook deliveries it queued
    spooled: int = 0  # ticks waiting in the spool after this one (Postgres down)
    drained: int = 0  # spooled ticks this one stored
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
            "rules": self.rules, "rule_fires": self.rule_fires, "deliveries": self.deliveries,
            "spooled": self.spooled, "drained": self.drained,
            "duration_ms": round(self.duration_ms, 1), "phases_ms": self.phases_ms,
        }
