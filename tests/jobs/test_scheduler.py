"""rq-scheduler registration, alignment and the single-scheduler lock."""
from __future__ import annotations

import logging
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

from redis import Redis
from rq import Queue, SimpleWorker

from jobs.scheduler import cron_for, make_scheduler, register
from tests.helpers import START
from webapp import names
from webapp.extensions import get_redis
from webapp.launch.embedded import EmbeddedRedis
from webapp.services import context


def test_cron_strings_land_on_clock_boundaries() -> None:
    assert cron_for(60) == "* * * * *"
    assert cron_for(300) == "*/5 * * * *"
    assert cron_for(5) == "*/5 * * * * * *"


def test_restarting_registers_one_copy_aligned_to_the_minute(app) -> None:
    cfg = context.config()
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
        cfg = context.config()
        scheduler = make_scheduler(get_redis(), cfg)
        register(scheduler, cfg)
        when = {j.id: w for j, w in scheduler.get_jobs(with_times=True)}[names.TICK_JOB_ID]
    assert when.replace(tzinfo=timezone.utc).timestamp() % 5 == 0


def test_due_job_is_enqueued_once_and_heartbeat_is_set(app) -> None:
    cfg = context.config()
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
    assert queue.job_ids == [f"{names.TICK_JOB_ID}-0"]  # a job of its own, for the slot it was due in
    assert queue.fetch_job(queue.job_ids[0]).kwargs == {"queued_for": "1970-01-01T00:00:00+00:00"}
    assert conn.get(names.SCHEDULER_HEARTBEAT_KEY) == first.name.encode()
    # the job went back on the schedule for the next boundary
    assert names.TICK_JOB_ID in [j.id for j in list(first.get_jobs())]


def test_a_backlog_runs_each_slot_it_was_queued_for(app) -> None:
    """A worker that fell three boundaries behind runs three slots, in order, not the current one thrice."""
    cfg = context.config()
    conn = get_redis()
    scheduler = make_scheduler(conn, cfg)
    register(scheduler, cfg)
    due = [START + timedelta(minutes=i) for i in range(3)]
    for when in due:  # three boundaries pass while no worker runs
        conn.zadd(scheduler.scheduled_jobs_key, {names.TICK_JOB_ID: when.timestamp()})
        scheduler.enqueue_jobs()
    queue = Queue(cfg.QUEUE_NAME, connection=conn)
    assert len(queue.job_ids) == 3
    SimpleWorker([queue], connection=conn).work(burst=True)
    done = [queue.fetch_job(f"{names.TICK_JOB_ID}-{int(w.timestamp())}").return_value() for w in due]
    assert [d["at"] for d in done] == [w.isoformat() for w in due]
    assert [d["accepted"] for d in done] == [15, 15, 15] and len({d["slot"] for d in done}) == 3


def run_in_thread(scheduler, cfg):
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run_forever, args=(cfg, stop), daemon=True)
    thread.start()
    return stop, thread


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_a_flushall_is_noticed_and_the_jobs_registered_again(app, caplog) -> None:
    cfg = context.config()
    conn = get_redis()
    scheduler = make_scheduler(conn, cfg)
    register(scheduler, cfg)
    stop, thread = run_in_thread(scheduler, cfg)
    try:
        assert wait_for(lambda: conn.get(names.SCHEDULER_HEARTBEAT_KEY) is not None)
        conn.flushall()
        assert wait_for(lambda: scheduler.missing_jobs(cfg) == [] and conn.get(names.SCHEDULER_HEARTBEAT_KEY))
        assert "missing (Redis flushed or restarted empty): registering again" in caplog.text
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_the_scheduler_outlives_a_redis_outage(app, caplog) -> None:
    """A private redis-server is stopped for a while, then restarted empty on the same socket."""
    caplog.set_level(logging.INFO, logger="jobs.scheduler")
    cfg = context.config()
    server = EmbeddedRedis()
    conn = Redis.from_url(server.url, socket_timeout=2)
    scheduler = make_scheduler(conn, cfg)
    register(scheduler, cfg)
    stop, thread = run_in_thread(scheduler, cfg)
    try:
        assert wait_for(lambda: conn.get(names.SCHEDULER_HEARTBEAT_KEY) is not None)
        argv = server.proc.args
        server.proc.terminate()
        server.proc.wait(5)
        assert wait_for(lambda: "scheduler: Redis unavailable" in caplog.text)
        time.sleep(2)
        assert thread.is_alive()  # it waits, it does not exit
        server.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # back, and empty
        assert wait_for(lambda: _ping(conn), 10)
        assert wait_for(lambda: scheduler.missing_jobs(cfg) == [], 15)
        assert wait_for(lambda: conn.get(names.SCHEDULER_HEARTBEAT_KEY) is not None, 5)
        assert "scheduler: Redis is back" in caplog.text
    finally:
        stop.set()
        thread.join(5)
        server.stop()
    assert not thread.is_alive()


def _ping(conn) -> bool:
    try:
        return bool(conn.ping())
    except Exception:
        return False
