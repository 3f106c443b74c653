"""Load: N browsers in room ``all`` on one web process, and how fast each ``stock_update`` reaches them.

Starts the web process exactly as the Procfile does (gunicorn, gevent, one
worker) and a real ``jobs.worker``, against the embedded Redis and Postgres
unless REDIS_URL / DATABASE_URL are set.  N clients connect over the
websocket transport and subscribe to every ticker; then, at each tick
boundary, the bench enqueues the tick job as the scheduler would, and every
client notes when that slot's ``stock_update`` arrived.

The clients speak Engine.IO 4 / Socket.IO 5 over ``websockets`` directly
(open, connect, one subscribe, pings), spread over a few asyncio
processes: python-socketio's client costs a thread per connection, and at
2,500 of those the clients, not the server, would be what is measured.
The wire format itself is held to the real server by
``tests/web/test_realtime.py``.

    python -m bench.sockets 1000 2500          # one JSON line per N
    python -m bench.sockets 1000 --ticks 20
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Any

import psutil
import redis
from rq import Queue

from bench import bench_app
from webapp import names
from webapp.config import Config, child_environment
from webapp.launch.embedded import ROOT

TICK_SECONDS = 2
CLIENT_PROCESSES = 2
WARMUP = 1
UPDATE = '42["' + names.EVENT_STOCK_UPDATE + '",'
STAMP = '"timestamp":"'


async def _client(url: str, out: dict[str, Any], stop: asyncio.Event) -> None:
    import websockets

    got: dict[str, float] = {}
    try:
        async with websockets.connect(url, compression=None, max_size=None, open_timeout=60,
                                      ping_interval=None) as ws:
            await ws.recv()  # Engine.IO open: 0{"sid":...,"pingInterval":...}
            await ws.send("40")
            answer = await ws.recv()
            if answer.startswith("44"):  # CONNECT_ERROR: refused, with the server's reason
                out["refused"].append(answer[2:200])
                return
            await ws.send('420["subscribe",{"tickers":["*"]}]')
            while not (await ws.recv()).startswith("430"):  # the acknowledgement: in room all
                pass
            out["connected"] += 1
            while not stop.is_set():
                try:
                    frame = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                if frame == "2":  # Engine.IO ping
                    await ws.send("3")
                elif frame.startswith(UPDATE):
                    now = time.time()
                    at = frame.index(STAMP) + len(STAMP)
                    got.setdefault(frame[at:frame.index('"', at)], now)
    except Exception as exc:  # a connection the server dropped or never accepted
        out["failed"].append(f"{type(exc).__name__}: {exc}"[:200])
    finally:
        out["updates"].append(got)


def _clients_process(url: str, n: int, conn: Any) -> None:
    """One client process: N connections, reports when connected, returns what arrived."""
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"connected": 0, "refused": [], "failed": [], "updates": []}
        stop = asyncio.Event()
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(_client(url, out, stop)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a crowd arriving, not one SYN flood
        deadline = time.monotonic() + 120
        while out["connected"] + len(out["refused"]) + len(out["failed"]) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        conn.send(("ready", out["connected"]))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "stop"
        stop.set()
        await asyncio.gather(*tasks)
        return out

    conn.send(("done", asyncio.run(main())))


def _rss_mb(master: psutil.Process) -> float:
    procs = [master, *master.children(recursive=True)]
    return round(sum(p.memory_info().rss for p in procs) / 2**20, 1)


def _web(cfg: Config, port: int, max_clients: int | None) -> subprocess.Popen:
    extra = {"WEB_MAX_CLIENTS": str(max_clients)} if max_clients else {}
    env = child_environment(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "",
                            PORT=str(port), WEB_HOST="127.0.0.1", TICK_SECONDS=str(TICK_SECONDS),
                            LOG_LEVEL="WARNING", QUEUE_NAME="bench-sockets", **extra)
    env["GUNICORN_CMD_ARGS"] = "--access-logfile=/dev/null"
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(cfg: Config, n: int, ticks: int, max_clients: int | None = None) -> dict[str, Any]:
    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    web = _web(cfg, port, max_clients)
    env = child_environment(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "",
                            TICK_SECONDS=str(TICK_SECONDS), LOG_LEVEL="WARNING", QUEUE_NAME="bench-sockets")
    worker = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(cfg.REDIS_URL or "")
    queue = Queue("bench-sockets", connection=client)
    pipes, procs = [], []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or web.poll() is not None:
                    raise RuntimeError("the web process did not start") from None
                time.sleep(0.3)
        master = psutil.Process(web.pid)
        rss_before = _rss_mb(master)
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        for k in range(CLIENT_PROCESSES):
            mine, theirs = mp.Pipe()
            share = n // CLIENT_PROCESSES + (1 if k < n % CLIENT_PROCESSES else 0)
            proc = mp.get_context("spawn").Process(target=_clients_process, args=(url, share, theirs))
            proc.start()
            pipes.append(mine)
            procs.append(proc)
        connected = sum(p.recv()[1] for p in pipes)
        slots = []
        for i in range(ticks + WARMUP):
            boundary = (int(time.time()) // TICK_SECONDS + 1) * TICK_SECONDS
            time.sleep(max(0.0, boundary - time.time()))
            at = datetime.fromtimestamp(boundary, timezone.utc)
            queue.enqueue("jobs.tick.tick", at.isoformat(), result_ttl=60)
            if i >= WARMUP:  # the worker's first tick builds its app and state
                slots.append(at.isoformat())
        time.sleep(TICK_SECONDS + 1)  # the last update's fan-out
        for p in pipes:
            p.send("stop")
        results = [p.recv()[1] for p in pipes]
        rss_after = _rss_mb(master)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
        for p in (web, worker):
            p.terminate()
        for p in (web, worker):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        queue.delete(delete_jobs=True)
    per_client = [u for r in results for u in r["updates"]]
    delays = sorted((got[s] - datetime.fromisoformat(s).timestamp()) * 1000
                    for got in per_client for s in slots if s in got)
    refused = [m for r in results for m in r["refused"]]
    failed = [m for r in results for m in r["failed"]]
    counted = [sum(1 for s in slots if s in got) for got in per_client]
    got_any = [c for c in counted if c]

    def pct(q: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 1) if delays else None

    return {
        "bench": "sockets", "clients": n, "ticks": ticks, "connected": connected, "refused": len(refused),
        "failed": len(failed), "refusal": refused[0] if refused else None,
        "updates_per_client_min": min(got_any) if got_any else 0,
        "updates_per_client_max": max(counted) if counted else 0,
        "connected_without_updates": sum(1 for c in counted if c == 0) - len(refused) - len(failed),
        "slot_to_receipt_p50_ms": pct(0.5), "slot_to_receipt_p99_ms": pct(0.99),
        "web_rss_mb_before": rss_before, "web_rss_mb_after": rss_after,
        "counted": "websocket clients in room all; tick job enqueued at each slot boundary, "
                   "time until each client read that slot's stock_update",
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sockets", description=__doc__.splitlines()[0])
    parser.add_argument("clients", nargs="*", type=int, default=[1000, 2500])
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--max-clients", type=int, default=None, help="WEB_MAX_CLIENTS for the web process")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a socket per client, here and in the web
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    with bench_app() as (cfg, _):
        for n in args.clients:
            print(json.dumps(run(cfg, n, args.ticks, args.max_clients)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
