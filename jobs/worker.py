"""The ``worker`` process: an RQ worker for the tick queue.

It builds the app once (exchange calendar, Redis and Postgres pools) and runs
jobs in-process with ``SimpleWorker``: a minute tick should not pay a fork
and a fresh app each time.  A Redis outage is logged and waited out, and a
registration Redis lost is written again.  A
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
from webapp import names

log = logging.getLogger(__name__)

# RQ logs three INFO lines per job (started, OK, result kept); the tick job
# logs its own one-line summary, so RQ speaks only about problems.
WORK_OPTIONS = {"with_scheduler": False, "logging_level": "WARNING"}


class TrackerWorker(SimpleWorker):
    """A SimpleWorker that registers itself again when Redis lost its registration.

    After a FLUSHALL (or a Redis restarted empty) RQ keeps working but is
    absent from the worker registry, and health would blame a worker that is
    fine.  Each heartbeat (every dequeue loop) checks the worker's key first.
    """

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:  # type: ignore[no-untyped-def]
        if pipeline is None and not self.connection.exists(self.key):
            log.warning("worker %s: its registration is gone from Redis (emptied?); registering again",
                        self.name)
            self.register_birth()
        super().heartbeat(timeout, pipeline)


def make_worker(conn: Redis, queue_name: str, retry_max_seconds: float = 2.0) -> SimpleWorker:
    """Ticks first; backfills when no tick waits (RQ takes its queues in order).  RQ's own wait for a
    lost Redis doubles to a minute; capped here, the next tick runs soon after Redis is back."""
    queues = [Queue(queue_name, connection=conn), Queue(names.backfill_queue(queue_name), connection=conn)]
    worker = TrackerWorker(queues, connection=conn)
    worker.max_connection_wait_time = retry_max_seconds
    return worker


def main() -> None:
    app = get_app()
    cfg = app.config["TRACKER"]
    from webapp.extensions import get_redis

    with app.app_context():
        conn = get_redis()
        delay = 1.0
        while True:
            try:
                worker = make_worker(conn, cfg.QUEUE_NAME, cfg.REDIS_RETRY_MAX_SECONDS)
                log.info("worker listening on queue %r", cfg.QUEUE_NAME)
                worker.work(**WORK_OPTIONS)
                return  # a stop signal: RQ finished the job in hand and returned
            except RedisError as exc:
                # RQ waits out a lost connection while it dequeues, but not at
                # start or between jobs; the process must not exit for an outage.
                log.warning("worker: Redis unavailable (%s: %s); retrying in %.0f s",
                            type(exc).__name__, exc, delay)
                time.sleep(delay)
                delay = min(cfg.REDIS_RETRY_MAX_SECONDS, delay * 2)


if __name__ == "__main__":
    main()
