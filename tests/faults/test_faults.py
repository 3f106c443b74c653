"""An operator's bad day, injected into the running product: every case against an unbroken run.

Each case starts the real processes (``tests/faults/stack.py``), lets a few
2-second ticks pass, injects its fault, waits for recovery and a few more
ticks, and then holds the result to the same standard:

* 0 slots lost: every slot from the first to the last has its quotes (or is
  recorded as missed; with ``sim``, which can answer for any minute, none is);
* every stored price, SMA and alert is the reference run's: no false alert,
  none missed, none stored twice;
* every alert went onto the Socket.IO channel once, and a real client in room
  ``alerts`` got none twice;
* no process exited; health said what was wrong while it was, naming the
  right part, and is 200 again after.
"""
from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
import requests
import socketio

from tests.faults.stack import TICK, Result, Stack
from webapp import names

pytestmark = [pytest.mark.slow, pytest.mark.faults]

RECOVERY_TICKS = 4  # ticks run again within this many tick lengths of the fault ending


@pytest.fixture
def stack(request, tmp_path, service_urls, clean):
    options = getattr(request, "param", {})
    s = Stack(tmp_path, service_urls[1], **options)
    try:
        s.wait_slots(3, timeout=40)  # warm: the first ticks ran
        yield s
    finally:
        s.stop()


def assert_unbroken(stack: Stack, res: Result, every_received: bool = True) -> None:
    assert res.lost == [], f"{len(res.lost)} slot(s) lost: {res.lost[:5]}"
    assert res.missed == []  # sim can run any missed slot late, so none had to be given up
    assert res.wrong_prices == 0 and res.wrong_smas == 0
    assert res.alerts == res.expected_alerts  # no false alert, none missed, none stored twice
    assert res.alerts, "the run produced no alert to check"
    assert res.emitted == Counter(res.alerts), "every stored alert emitted exactly once"
    assert all(n == 1 for n in res.received.values()), "a client got an alert twice"
    if every_received:
        assert res.received == res.emitted
    # as they were before the test stopped them; a process the test killed itself is not counted
    assert all(up for name, up in stack.survived.items() if name not in stack.killed), stack.survived


def assert_recovers(stack: Stack, since: float) -> float:
    """Ticks run again, and health is 200, within RECOVERY_TICKS ticks; returns the seconds it took."""
    before = stack.last_slot() or 0
    took = stack.until(lambda: (stack.last_slot() or 0) > before, RECOVERY_TICKS * TICK + 5)
    stack.until(lambda: requests.get(stack.web.url + "/api/health", timeout=3).status_code == 200, 20)
    return took


def problems_during(stack: Stack, start: float, end: float) -> list[str]:
    return [p for h in stack.health_between(start, end) for p in h.problems]


def finish(stack: Stack, pg, more: int = 3) -> Result:
    stack.wait_slots(more)
    stack.survived = stack.alive()
    stack.stop()
    return stack.verify(pg)


@pytest.mark.parametrize("stack", [{"workers": 2, "schedulers": 2}], indirect=True)
def test_two_of_each_and_a_web_restart_change_nothing(stack, pg) -> None:
    stack.wait_slots(3)
    stack.web.stop()
    stack.web.start()  # same port: the client reconnects by itself
    stack.until(lambda: stack.browser.sio.connected, 15)
    result = finish(stack, pg, more=4)
    assert_unbroken(stack, result, every_received=False)  # alerts sent while the web was down miss the client


def test_flushall_is_noticed_and_nothing_is_lost(stack, pg) -> None:
    stack.wait_slots(2)
    t0 = time.time()
    stack.client.flushall()
    took = assert_recovers(stack, t0)
    seen = problems_during(stack, t0, time.time())
    assert not [p for p in seen if p.startswith("worker:")], seen  # the worker is not blamed
    result = finish(stack, pg)
    assert took <= RECOVERY_TICKS * TICK
    assert_unbroken(stack, result)


