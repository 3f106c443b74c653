"""Benchmark webhook delivery: throughput to a local receiver, and fire → receipt latency.

A real ``python -m jobs.deliver`` process sends; a receiver in its own
process verifies every request with ``standardwebhooks`` and notes when
it arrived.  Events and their deliveries are written to Postgres the way
the tick writes them (:func:`webapp.store.alert_events.write_fires`, then the
wake-up publish), so the latency runs from the commit to the receipt.

* ``deliveries_per_s``: N deliveries queued at once over E endpoints
  (at most 2 requests in flight per endpoint, ``DELIVERY_CONCURRENCY``
  in all), from the commit to the last receipt;
* ``deliver_cpu_ms_per_delivery``: the deliver process's CPU (user and
  system) over that burst, per delivery; ``postgres_cpu_ms_per_delivery``
  and ``postgres_xacts_per_delivery``: every Postgres process's CPU and the
  database's committed transactions over it (the machine otherwise idle);
* ``delivery_ms_p50`` / ``delivery_ms_p99``: events fired one at a time
  every 20 ms, each from its commit to its receipt.

    python -m bench.webhooks [--deliveries 2000] [--endpoints 4] [--fires 300]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import psutil

from bench import bench_app, bench_user
from webapp.config import child_environment
from webapp.launch.embedded import ROOT

BENCH_RULE = "bench webhooks"


def _receiver(secrets: list[str], port_out: Any, ctl: Any) -> None:
    """An HTTP server that verifies each request and sends (webhook-id, arrival) back in batches."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks.webhooks import Webhook

    hooks = [Webhook(s) for s in secrets]
    got: list[tuple[str, float, bool]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps the connection, as a real receiver does
        disable_nagle_algorithm = True  # and answers in one segment, not a second waiting for an ACK

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            at = time.time()
            headers = {k.lower(): v for k, v in self.headers.items()}
            ok = False
            for h in hooks:
                try:
                    h.verify(body, headers, json_parse=False)
                    ok = True
                    break
                except Exception:
                    continue
            with lock:
                got.append((headers.get("webhook-id", ""), at, ok))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.send(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while True:
        cmd = ctl.recv()
        if cmd == "stop":
            server.shutdown()
            return
        with lock:
            ctl.send(list(got))
            got.clear()


def _fire(n: int, rule_id: int, endpoints: list[int], tag: str) -> dict[int, float]:
    """Write ``n`` events and their deliveries in one transaction; their ids and commit time."""
    from webapp import names
    from webapp.core.rules.state import Fire
    from webapp.extensions import db, get_redis
    from webapp.store import alert_events

    base = int(time.time()) // 60 * 60
    rows = [alert_events.FireRow(Fire(rule_id, 1, f"ZW{i % 1000:04d}", base - 60 * (i // 1000), f"{tag}{i}",
                               {"a": 1.0, "b": 2.0}, "bench"),
                          BENCH_RULE, tuple(endpoints), "bench", 0.0, 0.0) for i in range(n)]
    made = alert_events.write_fires(db.session, rows, []).made
    db.session.commit()
    at = time.time()
    get_redis().publish(names.DELIVERY_WAKE_CHANNEL, b"1")
    return {eid: at for eid in made.values()}


def _collect(ctl: Any, wanted: int, timeout: float) -> list[tuple[str, float, bool]]:
    out: list[tuple[str, float, bool]] = []
    deadline = time.monotonic() + timeout
    while len({r[0] for r in out}) < wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        ctl.send("get")
        out += ctl.recv()
    return out


def _postgres_cpu() -> float:
    """Every Postgres process's CPU seconds so far: each server's own and its live backends', and the
    backends that ended (their time is the server's children's once it has reaped them)."""
    total = 0.0
    for p in psutil.process_iter(["name"]):
        try:
            if p.info["name"] not in ("postgres", "postmaster"):
                continue
            parent = p.parent()
            if parent is not None and parent.name() in ("postgres", "postmaster"):
                continue  # a backend: counted with its server
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            total += sum(sum(c.cpu_times()[:2]) for c in p.children())
        except psutil.Error:
            pass
    return total


def _xacts() -> int:
    """The database's committed transactions so far (statistics flushed first)."""
    import sqlalchemy as sa

    from webapp.extensions import db

    db.session.execute(sa.text("SELECT pg_stat_force_next_flush()"))
    n = db.session.execute(sa.text(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).scalar()
    db.session.rollback()
    return int(n or 0)


def run(deliveries: int, n_endpoints: int, fires: int) -> dict[str, Any]:
    """Needs an app context on a migrated database."""
    import sqlalchemy as sa

    from webapp.extensions import db
    from webapp.services import context, rules
    from webapp.store import rules as rules_store
    from webapp.store import webhooks

    owner = bench_user()
    condition = {"op": "greater_than", "a": {"price": True}, "b": {"const": 1}}
    spec = rules.rule_spec({"name": BENCH_RULE, "scope": {"tickers": ["ZW0000"]}, "condition": condition},
                           owner)
    rule = rules_store.create(db.session, spec, owner)
    set_paused = rules_store.set_status(db.session, rule["id"], "paused", owner)  # no live tick evaluates it
    assert set_paused is not None
    port_in, port_out = mp.Pipe()
    ctl, ctl_child = mp.Pipe()
    endpoints, secrets = [], []
    proc = deliver = None
    try:
        # endpoints first (their secrets go to the receiver), then the receiver, then their URL
        for i in range(n_endpoints):
            ep, secret = webhooks.create_endpoint(db.session, "http://127.0.0.1:9/pending", f"bench {i}",
                                                  owner)
            endpoints.append(ep["id"])
            secrets.append(secret)
        proc = mp.Process(target=_receiver, args=(secrets, port_out, ctl_child), daemon=True)
        proc.start()
        port = port_in.recv()
        for i, eid in enumerate(endpoints):
            db.session.execute(sa.text("UPDATE webhook_endpoints SET url = :u WHERE id = :id"),
                               {"u": f"http://127.0.0.1:{port}/hook/{i}", "id": eid})
        db.session.commit()
        cfg = context.config()
        env = child_environment(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "",
                                WEBHOOK_ALLOWED_CIDRS="127.0.0.1/32", LOG_LEVEL="WARNING")
        deliver = subprocess.Popen([sys.executable, "-m", "jobs.deliver"], cwd=ROOT, env=env)
        time.sleep(2.0)  # connected and listening for wake-ups

        # throughput: everything at once, spread over the endpoints
        per = max(1, deliveries // n_endpoints)
        cpu = psutil.Process(deliver.pid)
        cpu_before = sum(cpu.cpu_times()[:2])
        pg_before, xacts_before = _postgres_cpu(), _xacts()
        fired: dict[int, float] = {}
        for i, eid in enumerate(endpoints):
            fired.update(_fire(per, rule["id"], [eid], f"t{i}-"))
        start = min(fired.values())
        got = _collect(ctl, len(fired), timeout=300)
        done = max(a for _, a, _ in got)
        throughput = len({g[0] for g in got}) / (done - start)
        cpu_ms = (sum(cpu.cpu_times()[:2]) - cpu_before) * 1000 / max(1, len(fired))
        pg_ms = (_postgres_cpu() - pg_before) * 1000 / max(1, len(fired))
        xacts = (_xacts() - xacts_before) / max(1, len(fired))
        bad = sum(1 for g in got if not g[2])

        # latency: one event at a time
        lags = []
        for k in range(fires):
            one = _fire(1, rule["id"], [endpoints[k % n_endpoints]], f"l{k}-")
            (eid, at), = one.items()
            arrived = _collect(ctl, 1, timeout=30)
            mine = [a for w, a, _ in arrived if w == f"evt_{eid}"]
            if mine:
                lags.append((mine[0] - at) * 1000)
            time.sleep(0.02)
        lags.sort()
        return {"bench": "webhooks", "deliveries": len(fired), "endpoints": n_endpoints,
                "deliveries_per_s": round(throughput, 1), "unverified": bad,
                "deliver_cpu_ms_per_delivery": round(cpu_ms, 2),
                "postgres_cpu_ms_per_delivery": round(pg_ms, 2),
                "postgres_xacts_per_delivery": round(xacts, 2),
                "fires": fires, "received": len(lags),
                "delivery_ms_p50": round(statistics.median(lags), 1),
                "delivery_ms_p99": round(lags[min(len(lags) - 1, int(0.99 * len(lags)))], 1),
                "counted": "fire = the commit of an event and its delivery; receipt = the receiver got it "
                           "(signature verified)"}
    finally:
        if deliver is not None:
            deliver.terminate()
            deliver.wait(20)
        if proc is not None:
            ctl.send("stop")
            proc.join(5)
        db.session.rollback()
        db.session.execute(sa.text("DELETE FROM alert_events WHERE rule_id = :id"), {"id": rule["id"]})
        db.session.execute(sa.text("DELETE FROM alert_rules WHERE id = :id"), {"id": rule["id"]})
        db.session.execute(sa.text("DELETE FROM webhook_endpoints WHERE description LIKE 'bench %'"))
        db.session.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--fires", type=int, default=300)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("WEBHOOK_ALLOWED_CIDRS", "127.0.0.1/32")
    with bench_app() as (_, app), app.app_context():
        print(json.dumps(run(args.deliveries, args.endpoints, args.fires)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
