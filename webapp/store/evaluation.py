"""What the evaluate processes keep in Redis: shard leases, the provisional streams' consumer group, status.

A shard's lease is ``SET NX PX`` with a token, renewed and released only by
its holder (a script compares the token), as the stream leader's lock: at
most one process judges a shard's rules at a time, and a dead holder's
shards are free once its lease lapses.  The live processes register with an
expiry, so each takes its fair share of the shards (``ceil(shards /
processes)``) and gives back what is above it when another joins.

Each shard's provisional stream is read through one consumer group: an
entry stays pending until the holder acknowledges it after its commit, so
a killed process's entries are claimed (``XAUTOCLAIM``) and judged by the
next holder.  A group made anew (the first start, or Redis restarted
empty) starts :data:`START_BACK_MS` back, not at the stream's oldest entry.
"""
from __future__ import annotations

import math
import uuid
from typing import Any

import orjson
import redis

from webapp import names
from webapp.store.locks import RELEASE_SCRIPT, RENEW_SCRIPT

START_BACK_MS = 60_000


class ShardLeases:
    """One process's leases over the symbol shards."""

    def __init__(self, client: redis.Redis, shards: int, ttl_ms: int, host_id: str | None = None) -> None:
        self.client = client
        self.shards = shards
        self.ttl_ms = ttl_ms
        self.host_id = host_id or uuid.uuid4().hex[:12]
        self.token = f"{self.host_id}:{uuid.uuid4().hex}"
        self.held: set[int] = set()
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def key(self, shard: int) -> str:
        return names.evaluate_lease_key(shard, self.shards)

    def maintain(self, now_ms: int) -> tuple[set[int], set[int]]:
        """Renew what is held, give back what is above the fair share, take free shards up to it:
        (shards gained, shards lost)."""
        self.client.hset(names.EVALUATORS_KEY, self.host_id, now_ms + self.ttl_ms)
        registered = self.client.hgetall(names.EVALUATORS_KEY).items()
        alive = [h for h, exp in registered if int(exp) > now_ms]
        stale = [h for h, exp in registered if int(exp) <= now_ms]
        if stale:
            self.client.hdel(names.EVALUATORS_KEY, *stale)
        share = math.ceil(self.shards / max(1, len(alive)))
        lost = {s for s in self.held if not self._renew(keys=[self.key(s)], args=[self.token, self.ttl_ms])}
        self.held -= lost
        for s in sorted(self.held, reverse=True)[:max(0, len(self.held) - share)]:
            self.release(s)
        gained = set()
        for s in range(self.shards):
            if len(self.held) >= share:
                break
            if s not in self.held and self.client.set(self.key(s), self.token, nx=True, px=self.ttl_ms):
                self.held.add(s)
                gained.add(s)
        return gained, lost

    def release(self, shard: int) -> None:
        self._release(keys=[self.key(shard)], args=[self.token])
        self.held.discard(shard)

    def release_all(self) -> None:
        for s in list(self.held):
            self.release(s)
        self.client.hdel(names.EVALUATORS_KEY, self.host_id)


def owned_shards(client: redis.Redis, shards: int) -> set[int]:
    """The shards some evaluate process judges on the print now (the tick leaves them their
    intra-bar rules), in one round-trip."""
    got = client.mget([names.evaluate_lease_key(s, shards) for s in range(shards)])
    return {s for s, v in enumerate(got) if v is not None}


class ProvisionalReader:
    """The consumer group of a process over the streams of the shards it holds."""

    def __init__(self, client: redis.Redis, shards: int, consumer: str) -> None:
        self.client = client
        self.shards = shards
        self.consumer = consumer

    def key(self, shard: int) -> str:
        return names.provisional_stream_key(shard, self.shards)

    def take(self, shard: int, now_ms: int) -> None:
        """Join (or make) the shard's group and claim what a previous holder left pending."""
        try:
            self.client.xgroup_create(self.key(shard), names.EVALUATE_GROUP,
                                      id=f"{max(0, now_ms - START_BACK_MS)}-0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        start: bytes | str = "0-0"
        while True:  # every pending entry becomes this consumer's (its fields come with the next read)
            got = self.client.xautoclaim(self.key(shard), names.EVALUATE_GROUP, self.consumer, 0, start,
                                         count=1000)
            start = got[0]
            if start in (b"0-0", "0-0"):
                break

    def read(self, shards: set[int], pending: bool, count: int, block_ms: int | None
             ) -> list[tuple[int, str, dict[bytes, bytes] | None]]:
        """(shard, entry id, fields) in order: this consumer's pending entries (``pending``), or new
        ones, waiting up to ``block_ms`` for one (0 or None: not at all); an entry trimmed away since
        it was read comes back with no fields."""
        if not shards:
            return []
        streams = {self.key(s): ("0" if pending else ">") for s in sorted(shards)}
        got = self.client.xreadgroup(names.EVALUATE_GROUP, self.consumer, streams, count=count,
                                     block=None if pending or not block_ms else block_ms)
        by_key = {self.key(s): s for s in shards}
        out = []
        for key, entries in got or ():
            shard = by_key[key.decode() if isinstance(key, bytes) else key]
            for entry_id, fields in entries:
                out.append((shard, entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                            fields or None))
        return out

    def ack(self, shard: int, ids: list[str]) -> None:
        if ids:
            self.client.xack(self.key(shard), names.EVALUATE_GROUP, *ids)

    def lag_ms(self, shard: int, judged_ms: int | None) -> int | None:
        """How far the newest entry of the shard's stream is ahead of what was judged (ms)."""
        last = self.client.xrevrange(self.key(shard), count=1)
        if not last:
            return 0
        newest = int((last[0][0].decode() if isinstance(last[0][0], bytes) else last[0][0]).split("-")[0])
        return None if judged_ms is None else max(0, newest - judged_ms)


def write_status(client: redis.Redis, host_id: str, status: dict[str, Any], ttl_seconds: int) -> None:
    client.set(names.EVALUATE_STATUS_PREFIX + host_id, orjson.dumps(status), ex=ttl_seconds)


def statuses(client: redis.Redis) -> list[dict[str, Any]]:
    """Every live evaluate process's last status (health)."""
    keys = list(client.scan_iter(names.EVALUATE_STATUS_PREFIX + "*", count=100))
    return [orjson.loads(v) for v in client.mget(keys) if v] if keys else []
