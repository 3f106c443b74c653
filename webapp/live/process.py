"""The stream process: leader election, then feed → queue → tape → Redis and browsers.

Why one leader: providers allow one connection per key (a second one gets
406, kicks the first, or drops both).  Every ``stream`` process competes for
:class:`~webapp.store.streamstate.LeaderLock`; the holder renews it every
TTL/3, the others wait as standbys and try every second, so a leader that
dies (SIGKILL included) is replaced within TTL + 1 s.  A leader that cannot
renew (Redis down) steps down before its lock could have expired, closing
its provider connection, so two connections never overlap.

While leading, four tasks share one event loop:

* the **feed** (:func:`webapp.streams.connection.keep_connected`, or the
  simulated stream) only receives and queues;
* the **processor** parses each frame and applies it to the
  :class:`~webapp.core.tape.Tape`, yielding after each, so the reader runs;
* the **flusher**, every 100 ms: closes bars, takes revisions and due
  pushes, and writes them all in one Redis round-trip (bars that could not
  be written are kept and written with the next flush);
* the **lock keeper**.

A Redis outage is logged and waited out; nothing here exits for one.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import RedisError

from webapp import names
from webapp.config import Config
from webapp.core.market import exchange_day_start, market_state
from webapp.core.tape import Tape
from webapp.providers.sim import SimProvider
from webapp.store.emits import emit_message
from webapp.store.streamstate import LeaderLock, StreamWriter
from webapp.streams import get_stream_source
from webapp.streams.base import Parsed, StreamRefused
from webapp.streams.connection import Link, keep_connected
from webapp.streams.sim import SimTrades, run_sim

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1
STATUS_SECONDS = 1.0
SYMBOLS_SECONDS = 10.0


class LostLeadership(Exception):
    pass


class StreamProcess:
    def __init__(self, cfg: Config, client: aredis.Redis,
                 symbols: Callable[[], Awaitable[Sequence[str]]],
                 anchors: Callable[[Sequence[str]], Awaitable[Mapping[str, float]]]) -> None:
        self.cfg = cfg
        self.client = client
        self.load_symbols = symbols
        self.anchors = anchors
        self.host_id = uuid.uuid4().hex
        self.symbols: list[str] = []
        self.link = Link(cfg.STREAM_PROVIDER)
        self.leading = False
        self.halts: dict[str, dict | None] = {}  # halt changes waiting for the next flush

    async def run(self, stop: asyncio.Event) -> None:
        """Lead when the lock is free, stand by otherwise, until ``stop``."""
        lock = LeaderLock(self.client, self.cfg.STREAM_LEADER_TTL_SECONDS)
        delay = 1.0
        said_standby = False
        while not stop.is_set():
            try:
                if await lock.acquire():
                    said_standby = False
                    log.info("stream: leading (%s); this process holds the %s connection", self.host_id[:8],
                             self.cfg.STREAM_PROVIDER)
                    await self._lead(lock, stop)
                elif not said_standby:
                    log.info("stream: standby; another stream process holds the %s connection",
                             self.cfg.STREAM_PROVIDER)
                    said_standby = True
                delay = 1.0
            except LostLeadership as why:
                log.warning("stream: stepped down: %s", why)
            except (RedisError, OSError) as exc:
                log.warning("stream: Redis unavailable (%s: %s); retrying in %.0f s", type(exc).__name__,
                            exc, delay)
                await _wait(stop, delay)
                delay = min(self.cfg.REDIS_RETRY_MAX_SECONDS, delay * 2)
                continue
            await _wait(stop, 1.0)
        with contextlib.suppress(RedisError, OSError):
            await lock.release()

    async def _lead(self, lock: LeaderLock, stop: asyncio.Event) -> None:
        self.leading = True
        cfg = self.cfg
        try:
            self.symbols = list(await self.load_symbols())
        except Exception as exc:  # Postgres down as we take the feed: stream what we know, refresh later
            self.symbols = self.symbols or list(cfg.SYMBOLS)
            log.warning("stream: could not read the tracked symbols (%s); streaming %d until they can be "
                        "read again", type(exc).__name__, len(self.symbols))
        now_ms = int(time.time() * 1000)
        tape = Tape(cfg.STREAM_PROVIDER, cfg.TICK_SECONDS, cfg.STREAM_GRACE_MS, started_ms=now_ms)
        self.link = link = Link(cfg.STREAM_PROVIDER)
        self.tape = tape
        queue: asyncio.Queue = asyncio.Queue(cfg.STREAM_QUEUE_FRAMES)
        source = get_stream_source(cfg)
        if isinstance(source, SimTrades):
            source.volume_of = SimProvider(cfg.SIM_SEED).minute_volume  # as the history it backfills
            feed = run_sim(source, link, queue, lambda: self.symbols, self.anchors)
        else:
            feed = keep_connected(source, link, queue, lambda: self.symbols,
                                  (lambda: True) if cfg.STREAM_ALWAYS_OPEN else _market_open,
                                  cfg.STREAM_STALL_SECONDS)
        writer = StreamWriter(self.client, bars_ttl=max(3600, 10 * cfg.TICK_SECONDS), shards=cfg.TICK_SHARDS,
                              provisional_maxlen=cfg.PROVISIONAL_STREAM_MAXLEN)
        tasks = [asyncio.create_task(c) for c in (
            _then_idle(feed), self._process(queue, source, tape, link),
            self._flush(writer, tape, link, queue),
            self._keep_lock(lock), self._follow_symbols(), _until(stop))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            self.leading = False
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await writer.flush(status={**link.as_json(), "state": "standby",
                                           "reason": "the leader stepped down"})
            with contextlib.suppress(RedisError, OSError):
                await lock.release()

    async def _process(self, queue: asyncio.Queue, source: Any, tape: Tape, link: Link) -> None:
        warned = 0.0
        while True:
            item = await queue.get()
            if isinstance(item, Parsed):
                parsed = item
            else:
                try:
                    parsed = source.parse(item)
                except StreamRefused as refused:
                    await link.refuse(refused)
                    continue
                except ValueError as exc:
                    link.malformed += 1
                    if time.monotonic() - warned > 5:
                        warned = time.monotonic()
                        log.warning("stream %s: a malformed frame skipped (%s); %d so far", source.name, exc,
                                    link.malformed)
                    continue
            if parsed.market_data:
                link.last_data_at = time.time()
            if parsed.trades:
                tape.add(parsed.trades)
            for b in parsed.bars:
                tape.provider_bar(b.ticker, b.start, b.open, b.high, b.low, b.close, b.volume, b.vwap,
                                  b.trades)
            for h in parsed.halts:
                self.halts[h.ticker] = {"halted": h.halted, "code": h.code, "reason": h.reason,
                                        "time_ms": h.time_ms}
            if parsed.subscribed is not None:
                acked = set(parsed.subscribed)
                link.streamed = [s for s in link.requested if s in acked]
            if parsed.too_many:
                link.too_many()
            for notice in parsed.notices:
                log.info("stream %s: %s", source.name, notice)
            await asyncio.sleep(0)  # let the reader take the next frame off the socket

    async def _flush(self, writer: StreamWriter, tape: Tape, link: Link, queue: asyncio.Queue) -> None:
        pending: dict[int, dict[str, list]] = {}
        closed_until: int | None = None
        next_status = next_listen = next_day_check = 0.0
        last_count, last_at = 0, time.monotonic()
        rate = 0.0
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            now = time.time()
            now_ms = int(now * 1000)
            if now >= next_listen:
                try:
                    tape.listen(await writer.listened(now))
                except (RedisError, OSError):
                    pass
                next_listen = now + 1.0
            if now >= next_day_check:
                tape.new_day(int(exchange_day_start(datetime.now(timezone.utc)).timestamp() * 1000))
                next_day_check = now + 30.0
            backlog = queue.qsize() > 0  # frames wait: bars close by the trades applied, not the clock
            until, bars = tape.close(tape.clock(now_ms, backlog), link.gaps)
            for end, rows in [*bars.items(), *tape.take_revised().items()]:
                pending.setdefault(end, {}).update(rows)
            emits = [emit_message(names.EVENT_TRADE, p, names.ticker_room(p["ticker"]), self.host_id)
                     for p in tape.pushes(now_ms)]
            status = None
            if now >= next_status:
                mono = time.monotonic()
                rate = (tape.trades - last_count) / max(mono - last_at, 1e-6)
                last_count, last_at = tape.trades, mono
                status = {**link.as_json(now), "leader": self.host_id, "pid": os.getpid(),
                          "trades_per_s": round(rate, 1), "trades": tape.trades, "late_trades": tape.late,
                          "duplicates": tape.dedup.dropped, "queued_frames": queue.qsize(),
                          "behind_s": round((now_ms - tape.newest_ms) / 1000, 3) if backlog and tape.newest_ms
                          else 0.0,
                          "halted": sum(h["halted"] for h in self.halts.values()),
                          "bar_seconds": self.cfg.TICK_SECONDS, "closed_until": until, "at": now}
                next_status = now + STATUS_SECONDS
            halts, self.halts = self.halts, {}
            provisional = tape.hand_off()
            try:
                await writer.flush(closed_until=until if until != closed_until else None, bars=pending,
                                   emits=emits, status=status, halts=halts, provisional=provisional,
                                   at_ms=now_ms)
                pending, closed_until = {}, until
            except (RedisError, OSError) as exc:
                self.halts = {**halts, **self.halts}
                tape.hand_back(provisional)  # handed off again, newer, next flush
                if status is not None:
                    log.warning("stream: Redis write failed (%s); %d bar end(s) kept for the next flush",
                                type(exc).__name__, len(pending))

    async def _keep_lock(self, lock: LeaderLock) -> None:
        ttl = self.cfg.STREAM_LEADER_TTL_SECONDS
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                held = await lock.renew()
            except (RedisError, OSError):
                held = None
            if held is False:
                ago = time.monotonic() - renewed
                with contextlib.suppress(RedisError, OSError):
                    if await lock.client.exists(lock.key) == 0:  # nobody took it: ours lapsed
                        raise LostLeadership(f"the lock lapsed: last renewed {ago:.1f} s ago, its TTL is "
                                             f"{ttl:g} s (the event loop was held, or Redis lost the key)")
                raise LostLeadership("another stream process holds the lock now")
            if held:
                renewed = time.monotonic()
            elif time.monotonic() - renewed > ttl - 1.0:
                raise LostLeadership("cannot renew the lock (Redis unavailable); closing the provider "
                                     "connection before the lock could pass to another process")

    async def _follow_symbols(self) -> None:
        while True:
            await asyncio.sleep(SYMBOLS_SECONDS)
            try:
                self.symbols = list(await self.load_symbols())
            except Exception as exc:  # Postgres down: keep streaming the list we have
                log.warning("stream: could not refresh the tracked symbols (%s); keeping %d",
                            type(exc).__name__, len(self.symbols))


_open_cache: tuple[float, bool] = (0.0, False)


def _market_open() -> bool:
    global _open_cache
    now = time.time()
    if now - _open_cache[0] > 30:
        _open_cache = (now, market_state(datetime.now(timezone.utc)).is_open)
    return _open_cache[1]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _then_idle(feed: Awaitable[None]) -> None:
    """A feed returns only on a fatal answer: keep the lock (a standby would be refused the same way)
    and keep reporting it, instead of dialling again."""
    await feed
    await asyncio.Event().wait()


async def _until(stop: asyncio.Event) -> None:
    await stop.wait()
