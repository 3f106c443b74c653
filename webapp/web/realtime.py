"""Socket.IO handlers: subscribe and unsubscribe, answered by acknowledgement.

``subscribe`` takes ``{"tickers": [...]}`` (BRIEF) and, for the scanner,
``{"scans": ["gainers", ...]}`` (or ``["*"]``), which joins ``scan:<list>``
rooms; its acknowledgement then carries each list as last announced, so
the client has the base the next ``scan_update`` delta applies to.

Bad input gets ``{"ok": false, "error": ...}`` and the connection stays
usable; nothing here raises into the Socket.IO server.

Socket.IO follows the same rules as HTTP (:mod:`webapp.web.access`): the
handshake authenticates with the page's session or a token in the
``auth`` payload (``{"token": "stk_…"}``); while the site is private
(``API_READ_TOKEN_REQUIRED`` or ``PAGES_SIGN_IN_REQUIRED``) an anonymous
connection is refused.  ``follow_alerts`` joins the built-in rule's feed
and the caller's own (``user:<id>``); ``follow_rules`` joins only the
caller's rules and the built-in one, and a reconnect's missed events are
filtered the same way.  So does an unknown
event, a reserved name sent by a client (``disconnect``, ``connect``), and
more events than ``SOCKET_EVENT_RATE_LIMIT`` allows one connection.  The
ticker rooms with clients here are published to Redis
(:mod:`webapp.store.subscriptions`) so the worker emits ``quote`` only where
someone listens.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import ConnectionRefusedError, join_room, leave_room, rooms
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from webapp import names
from webapp.core.validation import SubscriptionError, subscription
from webapp.extensions import db, get_redis, socketio
from webapp.services import alert_events, context, scanner
from webapp.store import rules as rules_store
from webapp.store.subscriptions import REFRESH_SECONDS, ListenerRegistry
from webapp.web.access import Principal, for_socket, private_mode

log = logging.getLogger(__name__)

RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error", "message", "error"})


def _registry() -> ListenerRegistry:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    registry = app.extensions.get("listeners")
    if registry is None:
        registry = app.extensions["listeners"] = ListenerRegistry(get_redis())
        socketio.start_background_task(_keep_registered, app, registry)
    return registry


def _load(app: Flask) -> dict[str, Any]:
    """This process's connections (sids whose real connect ran) and refusals (greenlets: no lock)."""
    return app.extensions.setdefault("socket_load", {"sids": set(), "refused": 0, "who": {}})


def _keep_registered(app: Flask, registry: ListenerRegistry) -> None:
    """Rewrite this process's listened set and load while it lives (a greenlet under gevent)."""
    while True:
        socketio.sleep(REFRESH_SECONDS)
        load = _load(app)
        try:
            registry.publish(_listened(), {"clients": len(load["sids"]), "refused": load["refused"],
                                           "max_clients": app.config["TRACKER"].WEB_MAX_CLIENTS})
        except Exception:
            log.warning("could not refresh the listener registration; retrying", exc_info=True)


def _listened(leaving: str | None = None) -> set[str]:
    """Rooms with a client in this process (other than ``leaving``) that the tick emits to only when
    heard: tickers (by name), rules (by room name, ``rule:<id>``; a ticker has no colon), the
    alert feed (``alerts``, for the rules' ``alert_event``s) and the scanner's lists (``scan:<list>``,
    which the scanner every second announces only where heard)."""
    prefix = names.ticker_room("")
    rooms_here = socketio.server.manager.rooms.get("/", {})
    heard = [room for room, members in list(rooms_here.items()) if isinstance(room, str)
             and _emitted_when_heard(room) and any(sid != leaving for sid in members)]
    return {room[len(prefix):] if room.startswith(prefix) else room for room in heard}


