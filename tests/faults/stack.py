"""The whole product as real processes, with Redis and Postgres a test can stop, flush, cut and restart.

``Stack`` runs web (gunicorn, gevent), worker(s) and scheduler(s) exactly as
the Procfile does, on 2-second ticks of the seeded ``sim`` market, against a
private redis-server on a TCP port (stopped and started again empty, as a
restart without persistence) and the suite's Postgres behind a proxy that
cuts every connection.  While it runs it records, from outside:

* every ``alert`` the workers put on the Socket.IO channel (a subscriber
  that reconnects within 0.1 s), and every one a real Socket.IO client in
  room ``alerts`` received;
* ``/api/health``'s status and problems twice a second.

``verify`` then compares what Postgres holds with an unbroken reference run:
the same provider stepped slot by slot from the run's first slot, its SMAs
and crossovers computed from the definition.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import requests
import socketio

from tests.fakes.pgproxy import PgProxy
from tests.helpers import reference
from tests.processes import ROOT, RedisServer, WebProcess
from webapp import names
from webapp.config import DEFAULT_SYMBOLS, child_environment
from webapp.core.quotes import Quote
from webapp.providers.sim import SimProvider

TICK = 2
SEED = 42


class Capture:
    """What the workers emitted: a Socket.IO-channel subscriber that rides out Redis restarts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.alerts: list[tuple[str, str, str]] = []
        self.gaps = 0  # times it was cut off (and may have missed something meanwhile)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = redis.Redis.from_url(self.url).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(names.SOCKETIO_CHANNEL)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.05)
                    if msg and msg["type"] == "message":
                        body = json.loads(msg["data"])
                        if body.get("event") == names.EVENT_ALERT and body["room"] == names.ROOM_ALERTS:
                            a = body["data"][0]
                            self.alerts.append((a["ticker"], a["time"], a["kind"]))
            except redis.RedisError:
                self.gaps += 1
                time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3)


class Browser:
    """A real Socket.IO client in room ``alerts`` (reconnecting as the page does)."""

    def __init__(self, url: str) -> None:
        self.alerts: list[tuple[str, str, str]] = []
        self.sio = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=1)
        self.sio.on("alert", lambda a: self.alerts.append((a["ticker"], a["time"], a["kind"])))
        self.sio.on("connect", lambda: self.sio.emit(names.EVENT_FOLLOW_ALERTS, {"on": True}))
        self.sio.connect(url, transports=["websocket"], wait_timeout=10)

    def close(self) -> None:
        self.sio.disconnect()


@dataclass
class Health:
    at: float
    status: int | None
    problems: list[str] = field(default_factory=list)


@dataclass
class Result:
    slots: list[datetime]          # every slot from the first stored to the last
    lost: list[datetime]           # slots with no quote and not recorded as missed
    missed: list[tuple]            # ranges recorded as missed
    wrong_prices: int              # stored prices that differ from the reference run
    wrong_smas: int
    alerts: list[tuple[str, str, str]]
    expected_alerts: list[tuple[str, str, str]]
    emitted: Counter
    received: Counter


