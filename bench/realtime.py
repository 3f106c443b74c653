"""Alerts on the print under load: trade → browser and → webhook, with the stream still keeping up.

Real processes: the fake polygon feed of :mod:`bench.stream` pushes trades
for ``--symbols`` tickers at ``--rate`` trades/s to a real ``python -m
jobs.stream``; ``--evaluators`` real ``python -m jobs.evaluate`` processes
judge ``--rules`` rules with intra-bar frequencies (the tick bench's scope
mix: mostly one to five tickers, 10 % lists of 50; conditions on levels
the feed's prices cross); a real gunicorn web process relays their
``alert_event``s to a python-socketio client following the rules' owner's
feed; a real ``python -m jobs.deliver`` sends a quarter of the rules'
fires to ``--endpoints`` webhook endpoints (the rules dealt out among them) on
one receiver that verifies each with its endpoint's secret
(``standardwebhooks``).  It prints one JSON line:

* ``print_to_browser_ms_p50`` / ``_p99``: the trade's time (the feed's
  clock, the same machine's) → the Socket.IO client receiving the event;
* ``print_to_webhook_ms_p99``: the trade's time → the verified receipt.  An
  endpoint takes at most 2 requests at once (the delivery policy): with
  ``--endpoints 1`` the minute's ~1,000 webhooks go out two at a time, with
  many endpoints up to the deliverer's 8 at once, whose work then meets the
  stream's on the cores;
* ``fires_per_s`` (the load starts so that a minute ends ``--boundary-at``
  seconds into it, 10 by default: every rule judged once a bar fires again
  on the new bar, the burst the figures must hold through, and two runs
  of the command compare like with like); ``lost`` and ``duplicates`` against a replay of the same
  hand-offs (every provisional-stream entry, judged one at a time by the
  same engine in this process: fires it finds and no process stored, and
  events stored or pushed more than once);
* ``evaluate_lag_ms_p99`` per shard (sampled from the processes' status);
* ``stream_trades_per_s`` and ``stream_dropped_frames`` while evaluating, and
  ``stream_late_trades`` (prints applied after their bar had closed: each revises it);
* ``evaluate_cpu_pct`` per process (of one core).

``--events PATH`` also writes each event's times, a JSON line each (its trade, judgment,
transaction, page and webhook receipt): where a run's fires waited, second by second.

    python -m bench.realtime                        # 10,000 symbols, 50,000 trades/s, 1,000 rules
    python -m bench.realtime --symbols 2000 --rate 10000 --rules 200 --seconds 20
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
from collections import Counter
from typing import Any

import numpy as np
import orjson
import psutil
import redis
import sqlalchemy as sa

from bench import bench_app, bench_user, process_log
from bench.sockets import _web
from bench.stream import _applied, _feed, _status, _symbols, _wait_ready
from webapp import names
from webapp.config import Config, child_environment
from webapp.launch.embedded import ROOT

SHARDS = 2
ENDPOINTS = 50  # webhook endpoints the webhook rules are dealt out among
CONDITIONS = [  # levels inside the feed's 10.00-19.97 cycle, so bars cross them
    {"op": "crossing_up", "a": {"field": "close"}, "b": {"const": 15.0}},
    {"op": "crossing_down", "a": {"field": "close"}, "b": {"const": 12.0}},
    {"op": "greater_than", "a": {"price": True}, "b": {"const": 19.5}},
    {"op": "less_than", "a": {"price": True}, "b": {"const": 10.2}},
    {"op": "moving_up_pct", "a": {"field": "close"}, "bars": 1, "value": 20.0},
]
FREQUENCIES = ["once_per_bar", "every_time", "once"]


def bench_rules(symbols: list[str], n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 50 if rng.random() < 0.1 else int(rng.integers(1, 6))
        scope = {"tickers": [symbols[j] for j in rng.choice(len(symbols), min(k, len(symbols)), False)]}
        out.append({"name": f"bench rt {i}", "scope": scope, "condition": CONDITIONS[i % len(CONDITIONS)],
                    "frequency": FREQUENCIES[i % len(FREQUENCIES)], "cooldown_seconds": 0})
    return out


def _receiver(secrets: list[str], port_out: Any, ctl: Any) -> None:
    """Verifies each webhook with the secret of its endpoint (``/hook/<n>``) and notes
    (event id, trade time, arrival)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks.webhooks import Webhook

    hooks = [Webhook(secret) for secret in secrets]
    got: list[tuple[int, int | None, float]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps the connection, as a real receiver does
        disable_nagle_algorithm = True  # and answers in one segment, not a second waiting for an ACK

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            at = time.time()
            try:
                hook = hooks[int(self.path.rsplit("/", 1)[1])]
                hook.verify(body, {k.lower(): v for k, v in self.headers.items()}, json_parse=False)
                event = orjson.loads(body)
                with lock:
                    got.append((event["event_id"], event["inputs"].get("trade_time_ms"), at))
                self.send_response(200)
            except Exception:
                self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.send(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    while (cmd := ctl.recv()) != "stop":
        if cmd == "report":
            with lock:
                ctl.send(list(got))
    server.shutdown()


def _browser(url: str, token: str, conn: Any) -> None:
    """A python-socketio client on the owner's feed: (event id, trade time, receipt) for each event.

    Each message is handed to its handler on the thread that read it, as a page's event loop does:
    python-socketio's threaded client starts a thread for every message, and at the minute's burst
    (thousands of events in seconds) the receipt times waited for those threads' start, and the
    system under test lost the CPU they took."""
    import engineio
    import socketio

    class InlineEngineIO(engineio.Client):
        def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
            kwargs["run_async"] = False
            return super()._trigger_event(event, *args, **kwargs)

    class Client(socketio.Client):
        def _engineio_client_class(self) -> type:
            return InlineEngineIO

    got: list[tuple[int, int | None, float]] = []
    sio = Client(reconnection=True)

    @sio.on(names.EVENT_ALERT_EVENT)
    def on_event(e: dict[str, Any]) -> None:
        got.append((e["id"], (e.get("inputs") or {}).get("trade_time_ms"), time.time()))

    sio.connect(url, auth={"token": token}, transports=["websocket"])
    sio.call(names.EVENT_FOLLOW_ALERTS, {"on": True}, timeout=10)
    conn.send("ready")
    while (cmd := conn.recv()) != "stop":
        if cmd == "report":
            conn.send(list(got))
    sio.disconnect()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def _drained(client: redis.Redis, timeout: float) -> float:
    """Wait (at most ``timeout``) until every shard's group has read and acknowledged its whole
    provisional stream, so that ``lost`` counts fires never judged, not fires still queued; the
    seconds it took."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        behind = 0
        for shard in range(SHARDS):
            key = names.provisional_stream_key(shard, SHARDS)
            groups = client.xinfo_groups(key) if client.exists(key) else []
            last = client.xinfo_stream(key)["last-generated-id"] if groups else None
            for g in groups:
                if g["name"] in (names.EVALUATE_GROUP, names.EVALUATE_GROUP.encode()):
                    behind += g["pending"] + (g["last-delivered-id"] != last)
        if not behind:
            break
        time.sleep(0.5)
    return round(time.time() - t0, 1)


def _replay(client: redis.Redis, rule_ids: set[int], symbols: list[str], handoff_ms: list[float]
            ) -> set[str]:
    """The fires a replay of every hand-off finds, one entry at a time (dedupe keys); ``handoff_ms``
    gets each hand-off's age at its ``XADD`` (the entry's id) since its bar's last trade."""
    from webapp.core import handoff
    from webapp.core.rules.intrabar import Provisional, coalesce
    from webapp.evaluate.engine import ShardEngine
    from webapp.extensions import db

    want: set[str] = set()
    for shard in range(SHARDS):
        engine = ShardEngine((shard, SHARDS), 60)
        for entry_id, fields in client.xrange(names.provisional_stream_key(shard, SHARDS)):
            bars = handoff.decode(fields, 60)[0].bars()  # coalesced below as plain objects, not as columns
            added = int(entry_id.split(b"-")[0])
            handoff_ms += [added - b.last_ms for b in bars]
            groups: dict[int, list[Provisional]] = {}
            for b in coalesce(bars):
                groups.setdefault(b.bar_time, []).append(b)
            for bar_time in sorted(groups):
                fresh = not engine.rules
                engine.refresh(db.session, symbols, bar_time)
                engine.rules = [lr for lr in engine.rules if lr.rule.id in rule_ids]
                if fresh:
                    engine.states = {}  # from armed states, as the live run began (not its stored ones)
                judged = engine.judge(groups[bar_time], set(), 0)
                engine.committed(judged, groups[bar_time])
                want.update(f.fire.dedupe_key for f in judged.fires)
        db.session.rollback()
    return want


def _dump(path: str, stored: list[Any], pushed: list[tuple], hooked: list[tuple]) -> None:
    """Each event's times, a JSON line each (ms since the epoch): its trade, its judgment (the
    trade + ``latency_ms``), its transaction's start, its receipt by the page and by the webhook
    receiver (null: none), to see where a run's fires waited."""
    page = {i: at * 1000 for i, _, at in pushed}
    hook = {i: at * 1000 for i, _, at in hooked}
    trade = {i: tt for i, tt, _ in pushed + hooked if tt}
    with open(path, "wb") as out:
        for event_id, _, latency, began in stored:
            tt = trade.get(event_id)
            judged = tt + latency if tt and latency is not None else None
            out.write(orjson.dumps({"id": event_id, "trade": tt, "judged": judged, "began": float(began),
                                    "page": page.get(event_id), "webhook": hook.get(event_id)}) + b"\n")


def run(cfg: Config, n_symbols: int, rate: int, n_rules: int, evaluators: int, seconds: float,
        boundary_at: float | None = None, events_to: str | None = None,
        n_endpoints: int = ENDPOINTS) -> dict[str, Any]:
    from webapp.extensions import db
    from webapp.services import rules as rules_service
    from webapp.store import rules as rules_store
    from webapp.store import symbols as symbols_store
    from webapp.store import tokens

    symbols = _symbols(n_symbols)
    client = redis.Redis.from_url(cfg.REDIS_URL or "")
    client.flushdb()
    db.session.execute(sa.text("TRUNCATE alert_rules, alert_rule_states, alert_events, deliveries, "
                               "delivery_attempts, webhook_endpoints, evaluate_progress, intrabar_seconds, "
                               "symbols CASCADE"))
    db.session.commit()
    symbols_store.seed(db.session, symbols)
    owner = bench_user()
    token = tokens.create(db.session, owner, "bench-realtime", ("read",), admin=False)[1]
    ctx = mp.get_context("spawn")
    r_port_in, r_port_out = ctx.Pipe()
    r_ctl, r_ctl_child = ctx.Pipe()
    from webapp.store import webhooks as webhook_store

    made = [webhook_store.create_endpoint(db.session, "http://127.0.0.1:9/pending", f"bench rt {n}", owner)
            for n in range(n_endpoints)]
    receiver = ctx.Process(target=_receiver, args=([s for _, s in made], r_port_out, r_ctl_child),
                           daemon=True)
    receiver.start()
    r_port = r_port_in.recv()
    for n, (endpoint, _) in enumerate(made):
        db.session.execute(sa.text("UPDATE webhook_endpoints SET url = :u WHERE id = :id"),
                           {"u": f"http://127.0.0.1:{r_port}/hook/{n}", "id": endpoint["id"]})
    db.session.commit()
    raws = bench_rules(symbols, n_rules)
    rule_ids = set()
    for i, raw in enumerate(raws):
        if i % 4 == 0:  # a quarter of the rules, dealt out among the endpoints
            raw["channels"] = ["browser", f"webhook:{made[i // 4 % n_endpoints][0]['id']}"]
        rule_ids.add(rules_store.create(db.session, rules_service.rule_spec(raw, owner), owner)["id"])

    port_in, port_out = ctx.Pipe()
    ctl, ctl_child = ctx.Pipe()
    feed = ctx.Process(target=_feed, args=(port_out, ctl_child, n_symbols), daemon=True)
    feed.start()
    port = port_in.recv()
    common = dict(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "", TICK_SHARDS=str(SHARDS),
                  LOG_LEVEL="WARNING", SYMBOLS=",".join(symbols[:20]))
    stream_env = child_environment(**common, STREAM_PROVIDER="polygon", STREAM_URL=f"ws://127.0.0.1:{port}/stocks",
                                   POLYGON_API_KEY="bench", STREAM_ALWAYS_OPEN="1", QUEUE_NAME="bench-rt",
                                   STREAM_STALL_SECONDS="600")  # the feed idles up to a minute first
    procs: list[subprocess.Popen] = []
    stream = subprocess.Popen([sys.executable, "-m", "jobs.stream"], cwd=ROOT, env=stream_env,
                              stdout=subprocess.DEVNULL, stderr=process_log("stream"))
    procs.append(stream)
    eval_env = child_environment(**common, EVALUATE_LEASE_SECONDS="3")
    evals = [subprocess.Popen([sys.executable, "-m", "jobs.evaluate"], cwd=ROOT, env=eval_env,
                              stdout=subprocess.DEVNULL, stderr=process_log(f"evaluate-{i}"))
             for i in range(evaluators)]
    procs += evals
    deliver = subprocess.Popen([sys.executable, "-m", "jobs.deliver"], cwd=ROOT,
                               env=child_environment(**common, WEBHOOK_ALLOWED_CIDRS="127.0.0.1/32"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(deliver)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    web = _web(cfg, web_port, None)
    procs.append(web)
    b_conn, b_child = ctx.Pipe()
    browser = None
    out: dict[str, Any] = {"bench": "realtime", "symbols": n_symbols, "rate": rate, "rules": n_rules,
                           "evaluators": evaluators, "seconds": seconds, "shards": SHARDS,
                           "webhook_endpoints": n_endpoints}
    try:
        _wait_ready(client, ctl, stream, web_port, 120)
        browser = ctx.Process(target=_browser, args=(f"http://127.0.0.1:{web_port}", token, b_child),
                              daemon=True)
        browser.start()
        assert b_conn.recv() == "ready"
        time.sleep(3)  # the evaluate processes hold the shards; the web published the owner's room
        cpu = [psutil.Process(p.pid) for p in evals]
        for c in cpu:
            c.cpu_percent(None)
        before = _status(client)
        lags: dict[str, list[float]] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for st in [orjson.loads(v) for v in client.mget(list(client.scan_iter(
                        names.EVALUATE_STATUS_PREFIX + "*"))) if v]:
                    for shard, lag in (st.get("lag_s") or {}).items():
                        if lag is not None:
                            lags.setdefault(shard, []).append(lag * 1000)
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if boundary_at is not None:  # the minute's end falls this far into the load
            time.sleep((-boundary_at - time.time()) % 60)
            out["minute_boundary_at_s"] = boundary_at
        ctl.send(("rate", rate, seconds))
        sent, took = ctl.recv()
        stop.set()
        out["evaluate_cpu_pct"] = [round(c.cpu_percent(None), 1) for c in cpu]
        applied, _ = _applied(client, before.get("trades", 0) + sent, 2.0)
        after = _status(client)
        out["stream_trades_per_s"] = round((applied - before.get("trades", 0)) / took)
        out["stream_sent_per_s"] = round(sent / took)
        out["stream_dropped_frames"] = after.get("dropped_frames", 0) - before.get("dropped_frames", 0)
        out["evaluate_lag_ms_p99"] = {s: _pct(v, 0.99) for s, v in sorted(lags.items())}
        # the stream catches up with the feed (if it fell behind), hands off its last flush, and the
        # evaluators read it all: only then does the replay compare like with like
        out["stream_catch_up_s"] = round(_applied(client, before.get("trades", 0) + sent, 180)[1], 1)
        # prints that came after their bar had closed (each revises it; a stream behind the feed that
        # closed bars by the clock made every print of a bar's last seconds one)
        out["stream_late_trades"] = _status(client).get("late_trades", 0) - before.get("late_trades", 0)
        time.sleep(1.0)
        out["drain_s"] = _drained(client, 120)
        time.sleep(5)  # the last pushes and webhooks arrive
        b_conn.send("report")
        pushed = b_conn.recv()
        r_ctl.send("report")
        hooked = r_ctl.recv()
        stored = list(db.session.execute(sa.text(
            "SELECT id, dedupe_key, latency_ms, extract(epoch FROM created_at) * 1000"
            " FROM alert_events WHERE rule_id = ANY(:r)"),
            {"r": list(rule_ids)}))
        db.session.rollback()
        out["fires"] = len(stored)
        out["fires_per_s"] = round(len(stored) / took, 1)
        browser_ms = [(at * 1000 - tt) for _, tt, at in pushed if tt]
        hook_ms = [(at * 1000 - tt) for _, tt, at in hooked if tt]
        out["print_to_browser_ms_p50"] = _pct(browser_ms, 0.5)
        out["print_to_browser_ms_p99"] = _pct(browser_ms, 0.99)
        out["print_to_webhook_ms_p99"] = _pct(hook_ms, 0.99)
        if events_to:
            _dump(events_to, stored, pushed, hooked)
        stored_ms = [float(ms) for _, _, ms, _ in stored if ms is not None]  # each event's latency_ms
        out["print_to_stored_ms_p50"] = _pct(stored_ms, 0.5)
        out["print_to_stored_ms_p99"] = _pct(stored_ms, 0.99)
        out["webhooks_received"] = len(hooked)
        handoff: list[float] = []
        want = _replay(client, rule_ids, symbols, handoff)
        out["print_to_handoff_ms_p50"] = _pct(handoff, 0.5)  # the stream's part of print → stored
        out["print_to_handoff_ms_p99"] = _pct(handoff, 0.99)
        have = Counter(k for _, k, _, _ in stored)
        pushes = Counter(i for i, _, _ in pushed)
        out["lost"] = len(want - set(have))
        twice = [have, pushes, Counter(i for i, _, _ in hooked)]
        out["duplicates"] = sum(n - 1 for c in twice for n in c.values() if n > 1)
        out["extra_vs_replay"] = len(set(have) - want)
        for name, keys in (("lost", want - set(have)), ("extra", set(have) - want)):
            for k in sorted(keys)[:8]:  # what differs, for whoever reads a non-zero count
                print(f"{name}: {k}", file=sys.stderr)
        out["counted"] = ("trade time (the feed's clock) to the Socket.IO client's receipt of alert_event "
                          "and to the webhook receiver's verified receipt; lost/duplicates against the "
                          "same engine replaying every provisional-stream entry one at a time")
        return out
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if browser is not None:
            b_conn.send("stop")
            browser.join(5)
        r_ctl.send("stop")
        receiver.join(5)
        ctl.send(("stop",))
        feed.join(5)
        for p in (browser, receiver, feed):
            if p is not None and p.is_alive():
                p.kill()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=50_000, help="trades per second from the feed")
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--evaluators", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--endpoints", type=int, default=ENDPOINTS,
                        help="webhook endpoints the webhook rules are dealt out among (at most 2 requests "
                             "in flight each)")
    parser.add_argument("--events", metavar="PATH",
                        help="also write each event's times there, a JSON line each (where the fires waited)")
    parser.add_argument("--boundary-at", type=float, default=10.0,
                        help="start the load so that a minute ends this many seconds into it (-1: whenever)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with bench_app(TICK_SHARDS=SHARDS) as (cfg, app), app.app_context():
        print(json.dumps(run(cfg, args.symbols, args.rate, args.rules, args.evaluators, args.seconds,
                                  None if args.boundary_at < 0 else args.boundary_at, args.events,
                                  args.endpoints)),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
