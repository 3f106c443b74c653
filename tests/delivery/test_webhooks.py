"""Webhooks end to end: ticks fire rules, the outbox holds deliveries, a real receiver verifies them.

The receiver (``tests/fakes/webhook_receiver.py``) checks every request
with ``standardwebhooks``' ``Webhook.verify``.  Each fault asserts that every
event arrived, every signature verified, and that copies of one event
share one ``webhook-id``.  The worker's clock is the test's, so the retry
schedule (5 s, 5 min, …) runs in a moment against real Postgres rows.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.fakes.pgproxy import PgProxy
from tests.fakes.webhook_receiver import Receiver
from tests.helpers import START, minutes, token_for, user_id
from tests.processes import RedisServer
from webapp import names
from webapp.core.delivery import networks
from webapp.core.rules.state import Fire
from webapp.delivery.worker import DeliveryWorker
from webapp.extensions import db
from webapp.services import context, ticks
from webapp.services import rules as rules_service
from webapp.store import alert_events, deliveries, webhooks
from webapp.store import rules as rules_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULE = {"name": "AAPL/MSFT cross SMA 5", "scope": {"tickers": ["AAPL", "MSFT"]}, "cooldown_seconds": 0,
        "condition": {"op": "crossing", "a": {"field": "close"}, "b": {"sma": 5}}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def wapp(make_app):
    application = make_app(WEBHOOK_ALLOWED_CIDRS=("127.0.0.1/32",))
    with application.app_context():
        yield application


@pytest.fixture
def client(wapp):
    c = wapp.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('hooks', admin=True)}"
    return c


def fire_rule(client, receiver: Receiver, n_minutes: int = 30) -> tuple[dict, list[int]]:
    """An endpoint for ``receiver``, a rule delivering to it, ticks; returns the endpoint and event ids."""
    made = client.post("/api/webhooks", json={"url": receiver.url, "description": "test"})
    assert made.status_code == 201, made.get_json()
    endpoint = made.get_json()
    assert endpoint["secret"].startswith("whsec_")
    receiver.secrets.append(endpoint["secret"])
    rule = client.post("/api/rules", json={**RULE, "channels": ["browser", f"webhook:{endpoint['id']}"]})
    assert rule.status_code == 201, rule.get_json()
    times = minutes(n_minutes)
    for at in times:
        ticks.run_tick_now(at)
    # the last tick again, as a duplicated job would run it: nothing is fired or owed twice
    slot = ticks.run_tick_now(times[-1]).slot
    context.tick_services().hot.client.delete(names.tick_done_key(slot, 0, 1))
    ticks.run_tick_now(times[-1])
    events = [e["id"] for e in alert_events.events(db.session, alert_events.ALL_OWNERS, limit=500)]
    assert len(events) >= 3
    rows = db.session.execute(db.text("SELECT count(*), count(DISTINCT event_id) FROM deliveries")).one()
    db.session.commit()
    assert tuple(rows) == (len(events), len(events))
    return endpoint, sorted(events)


def drain(worker: DeliveryWorker) -> int:
    sent = 0
    while (n := worker.run_once()):
        sent += n
    return sent


def worker_for(clock: Clock, timeout: float = 1.0, allowed=("127.0.0.1/32",)) -> DeliveryWorker:
    return DeliveryWorker(db.engine, None, networks(allowed), concurrency=8, clock=clock, timeout=timeout,
                          lease_seconds=3.0)


def start_deliverer(log_path, redis_url: str, database_url: str, **env: str) -> subprocess.Popen:
    """A real ``python -m jobs.deliver`` on short timeouts, its output in ``log_path``."""
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": database_url,
           "WEBHOOK_ALLOWED_CIDRS": "127.0.0.1/32", "DELIVERY_LEASE_SECONDS": "3",
           "WEBHOOK_TIMEOUT_SECONDS": "2", "DELIVERY_POLL_SECONDS": "0.5", "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "jobs.deliver"], cwd=ROOT, env=env,
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def queue_fires(owner: int, endpoints: Sequence[int], n: int, tag: str) -> None:
    """``n`` fires of a rule of ``owner``'s (made here), each owed to ``endpoints``, written as a tick
    writes them."""
    raw = {"name": tag, "scope": {"tickers": ["AAPL"]}, "condition": RULE["condition"]}
    rule = rules_store.create(db.session, rules_service.rule_spec(raw, owner), owner)["id"]
    rows = [alert_events.FireRow(Fire(rule, 1, "AAPL", 1_800_000_000 + 60 * i, f"{tag}{i}", {"a": 1.0},
                                      "test"), tag, tuple(endpoints), "test", 0.0, 0.0) for i in range(n)]
    alert_events.write_fires(db.session, rows, [])
    db.session.commit()


@contextmanager
def running(worker: DeliveryWorker) -> Iterator[None]:
    """``worker``'s loop on a thread for the block, stopped after it."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def assert_all_arrived_once_each(receiver: Receiver, events: list[int]) -> None:
    assert all(r.verified for r in receiver.got), [r for r in receiver.got if not r.verified]
    accepted = Counter(r.webhook_id for r in receiver.accepted())
    assert set(accepted) == {f"evt_{e}" for e in events}
    bodies = {r.webhook_id: r.body for r in receiver.got}
    assert all(bodies[f"evt_{e}"]["event_id"] == e and bodies[f"evt_{e}"]["schema_version"] == 1
               for e in events)