def _limited(handler: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Refuse a connection's events past SOCKET_EVENT_RATE_LIMIT, before any work."""
    @functools.wraps(handler)
    def run(*args: Any) -> dict[str, Any]:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        limiter = app.extensions.get("socket_limiter")
        if limiter is None:
            rate = context.config().SOCKET_EVENT_RATE_LIMIT
            limiter = app.extensions["socket_limiter"] = (
                MovingWindowRateLimiter(MemoryStorage()), parse_many(rate), rate)
        strategy, limits, rate = limiter
        if not all(strategy.hit(item, request.sid) for item in limits):
            return {"ok": False, "error": f"rate limited: at most {rate} events per connection"}
        return handler(*args)

    return run


def _emitted_when_heard(room: str) -> bool:
    """A room the tick sends to only while someone is in it (the listener registry's rooms)."""
    return (room.startswith((names.ticker_room(""), names.RULE_ROOM_PREFIX, names.USER_ROOM_PREFIX,
                             names.scan_room("")))
            or room == names.ROOM_ALERTS)


def _who() -> Principal | None:
    """This connection's caller, as its handshake authenticated it (None: anonymous)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return _load(app)["who"].get(request.sid)  # type: ignore[no-any-return]


def _has_listened_room(names_of_rooms: list[str]) -> bool:
    return any(_emitted_when_heard(r) for r in names_of_rooms)


def _change(payload: Any, join: bool) -> dict[str, Any]:
    cfg = context.config()
    try:
        known = frozenset(context.tracked_symbols())
        lists = scanner.ALL_LISTS if cfg.SCANNER else ()
        asked = subscription(payload, known, cfg.MAX_SUBSCRIBE_TICKERS, lists)
    except SubscriptionError as exc:
        return {"ok": False, "error": str(exc)}
    wanted = [names.ROOM_ALL if t == names.ALL_TICKERS else names.ticker_room(t) for t in asked.tickers]
    wanted += [names.scan_room(n) for n in asked.scans]
    current = set(rooms())
    changed = [r for r in wanted if (r not in current) == join]
    for room in changed:
        (join_room if join else leave_room)(room)
    if _has_listened_room(changed):
        _registry().publish(_listened())
    ack: dict[str, Any] = {"ok": True, "rooms": wanted}
    if join and asked.scans:
        # the lists as last announced: the base the next scan_update's delta applies to
        announced = scanner.scan_store().announced()
        ack["scans"] = {n: announced.get(n) for n in asked.scans}
    return ack


def init_app(app: Flask) -> None:
    @socketio.on(names.EVENT_SUBSCRIBE)
    @_limited
    def _subscribe(payload: Any = None) -> dict[str, Any]:
        return _change(payload, join=True)

    @socketio.on(names.EVENT_UNSUBSCRIBE)
    @_limited
    def _unsubscribe(payload: Any = None) -> dict[str, Any]:
        return _change(payload, join=False)

    @socketio.on(names.EVENT_FOLLOW_ALERTS)
    @_limited
    def _alerts(payload: Any = None) -> dict[str, Any]:
        """Join (``{"on": true}``) or leave (``{"on": false}``) the alert feed room."""
        on = payload.get("on", True) if isinstance(payload, dict) else None
        if not isinstance(on, bool):
            return {"ok": False, "error": 'payload must be {"on": true} or {"on": false}, '
                                          'optionally with "after": <last alert_event id seen>'}
        after = payload.get("after")  # type: ignore[union-attr]
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            return {"ok": False, "error": '"after" must be the id of the last alert_event seen (an integer)'}
        who = _who()
        feeds = [names.ROOM_ALERTS] + ([names.user_room(who.id)] if who else [])
        for room in feeds:
            (join_room if on else leave_room)(room)
        _registry().publish(_listened())
        ack: dict[str, Any] = {"ok": True, "rooms": feeds if on else []}
        if on and after is not None:  # a reconnect: what it missed, oldest first (the client dedupes on id)
            ack["missed"] = alert_events.missed_events(after, who.id if who else None)
        return ack

    @socketio.on(names.EVENT_FOLLOW_RULES)
    @_limited
    def _rules(payload: Any = None) -> dict[str, Any]:
        """Join the rooms of some rules (``{"rules": [1, 2], "after": <last id seen>}``)."""
        ids = payload.get("rules") if isinstance(payload, dict) else None
        after = payload.get("after") if isinstance(payload, dict) else None
        if (not isinstance(ids, list) or not 1 <= len(ids) <= 100
                or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)):
            return {"ok": False, "error": 'payload must be {"rules": [rule ids, 1 to 100]} '
                                          'optionally with "after": <last alert_event id seen>'}
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            return {"ok": False, "error": '"after" must be the id of the last alert_event seen (an integer)'}
        who, wanted = _who(), list(dict.fromkeys(ids))
        mine = rules_store.readable_ids(db.session, wanted, who.id if who else None)
        if len(mine) < len(wanted):  # someone else's rule and a missing one read the same
            missing = ", ".join(str(i) for i in wanted if i not in mine)
            return {"ok": False, "error": f"no rule {missing} of yours (a rule room is its owner's only)"}
        rooms_ = [names.rule_room(i) for i in wanted]
        for room in rooms_:
            join_room(room)
        _registry().publish(_listened())
        ack: dict[str, Any] = {"ok": True, "rooms": rooms_}
        if after is not None:
            ack["missed"] = alert_events.missed_events(after, who.id if who else None, wanted)
        return ack

    load = _load(app)
    connected = load["sids"]

    @socketio.on("connect")
    def _connect(auth: Any = None) -> dict[str, Any] | None:
        if request.sid in connected:  # the connection exists: this is a client's event
            return {"ok": False, "error": "'connect' is a reserved event name"}
        limit = context.config().WEB_MAX_CLIENTS
        if len(connected) >= limit:
            load["refused"] += 1
            if load["refused"] == 1 or load["refused"] % 100 == 0:
                log.warning("web process full (%d clients): refused %d connection(s) so far", limit,
                            load["refused"])
            raise ConnectionRefusedError(f"server full: this web process already serves its maximum of "
                                         f"{limit} live connections (WEB_MAX_CLIENTS)")
        try:
            who = for_socket(auth)
        except ValueError as exc:
            raise ConnectionRefusedError(str(exc)) from None
        if who is None and private_mode():
            raise ConnectionRefusedError("sign in, or connect with auth {\"token\": \"<API token>\"}: "
                                         "this site is private")
        if who is not None and not who.can("read"):
            raise ConnectionRefusedError("this token lacks the 'read' scope")
        connected.add(request.sid)
        load["who"][request.sid] = who
        _registry()
        return None

    @socketio.on("disconnect")
    def _disconnect(reason: Any = None) -> dict[str, Any] | None:
        if socketio.server.manager.is_connected(request.sid, "/"):
            # a real disconnect is marked before this runs; this is a client's event
            return {"ok": False, "error": '"disconnect" is a reserved event name'}
        connected.discard(request.sid)
        load["who"].pop(request.sid, None)
        if _has_listened_room(rooms()):
            _registry().publish(_listened(leaving=request.sid))
        return None

    @socketio.on("*")
    @_limited
    def _unknown(event: str, *args: Any) -> dict[str, Any]:
        if event in RESERVED_EVENTS:
            return {"ok": False, "error": f"{event!r} is a reserved event name"}
        return {"ok": False, "error": f"unknown event {event!r}: use {names.EVENT_SUBSCRIBE}, "
                                      f"{names.EVENT_UNSUBSCRIBE} or {names.EVENT_FOLLOW_ALERTS}"}

    @socketio.on_error_default
    def _error(exc: Exception) -> dict[str, Any]:
        log.error("socket.io handler failed for %s", request.sid, exc_info=exc)
        return {"ok": False, "error": "internal error"}
