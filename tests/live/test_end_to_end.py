"""The simulated stream end to end, as real processes: web, worker, scheduler and stream.

A real Socket.IO client in a ticker's room receives ``trade`` events within
a second of their trade time, at most one per 250 ms; the next
``stock_update`` carries the bar the stream closed, and Postgres holds it once.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import orjson
import pytest
import redis
import socketio

from tests.processes import ROOT, WebProcess
from webapp import names
from webapp.config import child_environment

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean")]
ENV = {"TICK_SECONDS": "2", "MARKET_DATA_PROVIDER": "stream", "STREAM_PROVIDER": "sim",
       "STREAM_SIM_TRADES_PER_SECOND": "20", "STREAM_GRACE_MS": "300"}


def test_trades_reach_a_browser_within_a_second_and_the_minute_bar_reaches_postgres(
        service_urls, pg, tmp_path) -> None:
    redis_url, db_url = service_urls
    env = child_environment(REDIS_URL=redis_url, DATABASE_URL=db_url, PYTHONUNBUFFERED="1", **ENV)
    web = WebProcess(redis_url, db_url, **ENV).start()
    procs = []
    for module in ("jobs.stream", "jobs.worker", "jobs.scheduler"):
        log = open(tmp_path / f"{module}.log", "wb")
        procs.append(subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
    trades: list[tuple[float, dict]] = []
    updates: list[dict] = []
    lock = threading.Lock()
    sio = socketio.Client(reconnection=False)
    sio.on("trade", lambda t: trades.append((time.time(), t)))
    sio.on("stock_update", lambda u: updates.append(u))
    try:
        sio.connect(web.url, transports=["websocket"])
        acked = threading.Event()
        sio.emit("subscribe", {"tickers": ["*", "AAPL"]}, callback=lambda r: acked.set())
        assert acked.wait(10)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (len(trades) >= 20 and len(updates) >= 3):
            time.sleep(0.2)
        with lock:
            got = list(trades)
        assert len(got) >= 20, [p.poll() for p in procs]
        assert {t["ticker"] for _, t in got} == {"AAPL"}
        lags = sorted(at - datetime.fromisoformat(t["time"]).timestamp() for at, t in got)
        assert lags[-1] <= 1.0, lags[-5:]  # every trade within a second of its trade time
        gaps = [b[0] - a[0] for a, b in zip(got, got[1:], strict=False)]
        assert min(gaps) >= 0.2  # throttled: at most one per 250 ms (less client-side jitter)
        first = got[-1][1]
        assert set(first) == {"ticker", "price", "size", "time", "day_volume", "bar"}
        assert first["bar"]["high"] >= first["bar"]["close"] >= first["bar"]["low"]
        # a later stock_update carries the bar the stream closed for that slot
        client = redis.Redis.from_url(redis_url)
        checked = 0
        for u in updates[1:]:
            aapl = next((s for s in u["stocks"] if s["ticker"] == "AAPL"), None)
            if aapl is None:  # no reading yet: the first bar began before the stream did
                continue
            end = int(datetime.fromisoformat(aapl["time"]).timestamp())
            raw = client.hget(names.stream_bars_key(end), "AAPL")
            if raw is None or aapl["stale"]:
                continue
            bar = orjson.loads(raw)
            assert (aapl["price"], aapl["volume"]) == (bar[3], int(bar[4]))
            with pg.cursor() as cur:
                cur.execute("SELECT price::float8 FROM quotes WHERE ticker = 'AAPL' "
                            "AND time = to_timestamp(%s)", (end,))
                assert cur.fetchall() == [(bar[3],)]  # once
            checked += 1
        assert checked >= 1
    finally:
        if sio.connected:
            sio.disconnect()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        web.stop()