def test_a_receiver_down_then_back_gets_everything_in_retry_order(client) -> None:
    receiver = Receiver([])
    receiver.up()
    receiver.down()  # the port is known, nothing listens
    _, events = fire_rule(client, receiver)
    clock = Clock()
    worker = worker_for(clock)
    assert drain(worker) == len(events)  # attempt 1: refused
    clock.advance(6)
    assert drain(worker) == len(events)  # attempt 2 (5 s ± 10 %): refused
    due = [r.event_id for r in db.session.execute(db.text(
        "SELECT event_id FROM deliveries ORDER BY next_attempt_at, id"))]
    db.session.commit()
    receiver.up()
    clock.advance(100)
    assert drain(worker) == 0  # attempt 3 waits 5 min ± 10 %
    clock.advance(240)
    assert drain(worker) == len(events)
    assert_all_arrived_once_each(receiver, events)
    arrived = [int(r.webhook_id[4:]) for r in receiver.got]
    # in the order their retries fell due: each is taken only after every one due before it, and two
    # are in flight at once (the endpoint's cap; which of the two arrives first is the threads'), so
    # none arrives more than one place ahead of its turn
    assert all(due.index(e) <= i + 1 for i, e in enumerate(arrived)), (arrived, due)
    got = deliveries.deliveries(db.session, alert_events.ALL_OWNERS, limit=500)
    assert {d["status"] for d in got} == {"delivered"}
    assert all([a["error_class"] for a in d["log"]] == ["refused", "refused", None] for d in got)
    endpoint = client.get(f"/api/webhooks/{got[0]['endpoint_id']}").get_json()
    assert endpoint["failing_since"] is None and endpoint["status"] == "active" and "secret" not in endpoint


@pytest.mark.parametrize("answer", [500, ("429", 120), "redirect", "stall"])
def test_a_failed_answer_is_retried_on_schedule_with_the_same_webhook_id(client, answer) -> None:
    receiver = Receiver([], default=200, stall_seconds=2.5)
    receiver.up()
    _, events = fire_rule(client, receiver, 20)
    receiver.answers = [answer] * len(events)
    clock = Clock()
    worker = worker_for(clock)
    drain(worker)
    got = deliveries.deliveries(db.session, alert_events.ALL_OWNERS, limit=500)
    assert {d["status"] for d in got} == {"pending"} and all(d["attempts"] == 1 for d in got)
    waits = [(datetime.fromisoformat(d["next_attempt_at"]) - clock.now).total_seconds() for d in got]
    if answer == ("429", 120):
        assert all(119 <= w <= 121 for w in waits), waits  # Retry-After beats the 5 s step
    else:
        assert all(4.4 <= w <= 5.6 for w in waits), waits  # 5 s ± 10 %
    first = got[0]["log"][0]
    expected = {500: "non_2xx", "redirect": "redirect", "stall": "timeout"}.get(answer, "non_2xx")
    assert first["error_class"] == expected, first
    if answer == "redirect":
        assert first["status_code"] == 302 and "not followed" in first["error"]
    clock.advance(130)
    drain(worker)
    assert_all_arrived_once_each(receiver, events)
    ids = Counter(r.webhook_id for r in receiver.got)
    assert set(ids.values()) == {2}  # each event twice (the failure, the success), one webhook-id
    assert all(abs(r.timestamp - time.time()) < 60 for r in receiver.got)  # each attempt's own time
    assert all(r.body and "/elsewhere" not in str(r.body) for r in receiver.got)


