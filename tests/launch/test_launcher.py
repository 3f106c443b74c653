"""`make run`'s launcher on a machine with nothing configured: embedded Redis
and Postgres, migrations, web + worker + scheduler, then a clean Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tests.processes import ROOT, free_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_launcher_starts_everything_and_stops_cleanly(tmp_path, stop) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(PORT=str(port), TICK_SECONDS="2", DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "webapp.launch.embedded"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                body = resp.json()
                if resp.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert body and body["status"] == "ok", (body, log.read_text()[-3000:])
        stocks = requests.get(f"http://127.0.0.1:{port}/api/stocks", timeout=5).json()["stocks"]
        assert len(stocks) == 15
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("gunicorn" in " ".join(c.cmdline()) for c in children)
    finally:
        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            proc.send_signal(signal.SIGTERM)  # a supervisor stopping the launcher alone
        proc.wait(30)
    time.sleep(1)
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [c.cmdline() for c in left]
    # the embedded Postgres (a daemon, not a child) is stopped too
    postgres = [p for p in psutil.process_iter(["cmdline"])
                if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert postgres == []
    assert "Stock tracker: http://127.0.0.1:" in log.read_text()
