"""The ``worker`` process: an RQ worker for the tick queue.

It builds the app once (exchange calendar, Redis and Postgres pools) and runs
jobs in-process with ``SimpleWorker``: a minute tick should not pay a fork
and a fresh app each time.  A Redis outage is logged and waited out.  A
crashed worker is restarted by the process manager (``make run``'s
supervisor, Heroku), and a retried tick is harmless.
"""
from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker

from jobs import get_app

log = logging.getLogger(__name__)

# RQ logs three INFO lines per job (started, OK, result kept); the tick job
# logs its own one-line summary, so RQ speaks only about problems.
WORK_OPTIONS = {"with_scheduler": False, "logging_level": "WARNING"}


def make_worker(conn: Redis, queue_name: str) -> SimpleWorker:
    return SimpleWorker([Queue(queue_name, connection=conn)], connection=conn)


def main() -> None:
    app = get_app()
    cfg = app.config["TRACKER"]
    from webapp.extensions import get_redis

    with app.app_context():
        conn = get_redis()
        delay = 1.0
        while True:
            try:
                worker = make_worker(conn, cfg.QUEUE_NAME)
                log.info("worker listening on queue %r", cfg.QUEUE_NAME)
                worker.work(**WORK_OPTIONS)
                return  # a stop signal: RQ finished the job in hand and returned
            except RedisError as exc:
                # RQ waits out a lost connection while it dequeues, but not at
                # start or between jobs; the process must not exit for an outage.
                log.warning("worker: Redis unavailable (%s: %s); retrying in %.0f s",
                            type(exc).__name__, exc, delay)
                time.sleep(delay)
                delay = min(30.0, delay * 2)


if __name__ == "__main__":
    main()
