"""Redis restarted empty under ``make run``'s supervisor: nothing exits, nothing is restarted, ticks resume.

Before, honcho stopped web and worker when the scheduler died of a 3 s Redis
restart, and the whole app stayed down.  Here the launcher runs against a
Redis the test owns (``REDIS_URL`` set, so nothing embedded replaces it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tests.processes import ROOT, RedisServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


def test_a_redis_restart_under_the_supervisor_takes_nothing_down(tmp_path, service_urls, clean) -> None:
    server = RedisServer(tmp_path)
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "DATABASE_URL": service_urls[1], "PORT": str(port),
           "TICK_SECONDS": "2", "DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        launcher = subprocess.Popen([sys.executable, "-m", "webapp.launch"], cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert until(lambda: healthy(port), 90), log.read_text()[-3000:]
        before = {p.pid for p in psutil.Process(launcher.pid).children()}
        server.stop()
        time.sleep(5)
        server.start()  # empty
        assert until(lambda: healthy(port), 40), log.read_text()[-3000:]
        assert launcher.poll() is None
        after = {p.pid for p in psutil.Process(launcher.pid).children()}
        assert after == before, log.read_text()[-3000:]  # every process rode it out: none was restarted
        assert "exited" not in log.read_text()
    finally:
        os.killpg(launcher.pid, signal.SIGTERM)
        try:
            launcher.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
        server.stop()