def test_410_disables_the_endpoint_and_says_why(client) -> None:
    receiver = Receiver([], default=410)
    receiver.up()
    endpoint, events = fire_rule(client, receiver, 20)
    worker = worker_for(Clock())
    drain(worker)
    shown = client.get(f"/api/webhooks/{endpoint['id']}").get_json()
    assert shown["status"] == "disabled" and "410" in shown["disabled_reason"]
    assert len(receiver.got) <= 2  # nothing more is sent to a disabled endpoint
    receiver.default = 200
    assert client.patch(f"/api/webhooks/{endpoint['id']}", json={"status": "active"}).status_code == 200
    # the 410'd deliveries are failed; the rest were never sent and go now; a redeliver sends a failed one
    failed = [d for d in deliveries.deliveries(db.session, alert_events.ALL_OWNERS, limit=500)
              if d["status"] == "failed"]
    for d in failed:
        again = client.post(f"/api/deliveries/{d['id']}/redeliver").get_json()
        assert again == {"id": d["id"], "queued": True}
    drain(worker_for(Clock()))
    assert_all_arrived_once_each(receiver, events)
    manual = [a for d in deliveries.deliveries(db.session, alert_events.ALL_OWNERS, limit=500)
              for a in d["log"] if a["trigger"] == "manual"]
    assert len(manual) == len(failed)


def test_at_most_two_requests_are_in_flight_per_endpoint(client) -> None:
    receiver = Receiver([], default="stall", stall_seconds=0.3)
    receiver.up()
    _, events = fire_rule(client, receiver, 20)
    worker = DeliveryWorker(db.engine, None, networks(("127.0.0.1/32",)), concurrency=8, poll_seconds=0.05)
    with running(worker):
        receiver.wait_for(len(events), timeout=30)
    assert_all_arrived_once_each(receiver, events)
    assert receiver.max_in_flight == 2


@pytest.mark.parametrize("answers", [["hold"], [200, "hold"]],
                         ids=["claimed", "leased as the last was recorded"])
def test_a_deliverer_killed_mid_request_loses_nothing(client, service_urls, tmp_path, answers) -> None:
    receiver = Receiver([], answers=list(answers))
    receiver.up()
    _, events = fire_rule(client, receiver, 20)
    def start(name: str) -> subprocess.Popen:
        return start_deliverer(tmp_path / f"{name}.log", *service_urls, DELIVERY_CONCURRENCY="1")

    first = start("first")
    try:
        assert receiver.held.wait(30), (tmp_path / "first.log").read_text()
        first.send_signal(signal.SIGKILL)  # mid-request: its claim is committed, its answer never read
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    receiver.release.set()
    second = start("second")
    try:
        wait_for(lambda: len(receiver.accepted()) >= len(events) + 1, 40)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    assert second.returncode == 0, (tmp_path / "second.log").read_text()
    assert_all_arrived_once_each(receiver, events)
    ids = Counter(r.webhook_id for r in receiver.got)
    assert sorted(ids.values())[-1] == 2 and sum(ids.values()) == len(events) + 1  # the killed one, again
    assert ids[receiver.got[len(answers) - 1].webhook_id] == 2  # the held request was the one sent again
    got = deliveries.deliveries(db.session, alert_events.ALL_OWNERS, limit=500)
    assert {d["status"] for d in got} == {"delivered"}