def test_redis_stopped_and_restarted_empty(stack, pg) -> None:
    stack.wait_slots(2)
    t0 = time.time()
    stack.redis.stop()
    time.sleep(16)  # long enough for a doubling backoff to reach 16 s (ticks came back 31 s late after 30 s)
    assert all(stack.alive().values()), stack.alive()  # nobody died of it
    during = stack.health_between(t0 + 1, time.time())
    assert during and all(h.status == 503 for h in during)
    assert all(h.problems and h.problems[0].startswith("redis:") for h in during), during[-1]
    stack.redis.start()
    took = assert_recovers(stack, time.time())
    assert took <= TICK + 4, f"ticks resumed {took:.1f} s after Redis came back"  # one tick and a retry
    result = finish(stack, pg)
    assert_unbroken(stack, result, every_received=False)  # an emit during the web's reconnect can miss it
    assert len(result.received) >= len(result.emitted) - 4


def test_a_worker_killed_between_commit_and_redis_write(stack, pg) -> None:
    stack.wait_slots(2)
    stack.client.set(names.FAULT_PAUSE_KEY, 60)  # the next tick holds right after its Postgres commit
    stack.until(lambda: stack.client.get(names.FAULT_PAUSED_KEY), 10)
    t0 = time.time()
    stack.signal("worker0", signal.SIGKILL)
    stack.start("worker1")  # a supervisor's restart
    took = assert_recovers(stack, t0)
    result = finish(stack, pg)
    assert took <= RECOVERY_TICKS * TICK + 3  # the lock (TTL 3 s here) does not hold it for 30 s
    assert_unbroken(stack, result)
    # repaired by running the killed slot again (its stored rows merge) or by rebuilding from Postgres
    text = stack.log("worker1")
    assert "merging instead" in text or "reached Postgres but not Redis" in text, text[-2000:]


def test_a_worker_paused_past_several_ticks(stack, pg) -> None:
    stack.wait_slots(2)
    t0 = time.time()
    stack.signal("worker0", signal.SIGSTOP)
    time.sleep(2 * TICK + 12)  # past health's limit of two ticks + 10 s
    seen = problems_during(stack, t0, time.time())
    assert any(p.startswith("pipeline: last tick ran") for p in seen), seen
    stack.signal("worker0", signal.SIGCONT)
    assert_recovers(stack, time.time())
    result = finish(stack, pg)
    assert_unbroken(stack, result)


def test_postgres_down_and_back(stack, pg) -> None:
    stack.wait_slots(2)
    t0 = time.time()
    stack.proxy.cut()
    before = stack.last_slot()
    stack.wait_slots(3)  # ticks go on
    assert stack.last_slot() >= before + 3
    resp = requests.get(stack.web.url + "/api/stocks", timeout=5)
    assert resp.status_code == 200  # answered from Redis
    assert requests.get(stack.web.url + "/api/alerts", timeout=5).status_code == 503
    seen = problems_during(stack, t0, time.time())
    assert any(p.startswith("postgres: down") and "spooled" in p for p in seen), seen
    stack.proxy.restore()
    assert_recovers(stack, time.time())
    stack.until(lambda: not stack.client.exists(names.SPOOL_KEY), 10)  # the spool drained
    result = finish(stack, pg)
    assert_unbroken(stack, result)


def test_a_client_flood_and_a_client_sent_disconnect(stack, pg) -> None:
    watcher = socketio.Client(reconnection=False)
    quotes: list[str] = []
    watcher.on("quote", lambda q: quotes.append(q["time"]))
    rogue = socketio.Client(reconnection=False)
    watcher.connect(stack.web.url, transports=["websocket"], wait_timeout=10)
    rogue.connect(stack.web.url, transports=["websocket"], wait_timeout=10)
    try:
        for c in (watcher, rogue):
            assert c.call("subscribe", {"tickers": ["AAPL"]}, timeout=5)["ok"]
        assert rogue.call("disconnect", {}, timeout=5)["error"] == '"disconnect" is a reserved event name'
        for _ in range(1000):  # a burst: no acknowledgement awaited
            rogue.emit("subscribe", {"tickers": ["AAPL"]})
        answers = [requests.get(stack.web.url + "/api/stocks", timeout=5).status_code for _ in range(20)]
        assert answers == [200] * 20  # nobody else gets an error
        have = len(quotes)
        stack.wait_slots(3)
        assert len(quotes) >= have + 2  # the watcher still gets AAPL's quotes
    finally:
        watcher.disconnect()
        rogue.disconnect()
    result = finish(stack, pg, more=4)
    assert_unbroken(stack, result)
