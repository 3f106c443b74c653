"""Streaming load: one ``stream`` process against a fake provider pushing batched trades for 10,000 symbols.

A local server speaking polygon's wire format (auth, subscribe, ``T``
trades in batched arrays, as real feeds frame them) pushes at rising rates;
the real ``python -m jobs.stream`` takes them, and a real gunicorn web
process relays its ``trade`` events to a websocket client in 20 tickers'
rooms.  What is counted comes from the stream process's own status in Redis
(trades applied, frames dropped) and from the client's receipts:

* ``sustained_trades_per_s``: the highest rate held for ``--seconds`` with
  ``dropped_frames`` 0 and every trade applied within 2 s of the phase's end;
* ``latency_ms_p50`` / ``latency_ms_p99``: trade time → Socket.IO client
  receipt, at 10,000 trades/s;
* ``burst_trades``, ``burst_drain_s``, ``burst_lost``: a one-second burst,
  how long until every trade was applied, and how many never were;
* ``cpu_pct`` (of one core) and ``rss_mb`` of the stream process at the
  highest sustained rate.

    python -m bench.stream                      # rates 10k..100k, 60 s each
    python -m bench.stream --rates 10000 50000 --seconds 20 --burst 200000
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import socket
import subprocess
import sys
import time
from typing import Any

import orjson
import psutil
import redis

from bench import bench_app
from bench.sockets import _web
from webapp import names
from webapp.config import Config, child_environment
from webapp.launch.embedded import ROOT

FRAMES_PER_SECOND = 100
LISTENED = 20


def _symbols(n: int) -> list[str]:
    out, i = [], 0
    while len(out) < n:
        k, s = i, ""
        for _ in range(4):
            s = chr(65 + k % 26) + s
            k //= 26
        out.append("Z" + s)
        i += 1
    return out


def _feed(port_out: Any, ctl: Any, n_symbols: int) -> None:
    """The fake provider (its own process): polygon's handshake, then trades on command."""
    from websockets.asyncio.server import serve

    symbols = _symbols(n_symbols)
    clients: set[Any] = set()
    seq = [0]

    async def handler(ws: Any) -> None:
        await ws.send('[{"ev":"status","status":"connected","message":"Connected Successfully"}]')
        await ws.recv()
        await ws.send('[{"ev":"status","status":"auth_success","message":"authenticated"}]')
        clients.add(ws)
        try:
            async for _ in ws:
                pass
        except Exception:  # the stream process went away: the bench stops it at the end
            pass
        finally:
            clients.discard(ws)

    async def send(n: int) -> None:
        now = int(time.time() * 1000)
        k = seq[0]
        seq[0] += n
        frame = orjson.dumps([{"ev": "T", "sym": symbols[(k + j) % n_symbols], "x": 4, "i": str(k + j),
                               "z": 3, "p": 10.0 + ((k + j) % 997) / 100, "s": 100, "c": [], "t": now,
                               "q": k + j} for j in range(n)]).decode()
        for ws in list(clients):
            await ws.send(frame)

    async def push(rate: int, seconds: float) -> tuple[int, float]:
        size = max(1, rate // FRAMES_PER_SECOND)
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            await send(size)
            sent += size
            wait = start + sent / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return sent, time.monotonic() - start

    async def main() -> None:
        server = await serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None, max_size=None)
        port_out.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, ctl.recv)
            if cmd[0] == "stop":
                return
            if cmd[0] == "clients":
                ctl.send(len(clients))
            elif cmd[0] == "rate":
                ctl.send(await push(cmd[1], cmd[2]))
            elif cmd[0] == "burst":  # as fast as the socket takes it, in frames of 1,000
                start = time.monotonic()
                for k in range(0, cmd[1], 1000):
                    await send(min(1000, cmd[1] - k))
                ctl.send((cmd[1], time.monotonic() - start))

    asyncio.run(main())


def _latency_client(url: str, tickers: list[str], conn: Any) -> None:
    """A websocket client in the tickers' rooms: when each ``trade`` arrived, against its trade time."""
    import websockets

    async def main() -> None:
        lags: list[float] = []
        with contextlib.suppress(websockets.ConnectionClosed):
            await session(lags)
        conn.send("bye")

    async def session(lags: list[float]) -> None:
        async with websockets.connect(url, compression=None, max_size=None, ping_interval=None) as ws:
            await ws.recv()
            await ws.send("40")
            await ws.recv()
            await ws.send('420["subscribe",' + json.dumps({"tickers": tickers}) + "]")
            conn.send("ready")
            loop = asyncio.get_running_loop()
            measuring = [False]
            control = loop.run_in_executor(None, conn.recv)
            while True:
                if control.done():
                    cmd = control.result()
                    if cmd == "stop":
                        break
                    measuring[0] = cmd == "measure"
                    if cmd == "report":
                        conn.send(lags)
                        lags = []
                    control = loop.run_in_executor(None, conn.recv)
                try:
                    frame = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                if frame == "2":
                    await ws.send("3")
                elif frame.startswith('42["trade"') and measuring[0]:
                    now = time.time()
                    body = orjson.loads(frame[2:])[1]
                    from datetime import datetime

                    lags.append((now - datetime.fromisoformat(body["time"]).timestamp()) * 1000)

    asyncio.run(main())


def _status(client: redis.Redis) -> dict[str, Any]:
    raw = client.get(names.STREAM_STATUS_KEY)
    return orjson.loads(raw) if raw else {}


def _applied(client: redis.Redis, target: int, timeout: float) -> tuple[int, float]:
    """Wait until the stream process applied ``target`` trades in all; (applied, seconds waited)."""
    t0 = time.monotonic()
    while True:
        got = _status(client).get("trades", 0)
        if got >= target or time.monotonic() - t0 > timeout:
            return got, time.monotonic() - t0
        time.sleep(0.1)


