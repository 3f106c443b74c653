"""Alerts on the print through faults, against real ``python -m jobs.evaluate`` processes.

A feeder writes hand-offs as the stream leader does (the real writer, one
entry per shard per flush, every ticker's bar so far), bar after bar, while
the processes are killed, doubled, or lose Redis.  The rule (``close
greater_than 1``, ``every_time``, every ticker) holds at every hand-off, so
a replay of the same hand-offs fires once per ticker and bar: that set is
the reference.  Each fire must be stored once and pushed once.
"""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import redis
import redis.asyncio as aredis

from tests.delivery.test_webhooks import assert_all_arrived_once_each, start_deliverer, wait_for
from tests.fakes.webhook_receiver import Receiver
from tests.helpers import START, EmitCapture, minutes, run_via_rq, user_id
from tests.processes import ROOT, RedisServer
from webapp import names
from webapp.config import DEFAULT_SYMBOLS, child_environment
from webapp.extensions import db
from webapp.services import rules as rules_service
from webapp.store import rules as rules_store
from webapp.store import webhooks
from webapp.store.streamstate import StreamWriter
from webapp.store.subscriptions import ListenerRegistry

pytestmark = pytest.mark.slow

SHARDS = 2
FIRST_BAR = int((START + timedelta(minutes=6)).timestamp())  # bar ends after the stored readings


class Feeder:
    """Hand-offs for every ticker, ``per_bar`` flushes a bar, a flush every ``every`` s."""

    def __init__(self, url: str, room: str, per_bar: int = 10, every: float = 0.05) -> None:
        self.url, self.room, self.per_bar, self.every = url, room, per_bar, every
        self.bars_fed: list[int] = []  # bar ends with at least one hand-off written
        self.after: dict[int, float] = {}  # bar end -> when its first hand-off was written
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        client = aredis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        writer = StreamWriter(client, 3600, shards=SHARDS)
        sync = redis.Redis.from_url(self.url, socket_timeout=2)
        bar = FIRST_BAR
        while not self.stop.is_set():
            for k in range(self.per_bar):
                if self.stop.is_set():
                    break
                start = bar - 60
                rows = [[t, start, 100.0, 100.0 + k, 99.0, 100.0 + k / 2, 100.0 * (k + 1), k + 1,
                         (start + k + 1) * 1000, (start + k + 1) * 1000, (start + 1) * 1000]
                        for t in DEFAULT_SYMBOLS]
                try:
                    ListenerRegistry(sync).publish({self.room})  # a page follows the owner's feed
                    await writer.flush(provisional=rows, at_ms=int(time.time() * 1000))
                    if bar not in self.after:
                        self.after[bar] = time.monotonic()
                        self.bars_fed.append(bar)
                except (redis.RedisError, OSError):
                    pass  # Redis is down: this flush is lost, the next carries the bar so far
                await asyncio.sleep(self.every)
            bar += 60
        await client.aclose()


