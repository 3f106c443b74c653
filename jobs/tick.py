"""The recurring tick job, and its shards when the tick is split across workers."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from rq import Queue, get_current_job

from jobs import job_app

log = logging.getLogger(__name__)


def _when(at: str | None) -> datetime:
    when = datetime.fromisoformat(at) if at else datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _queued_at() -> datetime | None:
    job = get_current_job()
    return job.enqueued_at if job is not None else None


def tick(at: str | None = None, queued_for: str | None = None) -> dict[str, Any]:
    """Run the tick for the slot containing ``at`` (ISO time), or the slot it was queued for.

    ``queued_for`` is the boundary the scheduler enqueued it at (default: the
    job's enqueue time); a provider that can answer for a past minute runs
    that slot even when the job runs late, a real feed runs now
    (:func:`webapp.services.ticks.slot_time`).

    Idempotent for its slot: a second run finds the slot done and returns.
    Slots a stall left unrun before it are run first, or recorded as missed
    (:func:`webapp.services.ticks.catch_up`).
    With TICK_SHARDS > 1 it enqueues one ``tick_shard`` job per shard instead,
    all for the same slot, so more worker processes share the work.
    """
    from webapp.services import ticks

    app = job_app()
    with app.app_context():
        when = _when(at) if at else ticks.slot_time(_when(queued_for) if queued_for else _queued_at())
        late = ticks.catch_up(when)  # slots a stall left behind, run first, in order
    cfg = app.config["TRACKER"]
    if cfg.TICK_SHARDS > 1:
        from webapp.extensions import get_redis

        with app.app_context():
            queue = Queue(cfg.QUEUE_NAME, connection=get_redis())
            for slot_at in [*late, when]:
                for i in range(cfg.TICK_SHARDS):
                    queue.enqueue(tick_shard, slot_at.isoformat(), i, cfg.TICK_SHARDS,
                                  job_timeout=cfg.TICK_SECONDS + 30, result_ttl=10 * cfg.TICK_SECONDS)
        return {"at": when.isoformat(), "shards": cfg.TICK_SHARDS, "caught_up": len(late)}
    for slot_at in late:
        tick_shard(slot_at.isoformat(), 0, 1)
    return {**tick_shard(when.isoformat(), 0, 1), "caught_up": len(late)}


def tick_shard(at: str, shard: int, shards: int) -> dict[str, Any]:
    """Run one shard of the slot containing ``at`` (the whole tick when shards == 1)."""
    app = job_app()
    from webapp.services import ticks

    with app.app_context():
        report = ticks.run_tick_now(_when(at), (shard, shards))
    summary = report.as_dict()
    log.info(
        "tick %s%s: accepted %d/%d, stale %d, alerts %d, emitted %d%s in %.0f ms",
        summary["at"], f" shard {shard + 1}/{shards}" if shards > 1 else "", report.accepted,
        report.symbols, len(report.stale), len(report.alerts), report.emitted,
        f" ({report.skipped})" if report.skipped else "", report.duration_ms,
    )
    return summary
