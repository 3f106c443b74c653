"""Socket.IO handlers: subscribe and unsubscribe, answered by acknowledgement.

``subscribe`` takes ``{"tickers": [...]}`` (BRIEF) and, for the scanner,
``{"scans": ["gainers", ...]}`` (or ``["*"]``), which joins ``scan:<list>``
rooms; its acknowledgement then carries each list as last announced, so
the client has the base the next ``scan_update`` delta applies to.

Bad input gets ``{"ok": false, "error": ...}`` and the connection stays
usable; nothing here raises into the Socket.IO server.  Ticker-room joins
and leaves are counted in Redis (:mod:`webapp.store.subscriptions`) so the worker
emits ``quote`` only where someone listens.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import join_room, leave_room, rooms

from webapp import names, services
from webapp.core.scanner import LISTS
from webapp.core.validation import SubscriptionError, subscription
from webapp.extensions import get_redis, socketio
from webapp.store.subscriptions import REFRESH_SECONDS, ListenerRegistry

log = logging.getLogger(__name__)


def _registry() -> ListenerRegistry:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    registry = app.extensions.get("listeners")
    if registry is None:
        registry = app.extensions["listeners"] = ListenerRegistry(get_redis())
        socketio.start_background_task(_keep_registered, app, registry)
    return registry


def _keep_registered(app: Flask, registry: ListenerRegistry) -> None:
    """Refresh this process's registration while it lives (a greenlet under gevent)."""
    while True:
        socketio.sleep(REFRESH_SECONDS)
        try:
            registry.refresh()
        except Exception:
            log.warning("could not refresh the listener registration; retrying", exc_info=True)


def _room_tickers(names_of_rooms: list[str]) -> list[str]:
    prefix = names.ticker_room("")
    return [r[len(prefix):] for r in names_of_rooms if r.startswith(prefix)]


def _change(payload: Any, join: bool) -> dict[str, Any]:
    cfg = services.config()
    try:
        known = frozenset(services.tracked_symbols())
        asked = subscription(payload, known, cfg.MAX_SUBSCRIBE_TICKERS, LISTS if cfg.SCANNER else ())
    except SubscriptionError as exc:
        return {"ok": False, "error": str(exc)}
    wanted = [names.ROOM_ALL if t == names.ALL_TICKERS else names.ticker_room(t) for t in asked.tickers]
    wanted += [names.scan_room(n) for n in asked.scans]
    current = set(rooms())
    changed = [r for r in wanted if (r not in current) == join]
    for room in changed:
        (join_room if join else leave_room)(room)
    registry = _registry()
    (registry.joined if join else registry.left)(_room_tickers(changed))
    ack: dict[str, Any] = {"ok": True, "rooms": wanted}
    if join and asked.scans:
        # the lists as last announced: the base the next scan_update's delta applies to
        announced = services.scan_store().announced()
        ack["scans"] = {n: announced.get(n) for n in asked.scans}
    return ack


def init_app(app: Flask) -> None:
    @socketio.on(names.EVENT_SUBSCRIBE)
    def _subscribe(payload: Any = None) -> dict[str, Any]:
        return _change(payload, join=True)

    @socketio.on(names.EVENT_UNSUBSCRIBE)
    def _unsubscribe(payload: Any = None) -> dict[str, Any]:
        return _change(payload, join=False)

    @socketio.on(names.EVENT_FOLLOW_ALERTS)
    def _alerts(payload: Any = None) -> dict[str, Any]:
        """Join (``{"on": true}``) or leave (``{"on": false}``) the alert feed room."""
        on = payload.get("on", True) if isinstance(payload, dict) else None
        if not isinstance(on, bool):
            return {"ok": False, "error": 'payload must be {"on": true} or {"on": false}'}
        (join_room if on else leave_room)(names.ROOM_ALERTS)
        return {"ok": True, "rooms": [names.ROOM_ALERTS] if on else []}

    @socketio.on("disconnect")
    def _disconnect(reason: Any = None) -> None:
        left = _room_tickers(rooms())
        if left:
            _registry().left(left)

    @socketio.on_error_default
    def _error(exc: Exception) -> dict[str, Any]:
        log.error("socket.io handler failed for %s", request.sid, exc_info=exc)
        return {"ok": False, "error": "internal error"}
