"""Socket.IO end to end: a real client, the real gunicorn/gevent web process,
and emits from a worker job travelling through the Redis message queue."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import timedelta

import pytest
import socketio

from tests.helpers import START, minutes, run_via_rq
from tests.processes import WebProcess
from webapp.core.scanner import apply_delta
from webapp.extensions import get_redis
from webapp.services import scanner
from webapp.store.subscriptions import Listening

pytestmark = pytest.mark.slow


@pytest.fixture
def web(service_urls, clean):
    proc = WebProcess(*service_urls).start()
    yield proc
    proc.stop()


class Recorder:
    def __init__(self, transports: list[str]) -> None:
        self.events: dict[str, list] = defaultdict(list)
        self.cond = threading.Condition()
        self.sio = socketio.Client(reconnection=False)
        self.transports = transports
        for name in ("stock_update", "quote", "alert", "scan_update"):
            self.sio.on(name, self._handler(name))

    def _handler(self, name: str):
        def handle(data):
            with self.cond:
                self.events[name].append(data)
                self.cond.notify_all()
        return handle

    def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.events[name]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.events[name])


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
def test_client_receives_worker_emits_and_is_refused_cleanly(web, app, transports) -> None:
    rec = Recorder(transports)
    rec.sio.connect(web.url, transports=transports, wait_timeout=10)
    try:
        assert rec.sio.call("subscribe", {"tickers": ["*"]}, timeout=5) == {"ok": True, "rooms": ["all"]}
        assert rec.sio.call("subscribe", {"tickers": ["aapl"]}, timeout=5) == {
            "ok": True, "rooms": ["ticker:AAPL"]}

        bad = [
            ({"tickers": ["ZZZZ"]}, "unknown ticker(s): ZZZZ"),
            ("AAPL", "payload must be an object"),
            ({"tickers": "AAPL"}, "non-empty list"),
            ({"tickers": ["AAPL"] * 101}, "too many tickers: 101 (at most 100)"),
            ({"tickers": ["DROP TABLE"]}, "malformed ticker"),
        ]
        for payload, needle in bad:
            ack = rec.sio.call("subscribe", payload, timeout=5)
            assert ack["ok"] is False and needle in ack["error"], ack
        assert rec.sio.call("unsubscribe", None, timeout=5)["ok"] is False
        # still usable after the refusals
        assert rec.sio.call("subscribe", {"tickers": ["BRK.B"]}, timeout=5)["ok"] is True
        assert rec.sio.call("unsubscribe", {"tickers": ["BRK.B"]}, timeout=5)["ok"] is True

        run_via_rq(app, minutes(1))
        updates = rec.wait_for("stock_update")
        quotes = rec.wait_for("quote")
        time.sleep(0.5)  # let any wrongly-routed quote arrive before we assert on rooms
        assert len(updates) == 1
        assert updates[0]["timestamp"] == START.isoformat()
        assert len(updates[0]["stocks"]) == 15
        assert [q["ticker"] for q in rec.events["quote"]] == ["AAPL"]
        assert quotes[0]["time"] == START.isoformat() and quotes[0]["price"] > 0
        assert Listening(get_redis())() == {"AAPL"}  # BRK.B was left again
    finally:
        rec.sio.disconnect()
    # the web process forgets a client's rooms when it goes: no more AAPL quotes
    deadline = time.monotonic() + 5
    while Listening(get_redis())() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Listening(get_redis())() == set()


def test_scan_room_gets_its_list_as_deltas_on_the_ack_base(web, app) -> None:
    run_via_rq(app, minutes(2))
    rec = Recorder(["websocket"])
    rec.sio.connect(web.url, transports=["websocket"], wait_timeout=10)
    try:
        for payload, needle in (({"scans": ["winners"]}, "unknown scanner list(s): winners"),
                                ({"scans": "gainers"}, '"scans" must be a non-empty list')):
            ack = rec.sio.call("subscribe", payload, timeout=5)
            assert ack["ok"] is False and needle in ack["error"], ack
        ack = rec.sio.call("subscribe", {"scans": ["gainers"]}, timeout=5)
        assert ack["ok"] is True and ack["rooms"] == ["scan:gainers"]
        base = ack["scans"]["gainers"]
        assert base["rows"] and base["time"] == minutes(2)[-1].isoformat()

        run_via_rq(app, [START + timedelta(minutes=2)])
        got = rec.wait_for("scan_update")
        time.sleep(0.5)  # anything for other rooms would have arrived by now
        assert [u["list"] for u in rec.events["scan_update"]] == ["gainers"]
        assert rec.events["stock_update"] == [] and rec.events["quote"] == []
        update = got[0]
        assert update["prev_seq"] == base["seq"]
        # the client's list after the delta is the list as the server now holds it
        now = scanner.scan_store().announced()["gainers"]["rows"]
        assert apply_delta(base["rows"], update) == now
    finally:
        rec.sio.disconnect()


def test_reserved_and_unknown_events_floods_and_a_lost_redis(web, app) -> None:
    """A client cannot silence another's quotes, flood the process, or lose its room to a FLUSHALL."""
    watcher, rogue = Recorder(["websocket"]), Recorder(["websocket"])
    watcher.sio.connect(web.url, transports=["websocket"], wait_timeout=10)
    rogue.sio.connect(web.url, transports=["websocket"], wait_timeout=10)
    try:
        for rec in (watcher, rogue):
            assert rec.sio.call("subscribe", {"tickers": ["AAPL"]}, timeout=5)["ok"] is True
        # a client-sent "disconnect" is refused and changes nothing
        ack = rogue.sio.call("disconnect", {}, timeout=5)
        assert ack == {"ok": False, "error": '"disconnect" is a reserved event name'}
        assert rogue.sio.call("connect", {}, timeout=5)["error"] == "'connect' is a reserved event name"
        assert "unknown event 'hello'" in rogue.sio.call("hello", {}, timeout=5)["error"]
        assert Listening(get_redis())() == {"AAPL"}
        # a flood is cut off for that connection only, with a reason
        acks = [rogue.sio.call("subscribe", {"tickers": ["AAPL"]}, timeout=5) for _ in range(30)]
        refused = [a for a in acks if not a["ok"]]
        assert refused and refused[0]["error"].startswith("rate limited: at most 10/second")
        assert watcher.sio.call("subscribe", {"tickers": ["KO"]}, timeout=5)["ok"] is True
        # Redis loses its data: the listened rooms are written again within REFRESH_SECONDS
        get_redis().flushall()
        deadline = time.monotonic() + 10
        while Listening(get_redis())() != {"AAPL", "KO"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert Listening(get_redis())() == {"AAPL", "KO"}
        run_via_rq(app, minutes(1))
        got = watcher.wait_for("quote", 2)
        assert sorted(q["ticker"] for q in got) == ["AAPL", "KO"]
    finally:
        watcher.sio.disconnect()
        rogue.sio.disconnect()


def test_a_full_web_process_refuses_with_a_reason_and_health_says_so(service_urls, clean) -> None:
    """Past WEB_MAX_CLIENTS a client is told why at once, never accepted and left without updates."""
    web = WebProcess(*service_urls, WEB_MAX_CLIENTS="2").start()
    clients = [Recorder(["websocket"]) for _ in range(3)]
    try:
        for rec in clients[:2]:
            rec.sio.connect(web.url, transports=["websocket"], wait_timeout=10)
        reasons: list = []
        clients[2].sio.on("connect_error", reasons.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            clients[2].sio.connect(web.url, transports=["websocket"], wait_timeout=10)
        assert reasons == [{"message": "server full: this web process already serves its maximum of 2 live "
                                       "connections (WEB_MAX_CLIENTS)"}]
        import requests

        deadline = time.monotonic() + 15  # the load is published every REFRESH_SECONDS
        while time.monotonic() < deadline:
            resp = requests.get(web.url + "/api/health", timeout=5)
            if resp.json()["checks"].get("web", {}).get("refused"):
                break
            time.sleep(0.5)
        body = resp.json()
        assert resp.status_code == 503
        assert body["checks"]["web"] == {"processes": 1, "clients": 2, "refused": 1}
        assert any(p.startswith("web: 1 process(es) full at 2 clients") for p in body["problems"])
        clients[0].sio.disconnect()  # a place is free again
        time.sleep(0.5)
        clients[2].sio.connect(web.url, transports=["websocket"], wait_timeout=10)
        assert clients[2].sio.call("subscribe", {"tickers": ["AAPL"]}, timeout=5)["ok"] is True
    finally:
        for rec in clients:
            if rec.sio.connected:
                rec.sio.disconnect()
        web.stop()