@pytest.mark.parametrize("recorder", ["itself", "the next deliverer"])
def test_an_answer_postgres_could_not_take_is_recorded_later_and_never_sent_again(client, proxy, rdb,
                                                                                   recorder) -> None:
    """Postgres goes away while two requests are in flight and stays away past their leases: the deliverer
    holds both answers (noted in Redis too), and they are recorded once it is back, by the deliverer
    itself or, had it died, by the next one to claim the rows; neither is sent again or logged twice."""
    receiver = Receiver([], answers=["hold", "hold"])
    receiver.up()
    _, events = fire_rule(client, receiver)
    clock = Clock()
    engine = sa.create_engine(sa.make_url(proxy.url).set(drivername="postgresql+psycopg2"),
                              pool_pre_ping=True)

    def deliverer() -> DeliveryWorker:
        return DeliveryWorker(engine, rdb, networks(("127.0.0.1/32",)), concurrency=2, clock=clock,
                              timeout=5.0, lease_seconds=3.0)

    first = deliverer()
    try:
        sending = threading.Thread(target=first.run_once)
        sending.start()
        assert wait_for(lambda: receiver.in_flight == 2, 20)
        proxy.cut()
        receiver.release.set()
        sending.join(20)
        # (the suite's own connection does not go through the proxy)
        flying = db.session.execute(db.text(
            "SELECT id FROM deliveries WHERE status = 'in_flight'")).scalars().all()
        db.session.commit()
        assert first.held == 2 and rdb.exists(*map(names.delivery_outcome_key, flying)) == len(flying) == 2
        clock.advance(60)  # both leases have run out
        proxy.restore()
        if recorder == "itself":
            drain(first)
        else:
            drain(deliverer())
            assert first.run_once() == 0  # the first one, alive after all, finds its notes taken
        assert first.held == 0
    finally:
        receiver.down()
        engine.dispose()
    assert_all_arrived_once_each(receiver, events)
    assert len(receiver.got) == len(events)  # nothing sent twice
    rows = db.session.execute(db.text(
        "SELECT d.status, d.attempts, count(a.id) FROM deliveries d "
        "LEFT JOIN delivery_attempts a ON a.delivery_id = d.id GROUP BY d.id")).all()
    db.session.commit()
    assert {tuple(r) for r in rows} == {("delivered", 1, 1)}  # one attempt each, logged once


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
    ("http://100.64.0.1/hook", "CGNAT"),
    ("http://[::1]:8080/hook", "loopback"),
    ("ftp://example.com/hook", "http or https"),
    ("http://user:pw@example.com/", "user name"),
    *[(f"http://[{form}]/hook", why) for form, why in [
        ("::127.0.0.1", "IPv4-compatible"), ("::7f00:1", "IPv4-compatible"),
        ("::ffff:0:127.0.0.1", "IPv4-translated"), ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::10.0.0.1", "NAT64"), ("64:ff9b:1::a9fe:a9fe", "local NAT64"),
        ("2002:7f00:1::1", "6to4"), ("2002:a9fe:a9fe::1", "6to4"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo")]],
])
def test_forbidden_webhook_addresses_are_refused(app, url, why) -> None:
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('ssrf', admin=True)}"
    resp = c.post("/api/webhooks", json={"url": url})
    assert resp.status_code == 400 and why in resp.get_json()["error"]["message"], resp.get_json()


def test_metadata_stays_refused_even_when_allowed_and_each_attempt_checks_again(client, make_app) -> None:
    resp = client.post("/api/webhooks", json={"url": "http://169.254.169.254/"})
    assert resp.status_code == 400 and "metadata" in resp.get_json()["error"]["message"]
    receiver = Receiver([])
    receiver.up()
    _, events = fire_rule(client, receiver, 20)
    # allowed when created; no longer allowed when sent (a changed setting, or DNS that now says loopback)
    drain(worker_for(Clock(), allowed=()))
    assert receiver.got == []
    log = [a for d in deliveries.deliveries(db.session, alert_events.ALL_OWNERS, limit=500) for a in d["log"]]
    assert {a["error_class"] for a in log} == {"ssrf"} and "loopback" in log[0]["error"]


def test_health_says_when_deliveries_wait_with_nobody_sending_them(client) -> None:
    receiver = Receiver([])
    receiver.up()
    _, events = fire_rule(client, receiver, 20)
    db.session.execute(db.text("UPDATE deliveries SET next_attempt_at = now() - interval '10 minutes'"))
    db.session.commit()
    body = client.get("/api/health").get_json()
    hooks = body["checks"]["webhooks"]
    assert hooks["pending"] == len(events) and hooks["overdue_s"] >= 590
    assert any(p.startswith("webhooks:") and "jobs.deliver" in p for p in body["problems"]), body["problems"]
    drain(worker_for(Clock()))
    body = client.get("/api/health").get_json()
    assert body["checks"]["webhooks"]["pending"] == 0
    assert not any(p.startswith("webhooks:") for p in body["problems"])


