"""Socket.IO handlers: subscribe and unsubscribe, answered by acknowledgement.

Bad input gets ``{"ok": false, "error": ...}`` and the connection stays
usable; nothing here raises into the Socket.IO server.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, request
from flask_socketio import join_room, leave_room

from webapp import names, services
from webapp.core.validation import SubscriptionError, subscription_tickers
from webapp.extensions import socketio

log = logging.getLogger(__name__)


def _rooms(payload: Any) -> list[str]:
    cfg = services.config()
    tickers = subscription_tickers(payload, frozenset(cfg.SYMBOLS), cfg.MAX_SUBSCRIBE_TICKERS)
    return [names.ROOM_ALL if t == names.ALL_TICKERS else names.ticker_room(t) for t in tickers]


def _change(payload: Any, join: bool) -> dict[str, Any]:
    try:
        rooms = _rooms(payload)
    except SubscriptionError as exc:
        return {"ok": False, "error": str(exc)}
    for room in rooms:
        (join_room if join else leave_room)(room)
    return {"ok": True, "rooms": rooms}


def init_app(app: Flask) -> None:
    @socketio.on(names.EVENT_SUBSCRIBE)
    def _subscribe(payload: Any = None) -> dict[str, Any]:
        return _change(payload, join=True)

    @socketio.on(names.EVENT_UNSUBSCRIBE)
    def _unsubscribe(payload: Any = None) -> dict[str, Any]:
        return _change(payload, join=False)

    @socketio.on(names.EVENT_FOLLOW_ALERTS)
    def _alerts(payload: Any = None) -> dict[str, Any]:
        """Join (``{"on": true}``) or leave the alert feed room."""
        on = payload.get("on", True) if isinstance(payload, dict) else None
        if not isinstance(on, bool):
            return {"ok": False, "error": 'payload must be {"on": true} or {"on": false}'}
        (join_room if on else leave_room)(names.ROOM_ALERTS)
        return {"ok": True, "rooms": [names.ROOM_ALERTS] if on else []}

    @socketio.on_error_default
    def _error(exc: Exception) -> dict[str, Any]:
        log.error("socket.io handler failed for %s", request.sid, exc_info=exc)
        return {"ok": False, "error": "internal error"}