def _wait_ready(client: redis.Redis, ctl: Any, stream: subprocess.Popen, web_port: int,
                within: float) -> None:
    """Until the stream process is connected to the feed and the web process answers."""
    import requests

    deadline = time.monotonic() + within
    while not (_status(client).get("state") == "connected" and (ctl.send(("clients",)) or ctl.recv())):
        if time.monotonic() > deadline or stream.poll() is not None:
            raise RuntimeError("the stream process did not connect")
        time.sleep(0.3)
    while True:
        try:
            requests.get(f"http://127.0.0.1:{web_port}/api/health", timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise RuntimeError("the web process did not start") from None
            time.sleep(0.3)


def run(cfg: Config, rates: list[int], seconds: float, burst: int, n_symbols: int = 10_000) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    port_in, port_out = ctx.Pipe()
    ctl, ctl_child = ctx.Pipe()
    feed = ctx.Process(target=_feed, args=(port_out, ctl_child, n_symbols), daemon=True)
    feed.start()
    port = port_in.recv()
    symbols = _symbols(n_symbols)
    env = child_environment(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "",
                            STREAM_PROVIDER="polygon", STREAM_URL=f"ws://127.0.0.1:{port}/stocks",
                            POLYGON_API_KEY="bench", SYMBOLS=",".join(symbols), TICK_SECONDS="60",
                            STREAM_ALWAYS_OPEN="1", LOG_LEVEL="WARNING", QUEUE_NAME="bench-stream")
    client = redis.Redis.from_url(cfg.REDIS_URL or "")
    client.delete(names.STREAM_STATUS_KEY, names.STREAM_LEADER_KEY)
    stream = subprocess.Popen([sys.executable, "-m", "jobs.stream"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    web = _web(cfg.with_overrides(), web_port, None)
    lat, lat_child = ctx.Pipe()
    listener = None
    out: dict[str, Any] = {"bench": "stream", "symbols": n_symbols, "seconds_per_rate": seconds}
    try:
        _wait_ready(client, ctl, stream, web_port, 90)
        url = f"ws://127.0.0.1:{web_port}/socket.io/?EIO=4&transport=websocket"
        listener = ctx.Process(target=_latency_client, args=(url, symbols[:LISTENED], lat_child), daemon=True)
        listener.start()
        lat.recv()
        time.sleep(2.5)  # the web publishes the listened rooms; the stream reads them every second
        proc = psutil.Process(stream.pid)
        phases = []
        sustained = 0
        at_best: dict[str, float] = {}
        for rate in sorted(set(rates)):
            before = _status(client)
            lat.send("measure" if rate == 10_000 else "idle")
            proc.cpu_percent(None)
            ctl.send(("rate", rate, seconds))
            sent, took = ctl.recv()
            cpu = proc.cpu_percent(None)
            applied, _ = _applied(client, before.get("trades", 0) + sent, 2.0)
            after = _status(client)
            dropped = after.get("dropped_frames", 0) - before.get("dropped_frames", 0)
            done = applied - before.get("trades", 0)
            held = dropped == 0 and done >= sent and sent / took >= 0.98 * rate
            phases.append({"rate": rate, "sent": sent, "sent_per_s": round(sent / took), "applied": done,
                           "dropped_frames": dropped, "cpu_pct": round(cpu, 1), "held": held})
            if rate == 10_000:
                lat.send("report")
                lags = sorted(lat.recv())
                if lags:
                    out["latency_ms_p50"] = round(lags[len(lags) // 2], 1)
                    out["latency_ms_p99"] = round(lags[min(len(lags) - 1, int(0.99 * len(lags)))], 1)
                    out["latency_samples"] = len(lags)
            if held and rate > sustained:
                sustained = rate
                at_best = {"cpu_pct": round(cpu, 1), "rss_mb": round(proc.memory_info().rss / 2**20, 1)}
            if not held:
                time.sleep(5)  # let the backlog drain before the next phase
        out["sustained_trades_per_s"] = sustained
        out.update(at_best)
        out["phases"] = phases
        if burst:
            time.sleep(2)
            before = _status(client)
            t0 = time.monotonic()
            ctl.send(("burst", burst))
            sent, pushed_in = ctl.recv()
            applied, _ = _applied(client, before.get("trades", 0) + sent, 30.0)
            out["burst_trades"] = sent
            out["burst_sent_s"] = round(pushed_in, 2)
            out["burst_drain_s"] = round(time.monotonic() - t0, 2)
            out["burst_lost"] = max(0, sent - (applied - before.get("trades", 0)))
            dropped = _status(client).get("dropped_frames", 0) - before.get("dropped_frames", 0)
            out["burst_dropped_frames"] = dropped
        out["counted"] = ("trades the stream process applied (its status in Redis) against trades the fake "
                          "provider sent, in frames of rate/100 trades; latency: trade time to a websocket "
                          f"client's receipt of the trade event, {LISTENED} tickers listened")
        return out
    finally:
        for p in (stream, web):
            p.terminate()
        for p in (stream, web):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if listener is not None:
            lat.send("stop")
            listener.join(5)
            if listener.is_alive():
                listener.kill()
        ctl.send(("stop",))
        feed.join(5)
        if feed.is_alive():
            feed.kill()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", nargs="*", type=int, default=[10_000, 25_000, 50_000, 75_000, 100_000])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each rate is held")
    parser.add_argument("--burst", type=int, default=200_000, help="trades in the one-second burst (0: none)")
    parser.add_argument("--symbols", type=int, default=10_000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with bench_app() as (cfg, _):
        print(json.dumps(run(cfg, args.rates, args.seconds, args.burst, args.symbols)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
