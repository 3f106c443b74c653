"""One attempt at a time against a real receiver: kept connections, and when they are not reused.

A burst to one endpoint rides one or two kept connections (a handshake and
a teardown per request cost the deliverer and the receiver a third of
their work); a connection idle past ``KEEP_IDLE_SECONDS``, one whose
answer was not read to its end, or one the receiver closed is never reused
for the next attempt, which would otherwise fail for nothing.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.fakes.webhook_receiver import Receiver
from webapp.core import delivery as policy
from webapp.core.delivery import networks
from webapp.delivery import sender

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ALLOWED = networks(("127.0.0.1/32",))


def send(receiver: Receiver, connections: sender.Connections | None, n: int, path: str = "") -> list:
    out = []
    for k in range(n):
        body = sender.body_of({
            "id": k, "rule_id": 1, "rule_name": "r", "rule_version": 1, "ticker": "AAPL",
            "bar_time": "2026-12-07T14:30:00+00:00", "fired_at": "2026-12-07T14:30:01+00:00", "inputs": {},
            "explanation": "e", "source": "test", "data_age_seconds": 0.0, "stale": False})
        headers = sender.headers_for(sender.webhook_id(k), body, [SECRET], datetime.now(timezone.utc))
        out.append(sender.post(receiver.url + path, body, headers, ALLOWED, 2.0, connections))
    return out


@pytest.fixture
def receiver():
    got = Receiver([SECRET], keep_alive=True).up()
    yield got
    got.down()


def test_a_burst_to_one_endpoint_rides_one_kept_connection(receiver) -> None:
    connections = sender.Connections()
    attempts = send(receiver, connections, 20)
    connections.close()
    assert [a.status_code for a in attempts] == [200] * 20
    assert len(receiver.accepted()) == 20
    assert len({r.peer for r in receiver.got}) == 1
    alone = Receiver([SECRET], keep_alive=True).up()  # without kept connections: one each
    try:
        send(alone, None, 5)
        assert len({r.peer for r in alone.got}) == 5
    finally:
        alone.down()


def test_endpoints_on_one_host_share_its_connections_without_discarding_any(receiver, caplog) -> None:
    """Many users' endpoints on one webhook service: as many kept connections as the deliverer's
    threads, reused across the endpoints (a pool of the endpoint cap's 2 opened, discarded and
    logged a connection for each request past them)."""
    from concurrent.futures import ThreadPoolExecutor

    threads = 6
    connections = sender.Connections(per_host=threads)
    try:
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(3):  # rounds: each thread sends to its own endpoint, a path of the host
                rounds = list(pool.map(lambda i: send(receiver, connections, 4, f"?endpoint={i}"),
                                       range(threads)))
                assert [a.status_code for r in rounds for a in r] == [200] * threads * 4
    finally:
        connections.close()
    assert len(receiver.accepted()) == threads * 4 * 3
    assert len({r.peer for r in receiver.got}) <= threads
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_a_connection_idle_past_the_limit_is_not_reused(receiver, monkeypatch) -> None:
    monkeypatch.setattr(sender, "KEEP_IDLE_SECONDS", 0.2)
    connections = sender.Connections()
    send(receiver, connections, 2)
    time.sleep(0.4)
    send(receiver, connections, 2)
    connections.close()
    ports = [r.peer for r in receiver.got]
    assert ports[0] == ports[1] and ports[2] == ports[3] and ports[1] != ports[2]
    assert len(receiver.accepted()) == 4


def test_an_answer_longer_than_kept_closes_its_connection_and_the_next_attempt_is_fine(receiver) -> None:
    receiver.answers = ["long"]
    connections = sender.Connections()
    first, second, third = send(receiver, connections, 3)
    connections.close()
    assert first.status_code == 200 and len(first.response or "") == policy.RESPONSE_KEPT
    assert second.status_code == 200 and second.response == '{"ok": true}' and third.status_code == 200
    ports = [r.peer for r in receiver.got]
    assert ports[0] != ports[1] and ports[1] == ports[2]


def test_a_receiver_that_closes_each_connection_gets_every_attempt() -> None:
    closing = Receiver([SECRET], keep_alive=False).up()  # HTTP/1.0: closed after each answer
    connections = sender.Connections()
    try:
        attempts = send(closing, connections, 10)
    finally:
        connections.close()
        closing.down()
    assert [a.status_code for a in attempts] == [200] * 10 and len(closing.accepted()) == 10


def test_pools_past_the_limit_are_closed_least_recent_first(receiver) -> None:
    others = [Receiver([SECRET], keep_alive=True).up() for _ in range(3)]
    connections = sender.Connections(hosts=2)
    try:
        for r in [receiver, *others, receiver]:
            assert [a.status_code for a in send(r, connections, 1)] == [200]
        assert len(connections._pools) == 2
    finally:
        connections.close()
        for r in others:
            r.down()
    assert len({r.peer for r in receiver.got}) == 2  # evicted between its two attempts: reconnected
