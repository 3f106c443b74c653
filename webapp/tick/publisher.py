"""The one way jobs emit to browsers: Socket.IO through the Redis message queue.

Workers never run a Socket.IO server or import the web process's gevent
patching.  The web processes subscribe to the python-socketio message-queue
channel and relay each message to their rooms; the worker only has to put
messages on that channel.

Why not ``SocketIO(message_queue=...).emit`` one event at a time: a tick at
10,000 symbols emits ~10,000 ``quote`` events, and python-socketio's emit
path costs a Redis round-trip plus a recursive binary-payload scan per
event (about 0.6 s per tick, measured with ``bench/tick.py``).  So the
:class:`Publisher` collects a tick's events, writes each in the message
format ``socketio.PubSubManager.emit`` publishes for a plain (non-binary,
no-callback) emit, and sends them all with one server-side script: one
round-trip per tick.  The batch is built while Postgres stores the tick and
sent once Redis has taken it (the format: :mod:`webapp.store.emits`).
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

import redis

from webapp import names
from webapp.store.emits import emit_message
from webapp.store.subscriptions import Listening

log = logging.getLogger(__name__)

_PUBLISH = """
for i = 2, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end
if ARGV[1] == '1' then redis.call('PUBLISH', KEYS[2], '1') end
return #ARGV - 1
"""
# the same, and a marker written in the same step (KEYS[3] = ARGV[2] for ARGV[3] s): whoever reads
# the marker knows these messages went out, and never sends them again
_PUBLISH_MARKED = """
for i = 4, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end
if ARGV[1] == '1' then redis.call('PUBLISH', KEYS[2], '1') end
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[3])
return #ARGV - 3
"""


class Publisher:
    """Emits the events of BRIEF's Socket.IO contract to their rooms."""

    def __init__(self, client: redis.Redis, channel: str = names.SOCKETIO_CHANNEL) -> None:
        self._client = client
        self._channel = channel
        self._script = client.register_script(_PUBLISH)
        self._marked = client.register_script(_PUBLISH_MARKED)
        self._host_id = uuid.uuid4().hex  # like a write-only manager: nobody answers to it
        self.sent = 0
        self.listening = Listening(client)

    def message(self, event: str, data: dict[str, Any], room: str) -> bytes:
        """One emit in python-socketio's message-queue format."""
        return emit_message(event, data, room, self._host_id)

    def batch(self) -> Batch:
        """Collect emits now, send them later in one round-trip."""
        return Batch(self)

    def send(self, messages: list[bytes], wake_deliverers: bool = False,
             mark: tuple[str, str, int] | None = None) -> None:
        """Publish ``messages`` (and wake the webhook workers) in one round-trip; with ``mark`` (key,
        value, seconds), set that key in the same step."""
        if mark is not None:
            key, value, ttl = mark
            self._marked(keys=[self._channel, names.DELIVERY_WAKE_CHANNEL, key],
                         args=[b"1" if wake_deliverers else b"0", value, ttl, *messages])
            self.sent += len(messages)
            return
        if messages or wake_deliverers:
            self._script(keys=[self._channel, names.DELIVERY_WAKE_CHANNEL],
                         args=[b"1" if wake_deliverers else b"0", *messages])
            self.sent += len(messages)


class Batch:
    """A tick's emits, built ahead and sent together by :meth:`send`."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.messages: list[bytes] = []
        self.listening: set[str] = set()  # tickers and rule rooms with a listener, when the tick read them
        self.wake_deliverers = False  # webhook deliveries were queued: wake their workers with the send

    def _add(self, event: str, data: dict[str, Any], room: str) -> None:
        self.messages.append(self._publisher.message(event, data, room))

    def stock_update(self, payload: dict[str, Any]) -> None:
        self._add(names.EVENT_STOCK_UPDATE, payload, names.ROOM_ALL)

    def quote(self, payload: dict[str, Any]) -> None:
        self._add(names.EVENT_QUOTE, payload, names.ticker_room(payload["ticker"]))

    def alert(self, payload: dict[str, Any], to_ticker_room: bool = True) -> None:
        self._add(names.EVENT_ALERT, payload, names.ROOM_ALERTS)
        if to_ticker_room:
            self._add(names.EVENT_ALERT, payload, names.ticker_room(payload["ticker"]))

    def alert_event(self, payload: dict[str, Any], owner: int | None) -> None:
        """A rule's fire (with its event id) to its owner's feed (the built-in rule's: everyone's) and
        the rule's own room, each where someone follows it (a page that joins later fetches what it
        missed with ``after``).  Only the owner's connections join those rooms."""
        feed = names.ROOM_ALERTS if owner is None else names.user_room(owner)
        for room in (feed, names.rule_room(payload["rule_id"])):
            if room in self.listening:
                self._add(names.EVENT_ALERT_EVENT, payload, room)

    def scan_update(self, payload: dict[str, Any]) -> None:
        self._add(names.EVENT_SCAN_UPDATE, payload, names.scan_room(payload["list"]))

    def in_play(self, payload: dict[str, Any]) -> None:
        self._add(names.EVENT_IN_PLAY, payload, names.ticker_room(payload["ticker"]))

    def send(self, mark: tuple[str, str, int] | None = None) -> int:
        self._publisher.send(self.messages, self.wake_deliverers, mark)
        return len(self.messages)
