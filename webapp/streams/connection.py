"""One provider connection, kept alive: dial, handshake, subscribe, read, and dial again.

The same for every WebSocket source, because the failure modes are the
feeds' common ones (``../shared/research/streaming.md`` section 3):

* **backoff** (:class:`webapp.core.reconnect.Backoff`): 1 s doubling to
  60 s with jitter, reset only after 60 s up *with* market data; "slot busy"
  answers wait at least 90 s; fatal answers stop dialling, and
  :class:`Link` says why until the process is restarted with a fixed key;
* **the reader never blocks**: it only receives and ``put_nowait``\\ s into
  the bounded queue the stream process drains; a full queue drops the
  frame, counts it and logs it (rate-limited), never silently;
* **the stall watchdog**: while the market is open, no market data for
  ``stall_seconds`` closes the socket and dials again, because a socket
  that still answers pings can be dead for hours;
* a **symbol-cap answer** shrinks the subscription instead of reconnecting
  (:meth:`Link.too_many`, called by the processor that parsed it).

:class:`Link` is the connection's state as health and the page header
show it.  Secrets never reach it: only the source's ``where`` is logged.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from webapp.core.reconnect import Backoff
from webapp.streams.base import StreamRefused, WebSocketSource

log = logging.getLogger(__name__)

DROP_LOG_EVERY = 5.0  # seconds between "queue full" log lines


@dataclass
class Link:
    """The live connection's state and counters (what ``/api/health`` shows as ``stream``)."""

    provider: str
    where: str = ""
    state: str = "starting"  # connecting, connected, reconnecting, down (fatal), standby
    reason: str = ""  # why it is not connected (empty while connected)
    last_disconnect: str = ""  # why the last connection ended, kept after reconnecting
    requested: list[str] = field(default_factory=list)
    streamed: list[str] = field(default_factory=list)
    connected_at: float | None = None  # wall clock
    last_message_at: float | None = None
    last_data_at: float | None = None
    reconnects: int = 0
    retry_at: float | None = None  # when the next dial is due, while waiting for it
    dropped_frames: int = 0
    malformed: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (from, to) wall clock, newest last
    ws: Any = None
    source: WebSocketSource | None = None
    abort: StreamRefused | None = None
    _refused: int = 0
    _shrinking: Any = None
    _dropped_logged_at: float = 0.0

    @property
    def unstreamed(self) -> list[str]:
        streamed = set(self.streamed)
        return [s for s in self.requested if s not in streamed]

    def saw(self, market_data: bool, now: float | None = None) -> None:
        now = now or time.time()
        self.last_message_at = now
        if market_data:
            self.last_data_at = now

    def dropped(self, n: int = 1) -> None:
        self.dropped_frames += n
        now = time.monotonic()
        if now - self._dropped_logged_at >= DROP_LOG_EVERY:
            self._dropped_logged_at = now
            log.warning("stream %s: reader queue full, %d frame(s) dropped so far (processing is "
                        "behind the feed)", self.provider, self.dropped_frames)

    async def refuse(self, refused: StreamRefused) -> None:
        """An error answer mid-stream: end this connection and let the loop decide."""
        self.abort = refused
        if self.ws is not None:
            await self.ws.close()

    def too_many(self) -> None:
        """A symbol-cap answer: shrink once the answers to the same subscribe batch are in."""
        self._refused += 1
        if self._shrinking is None or self._shrinking.done():
            self._shrinking = asyncio.get_running_loop().create_task(self._shrink_soon())

    async def _shrink_soon(self, settle: float = 0.5) -> None:
        await asyncio.sleep(settle)
        refused, self._refused = self._refused, 0
        if self.ws is None or self.source is None:
            return
        current = len(self.streamed)
        if self.source.refuses_each:  # one answer per refused symbol (finnhub)
            keep = max(0, current - refused)
        else:  # one answer for the whole request, which changed nothing (alpaca 405)
            cap = self.source.plan_cap
            keep = cap if cap is not None and cap < current else current // 2
        kept, dropped = self.streamed[:keep], self.streamed[keep:]
        self.streamed = list(kept)
        log.warning("stream %s: the plan's symbol cap was reached; streaming %d of %d, not streamed: %s",
                    self.provider, len(kept), len(self.requested), ", ".join(dropped[:20]))
        for message in self.source.shrink(kept, dropped):
            await self.ws.send(message)

    def as_json(self, now: float | None = None) -> dict[str, Any]:
        now = now or time.time()

        def age(t: float | None) -> float | None:
            return None if t is None else round(now - t, 1)

        return {"provider": self.provider, "where": self.where, "state": self.state, "reason": self.reason,
                "last_disconnect": self.last_disconnect,
                "symbols_requested": len(self.requested), "symbols_streamed": len(self.streamed),
                "unstreamed": self.unstreamed[:50], "last_message_age_s": age(self.last_message_at),
                "last_data_age_s": age(self.last_data_at), "reconnects": self.reconnects,
                "retry_in_s": None if self.retry_at is None else round(max(0.0, self.retry_at - now), 1),
                "dropped_frames": self.dropped_frames, "malformed_frames": self.malformed,
                "gaps": [[round(a, 3), round(b, 3)] for a, b in self.gaps[-10:]]}


