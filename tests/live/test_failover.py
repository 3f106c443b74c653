"""Two real stream processes, one provider connection: SIGKILL the leader, the standby streams within 10 s.

The fake provider counts connections; at no moment are two open.  A step-down says why: a lock
that lapsed, or another holder.
"""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis

from tests.fakes.stream_servers import FakeFeed, polygon_trade
from tests.processes import ROOT
from webapp import names
from webapp.config import child_environment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean")]


def test_sigkill_of_the_leader_hands_the_connection_to_the_standby(service_urls, tmp_path) -> None:
    redis_url, db_url = service_urls
    feed = FakeFeed("polygon")
    url = feed.start_in_thread()
    env = child_environment(REDIS_URL=redis_url, DATABASE_URL=db_url, STREAM_PROVIDER="polygon",
                            STREAM_URL=url, POLYGON_API_KEY="test-key", TICK_SECONDS="2",
                            STREAM_ALWAYS_OPEN="1", PYTHONUNBUFFERED="1")
    stop = threading.Event()

    def trading() -> None:  # the feed trades all along, so each leader has data to show
        n = 0
        while not stop.is_set():
            n += 1
            frame = [polygon_trade("AAPL", 100 + n / 100, 100, int(time.time() * 1000), str(n))]
            asyncio.run_coroutine_threadsafe(feed.broadcast(frame), feed.loop).result(5)
            time.sleep(0.1)

    procs = {}
    logs: dict[int, Path] = {}
    client = redis.Redis.from_url(redis_url)

    def status() -> dict:
        raw = client.get(names.STREAM_STATUS_KEY)
        return orjson.loads(raw) if raw else {}

    threading.Thread(target=trading, daemon=True).start()
    try:
        for name in ("a", "b"):
            log = open(tmp_path / f"stream-{name}.log", "wb")
            p = subprocess.Popen([sys.executable, "-m", "jobs.stream"], cwd=ROOT, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
            procs[p.pid] = p
            logs[p.pid] = tmp_path / f"stream-{name}.log"
        deadline = time.monotonic() + 30
        while not (status().get("state") == "connected" and status().get("trades", 0) > 5):
            assert time.monotonic() < deadline, (tmp_path / "stream-a.log").read_text()[-2000:]
            time.sleep(0.1)
        leader = status()["pid"]
        time.sleep(2)  # the standby keeps trying meanwhile
        assert feed.connections == 1 and feed.max_open == 1
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(5)
        killed_at = time.monotonic()
        while not (status().get("pid") not in (None, leader) and status().get("state") == "connected"
                   and status().get("trades", 0) > 0):
            assert time.monotonic() - killed_at < 10, status()
            time.sleep(0.1)
        took = time.monotonic() - killed_at
        assert took <= 10
        assert feed.connections == 2 and feed.max_open == 1  # never two at once

        # its step-downs say why: a lock that lapsed (nobody took it) is not another holder
        survivor = status()["pid"]
        said = logs[survivor]
        client.delete(names.STREAM_LEADER_KEY)
        _wait_for(lambda: "stepped down: the lock lapsed" in said.read_text(), 10, said)
        _wait_for(lambda: client.get(names.STREAM_LEADER_KEY) not in (None, b"another"), 10, said)
        client.set(names.STREAM_LEADER_KEY, "another", px=3000)
        _wait_for(lambda: "stepped down: another stream process holds the lock now" in said.read_text(), 10,
                  said)
    finally:
        stop.set()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _wait_for(check: Callable[[], bool], seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