def test_a_deliverer_rides_out_postgres_and_redis_going_away(client, service_urls, tmp_path) -> None:
    """``jobs.deliver`` started with both down, then each cut while it runs and events keep coming:
    it logs, backs off, keeps polling, never exits, and every event arrives exactly once."""
    receiver = Receiver([])
    receiver.up()
    proxy, private_redis = PgProxy(service_urls[1]), RedisServer(tmp_path)
    log = tmp_path / "deliver.log"
    _, events = fire_rule(client, receiver, 15)
    proxy.cut()
    private_redis.stop()
    deliverer = start_deliverer(log, private_redis.url, proxy.url)
    try:
        time.sleep(4)
        assert deliverer.poll() is None and receiver.got == [], log.read_text()
        proxy.restore()
        private_redis.start()
        assert wait_for(lambda: len(receiver.accepted()) == len(events), 40), log.read_text()

        def more(start_minute: int) -> list[int]:
            for at in minutes(15, START + timedelta(minutes=start_minute)):
                ticks.run_tick_now(at)  # the tick reaches Postgres directly, the deliverer does not
            got = sorted(e["id"] for e in alert_events.events(db.session, alert_events.ALL_OWNERS, limit=500))
            assert len(got) > len(events), "the seeded market should cross again"
            return got

        proxy.cut()  # Postgres goes away under a running deliverer while new events are written
        events = more(15)
        time.sleep(3)
        assert deliverer.poll() is None
        proxy.restore()
        assert wait_for(lambda: len(receiver.accepted()) == len(events), 40), log.read_text()

        private_redis.stop()  # no wake-ups: it polls
        events = more(30)
        assert wait_for(lambda: len(receiver.accepted()) == len(events), 20), log.read_text()
    finally:
        deliverer.send_signal(signal.SIGTERM)
        deliverer.wait(20)
        proxy.close()
        private_redis.stop()
    assert deliverer.returncode == 0, log.read_text()
    text = log.read_text()
    assert "deliveries wait in Postgres" in text and "Postgres is back" in text
    assert_all_arrived_once_each(receiver, events)
    assert len(receiver.got) == len(events)  # nothing sent twice


IPV6_EMBEDDING = ["::127.0.0.1", "::ffff:0:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1",
                  "2001:0:4136:e378:8000:63bf:80ff:fffe"]


@pytest.mark.parametrize("form", IPV6_EMBEDDING)
def test_an_ipv6_form_embedding_loopback_is_refused_at_send_too(app, form) -> None:
    """An endpoint stored before the check (or by DNS that changed) is checked again at each attempt."""
    from webapp.core.rules.state import Fire
    from webapp.services import rules as rules_service
    from webapp.store import rules as rules_store
    from webapp.store import webhooks as webhooks_store

    owner = user_id("ann")
    hook, _ = webhooks_store.create_endpoint(db.session, f"http://[{form}]:9/hook", "stored as is", owner)
    spec = rules_service.rule_spec({**RULE, "channels": [f"webhook:{hook['id']}"]}, owner)
    rule = rules_store.create(db.session, spec, owner)
    fire = Fire(rule["id"], 1, "AAPL", int(START.timestamp()), "b", {"a": 1.0}, "crossed")
    row = alert_events.FireRow(fire, "r", (hook["id"],), "sim", 0.0, 1.0)
    alert_events.write_fires(db.session, [row], [])
    db.session.commit()
    drain(worker_for(Clock(), allowed=()))
    log = [a for d in deliveries.deliveries(db.session, owner, limit=10) for a in d["log"]]
    assert log and {a["error_class"] for a in log} == {"ssrf"}
    assert "127.0.0.1" in log[0]["error"], log[0]["error"]


def test_one_users_backlog_at_a_slow_receiver_does_not_hold_back_anothers_webhooks(wapp) -> None:
    """The oldest due deliveries are all a slow endpoint's, its 2 slots taken: a claim looks past them,
    so another endpoint's delivery goes out at once, not after the backlog (it waited ~8 s for 100)."""
    slow = Receiver([], default="stall", stall_seconds=0.3, keep_alive=True)
    fast = Receiver([], keep_alive=True)
    ends = {}
    for name, receiver in (("slow", slow), ("fast", fast)):
        receiver.up()
        made, secret = webhooks.create_endpoint(db.session, receiver.url, name, user_id(f"{name}-owner"))
        receiver.secrets.append(secret)
        ends[name] = made["id"]
    queue_fires(user_id("slow-owner"), [ends["slow"]], 100, "slow")  # 100 × 0.3 s, 2 at a time: 15 s
    worker = DeliveryWorker(db.engine, None, networks(("127.0.0.1/32",)), concurrency=8, poll_seconds=0.05)
    with running(worker):
        assert wait_for(lambda: len(slow.got) >= 2, 10)
        queue_fires(user_id("fast-owner"), [ends["fast"]], 1, "fast")
        fired = time.monotonic()
        fast.wait_for(1, timeout=20)
        waited = time.monotonic() - fired
        behind = 100 - len(slow.got)
    assert [r.verified for r in fast.got] == [True]
    assert waited < 2.0 and behind > 50, (waited, behind)  # long before the slow one's backlog is through
    assert slow.max_in_flight == 2


