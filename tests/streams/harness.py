"""Run the real stream process (its leader loop and every task) in the test's event loop.

Against a fake provider server and the suite's real Redis: what a case
asserts is what the process stored there and what it put on the Socket.IO
channel, read back over real connections.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aredis

from tests.fakes.stream_servers import FakeFeed
from tests.helpers import run_async
from webapp import names
from webapp.config import Config
from webapp.live.process import StreamProcess
from webapp.store.subscriptions import ListenerRegistry

KEYS = {"FINNHUB_API_KEY": "test-key", "ALPACA_API_KEY_ID": "test-key",
        "ALPACA_API_SECRET_KEY": "test-secret", "POLYGON_API_KEY": "test-key"}


class Run:
    def __init__(self, feed: FakeFeed, proc: StreamProcess, client: aredis.Redis, width: int) -> None:
        self.feed, self.proc, self.client, self.width = feed, proc, client, width
        self.emits: list[dict[str, Any]] = []

    async def status(self) -> dict[str, Any]:
        raw = await self.client.get(names.STREAM_STATUS_KEY)
        return orjson.loads(raw) if raw else {}

    async def bars(self, end: int) -> dict[str, list]:
        rows = await self.client.hgetall(names.stream_bars_key(end))
        return {k.decode(): orjson.loads(v) for k, v in rows.items()}

    async def next_bar(self) -> int:
        """Sleep to 50 ms into the next bar; its start (epoch s)."""
        now = time.time()
        start = (int(now) // self.width + 1) * self.width
        await asyncio.sleep(start - now + 0.05)
        return start

    async def until(self, check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = await check()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or check}")
            await asyncio.sleep(0.05)


def run_stream(base_config: Config, redis_url: str, feed: FakeFeed,
               body: Callable[[Run], Awaitable[None]], symbols: list[str] | None = None,
               listen: list[str] = (), symbols_fail: int = 0,  # type: ignore[assignment]
               **overrides: Any) -> None:
    async def main() -> None:
        url = await feed.start()
        cfg = base_config.with_overrides(**{
            "STREAM_PROVIDER": feed.provider, "STREAM_URL": url, "TICK_SECONDS": 2, "STREAM_GRACE_MS": 300,
            "STREAM_ALWAYS_OPEN": True, **KEYS, **overrides})
        client = aredis.Redis.from_url(redis_url)
        wanted = symbols or ["AAPL", "MSFT"]
        if listen:
            import redis

            ListenerRegistry(redis.Redis.from_url(redis_url), "test-web").publish(listen)

        calls = [0]

        async def load_symbols() -> list[str]:
            calls[0] += 1
            if calls[0] <= symbols_fail:
                import sqlalchemy.exc

                raise sqlalchemy.exc.OperationalError("SELECT ticker FROM symbols", {},
                                                      Exception("connection refused"))  # Postgres down
            return wanted

        async def anchors(tickers: Any) -> dict[str, float]:
            return {}

        proc = StreamProcess(cfg, client, load_symbols, anchors)
        run = Run(feed, proc, client, cfg.TICK_SECONDS)
        pubsub = client.pubsub()
        await pubsub.subscribe(names.SOCKETIO_CHANNEL)

        async def collect() -> None:
            async for m in pubsub.listen():
                if m["type"] == "message":
                    run.emits.append(orjson.loads(m["data"]))

        collector = asyncio.create_task(collect())
        stop = asyncio.Event()
        task = asyncio.create_task(proc.run(stop))
        try:
            await asyncio.wait_for(body(run), 60)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(task, 10)
            collector.cancel()
            with contextlib.suppress(BaseException):
                await pubsub.aclose()
            await feed.stop()
            await client.aclose()

    run_async(main)


def iso(epoch: float) -> str:
    from datetime import datetime, timezone

    text = datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def alpaca_trade(sym: str, price: float, size: float, at: float, i: int, x: str = "V",
                 c: list[str] | None = None) -> dict[str, Any]:
    return {"T": "t", "i": i, "S": sym, "x": x, "p": price, "s": size, "t": iso(at), "c": c or ["@"],
            "z": "C"}
