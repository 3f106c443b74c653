"""Helpers shared by tests: capture real Socket.IO emits, build tick services."""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from fractions import Fraction
from typing import Any

import redis

from webapp import names


class EmitCapture:
    """Listens on the Socket.IO message-queue channel, as a web process would."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(names.SOCKETIO_CHANNEL)
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._pubsub.get_message(timeout=0.05)
            if msg and msg["type"] == "message":
                self.messages.append(json.loads(msg["data"]))

    def settle(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Wait until nothing new arrived for ``quiet`` seconds; return all so far."""
        n = -1
        while n != len(self.messages):
            n = len(self.messages)
            time.sleep(quiet)
        return self.messages

    def events(self, event: str) -> list[tuple[str, dict[str, Any]]]:
        return [(m["room"], m["data"][0]) for m in self.settle()
                if m.get("method") == "emit" and m["event"] == event]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._pubsub.close()


def reference(prices: list[float], period: int) -> list[str | None]:
    """The definition, written out plainly with exact fractions."""
    exact = [Fraction(Decimal(repr(p))) for p in prices]
    smas = [
        sum(exact[i - period + 1 : i + 1]) / period if i >= period - 1 else None
        for i in range(len(exact))
    ]
    alerts: list[str | None] = []
    for i in range(len(exact)):
        if i == 0 or smas[i] is None or smas[i - 1] is None:
            alerts.append(None)
        elif exact[i] > smas[i] and exact[i - 1] <= smas[i - 1]:
            alerts.append("bullish")
        elif exact[i] < smas[i] and exact[i - 1] >= smas[i - 1]:
            alerts.append("bearish")
        else:
            alerts.append(None)
    return alerts
