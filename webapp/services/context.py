"""What every service needs from the app: its settings, the tracked symbols, the tick's collaborators.

Built once per app (and so once per process), so a route, a job and the tick
share one provider, one hot store and one publisher.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app

from webapp import names
from webapp.config import Config
from webapp.extensions import db, get_redis
from webapp.providers import get_provider
from webapp.store import symbols
from webapp.store.hot import HotStore
from webapp.store.spool import Spool
from webapp.tick.context import TickServices
from webapp.tick.publisher import Publisher
from webapp.tick.rules import RuleEngine

log = logging.getLogger(__name__)


def config(app: Flask | None = None) -> Config:
    return (app or current_app).config["TRACKER"]


def tracked_symbols(fresh: bool = False) -> tuple[str, ...]:
    """Symbols to track: the table, seeded from SYMBOLS (web: cached for seconds)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = app.extensions.setdefault("tracked", symbols.TrackedCache())
    if fresh:
        cache.clear()
    return cache.get(db.session, config(app).SYMBOLS)


def tick_services() -> TickServices:
    """The tick's collaborators, built once per app (and so once per process)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    svc = app.extensions.get("tick_services")
    if svc is None:
        cfg = config(app)
        client = get_redis()
        svc = TickServices(
            config=cfg,
            provider=get_provider(cfg, client),
            hot=HotStore(client, cfg.HOT_TTL_SECONDS, cfg.SMA_PERIOD,
                         done_ttl=max(600, 100 * cfg.TICK_SECONDS), shards=cfg.TICK_SHARDS),
            session=db.session,
            publisher=Publisher(client),
            spool=Spool(client, cfg.SPOOL_MAX_TICKS),
            rules=RuleEngine(),
            after_commit=_pause_when_asked(client) if cfg.FAULT_INJECTION else None,
        )
        app.extensions["tick_services"] = svc
    return svc


def _pause_when_asked(client: Any) -> Callable[[int], None]:
    """FAULT_INJECTION: the fault suite's way to hold a real worker between Postgres and Redis.

    The test sets FAULT_PAUSE_KEY to some seconds; the next tick to commit
    takes it, says which slot it holds in FAULT_PAUSED_KEY, and sleeps there,
    so the test can SIGKILL the worker exactly at that point.
    """
    def pause(slot: int) -> None:
        seconds = client.getdel(names.FAULT_PAUSE_KEY)
        if seconds:
            log.warning("FAULT_INJECTION: slot %s pausing %s s after its Postgres commit", slot,
                        seconds.decode())
            client.set(names.FAULT_PAUSED_KEY, slot, ex=120)
            time.sleep(float(seconds))
            client.delete(names.FAULT_PAUSED_KEY)

    return pause
