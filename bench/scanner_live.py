"""The scanner every second under load: trade → list row in a browser, and the second's cost.

Real processes: the fake polygon feed of :mod:`bench.stream` pushes trades
for ``--symbols`` tickers at ``--rate`` trades/s to a real ``python -m
jobs.stream``; ``--evaluators`` real ``python -m jobs.evaluate`` processes
(``MARKET_DATA_PROVIDER=stream``) rank the lists each second, over a scan
table per shard seeded as the tick would leave it (so the tick's six lists
cost what they cost); a real gunicorn web process relays the
``scan_update`` deltas to a python-socketio client in every ``scan:<list>``
room.  The feed's prices jump about in 10.00–19.96, so tickers keep setting
new highs of the day.  It prints one JSON line:

* ``print_to_list_row_ms_p50`` / ``_p99``: a trade that moves a ticker into
  ``hod_breaks`` or ``running_up`` → the client receiving the delta that
  shows the row, counted from the start of the second the trade printed in
  (the lists are ranked once a second over every trade before it, so that
  is the longest any such trade waits: an upper bound);
  ``row_break_to_list_row_ms_p50`` from the row's own break (its ``since``);
* ``scan_second_ms_p50`` / ``_p99``: the computation of one shard's second
  (every list), from the processes' status, the worst process;
* ``delta_bytes_per_s`` per room (the JSON the client received);
* ``stream_trades_per_s`` and ``stream_dropped_frames`` while scanning;
  ``evaluate_cpu_pct`` per process (of one core).

    python -m bench.scanner_live                   # 10,000 symbols, 50,000 trades/s, 60 s
    python -m bench.scanner_live --symbols 2000 --rate 10000 --seconds 20
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any

import orjson
import psutil
import redis
import sqlalchemy as sa

from bench import bench_app, bench_user, process_log
from bench.realtime import _pct
from bench.sockets import _web
from bench.stream import _applied, _feed, _status, _symbols, _wait_ready
from webapp import names
from webapp.config import Config, child_environment
from webapp.core import scanner as core
from webapp.core.market import EXCHANGE_TZ
from webapp.core.shards import shard_of
from webapp.core.tables import pack
from webapp.launch.embedded import ROOT

SHARDS = 2
SECOND_KEYS = ("scan_second_ms_p50", "scan_second_ms_p99", "scan_second_wall_ms_p50",
               "scan_second_wall_ms_p99", "scan_announce_lag_ms_p50", "scan_announce_lag_ms_p99",
               "scan_start_lag_ms_p50", "scan_start_lag_ms_p99")
LISTS = ("gainers", "losers", "gappers", "unusual_volume", "new_highs", "new_lows", "running_up",
         "running_down", "hod_breaks", "lod_breaks", "volume_spike", "halted")


def _client(url: str, token: str, conn: Any) -> None:
    """A python-socketio client in every scan room: (list, receipt, bytes, rows added or updated)."""
    import socketio

    got: list[tuple[str, float, int, list[dict[str, Any]], int]] = []
    sio = socketio.Client(reconnection=True)

    @sio.on(names.EVENT_SCAN_UPDATE)
    def on_update(u: dict[str, Any]) -> None:
        rows = (u.get("rows") or []) if u.get("full") else [*u.get("add", []), *u.get("update", [])]
        got.append((u["list"], time.time(), len(orjson.dumps(u)), rows, int(u["seq"])))

    sio.connect(url, auth={"token": token}, transports=["websocket"])
    sio.call("subscribe", {"scans": ["*"]}, timeout=10)
    conn.send("ready")
    while (cmd := conn.recv()) != "stop":
        if cmd == "report":
            conn.send(list(got))
    sio.disconnect()


def _seed_tables(client: redis.Redis, symbols: list[str], bars: int) -> None:
    """Each shard's scan table as a tick would leave it this minute (prices in the feed's range)."""
    now = time.time()
    today = datetime.now(EXCHANGE_TZ).date().toordinal()
    for shard in range(SHARDS):
        mine = [t for t in symbols if shard_of(t, SHARDS) == shard]
        table = core.empty(len(mine), bars)
        table["day"][:] = today
        for name, value in (("price", 15.0), ("prev_close", 15.0), ("open", 15.0), ("hi", 19.0),
                            ("lo", 11.0), ("pv", 15.0 * 1e5), ("cv", 1e5), ("day_volume", 1e5),
                            ("time", now - 30)):
            table[name][:] = value
        table["vols"][:] = 500.0
        client.set(names.scan_table_key(shard, SHARDS), pack(mine, table, {"lists": {}}), ex=3600)


def run(cfg: Config, n_symbols: int, rate: int, evaluators: int, seconds: float) -> dict[str, Any]:
    from webapp.extensions import db
    from webapp.store import symbols as symbols_store
    from webapp.store import tokens

    symbols = _symbols(n_symbols)
    client = redis.Redis.from_url(cfg.REDIS_URL or "")
    client.flushdb()
    db.session.execute(sa.text("TRUNCATE symbols CASCADE"))
    db.session.commit()
    symbols_store.seed(db.session, symbols)
    token = tokens.create(db.session, bench_user(), "bench-scanner-live", ("read",), admin=False)[1]
    _seed_tables(client, symbols, cfg.UNUSUAL_VOLUME_BARS)
    ctx = mp.get_context("spawn")
    port_in, port_out = ctx.Pipe()
    ctl, ctl_child = ctx.Pipe()
    feed = ctx.Process(target=_feed, args=(port_out, ctl_child, n_symbols), daemon=True)
    feed.start()
    port = port_in.recv()
    common = dict(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "", TICK_SHARDS=str(SHARDS),
                  LOG_LEVEL="WARNING", SYMBOLS=",".join(symbols[:20]), MARKET_DATA_PROVIDER="stream",
                  SCAN_MIN_PRICE="1")
    stream_env = child_environment(**common, STREAM_PROVIDER="polygon", STREAM_URL=f"ws://127.0.0.1:{port}/stocks",
                                   POLYGON_API_KEY="bench", STREAM_ALWAYS_OPEN="1", QUEUE_NAME="bench-scan")
    procs = [subprocess.Popen([sys.executable, "-m", "jobs.stream"], cwd=ROOT, env=stream_env,
                              stdout=subprocess.DEVNULL, stderr=process_log("stream"))]
    eval_env = child_environment(**common, EVALUATE_LEASE_SECONDS="3")
    evals = [subprocess.Popen([sys.executable, "-m", "jobs.evaluate"], cwd=ROOT, env=eval_env,
                              stdout=subprocess.DEVNULL, stderr=process_log(f"evaluate-{i}"))
             for i in range(evaluators)]
    procs += evals
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    procs.append(_web(cfg, web_port, None))
    c_conn, c_child = ctx.Pipe()
    listener = None
    out: dict[str, Any] = {"bench": "scanner_live", "symbols": n_symbols, "rate": rate,
                           "evaluators": evaluators, "seconds": seconds, "shards": SHARDS}
    try:
        _wait_ready(client, ctl, procs[0], web_port, 120)
        listener = ctx.Process(target=_client, args=(f"http://127.0.0.1:{web_port}", token, c_child),
                               daemon=True)
        listener.start()
        assert c_conn.recv() == "ready"
        time.sleep(3)  # the evaluate processes hold the shards; the web published the scan rooms
        cpu = [psutil.Process(p.pid) for p in evals]
        for c in cpu:
            c.cpu_percent(None)
        before = _status(client)
        timings: dict[str, tuple[float, ...]] = {}  # each process's last status: its whole run's figures
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for st in [orjson.loads(v) for v in client.mget(list(client.scan_iter(
                        names.EVALUATE_STATUS_PREFIX + "*"))) if v]:
                    if st.get("scan_second_ms_p99") is not None:
                        timings[st["host"]] = tuple(st.get(k) or 0.0 for k in SECOND_KEYS)
                stop.wait(2.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.time()
        ctl.send(("rate", rate, seconds))
        sent, took = ctl.recv()
        stop.set()
        out["evaluate_cpu_pct"] = [round(c.cpu_percent(None), 1) for c in cpu]
        applied, _ = _applied(client, before.get("trades", 0) + sent, 2.0)
        after = _status(client)
        out["stream_trades_per_s"] = round((applied - before.get("trades", 0)) / took)
        out["stream_dropped_frames"] = after.get("dropped_frames", 0) - before.get("dropped_frames", 0)
        time.sleep(2)
        c_conn.send("report")
        got = c_conn.recv()
        during = [g for g in got if t0 <= g[1] <= t0 + took + 2]
        span = max(1e-9, took + 2)
        out["delta_bytes_per_s"] = {name: round(sum(b for n, _, b, _, _ in during if n == name) / span)
                                    for name in LISTS}
        bound, since = [], []
        for name, at, _, rows, seq in during:
            if name not in ("hod_breaks", "running_up") or not rows:
                continue
            # every trade of the second before the announcement is in it: from that second's start is
            # the longest a trade that moved a ticker in waited (the feed's prices climb, so the
            # row's own break is mostly its second's last trade: that figure is the shortest)
            bound.append(at * 1000 - (seq - 1) * 1000)
            since += [at * 1000 - datetime.fromisoformat(r["since"]).timestamp() * 1000
                      for r in rows if r.get("since")]
        out["list_deltas_seen"] = len(bound)
        out["print_to_list_row_ms_p50"] = _pct(bound, 0.5)
        out["print_to_list_row_ms_p99"] = _pct(bound, 0.99)
        out["row_break_to_list_row_ms_p50"] = _pct(since, 0.5)
        for k, key in enumerate(SECOND_KEYS):
            out[key] = max((t[k] for t in timings.values()), default=None)
        out["counted"] = ("print_to_list_row: from the start of the second a trade printed in (the longest "
                          "any trade of it waits) to the Socket.IO client's receipt of the hod_breaks or "
                          "running_up delta that shows its row; scan_second_ms: one shard's second, every "
                          "list, the worst process's median and 99th percentile, in CPU ms of one core "
                          "(scan_second_wall_ms: by the wall clock, waits for the CPU included); "
                          "scan_announce_lag_ms: from the second's end to the announcer's publish")
        return out
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if listener is not None:
            c_conn.send("stop")
            listener.join(5)
        ctl.send(("stop",))
        feed.join(5)
        for p in (listener, feed):
            if p is not None and p.is_alive():
                p.kill()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scanner_live", description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=50_000, help="trades per second from the feed")
    parser.add_argument("--evaluators", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with bench_app(TICK_SHARDS=SHARDS) as (cfg, app), app.app_context():
        print(json.dumps(run(cfg, args.symbols, args.rate, args.evaluators, args.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
