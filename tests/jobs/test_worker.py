"""The worker process logs one line per tick, not RQ's three more."""
from __future__ import annotations

import logging

from rq import Queue

from jobs import worker
from tests.helpers import minutes
from webapp.extensions import get_redis


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