def test_a_burst_over_several_endpoints_keeps_its_postgres_connections(wapp) -> None:
    """Eight requests at once each record their answer while the loop claims: the pool keeps that
    many connections, so a burst opens no new Postgres session per delivery (with the default 5 kept,
    2,000 deliveries over 4 endpoints opened ~100)."""
    owner = user_id("burst-owner")
    receivers = [Receiver([], keep_alive=True).up() for _ in range(4)]
    ends = []
    for r in receivers:
        made, secret = webhooks.create_endpoint(db.session, r.url, "burst", owner)
        r.secrets.append(secret)
        ends.append(made["id"])
    queue_fires(owner, ends, 60, "burst")
    opened = []

    def connected(*_) -> None:
        opened.append(1)
    sa.event.listen(db.engine, "connect", connected)
    worker = DeliveryWorker(db.engine, None, networks(("127.0.0.1/32",)), concurrency=8, poll_seconds=0.05)
    try:
        with running(worker):
            for r in receivers:
                r.wait_for(60, timeout=60)
    finally:
        sa.event.remove(db.engine, "connect", connected)
    assert all(len(r.accepted()) == 60 for r in receivers)
    assert len(opened) <= 10, len(opened)  # the 8 requests, the loop, one spare: never one a delivery


def test_a_delivery_recorded_after_its_lease_ran_out_leases_no_next_one_past_the_cap(wapp) -> None:
    """Its request outlasted its lease and two others of the endpoint are in flight now: recording it
    leases nothing more (the endpoint would have 3 in flight)."""
    owner = user_id("lease-owner")
    endpoint, _ = webhooks.create_endpoint(db.session, "http://127.0.0.1:9/x", "lease", owner)
    queue_fires(owner, [endpoint["id"]], 4, "lease")
    now = datetime.now(timezone.utc)
    first, = deliveries.claim(db.session, now, 1, 3.0)
    later = now + timedelta(seconds=10)  # its lease ran out meanwhile, and a claim filled the endpoint
    db.session.execute(db.text(
        "UPDATE deliveries SET status = 'in_flight', attempts = 1, locked_until = :t WHERE id IN "
        "(SELECT id FROM deliveries WHERE status = 'pending' ORDER BY id LIMIT 2)"),
        {"t": later + timedelta(seconds=60)})
    db.session.commit()
    answered = deliveries.Attempt(later, 5.0, 200, None, None, "ok")
    status, following = deliveries.finish(db.session, first, answered, later, 0.0, None, 60.0)
    assert status == "delivered" and following is None
    left = db.session.execute(db.text("SELECT status, count(*) FROM deliveries GROUP BY status")).all()
    db.session.commit()
    assert dict(left) == {"delivered": 1, "in_flight": 2, "pending": 1}


def test_a_claim_does_not_wait_for_a_transaction_still_writing_fires_to_the_endpoint(wapp) -> None:
    """An evaluator's transaction that owes the endpoint a delivery holds a key-share lock on its row
    (the foreign key) until it commits: the claim's lock on the endpoint (which only keeps claimers of
    one endpoint apart) must not wait for it, or every claim at a burst waits for a commit."""
    owner = user_id("claim-owner")
    endpoint, _ = webhooks.create_endpoint(db.session, "http://127.0.0.1:9/x", "claim", owner)
    queue_fires(owner, [endpoint["id"]], 2, "due")
    writer = sa.orm.Session(db.engine)  # a second connection: the fires still being written
    try:
        rule = writer.execute(sa.text("SELECT rule_id FROM alert_events LIMIT 1")).scalar()
        rows = [alert_events.FireRow(Fire(rule, 1, "AAPL", 1_900_000_000, "open0", {"a": 1.0}, "test"),
                                     "open", (endpoint["id"],), "test", 0.0, 0.0)]
        alert_events.write_fires(writer, rows, [])  # not committed
        db.session.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        claimed = deliveries.claim(db.session, datetime.now(timezone.utc), 2, 60.0)
        assert len(claimed) == 2
    finally:
        writer.rollback()
        writer.close()
