"""What a tick could not store while Postgres was down, kept in Redis until it is back.

A Postgres outage must not stop the live path: the tick still writes Redis
and emits, and puts its quote and alert rows here, one entry per tick, in a
Redis list.  The first tick that finds Postgres reachable again writes the
entries in order through the same COPY path, whose unique keys make a row
stored twice count once, and only then removes them.  The list is bounded
(``SPOOL_MAX_TICKS`` entries, the oldest dropped first, with an error
naming their slots, which are then recorded as missed: Redis got those
ticks and Postgres never will, so the next tick rebuilds the windows from
Postgres rather than let the two disagree) and has no TTL: unlike hot data it must outlive a long
outage.  A small counter key says how many entries wait, and the tick reads
it in its existing MGET, so an unbroken day costs no extra round-trip.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import redis

from webapp import names
from webapp.core.quotes import Quote
from webapp.store.quotes import QuoteRow
from webapp.store.sma_alerts import AlertRow

log = logging.getLogger(__name__)
_SLOT = re.compile(rb'\{"slot":(\d+)')  # an entry's first field (orjson keeps the order)


def _encode(slot: int, quotes: Sequence[QuoteRow], alerts: Sequence[AlertRow]) -> bytes:
    return orjson.dumps({
        "slot": slot,
        "quotes": [[*q[:2], q.time.isoformat(), *q[3:], sma] for q, sma in quotes],
        "alerts": [[a.ticker, a.time.isoformat(), a.kind, a.price, a.sma] for a in alerts],
    })


def _decode(blob: bytes) -> tuple[int, list[QuoteRow], list[AlertRow]]:
    doc = orjson.loads(blob)
    quotes = [QuoteRow(Quote(r[0], r[1], datetime.fromisoformat(r[2]), *r[3:-1]), r[-1])
              for r in doc["quotes"]]
    alerts = [AlertRow(r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4]) for r in doc["alerts"]]
    return doc["slot"], quotes, alerts


class Spool:
    def __init__(self, client: redis.Redis, max_ticks: int) -> None:
        self.client, self.max_ticks = client, max_ticks

    def put(self, slot: int, quotes: Sequence[QuoteRow], alerts: Sequence[AlertRow]) -> int:
        """Keep one tick's rows; returns how many ticks wait (one round-trip; two when full)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(names.SPOOL_KEY, _encode(slot, quotes, alerts))
        pipe.llen(names.SPOOL_KEY)
        _, length = pipe.execute()
        if length > self.max_ticks:
            self._drop_oldest(length - self.max_ticks)
        waiting = min(length, self.max_ticks)
        self.client.set(names.SPOOL_COUNT_KEY, waiting)
        return waiting

    def _drop_oldest(self, count: int) -> None:
        """Make room, and remember which slots' rows will never reach Postgres."""
        dropped = self.client.lpop(names.SPOOL_KEY, count) or []
        slots = [int(_SLOT.match(blob[:40]).group(1)) for blob in dropped]  # type: ignore[union-attr]
        if slots:
            self.client.rpush(names.SPOOL_LOST_KEY, *slots)
        log.error("spool full (SPOOL_MAX_TICKS=%d): dropped the rows of %d tick(s), slots %s; they are "
                  "recorded as missed when Postgres is back", self.max_ticks, len(slots), slots)

    def take_lost(self) -> list[int]:
        """The slots dropped while full, forgotten here once the caller has them."""
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(names.SPOOL_LOST_KEY, 0, -1)
        pipe.delete(names.SPOOL_LOST_KEY)
        raw, _ = pipe.execute()
        return [int(x) for x in raw]

    def entries(self) -> list[tuple[int, list[QuoteRow], list[AlertRow]]]:
        return [_decode(b) for b in self.client.lrange(names.SPOOL_KEY, 0, -1)]

    def drop(self, count: int) -> int:
        """Remove the first ``count`` entries (stored now); returns how many still wait."""
        pipe = self.client.pipeline(transaction=True)
        pipe.ltrim(names.SPOOL_KEY, count, -1)
        pipe.llen(names.SPOOL_KEY)
        _, left = pipe.execute()
        if left:
            self.client.set(names.SPOOL_COUNT_KEY, left)
        else:
            self.client.delete(names.SPOOL_COUNT_KEY)
        return left

    def waiting(self, raw: Any = None) -> int:
        """Ticks waiting, from the counter's raw value when the caller read it (else one GET)."""
        value = raw if raw is not None else self.client.get(names.SPOOL_COUNT_KEY)
        return int(value or 0)
