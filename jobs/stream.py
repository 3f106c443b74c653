"""The ``stream`` process (``python -m jobs.stream``): trades from the provider's WebSocket, live.

asyncio with ``websockets``, in its own process: never under gevent, never
in the web process or an RQ worker, which must never open a provider
socket.  Run two for failover: one leads, the other stands by
(:mod:`webapp.live.process`).  SIGTERM/SIGINT close the connection and
release the lock, so a standby takes over at once.

Each trade makes a few short-lived objects (50,000 a second at load), so
with the collector's defaults a full collection, walking every bar and
ticker the tape holds, comes every few seconds; as in the ``evaluate``
process the start-up objects are frozen out of it and the youngest
generation is collected at 50,000 allocations rather than 700.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Mapping, Sequence

import redis.asyncio as aredis

from jobs import get_app

log = logging.getLogger(__name__)


async def serve() -> None:
    from webapp.live.process import StreamProcess
    from webapp.services import context, ticks

    app = get_app()
    cfg = app.config["TRACKER"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if cfg.STREAM_PROVIDER == "none":
        log.info("stream: STREAM_PROVIDER=none, nothing to stream; idle until stopped")
        await stop.wait()
        return

    def in_app(fn, *args):  # type: ignore[no-untyped-def]
        def call():  # type: ignore[no-untyped-def]
            with app.app_context():
                try:
                    return fn(*args)
                finally:
                    from webapp.extensions import db

                    db.session.remove()
        return asyncio.to_thread(call)

    async def symbols() -> Sequence[str]:
        return await in_app(context.tracked_symbols, True)

    async def anchors(tickers: Sequence[str]) -> Mapping[str, float]:
        return await in_app(ticks.stream_anchors, tickers)

    client = aredis.Redis.from_url(cfg.REDIS_URL, socket_timeout=5, socket_connect_timeout=5,
                                   health_check_interval=10)
    log.info("stream: %s, %d s bars, %d symbols requested at start", cfg.STREAM_PROVIDER, cfg.TICK_SECONDS,
             len(cfg.SYMBOLS))
    try:
        await StreamProcess(cfg, client, symbols, anchors).run(stop)
    finally:
        await client.aclose()


def main() -> None:
    get_app()  # a bad setting: one line and exit 2, before the loop starts
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    asyncio.run(serve())


if __name__ == "__main__":
    main()
