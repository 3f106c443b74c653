"""The ``scheduler`` process: rq-scheduler enqueues the tick on clock boundaries.

The recurring job is registered at start under a fixed id, replacing any
copy a previous start left, so restarts never double it.  rq-scheduler's
Redis lock keeps a second scheduler from enqueuing twice, and the job is
idempotent for its slot regardless.  Each loop also refreshes a heartbeat
key that ``/api/health`` checks.
"""
from __future__ import annotations

import logging
import warnings

from redis import Redis
from rq import Queue
from rq_scheduler import Scheduler

from jobs import get_app
from webapp import names
from webapp.config import Config

log = logging.getLogger(__name__)

# rq-scheduler calls crontab.next() with a naive local time, and crontab warns
# that a future version will read it as UTC.  Our cron strings only name
# minute/second boundaries, which are the same in every whole-hour zone.
warnings.filterwarnings("ignore", message="Version 0.22.0", category=FutureWarning)

TICK_FUNC = "jobs.tick.tick"
RETENTION_FUNC = "jobs.retention.retention"
RETENTION_CRON = "5 0 * * *"  # 00:05 UTC, after the UTC day's partition has closed
PROFILE_FUNC = "jobs.profiles.volume_profile"
# Hourly: the first run after New York midnight (04:00 or 05:00 UTC with DST)
# builds the new exchange day's profile; the others find it built and return.
PROFILE_CRON = "2 * * * *"


def cron_for(tick_seconds: int) -> str:
    """A cron string that fires on every ``tick_seconds`` boundary of the clock."""
    if tick_seconds < 60:
        return f"*/{tick_seconds} * * * * * *"  # seconds field first (7-field form)
    minutes = tick_seconds // 60
    return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"


class TrackerScheduler(Scheduler):
    def heartbeat(self) -> None:
        super().heartbeat()
        self.connection.set(names.SCHEDULER_HEARTBEAT_KEY, self.name, ex=int(self._interval) + 30)


def register(scheduler: Scheduler, cfg: Config) -> None:
    """(Re-)register the one recurring tick job."""
    for job in scheduler.get_jobs():
        ours = job.id in (names.TICK_JOB_ID, names.RETENTION_JOB_ID, names.PROFILE_JOB_ID)
        if ours or job.func_name in (TICK_FUNC, RETENTION_FUNC, PROFILE_FUNC):
            scheduler.cancel(job)
    scheduler.cron(RETENTION_CRON, func=RETENTION_FUNC, id=names.RETENTION_JOB_ID,
                   queue_name=cfg.QUEUE_NAME, timeout=3600, result_ttl=86400)
    if cfg.SCANNER:
        scheduler.cron(PROFILE_CRON, func=PROFILE_FUNC, id=names.PROFILE_JOB_ID,
                       queue_name=cfg.QUEUE_NAME, timeout=1800, result_ttl=86400)
    scheduler.cron(
        cron_for(cfg.TICK_SECONDS),
        func=TICK_FUNC,
        id=names.TICK_JOB_ID,
        queue_name=cfg.QUEUE_NAME,
        timeout=cfg.TICK_SECONDS + 30,
        result_ttl=10 * cfg.TICK_SECONDS,
    )
    log.info("tick registered: %s on queue %r", cron_for(cfg.TICK_SECONDS), cfg.QUEUE_NAME)


def make_scheduler(conn: Redis, cfg: Config) -> TrackerScheduler:
    return TrackerScheduler(queue_name=cfg.QUEUE_NAME, connection=conn, interval=1)


def main() -> None:
    app = get_app()
    cfg = app.config["TRACKER"]
    with app.app_context():
        from webapp.extensions import get_redis

        conn = get_redis()
    scheduler = make_scheduler(conn, cfg)
    register(scheduler, cfg)
    # One tick right away, so a fresh start shows prices without waiting for
    # the next boundary (harmless if that slot already ran: ticks are idempotent).
    queue = Queue(cfg.QUEUE_NAME, connection=conn)
    queue.enqueue(RETENTION_FUNC)  # today's partitions exist before the first tick needs them
    if cfg.SCANNER:
        queue.enqueue(PROFILE_FUNC)
    queue.enqueue(TICK_FUNC, result_ttl=10 * cfg.TICK_SECONDS)
    scheduler.run()


if __name__ == "__main__":
    main()
