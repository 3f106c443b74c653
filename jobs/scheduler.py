"""The ``scheduler`` process: rq-scheduler enqueues the tick on clock boundaries.

The recurring job is registered at start under a fixed id, replacing any
copy a previous start left, so restarts never double it, and registered
again whenever a loop finds it gone (a FLUSHALL).  Each boundary enqueues a
tick job of its own that carries its slot.  rq-scheduler's Redis lock keeps a
second scheduler from enqueuing twice, and the job is idempotent for its
slot regardless.  Each loop also refreshes a heartbeat key that
``/api/health`` checks.  A Redis outage is logged and waited out; the
process never exits for one.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
import warnings
from datetime import datetime, timezone

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job
from rq_scheduler import Scheduler
from rq_scheduler.utils import get_next_scheduled_time, to_unix

from jobs import get_app
from webapp import names
from webapp.config import Config
from webapp.store.pg import DB_DOWN

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

    def enqueue_job(self, job: Job) -> None:
        """The tick's cron entry enqueues a job of its own per slot, carrying that slot.

        rq-scheduler would enqueue the cron job itself, under its one fixed id:
        each boundary overwrote the last, so a worker that fell behind ran the
        whole backlog for the slot of the moment it ran.  The cron entry stays
        on the schedule (re-armed for the next boundary); what goes on the
        queue is ``jobs.tick.tick(queued_for=<due time>)`` with a per-slot id.
        """
        if job.id != names.TICK_JOB_ID:
            return super().enqueue_job(job)
        due = self.connection.zscore(self.scheduled_jobs_key, job.id)
        if due is None:  # taken by another scheduler meanwhile
            return None
        at = datetime.fromtimestamp(float(due), timezone.utc)
        self.get_queue_for_job(job).enqueue(
            TICK_FUNC, queued_for=at.isoformat(), job_id=f"{names.TICK_JOB_ID}-{int(float(due))}",
            job_timeout=job.timeout, result_ttl=job.result_ttl, failure_ttl=86400,
            retry=Retry(max=2))  # a failed or abandoned (killed) tick runs again, at once
        nxt = get_next_scheduled_time(job.meta["cron_string"],
                                      use_local_timezone=job.meta.get("use_local_timezone"))
        self.connection.zadd(self.scheduled_jobs_key, {job.id: to_unix(nxt)})
        return None

    def missing_jobs(self, cfg: Config) -> list[str]:
        """Our recurring jobs that are not on the schedule (a FLUSHALL, an emptied Redis)."""
        wanted = [names.TICK_JOB_ID, names.RETENTION_JOB_ID] + ([names.PROFILE_JOB_ID] if cfg.SCANNER else [])
        with self.connection.pipeline() as pipe:
            for job_id in wanted:
                pipe.zscore(self.scheduled_jobs_key, job_id)
                pipe.exists(Job.key_for(job_id))
            found = pipe.execute()
        pairs = zip(found[::2], found[1::2], strict=True)
        return [j for j, (score, exists) in zip(wanted, pairs, strict=True) if score is None or not exists]

    def run_forever(self, cfg: Config, stop: threading.Event) -> None:
        """rq-scheduler's loop, made to outlive Redis.

        Every loop checks that the recurring jobs are still registered and
        registers them again if not.  A Redis error is logged, waited out
        with backoff (doubling to REDIS_RETRY_MAX_SECONDS) and retried: the process never
        exits for an outage.
        """
        delay = 1.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                missing = self.missing_jobs(cfg)
                if missing:
                    log.warning("scheduled job(s) %s missing (Redis flushed or restarted empty): "
                                "registering again", ", ".join(missing))
                    register(self, cfg)
                if self.acquire_lock():
                    try:
                        self.enqueue_jobs()
                        self.heartbeat()
                    finally:
                        self.remove_lock()
                if delay > 1.0:
                    log.info("scheduler: Redis is back")
                delay = 1.0
            except RedisError as exc:
                log.warning("scheduler: Redis unavailable (%s: %s); retrying in %.0f s",
                            type(exc).__name__, exc, delay)
                stop.wait(delay)
                delay = min(cfg.REDIS_RETRY_MAX_SECONDS, delay * 2)
                continue
            stop.wait(max(0.0, self._interval - (time.monotonic() - started)))


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


def _backfill_tracked(app: Flask) -> None:
    """Every tracked symbol's history, queued behind the first tick (a symbol complete already costs
    its job one look); Postgres being down only skips it until the next start or the next symbol."""
    from webapp.services import backfill, context

    with app.app_context():
        try:
            queued = backfill.enqueue_backfill(context.tracked_symbols(fresh=True))
        except DB_DOWN as exc:
            log.warning("scheduler: no backfill queued at start: Postgres unavailable (%s)",
                        type(exc).__name__)
            return
        except Exception:  # the clock must run whatever the backfill's trouble
            log.exception("scheduler: could not queue the backfill at start; the ticks go on")
            return
    if queued:
        log.info("backfill queued for %d tracked symbol(s)", queued)


def make_scheduler(conn: Redis, cfg: Config) -> TrackerScheduler:
    return TrackerScheduler(queue_name=cfg.QUEUE_NAME, connection=conn, interval=1)


def main() -> None:
    app = get_app()
    cfg = app.config["TRACKER"]
    with app.app_context():
        from webapp.extensions import get_redis

        conn = get_redis()
    scheduler = make_scheduler(conn, cfg)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    delay = 1.0
    while not stop.is_set():  # the start-up steps wait for Redis too
        try:
            register(scheduler, cfg)
            # One tick right away, so a fresh start shows prices without waiting for
            # the next boundary (harmless if that slot already ran: ticks are idempotent).
            queue = Queue(cfg.QUEUE_NAME, connection=conn)
            queue.enqueue(RETENTION_FUNC)  # today's partitions exist before the first tick needs them
            if cfg.SCANNER:
                queue.enqueue(PROFILE_FUNC)
            queue.enqueue(TICK_FUNC, result_ttl=10 * cfg.TICK_SECONDS)
            _backfill_tracked(app)
            break
        except RedisError as exc:
            log.warning("scheduler: Redis unavailable at start (%s); retrying in %.0f s", exc, delay)
            stop.wait(delay)
            delay = min(cfg.REDIS_RETRY_MAX_SECONDS, delay * 2)
    scheduler.run_forever(cfg, stop)
    log.info("scheduler stopped")


if __name__ == "__main__":
    main()
