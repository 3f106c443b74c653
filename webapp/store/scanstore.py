"""The scanner's hot data in Redis: scan tables, ranked lists, volume profiles.

Why a *table* per shard (one string: a JSON header and raw numpy columns)
instead of a hash or a document per symbol: the tick reads and writes every
symbol's scanner state each minute, and at 10,000 symbols one 1.5 MB value
costs a few milliseconds where 10,000 small ones cost tens.  The ranked
lists are sorted sets (score = -value, so ``ZRANGE 0 n`` is best first and
ties go by ticker), written by the tick's one write script.  The volume
profile for RVOL is one key per minute of the day holding a float32 per
symbol, so a tick reads just the minute it needs inside its first MGET.

Everything here carries a TTL like the rest of the hot data; a lost table
is rebuilt from Postgres by the tick (see :mod:`webapp.tick.scanner`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson
import redis

from webapp import names
from webapp.core import scanner
from webapp.core.tables import Table, Unreadable, concat, unpack

log = logging.getLogger(__name__)


def merge_tables(blobs: Sequence[bytes | None]) -> tuple[list[str], Table]:
    """Several shards' tables as one (a missing shard contributes nothing)."""
    tickers: list[str] = []
    parts: list[Table] = []
    for blob in blobs:
        if blob:
            try:
                t, table, _ = unpack(blob)
            except Unreadable as exc:  # the next tick rebuilds it; until then it shows nothing
                log.error("a scan table in Redis is unreadable (%s)", exc)
                continue
            tickers += t
            parts.append(table)
    if not parts:
        return [], scanner.empty(0, 0)
    return tickers, concat(parts)


class Profile(NamedTuple):
    """RVOL's denominator for one minute: per symbol, the average cumulative
    volume at that minute over the earlier sessions, and how many there were."""

    expected: dict[str, float]
    sessions: dict[str, int]


def decode_profile(tickers_json: bytes | None, minute_blob: bytes | None) -> Profile:
    if not tickers_json:
        return Profile({}, {})
    meta = orjson.loads(tickers_json)
    tickers, sessions = meta["tickers"], meta["sessions"]
    if minute_blob is None:
        values = [float("nan")] * len(tickers)
    else:
        values = np.frombuffer(minute_blob, np.float32).astype(float).tolist()
    return Profile(dict(zip(tickers, values, strict=True)), dict(zip(tickers, sessions, strict=True)))


class ScanStore:
    """Reads for the API and pages; writes of the volume profile."""

    def __init__(self, client: redis.Redis, shards: int, ttl: int) -> None:
        self.client = client
        self.shards = shards
        self.ttl = ttl

    def table_keys(self) -> list[str]:
        return [names.scan_table_key(i, self.shards) for i in range(self.shards)]

    def table(self) -> tuple[list[str], Table]:
        """Every shard's scan table, merged (one MGET)."""
        return merge_tables(self.client.mget(self.table_keys()))

    def ranked(self, name: str, limit: int) -> list[tuple[str, float]]:
        """A list as kept in its sorted set: (ticker, value), best first."""
        got = self.client.zrange(names.scan_list_key(name), 0, limit - 1, withscores=True)
        return [(t.decode(), -score) for t, score in got]

    def announced(self) -> dict[str, Any]:
        """The lists as last sent to the scan rooms: {list: {"seq", "time", "rows"}}."""
        raw = self.client.get(names.SCAN_ANNOUNCED_KEY)
        return orjson.loads(raw) if raw else {}

    def save_profile(self, day: str, tickers: Sequence[str], sessions: Sequence[int],
                     minutes: dict[int, np.ndarray], ttl: int) -> None:
        """Store a day's profile: one float32 array per minute, aligned with ``tickers``."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(names.rvol_tickers_key(day),
                 orjson.dumps({"tickers": list(tickers), "sessions": [int(s) for s in sessions]}),
                 ex=ttl)
        for minute, values in minutes.items():
            pipe.set(names.rvol_minute_key(day, minute), np.asarray(values, np.float32).tobytes(), ex=ttl)
        pipe.execute()

    def has_profile(self, day: str) -> bool:
        return bool(self.client.exists(names.rvol_tickers_key(day)))
