"""The one way jobs emit to browsers: Socket.IO through the Redis message queue.

Workers never run a Socket.IO server or import the web process's gevent
patching.  They publish with python-socketio's write-only ``RedisManager``
(what ``SocketIO(message_queue=..., async_mode="threading")`` builds inside)
and the web processes relay each message to their rooms.

A tick emits one ``stock_update`` plus a ``quote`` per new reading and an
``alert`` per cross.  Published one by one that is a round-trip per symbol;
:meth:`Publisher.batch` collects them and sends them in one pipeline, so a
tick's emits cost one round-trip whatever the number of symbols.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import orjson
import socketio

from webapp import names

log = logging.getLogger(__name__)


class _OrjsonModule:
    """python-socketio accepts any module-like object with dumps/loads."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    @staticmethod
    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)


class _BatchingRedisManager(socketio.RedisManager):
    """A write-only manager whose publishes can be held and pipelined."""

    def __init__(self, url: str) -> None:
        super().__init__(url, channel=names.SOCKETIO_CHANNEL, write_only=True, json=_OrjsonModule)
        self._held: list[dict[str, Any]] | None = None

    def _publish(self, data: dict[str, Any]) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            super()._publish(data)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self._held = []
        try:
            yield
            held = self._held
        finally:
            self._held = None
        if not held:
            return
        if not self.connected:
            self._redis_connect()
        pipe = self.redis.pipeline(transaction=False)
        for message in held:
            pipe.publish(self.channel, self.json.dumps(message))
        pipe.execute()


class Publisher:
    """Emits the events of BRIEF's Socket.IO contract to their rooms."""

    def __init__(self, redis_url: str) -> None:
        self._manager = _BatchingRedisManager(redis_url)
        self.sent = 0

    @contextlib.contextmanager
    def batch(self) -> Iterator["Publisher"]:
        """Emits inside the block go out together, in one round-trip, at its end."""
        with self._manager.hold():
            yield self

    def _emit(self, event: str, data: dict[str, Any], room: str) -> None:
        self._manager.emit(event, data, namespace="/", room=room)
        self.sent += 1

    def stock_update(self, payload: dict[str, Any]) -> None:
        self._emit(names.EVENT_STOCK_UPDATE, payload, names.ROOM_ALL)

    def quote(self, payload: dict[str, Any]) -> None:
        self._emit(names.EVENT_QUOTE, payload, names.ticker_room(payload["ticker"]))

    def alert(self, payload: dict[str, Any]) -> None:
        self._emit(names.EVENT_ALERT, payload, names.ROOM_ALERTS)
        self._emit(names.EVENT_ALERT, payload, names.ticker_room(payload["ticker"]))
