"""A newly tracked symbol's history: queueing its backfill job, running it, and its progress."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from webapp import names
from webapp.extensions import db, get_redis
from webapp.services.context import config
from webapp.store import quotes


def enqueue_backfill(tickers: Sequence[str]) -> int:
    """Queue one backfill job per ticker (on the backfill queue, after the ticks); a ticker whose job
    waits or runs already is skipped.  Returns how many were queued."""
    from rq import Queue
    from rq.job import Job, JobStatus

    from webapp.store.backfillstate import BackfillProgress

    cfg = config()
    if not cfg.BACKFILL_MINUTE_SESSIONS and not cfg.BACKFILL_DAILY_DAYS:
        return 0
    conn = get_redis()
    queue = Queue(names.backfill_queue(cfg.QUEUE_NAME), connection=conn)
    queued = 0
    for ticker in tickers:
        job_id = names.backfill_job_id(ticker)
        job = Job.fetch(job_id, connection=conn) if Job.exists(job_id, connection=conn) else None
        if job is not None and job.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED):
            continue
        BackfillProgress(conn, ticker).set("queued")
        queue.enqueue("jobs.backfill.backfill", ticker, job_id=job_id, job_timeout=1800, result_ttl=3600,
                      failure_ttl=86_400)
        queued += 1
    return queued


def backfill(ticker: str, now: datetime | None = None, sleep: Callable[[float], None] = time.sleep
             ) -> Any:
    """Run ``ticker``'s backfill here (the RQ job's work): see :mod:`webapp.backfill.runner`."""
    from webapp.backfill import runner
    from webapp.providers import history_source
    from webapp.store.backfillstate import BackfillProgress

    cfg = config()
    now = now or datetime.now(timezone.utc)
    first = quotes.first_reading(db.session, ticker)
    anchor = first or (now, None)  # sim walks back from here, fixed for the run
    source = history_source(cfg, lambda _t: anchor)
    return runner.run(db.session, source, BackfillProgress(get_redis(), ticker), ticker, now,
                      first[0] if first else None, cfg.BACKFILL_MINUTE_SESSIONS, cfg.BACKFILL_DAILY_DAYS,
                      cfg.SMA_PERIOD, sleep)


def backfill_status(ticker: str) -> dict[str, Any]:
    from webapp.store.backfillstate import BackfillProgress

    got = BackfillProgress(get_redis(), ticker).read()
    return {"ticker": ticker, **(got or {"state": "none", "message": "no backfill has run for it lately"})}
