"""rq-scheduler registration, alignment and the single-scheduler lock."""
from __future__ import annotations

from datetime import datetime, timezone

from rq import Queue

from jobs.scheduler import cron_for, make_scheduler, register
from webapp import names, services
from webapp.extensions import get_redis


def test_cron_strings_land_on_clock_boundaries() -> None:
    assert cron_for(60) == "* * * * *"
    assert cron_for(300) == "*/5 * * * *"
    assert cron_for(5) == "*/5 * * * * * *"


def test_restarting_registers_one_copy_aligned_to_the_minute(app) -> None:
    cfg = services.config()
    conn = get_redis()
    for _ in range(3):  # three scheduler starts
        register(make_scheduler(conn, cfg), cfg)
    jobs = {job.id: (job, when) for job, when in make_scheduler(conn, cfg).get_jobs(with_times=True)}
    # one copy each
    assert sorted(jobs) == sorted([names.TICK_JOB_ID, names.RETENTION_JOB_ID, names.PROFILE_JOB_ID])
    assert jobs[names.RETENTION_JOB_ID][0].func_name == "jobs.retention.retention"
    assert jobs[names.PROFILE_JOB_ID][0].func_name == "jobs.profiles.volume_profile"
    job, when = jobs[names.TICK_JOB_ID]
    assert job.func_name == "jobs.tick.tick"
    assert when.replace(tzinfo=timezone.utc).timestamp() % 60 == 0
    assert 0 < when.replace(tzinfo=timezone.utc).timestamp() - datetime.now(timezone.utc).timestamp() <= 60


def test_short_ticks_align_to_their_seconds(make_app) -> None:
    app = make_app(TICK_SECONDS=5)
    with app.app_context():
        cfg = services.config()
        scheduler = make_scheduler(get_redis(), cfg)
        register(scheduler, cfg)
        when = {j.id: w for j, w in scheduler.get_jobs(with_times=True)}[names.TICK_JOB_ID]
    assert when.replace(tzinfo=timezone.utc).timestamp() % 5 == 0


def test_due_job_is_enqueued_once_and_heartbeat_is_set(app) -> None:
    cfg = services.config()
    conn = get_redis()
    first, second = make_scheduler(conn, cfg), make_scheduler(conn, cfg)
    register(first, cfg)
    conn.zadd(first.scheduled_jobs_key, {names.TICK_JOB_ID: 0})  # make it due now
    assert first.acquire_lock()
    assert not second.acquire_lock()  # a second scheduler cannot enqueue meanwhile
    first.enqueue_jobs()
    first.heartbeat()
    first.remove_lock()
    queue = Queue(cfg.QUEUE_NAME, connection=conn)
    assert queue.job_ids == [names.TICK_JOB_ID]
    assert conn.get(names.SCHEDULER_HEARTBEAT_KEY) == first.name.encode()
    # the job went back on the schedule for the next boundary
    assert names.TICK_JOB_ID in [j.id for j in list(first.get_jobs())]
