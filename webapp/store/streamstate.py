"""What the stream process keeps in Redis, and how the tick and health read it.

The leader (the one ``stream`` process holding the provider connection)
writes, in one pipeline per flush: the bars it closed (a hash per bar end,
ticker -> ``[open, high, low, close, volume, vwap, trades, complete,
source]``), how far it has closed, the ``trade`` emits, its status and
halts, and the provisional bars of the tickers that traded since the last
flush, one Redis Stream entry per symbol shard (``XADD ... MAXLEN ~``: a
reader that falls behind loses the oldest entries, never the stream's
memory), for the rules evaluated on the print.  The tick reads them
through :mod:`webapp.providers.stream`, health through :func:`stream_status`.
Every key has a TTL, so a stream that died leaves nothing that looks alive.

:class:`LeaderLock` is ``SET NX PX`` with a token, renewed and released
only by its holder (a script compares the token), so two processes never
both believe they hold the provider's one connection slot.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis
import redis.asyncio as aredis

from webapp import names
from webapp.core import handoff
from webapp.core.shards import shard_of
from webapp.store.locks import RELEASE_SCRIPT, RENEW_SCRIPT
from webapp.store.subscriptions import LISTENING_SCRIPT

STATUS_TTL_SECONDS = 15



class LeaderLock:
    def __init__(self, client: aredis.Redis, ttl_seconds: float, key: str = names.STREAM_LEADER_KEY) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    async def acquire(self) -> bool:
        return bool(await self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.token])


class StreamWriter:
    """The leader's writes: one round-trip per flush, whatever it carries."""

    def __init__(self, client: aredis.Redis, bars_ttl: int, shards: int = 1,
                 provisional_maxlen: int = 10_000) -> None:
        self.client = client
        self.bars_ttl = bars_ttl
        self.shards = max(1, shards)
        self.provisional_maxlen = provisional_maxlen
        self._listening = client.register_script(LISTENING_SCRIPT)

    async def flush(self, *, closed_until: int | None = None, bars: dict[int, dict[str, list]] | None = None,
                    emits: list[bytes] = (), status: dict[str, Any] | None = None,  # type: ignore[assignment]
                    halts: dict[str, dict | None] | None = None, provisional: list[list] = (),  # type: ignore[assignment]
                    at_ms: int = 0) -> None:
        pipe = self.client.pipeline(transaction=False)
        by_shard: dict[int, list[list]] = {}
        for row in provisional:
            by_shard.setdefault(shard_of(row[0], self.shards), []).append(row)
        changed: dict[int, list[list]] = {}  # the halts and resumes, judged with the shard's trades
        for ticker, halt in (halts or {}).items():
            what = "halted" if halt["halted"] else "resumed"
            changed.setdefault(shard_of(ticker, self.shards), []).append(
                [ticker, what, int(halt["time_ms"]), halt.get("code") or ""])
        for shard in by_shard.keys() | changed.keys():  # one entry per shard per flush; the oldest trimmed
            entry: dict[str | bytes, Any] = {"at": at_ms, **handoff.encode(by_shard.get(shard, []))}
            if shard in changed:
                entry["status"] = orjson.dumps(changed[shard])
            pipe.xadd(names.provisional_stream_key(shard, self.shards), entry,  # type: ignore[arg-type]
                      maxlen=self.provisional_maxlen, approximate=True)
        for end, rows in (bars or {}).items():
            key = names.stream_bars_key(end)
            pipe.hset(key, mapping={t: orjson.dumps(r) for t, r in rows.items()})
            pipe.expire(key, self.bars_ttl)
        if closed_until is not None:
            pipe.set(names.STREAM_CLOSED_KEY, closed_until, ex=self.bars_ttl)
        for m in emits:
            pipe.publish(names.SOCKETIO_CHANNEL, m)
        for ticker, halt in (halts or {}).items():
            if not halt["halted"]:
                pipe.hdel(names.STREAM_HALTS_KEY, ticker)
            else:
                pipe.hset(names.STREAM_HALTS_KEY, ticker, orjson.dumps(halt))
        if halts:
            pipe.expire(names.STREAM_HALTS_KEY, 86400)
        if status is not None:
            pipe.set(names.STREAM_STATUS_KEY, orjson.dumps(status), ex=STATUS_TTL_SECONDS)
        if len(pipe):
            await pipe.execute()

    async def listened(self, now: float) -> set[str]:
        got = await self._listening(keys=[names.LISTENER_HOSTS_KEY], args=[now, names.LISTENERS_PREFIX])
        return {t.decode() for t in got}


def stream_status(client: redis.Redis) -> dict[str, Any] | None:
    raw = client.get(names.STREAM_STATUS_KEY)
    return orjson.loads(raw) if raw else None


def stream_halts(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """The halts the stream reports now: ticker -> {"code", "reason", "time_ms"}."""
    out = {}
    for t, v in client.hgetall(names.STREAM_HALTS_KEY).items():
        try:
            got = orjson.loads(v) if v else None
        except ValueError:
            got = {}
        if got is not None:
            out[t.decode()] = got if isinstance(got, dict) else {}
    return out


def closed_bars(client: redis.Redis, end: int, tickers: Sequence[str]
                ) -> tuple[dict[str, tuple[float, float, float, float]], bool]:
    """The bars the stream closed at ``end`` for these tickers, as (high, low, close, volume), and
    whether it has closed that bar (then a ticker without one did not trade in it)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(names.STREAM_CLOSED_KEY)
    pipe.hmget(names.stream_bars_key(end), list(tickers))
    closed, rows = pipe.execute()
    out = {}
    for t, raw in zip(tickers, rows, strict=True):
        if raw is not None:
            _, h, lo, c, v = orjson.loads(raw)[:5]
            out[t] = (float(h), float(lo), float(c), float(v))
    return out, closed is not None and int(closed) >= end
