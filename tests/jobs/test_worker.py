"""The worker process logs one line per tick, not RQ's three more."""
from __future__ import annotations

import logging
import subprocess
import sys
import time

from redis import Redis
from rq import Queue

from jobs import worker
from tests.helpers import minutes
from tests.processes import ROOT
from webapp.config import child_environment
from webapp.extensions import get_redis
from webapp.launch.embedded import EmbeddedRedis


def test_one_info_line_per_tick(app, caplog) -> None:
    cfg = app.config["TRACKER"]
    conn = get_redis()
    queue = Queue(cfg.QUEUE_NAME, connection=conn)
    for at in minutes(3):
        queue.enqueue("jobs.tick.tick", at.isoformat())
    caplog.set_level(logging.INFO)
    rq_logger = logging.getLogger("rq.worker")
    rq_logger.addHandler(caplog.handler)  # RQ's logger does not propagate once set up
    try:
        worker.make_worker(conn, cfg.QUEUE_NAME).work(burst=True, **worker.WORK_OPTIONS)
    finally:
        rq_logger.removeHandler(caplog.handler)
    info = [(r.name, r.getMessage()) for r in caplog.records if r.levelno == logging.INFO]
    ticks = [m for name, m in info if name == "jobs.tick"]
    assert len(ticks) == 3 and all(m.startswith("tick 2026-11-20T15:0") for m in ticks), info
    assert [m for name, m in info if name.startswith("rq")] == [], info


def test_the_worker_process_outlives_a_redis_outage(service_urls, clean, tmp_path) -> None:
    """A real worker process; its private redis-server is stopped, then restarted empty."""
    server = EmbeddedRedis()
    env = child_environment(REDIS_URL=server.url, DATABASE_URL=service_urls[1], PYTHONUNBUFFERED="1")
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jobs.worker"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    conn = Redis.from_url(server.url)
    try:
        queue = Queue("ticks", connection=conn)
        first = queue.enqueue("jobs.tick.tick", "2026-11-20T15:00:00+00:00")
        assert _until(lambda: first.refresh() or first.get_status() == "finished", 30), log_path.read_text()
        argv = server.proc.args
        server.proc.terminate()
        server.proc.wait(5)
        time.sleep(4)
        assert proc.poll() is None, log_path.read_text()[-2000:]  # still running
        server.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        assert _until(lambda: _ping(conn), 10)
        again = Queue("ticks", connection=conn).enqueue("jobs.tick.tick", "2026-11-20T15:01:00+00:00")
        finished = _until(lambda: again.refresh() or again.get_status() == "finished", 60)
        assert finished, log_path.read_text()[-3000:]
        text = log_path.read_text()
        assert "could not connect to Redis" in text or "Redis unavailable" in text
    finally:
        proc.terminate()
        proc.wait(15)
        server.stop()


def _until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


def _ping(conn) -> bool:
    return bool(conn.ping())
