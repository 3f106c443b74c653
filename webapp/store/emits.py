"""One emit in python-socketio's message-queue format, for processes that are not Socket.IO servers.

The web processes subscribe to the message-queue channel and relay each
message to their rooms; the worker's :class:`~webapp.tick.publisher.Publisher`
and the stream process only put messages on it.  This is the format
``socketio.PubSubManager.emit`` publishes for a plain (non-binary,
no-callback) emit; ``tests/web/test_realtime.py`` holds it to the real web
process and a real client.
"""
from __future__ import annotations

from typing import Any

import orjson


def emit_message(event: str, data: dict[str, Any], room: str, host_id: str) -> bytes:
    return orjson.dumps({
        "method": "emit", "event": event, "data": [data], "binary": False,
        "namespace": "/", "room": room, "skip_sid": None, "callback": None,
        "host_id": host_id,
    })