def _classify(exc: BaseException) -> StreamRefused:
    """An exception from dialling or reading as a refusal kind."""
    if isinstance(exc, StreamRefused):
        return exc
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        if code in (401, 403):
            return StreamRefused("fatal", f"HTTP {code} on the upgrade (the key was refused)")
        if code == 429:
            return StreamRefused("busy", "HTTP 429 on the upgrade (the connection slot is still held)")
        return StreamRefused("retry", f"HTTP {code} on the upgrade")
    if isinstance(exc, ConnectionClosed):
        rcvd = exc.rcvd
        return StreamRefused("retry", f"connection closed ({rcvd.code if rcvd else 1006}"
                                      f"{' ' + rcvd.reason if rcvd and rcvd.reason else ''})")
    return StreamRefused("retry", f"{type(exc).__name__}: {exc}")


async def keep_connected(
    source: WebSocketSource,
    link: Link,
    queue: asyncio.Queue,
    wanted: Callable[[], Sequence[str]],
    market_open: Callable[[], bool],
    stall_seconds: float,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> None:
    """Run until cancelled (or a fatal answer): the one connection to ``source``."""
    backoff = backoff or Backoff()
    link.source, link.where = source, source.where
    while True:
        link.state = "connecting" if link.reconnects == 0 else "reconnecting"
        started = time.time()
        link.abort = None
        try:
            async with connect(source.url(), additional_headers=source.headers(), open_timeout=10,
                               ping_interval=20, ping_timeout=20, close_timeout=2, max_queue=1024,
                               max_size=2**24, proxy=None) as ws:
                await asyncio.wait_for(source.handshake(ws), 10)
                link.ws = ws
                link.requested = list(wanted())
                cap = source.plan_cap
                link.streamed = list(link.requested[:cap] if cap is not None else link.requested)
                for message in source.subscribe(link.streamed):
                    await ws.send(message)
                link.state, link.reason, link.connected_at = "connected", "", time.time()
                if link.gaps and link.gaps[-1][1] == 0.0:
                    link.gaps[-1] = (link.gaps[-1][0], link.connected_at)
                log.info("stream %s: connected to %s, %d of %d symbols subscribed", source.name,
                         source.where, len(link.streamed), len(link.requested))
                try:
                    await _read(ws, link, queue, wanted, market_open, stall_seconds)
                except asyncio.CancelledError:
                    await ws.close()  # stopping, not failing: a clean 1000 close for the provider
                    raise
            raise link.abort or StreamRefused("retry", "the server closed the connection")
        except asyncio.CancelledError:
            raise
        except (Exception, ConnectionClosed, InvalidHandshake) as exc:
            refused = link.abort or _classify(exc)
            # an exception may quote the URL, and finnhub's carries the key: never let it out
            refused.message = refused.message.replace(source.url(), source.where)
        finally:
            link.ws = None
        up = time.time() - started
        had_data = link.last_data_at is not None and link.last_data_at >= started
        backoff.connection_ended(up, had_data)
        if link.state == "connected" or not link.gaps or link.gaps[-1][1] != 0.0:
            link.gaps.append((link.last_message_at or time.time(), 0.0))  # open until connected again
        link.reason = link.last_disconnect = refused.message
        if refused.kind == "fatal":
            link.state = "down"
            log.error("stream %s: %s; not retrying (fix the key or the plan, then restart the stream "
                      "process)", source.name, refused.message)
            return
        delay = backoff.next_delay(random.random(), busy=refused.kind == "busy")
        link.state, link.reconnects = "reconnecting", link.reconnects + 1
        log.warning("stream %s: %s; reconnecting in %.1f s", source.name, refused.message, delay)
        link.retry_at = time.time() + delay
        await sleep(delay)
        link.retry_at = None


async def _read(ws: Any, link: Link, queue: asyncio.Queue, wanted: Callable[[], Sequence[str]],
                market_open: Callable[[], bool], stall_seconds: float) -> None:
    """Receive into the queue; watch for a stall; follow changes of the wanted symbols."""
    connected = time.time()

    async def watchdog() -> None:
        while True:
            await asyncio.sleep(min(1.0, stall_seconds / 4))
            last = max(link.last_data_at or 0.0, connected)
            if market_open() and time.time() - last > stall_seconds:
                link.abort = StreamRefused("retry", f"stalled: no market data for {stall_seconds:.0f} s "
                                                    "while the market is open")
                await ws.close()
                return
            now_wanted = list(wanted())
            if now_wanted != link.requested:
                await _follow(ws, link, now_wanted)

    dog = asyncio.create_task(watchdog())
    try:
        async for message in ws:
            link.last_message_at = time.time()
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                link.dropped()
    finally:
        dog.cancel()


async def _follow(ws: Any, link: Link, wanted: list[str]) -> None:
    """The tracked symbols changed: subscribe the new ones, unsubscribe the gone ones."""
    assert link.source is not None
    # each set made once: rebuilt per symbol, 10,000 symbols held the event loop for 7 s (measured),
    # past the leader lock's TTL, and the stream stepped down
    wanted_set, streamed_set = set(wanted), set(link.streamed)
    gone = [s for s in link.streamed if s not in wanted_set]
    cap = link.source.plan_cap
    room = None if cap is None else max(0, cap - len(link.streamed) + len(gone))
    new = [s for s in wanted if s not in streamed_set][:room]
    for message in [*link.source.unsubscribe(gone), *link.source.subscribe(new)]:
        await ws.send(message)
    link.requested = wanted
    link.streamed = [s for s in link.streamed if s in wanted_set] + new