def _evaluate(redis_url: str, db_url: str, tmp_path, name: str) -> subprocess.Popen:
    env = child_environment(REDIS_URL=redis_url, DATABASE_URL=db_url, TICK_SHARDS=str(SHARDS),
                            EVALUATE_LEASE_SECONDS="1", SYMBOLS=",".join(DEFAULT_SYMBOLS), LOG_LEVEL="INFO")
    log = open(tmp_path / f"evaluate-{name}.log", "ab")  # the child holds it
    return subprocess.Popen([sys.executable, "-m", "jobs.evaluate"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _setup(app, channels: tuple[str, ...] = ("browser",)) -> tuple[int, int]:
    run_via_rq(app, minutes(6))
    owner = user_id("trader")
    spec = rules_service.rule_spec({
        "name": "above 1", "scope": {"all": True}, "frequency": "every_time", "cooldown_seconds": 0,
        "channels": list(channels),
        "condition": {"op": "greater_than", "a": {"field": "close"}, "b": {"const": 1}}}, owner)
    return owner, rules_store.create(db.session, spec, owner)["id"]


def _settle(pg, redis_url: str, rule_id: int, timeout: float = 40) -> list[tuple]:
    """Wait until every shard's entries are acknowledged and no event was added for 2 s."""
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    last, quiet = -1, time.monotonic()
    while time.monotonic() < deadline:
        with pg.cursor() as cur:
            cur.execute("SELECT count(*) FROM alert_events WHERE rule_id = %s", (rule_id,))
            n = cur.fetchone()[0]
        pending = 0
        for s in range(SHARDS):
            try:
                key = names.provisional_stream_key(s, SHARDS)
                pending += client.xpending(key, names.EVALUATE_GROUP)["pending"]
            except redis.ResponseError:
                pending += 1  # no group yet
        if n != last:
            last, quiet = n, time.monotonic()
        elif pending == 0 and time.monotonic() - quiet > 2:
            break
        time.sleep(0.2)
    with pg.cursor() as cur:
        cur.execute("SELECT id, ticker, extract(epoch FROM bar_time)::bigint FROM alert_events "
                    "WHERE rule_id = %s", (rule_id,))
        return cur.fetchall()


def _check(stored: list[tuple], pushed: list[dict], bars: list[int]) -> None:
    """Every (ticker, bar) of ``bars`` stored once, and every stored event pushed exactly once."""
    keys = Counter((t, b) for _, t, b in stored)
    assert [k for k, n in keys.items() if n > 1] == []  # stored once
    want = {(t, b) for t in DEFAULT_SYMBOLS for b in bars}
    assert want - set(keys) == set()  # none lost
    times = Counter(e["id"] for e in pushed)
    assert [i for i, n in times.items() if n > 1] == []  # pushed once
    assert {i for i, *_ in stored} == set(times)  # each stored one pushed


def test_killed_mid_batch_twice_and_two_at_once_nothing_lost_nothing_twice(app, pg, service_urls,
                                                                           tmp_path) -> None:
    redis_url, db_url = service_urls
    owner, rule_id = _setup(app)
    capture = EmitCapture(redis_url)
    feeder = Feeder(redis_url, names.user_room(owner))
    procs = {name: _evaluate(redis_url, db_url, tmp_path, name) for name in ("a", "b")}  # two at once
    try:
        feeder.thread.start()
        time.sleep(4)
        for victim in ("a", "b"):  # each killed mid-run (SIGKILL: no clean-up), then started again
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(5)
            time.sleep(2.5)  # its shards pass to the other within the lease (1 s)
            procs[victim] = _evaluate(redis_url, db_url, tmp_path, victim)
            time.sleep(2)
        feeder.stop.set()
        feeder.thread.join(5)
        stored = _settle(pg, redis_url, rule_id)
        pushed = [d for room, d in capture.events(names.EVENT_ALERT_EVENT) if room == names.user_room(owner)]
        assert all(p.poll() is None for p in procs.values()), "an evaluate process exited"
    finally:
        feeder.stop.set()
        capture.close()
        for p in procs.values():
            p.terminate()
            p.wait(10)
    assert len(feeder.bars_fed) >= 5
    _check(stored, pushed, feeder.bars_fed)


def test_redis_restarted_empty_the_processes_ride_it_out(app, pg, service_urls, tmp_path) -> None:
    """Redis dies and comes back empty (groups, leases, streams gone): the processes stay up, take the
    shards and make the groups again, and every bar fed after it came back fires once, pushed once."""
    server = RedisServer(tmp_path)
    db_url = service_urls[1]
    owner, rule_id = _setup(app)
    capture = None
    feeder = Feeder(server.url, names.user_room(owner))
    procs = {name: _evaluate(server.url, db_url, tmp_path, name) for name in ("a", "b")}
    try:
        feeder.thread.start()
        time.sleep(4)
        server.stop()
        time.sleep(3)
        server.start()
        back = time.monotonic()
        capture = EmitCapture(server.url)
        time.sleep(6)
        feeder.stop.set()
        feeder.thread.join(5)
        stored = _settle(pg, server.url, rule_id)
        pushed = [d for room, d in capture.events(names.EVENT_ALERT_EVENT) if room == names.user_room(owner)]
        assert all(p.poll() is None for p in procs.values()), "an evaluate process exited"
    finally:
        feeder.stop.set()
        if capture is not None:
            capture.close()
        for p in procs.values():
            p.terminate()
            p.wait(10)
        server.stop()
    after = [b for b in feeder.bars_fed if feeder.after[b] > back + 1]  # begun once it was back
    assert len(after) >= 2
    keys = Counter((t, b) for _, t, b in stored)
    assert [k for k, n in keys.items() if n > 1] == []
    assert {(t, b) for t in DEFAULT_SYMBOLS for b in after} <= set(keys)
    late = {i for i, t, b in stored if b in after}
    times = Counter(e["id"] for e in pushed)
    assert [i for i, n in times.items() if n > 1] == [] and late <= set(times)


def test_the_stream_leader_fails_over_while_rules_fire_on_the_print(app, pg, service_urls,
                                                                    tmp_path) -> None:
    """Two stream processes and an evaluate process on a feed that trades AAPL just above and below
    100 all along (2-second bars; ``once_per_bar`` ``greater_than`` fires each bar): the leader is
    SIGKILLed; the standby's hand-offs carry on, the rule fires again
    once it streams, and no bar fires twice, stored or pushed."""
    from tests.fakes.stream_servers import FakeFeed, polygon_trade

    redis_url, db_url = service_urls
    owner = user_id("trader")
    spec = rules_service.rule_spec({
        "name": "AAPL above 100", "scope": {"tickers": ["AAPL"]}, "frequency": "once_per_bar",
        "cooldown_seconds": 0, "condition": {"op": "greater_than", "a": {"field": "close"},
                                             "b": {"const": 100}}}, owner)
    rule_id = rules_store.create(db.session, spec, owner)["id"]
    feed = FakeFeed("polygon")
    url = feed.start_in_thread()
    env = child_environment(REDIS_URL=redis_url, DATABASE_URL=db_url, STREAM_PROVIDER="polygon",
                            STREAM_URL=url, POLYGON_API_KEY="test-key", TICK_SECONDS="2",
                            STREAM_ALWAYS_OPEN="1", EVALUATE_LEASE_SECONDS="1", PYTHONUNBUFFERED="1")
    stop = threading.Event()

    def trading() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            price = 100.1 if n % 2 else 99.9  # above and below: the rule re-arms and fires each bar
            frame = [polygon_trade("AAPL", price, 100, int(time.time() * 1000), str(n))]
            asyncio.run_coroutine_threadsafe(feed.broadcast(frame), feed.loop).result(5)
            time.sleep(0.05)

    client = redis.Redis.from_url(redis_url)
    ListenerRegistry(client).publish({names.user_room(owner)})
    capture = EmitCapture(redis_url)
    procs: dict[int, subprocess.Popen] = {}

    def status() -> dict:
        import orjson

        raw = client.get(names.STREAM_STATUS_KEY)
        return orjson.loads(raw) if raw else {}

    def fired() -> list[tuple]:
        with pg.cursor() as cur:
            cur.execute("SELECT id, ticker, extract(epoch FROM bar_time)::bigint FROM alert_events "
                        "WHERE rule_id = %s", (rule_id,))
            return cur.fetchall()

    threading.Thread(target=trading, daemon=True).start()
    try:
        for name in ("stream-a", "stream-b", "evaluate"):
            module = "jobs.evaluate" if name == "evaluate" else "jobs.stream"
            with open(tmp_path / f"{name}.log", "wb") as log:
                p = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
            procs[p.pid] = p
        deadline = time.monotonic() + 30
        while len(fired()) < 2:  # the rule fires on the print, bar after bar
            assert time.monotonic() < deadline, (tmp_path / "evaluate.log").read_text()[-1500:]
            time.sleep(0.2)
        leader = status()["pid"]
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(5)
        before = len(fired())
        deadline = time.monotonic() + 20
        while len(fired()) < before + 2:  # and again once the standby streams
            assert time.monotonic() < deadline, status()
            time.sleep(0.2)
        assert status()["pid"] != leader
        stored = fired()
        room = names.user_room(owner)
        pushed = [d for r, d in capture.events(names.EVENT_ALERT_EVENT) if r == room]
        assert all(p.poll() is None for pid, p in procs.items() if pid != leader)
    finally:
        stop.set()
        capture.close()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    bars = Counter(b for _, _, b in stored)
    assert [b for b, n in bars.items() if n > 1] == []  # no bar fired twice
    ids = Counter(d["id"] for d in pushed)
    assert [i for i, n in ids.items() if n > 1] == [] and {i for i, *_ in stored} <= set(ids)


def test_postgres_cut_for_60_s_while_rules_fire_everything_is_stored_pushed_and_delivered_once(
        app, pg, proxy, service_urls, tmp_path) -> None:
    """Postgres goes away for 60 s under two evaluate processes and a deliverer: they stay up, the
    hand-offs wait in the streams, and once it is back every fire is stored once, pushed once, and
    delivered once to a receiver that verifies its signature, under one ``webhook-id``."""
    redis_url = service_urls[0]
    owner = user_id("trader")
    receiver = Receiver([])
    receiver.up()
    endpoint, secret = webhooks.create_endpoint(db.session, receiver.url, "fault", owner)
    receiver.secrets.append(secret)
    owner, rule_id = _setup(app, ("browser", f"webhook:{endpoint['id']}"))
    capture = EmitCapture(redis_url)
    feeder = Feeder(redis_url, names.user_room(owner), every=0.1)
    procs = {name: _evaluate(redis_url, proxy.url, tmp_path, name) for name in ("a", "b")}
    deliver = start_deliverer(tmp_path / "deliver.log", redis_url, proxy.url)
    try:
        feeder.thread.start()
        time.sleep(4)
        proxy.cut()
        time.sleep(60)
        assert all(p.poll() is None for p in [*procs.values(), deliver]), "a process exited"
        proxy.restore()
        time.sleep(4)
        feeder.stop.set()
        feeder.thread.join(5)
        stored = _settle(pg, redis_url, rule_id, timeout=60)
        pushed = [d for room, d in capture.events(names.EVENT_ALERT_EVENT) if room == names.user_room(owner)]
        assert wait_for(lambda: len({r.webhook_id for r in receiver.accepted()}) >= len(stored), 90)
        assert all(p.poll() is None for p in [*procs.values(), deliver]), "a process exited"
    finally:
        feeder.stop.set()
        capture.close()
        for p in [*procs.values(), deliver]:
            p.terminate()
            p.wait(10)
        receiver.down()
    assert len(feeder.bars_fed) >= 40  # bars fed before, during and after the cut
    logs = "".join((tmp_path / f"evaluate-{n}.log").read_text() for n in ("a", "b"))
    assert "Postgres unavailable" in logs  # the cut was met, and ridden out
    _check(stored, pushed, feeder.bars_fed)
    assert_all_arrived_once_each(receiver, [i for i, *_ in stored])
    assert Counter(r.webhook_id for r in receiver.accepted()).most_common(1)[0][1] == 1


def test_the_scanner_every_second_resumes_with_whole_lists_when_its_announcer_is_killed(
        app, pg, service_urls, tmp_path) -> None:
    """Two evaluate processes rank the lists each second; the one announcing (holding shard 0) is
    SIGKILLed: within seconds the other takes its shards and announces again, starting with whole
    lists (``full``), never a delta against a base it did not make; nobody exits."""
    import orjson

    from webapp.evaluate import scanner as live_scanner
    from webapp.store import evaluation

    redis_url, db_url = service_urls
    client = redis.Redis.from_url(redis_url)
    rooms = {names.scan_room(n) for n in live_scanner.ALL_LISTS}

    def connected() -> None:  # the stream that feeds the prices says it is up, and pages listen
        client.set(names.STREAM_STATUS_KEY, orjson.dumps({"state": "connected"}), ex=15)
        ListenerRegistry(client).publish(rooms)

    connected()
    capture = EmitCapture(redis_url)
    feeder = Feeder(redis_url, names.user_room(1))
    extra = {"MARKET_DATA_PROVIDER": "stream", "SCAN_WINDOW_SECONDS": "5"}

    def start(name: str) -> subprocess.Popen:
        env = child_environment(REDIS_URL=redis_url, DATABASE_URL=db_url, TICK_SHARDS=str(SHARDS),
                                EVALUATE_LEASE_SECONDS="1", SYMBOLS=",".join(DEFAULT_SYMBOLS), **extra)
        log = open(tmp_path / f"evaluate-{name}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "jobs.evaluate"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    procs = {name: start(name) for name in ("a", "b")}

    def updates() -> list[dict]:
        return [d for room, d in capture.events(names.EVENT_SCAN_UPDATE) if room in rooms]

    try:
        feeder.thread.start()
        deadline = time.monotonic() + 30
        while not any(u.get("live") for u in updates()):
            assert time.monotonic() < deadline, (tmp_path / "evaluate-a.log").read_text()[-1500:]
            connected()
            time.sleep(0.5)
        first = updates()
        assert first[0]["full"] and first[0]["prev_seq"] is None
        announcer = next(st for st in evaluation.statuses(client) if 0 in st["held"])
        victim = next(p for p in procs.values() if p.pid == announcer["pid"])
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        killed_at, seen = time.monotonic(), len(updates())
        resumed = None
        while resumed is None:
            assert time.monotonic() - killed_at < 15, "the lists did not resume"
            connected()
            later = updates()[seen:]
            resumed = next((u for u in later if u["full"]), None)
            time.sleep(0.3)
        took = time.monotonic() - killed_at
        survivor = next(p for p in procs.values() if p is not victim)
        assert survivor.poll() is None
    finally:
        feeder.stop.set()
        capture.close()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                p.wait(10)
    assert resumed["live"] and resumed["prev_seq"] is None
    print(f"the lists resumed {took:.1f} s after their announcer was killed")