class Stack:
    def __init__(self, tmp_path: Path, database_url: str, workers: int = 1, schedulers: int = 1,
                 **env: str) -> None:
        self.tmp = tmp_path
        self.redis = RedisServer(tmp_path)
        self.proxy = PgProxy(database_url)
        self.env = child_environment(
            REDIS_URL=self.redis.url, DATABASE_URL=self.proxy.url, TICK_SECONDS=str(TICK),
            SIM_SEED=str(SEED), PROVIDER="sim", TICK_LOCK_TTL_SECONDS="3", FAULT_INJECTION="1",
            # no backfill: the run is held to a reference that starts at its first slot
            BACKFILL_MINUTE_SESSIONS="0", BACKFILL_DAILY_DAYS="0", PYTHONUNBUFFERED="1", **env)
        self.procs: dict[str, subprocess.Popen] = {}
        self.survived: dict[str, bool] = {}  # alive() just before the test stopped everything
        self.killed: set[str] = set()  # processes the test SIGKILLed itself
        self.web = WebProcess(self.redis.url, self.proxy.url, TICK_SECONDS=str(TICK), SIM_SEED=str(SEED),
                              **env)
        self.web.start()
        for i in range(workers):
            self.start(f"worker{i}")
        for i in range(schedulers):
            self.start(f"scheduler{i}")
        self.client = redis.Redis.from_url(self.redis.url, socket_timeout=2)
        self.capture = Capture(self.redis.url)
        self.browser = Browser(self.web.url)
        self.health: list[Health] = []
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_health, daemon=True)
        self._poller.start()

    # processes ---------------------------------------------------------------

    def start(self, name: str) -> None:
        module = "jobs.worker" if name.startswith("worker") else "jobs.scheduler"
        with open(self.tmp / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=self.env,
                                                stdout=log, stderr=subprocess.STDOUT)

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[name].wait(5)
            self.killed.add(name)

    def alive(self) -> dict[str, bool]:
        state = {n: p.poll() is None for n, p in self.procs.items()}
        state["web"] = self.web.proc is not None and self.web.proc.poll() is None
        return state

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log" if name != "web" else self.web.log
        return path.read_text(errors="replace")

    # observation -------------------------------------------------------------

    def _poll_health(self) -> None:
        while not self._stop.is_set():
            try:
                resp = requests.get(self.web.url + "/api/health", timeout=3)
                body = resp.json()
                self.health.append(Health(time.time(), resp.status_code, body.get("problems", [])))
            except (requests.RequestException, ValueError):
                self.health.append(Health(time.time(), None))
            self._stop.wait(0.5)

    def health_between(self, start: float, end: float) -> list[Health]:
        return [h for h in self.health if start <= h.at <= end]

    def last_slot(self) -> int | None:
        try:
            raw = self.client.get(names.LAST_TICK_KEY)
        except redis.RedisError:
            return None
        return json.loads(raw)["slot"] if raw else None

    def wait_slots(self, n: int, timeout: float | None = None) -> None:
        """Until ``n`` more slots have run (by the tick record in Redis)."""
        start = self.last_slot()
        deadline = time.monotonic() + (timeout or n * TICK + 20)
        while time.monotonic() < deadline:
            now = self.last_slot()
            if now is not None and (start is None or now >= start + n):
                return
            time.sleep(0.2)
        raise AssertionError(f"{n} slot(s) did not run: {self.alive()}\n{self.log('worker0')[-3000:]}")

    def until(self, check, timeout: float) -> float:
        """Seconds until ``check()`` held (raises after ``timeout``)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                if check():
                    return time.monotonic() - t0
            except Exception:
                pass
            time.sleep(0.1)
        last = self.health[-1] if self.health else None
        raise AssertionError(f"not within {timeout} s: {self.alive()}; last health {last}")

    # the end -----------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._poller.join(5)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            self.browser.close()
        except Exception:
            pass
        self.web.stop()
        self.capture.close()
        self.redis.stop()
        self.proxy.close()

    def verify(self, pg: Any) -> Result:
        """What Postgres holds, against an unbroken reference run of the same market."""
        with pg.cursor() as cur:
            cur.execute("SELECT ticker, time, price::float8, sma::float8 FROM quotes ORDER BY ticker, time")
            rows = cur.fetchall()
            cur.execute("SELECT ticker, time, kind FROM alerts ORDER BY ticker, time")
            alerts = [(t, w.isoformat(), k) for t, w, k in cur.fetchall()]
            cur.execute('SELECT start, "end", slots, reason FROM missed_slots ORDER BY start')
            missed = cur.fetchall()
        by_ticker: dict[str, dict[datetime, tuple[float, float | None]]] = {}
        for ticker, when, price, sma in rows:
            by_ticker.setdefault(ticker, {})[when] = (price, sma)
        first = min(min(v) for v in by_ticker.values())
        last = max(max(v) for v in by_ticker.values())
        slots = [first + timedelta(seconds=TICK * i)
                 for i in range(int((last - first).total_seconds()) // TICK + 1)]
        in_missed = {s for s in slots for start, end, _, _ in missed if start <= s < end}
        lost = [s for s in slots if s not in in_missed and any(s not in v for v in by_ticker.values())]

        sim = SimProvider(seed=SEED, tick_seconds=TICK)
        previous: dict[str, Quote] = {}
        ref_prices: dict[str, list[float]] = {t: [] for t in DEFAULT_SYMBOLS}
        for s in slots:
            for q in sim.fetch(DEFAULT_SYMBOLS, s, previous).quotes:
                previous[q.ticker] = q
                ref_prices[q.ticker].append(q.price)
        wrong_prices = wrong_smas = 0
        expected: list[tuple[str, str, str]] = []
        for ticker, prices in ref_prices.items():
            kinds = reference(prices, 5)
            for i, s in enumerate(slots):
                if kinds[i]:
                    expected.append((ticker, s.isoformat(), kinds[i]))
                got = by_ticker.get(ticker, {}).get(s)
                if got is None:
                    continue
                if abs(got[0] - prices[i]) > 1e-9:
                    wrong_prices += 1
                want = sum(prices[i - 4:i + 1]) / 5 if i >= 4 else None
                if (want is None) != (got[1] is None) or (want is not None and abs(got[1] - want) > 1e-4):
                    wrong_smas += 1
        # the first slot's alerts cannot exist (no SMA yet); the reference counts from the run's start
        return Result(slots, lost, missed, wrong_prices, wrong_smas, alerts, sorted(expected),
                      Counter(self.capture.alerts), Counter(self.browser.alerts))
