"""``MARKET_DATA_PROVIDER=stream``: the minute tick reads the bars the stream process closed.

Instead of polling REST, the tick for the slot ending at ``T`` takes each
ticker's bar for ``[T - TICK_SECONDS, T)`` from Redis (written by
``jobs/stream.py``): its close is the reading's price, its volume the
reading's volume, and the day's open/high/low carry on
(:func:`webapp.core.trades.quote_of_bar`).  The stream closes a bar a grace
period after it ends, so the tick waits for that (up to ``wait_seconds``).

A ticker without a whole bar is never passed off as read: a bar the stream
marked incomplete (it overlaps a reconnect, or began before the process took
the feed) is refilled from ``STREAM_GAP_PROVIDER``'s snapshot when one is
configured, and otherwise marked stale with the reason, as is a ticker the
stream did not deliver (halted, beyond the plan's symbol cap, no trade).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
import redis

from webapp import names
from webapp.core.market import exchange_day_start, slot_of
from webapp.core.quotes import Quote
from webapp.core.trades import quote_of_bar
from webapp.providers.base import FetchResult, Provider


def _hm(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S UTC")


class StreamProvider:
    name = "stream"
    serves_past = False  # bars live in Redis for an hour; a missed slot is recorded, not invented

    def __init__(self, client: redis.Redis, tick_seconds: int, source: str, follows_market_hours: bool,
                 wait_seconds: float, fallback: Provider | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.tick_seconds = tick_seconds
        self.source = source
        self.follows_market_hours = follows_market_hours
        self.wait_seconds = wait_seconds
        self.fallback = fallback
        self._sleep, self._clock = sleep, clock

    def read(self, end: int) -> tuple[int | None, dict[str, list], dict[str, Any] | None, dict[str, dict]]:
        """How far the stream closed, the bars ending at ``end``, its status and halts (one round-trip)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(names.STREAM_CLOSED_KEY)
        pipe.hgetall(names.stream_bars_key(end))
        pipe.get(names.STREAM_STATUS_KEY)
        pipe.hgetall(names.STREAM_HALTS_KEY)
        closed, rows, status, halts = pipe.execute()
        return (int(closed) if closed else None,
                {k.decode(): orjson.loads(v) for k, v in rows.items()},
                orjson.loads(status) if status else None,
                {k.decode(): orjson.loads(v) for k, v in halts.items()})

    def fetch(self, symbols: Sequence[str], now: datetime, previous: Mapping[str, Quote]) -> FetchResult:
        _, at = slot_of(now, self.tick_seconds)
        end = int(at.timestamp())
        deadline = self._clock() + self.wait_seconds
        while True:
            closed, rows, status, halts = self.read(end)
            if (closed is not None and closed >= end) or self._clock() >= deadline or status is None:
                break
            self._sleep(0.05)
        day_start = exchange_day_start(at)
        out = FetchResult()
        unstreamed = set((status or {}).get("unstreamed") or ())
        whole_missing: list[str] = []
        why: dict[str, str] = {}
        for s in symbols:
            row = rows.get(s)
            if row is not None and row[7]:
                out.quotes.append(quote_of_bar(s, row, at, previous.get(s), day_start, self.source))
                continue
            halt = halts.get(s)
            if halt and halt.get("halted"):
                out.problems[s] = f"halted ({halt.get('code')}): {halt.get('reason') or 'trading halt'}"
                continue
            whole_missing.append(s)
            why[s] = self._why(s, row, end, closed, status, s in unstreamed)
        if whole_missing and self.fallback is not None:
            refill = self.fallback.fetch(whole_missing, now, previous)
            out.quotes.extend(refill.quotes)
            for s, problem in refill.problems.items():
                out.problems[s] = f"{why[s]}; {self.fallback.name} could not refill it: {problem}"
        else:
            out.problems.update(why)
        return out

    def _why(self, ticker: str, row: list | None, end: int, closed: int | None, status: dict[str, Any] | None,
             unstreamed: bool) -> str:
        if status is None:
            return "stream: no stream process is running (no status in Redis)"
        if row is not None:
            return (f"stream: the bar to {_hm(end)} is incomplete (a gap in the connection, or the stream "
                    "began inside it) and no STREAM_GAP_PROVIDER refills it")
        if status.get("state") != "connected":
            return f"stream {status.get('state')}: {status.get('reason') or 'no connection'}"
        if closed is None or closed < end:
            return f"stream: the bar to {_hm(end)} was not closed in time"
        if unstreamed:
            return f"stream: not streamed ({status.get('provider')}'s plan caps the symbols)"
        return f"stream: no trade in the {self.tick_seconds} s to {_hm(end)}"
