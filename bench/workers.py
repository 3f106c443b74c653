"""Benchmark the tick split across K worker processes (TICK_SHARDS = K).

Starts K real ``python -m jobs.worker`` processes, enqueues the scheduled tick
job for consecutive minutes, and times each slot from enqueue until all K
shards are done (the slot's done marker for K = 1, the shards' counter in Redis
for more).  Prints one JSON line per K.

    python -m bench.workers 10000        # K = 1 and 2 at 10,000 symbols
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
import sqlalchemy as sa
from rq import Queue

from bench import bench_app
from webapp import names
from webapp.config import Config, child_environment
from webapp.core.market import slot_of
from webapp.launch.embedded import ROOT

START = datetime(2030, 1, 3, 14, 31, tzinfo=timezone.utc)
WARMUP = 2


def _cleanup(client: redis.Redis, cfg: Config, symbols: list[str], slots: list[int]) -> None:
    pipe = client.pipeline(transaction=False)
    for s in symbols:
        pipe.delete(names.window_key(s))
    for k in range(1, 5):
        pipe.delete(*(names.latest_key(i, k) for i in range(k)))
    for slot in slots:
        pipe.delete(names.shards_finished_key(slot))
        for k in range(1, 5):
            for i in range(k):
                pipe.delete(names.tick_done_key(slot, i, k))
    pipe.execute()
    engine = sa.create_engine(cfg.DATABASE_URL or "")
    with engine.begin() as conn:
        for table in ("quotes", "alerts", "symbols"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE ticker LIKE 'ZW%'"))
    engine.dispose()


def _finished(client: redis.Redis, slot: int, workers: int) -> bool:
    """The slot's done marker (one shard), or every shard counted (several)."""
    if workers == 1:
        return bool(client.exists(names.tick_done_key(slot)))
    return int(client.get(names.shards_finished_key(slot)) or 0) >= workers


def run(cfg: Config, n_symbols: int, workers: int, ticks: int) -> dict[str, Any]:
    symbols = [f"ZW{i:05d}" for i in range(n_symbols)]
    times = [START + timedelta(minutes=i) for i in range(WARMUP + ticks)]
    slots = [slot_of(t, cfg.TICK_SECONDS)[0] for t in times]
    client = redis.Redis.from_url(cfg.REDIS_URL or "")
    _cleanup(client, cfg, symbols, slots)
    env = child_environment(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "",
                            SYMBOLS=" ".join(symbols), TICK_SHARDS=str(workers), LOG_LEVEL="WARNING",
                            QUEUE_NAME="bench-workers")
    procs = [subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    queue = Queue("bench-workers", connection=client)
    took: list[float] = []
    try:
        time.sleep(3)  # workers build their apps
        for i, (at, slot) in enumerate(zip(times, slots, strict=True)):
            t0 = time.perf_counter()
            queue.enqueue("jobs.tick.tick", at.isoformat())
            deadline = t0 + 120
            while not _finished(client, slot, workers):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"slot {slot} did not finish with {workers} workers")
                time.sleep(0.002)
            if i >= WARMUP:
                took.append((time.perf_counter() - t0) * 1000)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        _cleanup(client, cfg, symbols, slots)
    return {"bench": "workers", "symbols": n_symbols, "workers": workers, "ticks": ticks,
            "median_ms": round(statistics.median(took), 1), "max_ms": round(max(took), 1),
            "counted": "enqueue of the scheduled tick job until every shard is done"}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    n = int(args[0]) if args else 10000
    with bench_app() as (cfg, _):
        for workers in (1, 2):
            print(json.dumps(run(cfg, n, workers, 8)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
