"""Is every part of the pipeline alive, and what is wrong when it is not (``/api/health``).

Each part is checked for itself, so a problem names the process to look at
rather than the symptom it caused downstream.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from flask import current_app

from webapp import names
from webapp.config import Config
from webapp.core.market import market_state
from webapp.extensions import db, get_redis
from webapp.services.context import config, tick_services
from webapp.services.ticks import CATCH_UP_HORIZON
from webapp.store import deliveries, evaluation, missed
from webapp.store.streamstate import STATUS_TTL_SECONDS, stream_status
from webapp.store.subscriptions import web_loads


def health(now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Is every part of the pipeline alive?  Names what is wrong, and which part, when not.

    Each part is checked for itself rather than inferred from a missing tick:
    the scheduler by its heartbeat *and* its registered tick job, the worker by
    RQ's worker registry (or, while it re-registers, by ticks still running),
    the pipeline by the age of the last tick (about two ticks), the provider
    by whether that tick accepted any reading, the web processes by their
    published load.  A Redis that lost everything is named as such, not as
    each part it took with it.
    """
    now = now or datetime.now(timezone.utc)
    cfg = config()
    checks: dict[str, Any] = {}
    problems: list[str] = []
    last, spooled = _redis_health(cfg, now, checks, problems)
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["postgres"] = "ok"
        lost, latest_gap = missed.recorded_since(db.session, now - CATCH_UP_HORIZON)
        # informational: the stall is over once ticks run again, but its gap stays on record
        checks["missed_slots"] = {"recorded_24h": lost,
                                  "latest_end": latest_gap.isoformat() if latest_gap else None}
        hooks = checks["webhooks"] = deliveries.delivery_health(db.session, now)
        if hooks["overdue_s"] > DELIVERY_OVERDUE_SECONDS:
            problems.append(f"webhooks: {hooks['pending']} delivery(ies) waiting, the oldest due "
                            f"{hooks['overdue_s']:.0f} s ago (is `python -m jobs.deliver` running?)")
    except Exception as exc:
        db.session.rollback()
        checks["postgres"] = f"error: {type(exc).__name__}"
        problems.append(f"postgres: down ({type(exc).__name__}), {spooled} tick(s) spooled in Redis")
    market = market_state(now)
    _stream_health(cfg, market.is_open, checks, problems)
    _evaluate_health(cfg, checks, problems)
    if last is not None:
        serving = market.is_open or not getattr(tick_services().provider, "follows_market_hours", False)
        if serving and last.get("symbols") and not last.get("accepted"):
            problems.append(f"provider: the last tick accepted no fresh reading of {last['symbols']} "
                            f"({last.get('stale', 0)} marked stale)")
    checks["market"] = market.as_json()
    ok = not problems
    return ok, {"status": "ok" if ok else "unhealthy", "problems": problems, "checks": checks}


def stream_state(cfg: Config | None = None) -> dict[str, Any]:
    """The stream process's state as its leader last reported it (the page header and health)."""
    cfg = cfg or config()
    feeds = cfg.MARKET_DATA_PROVIDER == "stream"  # the prices come from it: down means prices stop
    if cfg.STREAM_PROVIDER == "none":
        return {"running": False, "state": "off", "provider": "none", "reason": "STREAM_PROVIDER=none",
                "feeds_prices": feeds, "detail": {}}
    status = stream_status(get_redis())
    if status is None:
        return {"running": False, "state": "not running", "provider": cfg.STREAM_PROVIDER,
                "reason": f"no stream process has reported for {STATUS_TTL_SECONDS} s "
                          "(is `python -m jobs.stream` running?)", "feeds_prices": feeds, "detail": {}}
    return {"running": True, "state": status["state"], "provider": status["provider"],
            "reason": status.get("reason", ""), "feeds_prices": feeds, "detail": status}


STREAM_BEHIND_SECONDS = 10.0  # a stream this far behind its feed (frames queued) is a problem


def _stream_health(cfg: Config, market_open: bool, checks: dict[str, Any], problems: list[str]) -> None:
    """A stream that is down while it should serve makes health fail, and says why.

    It should serve while the market is open, or always for a feed that never
    closes (the simulated stream unless it follows market hours; alpaca's test
    feed).  A stream the tick does not read from (MARKET_DATA_PROVIDER is not
    ``stream``) is reported too, but its absence is not an outage.
    """
    try:
        state = stream_state(cfg)
    except Exception as exc:  # Redis: already reported by its own check
        checks["stream"] = f"error: {type(exc).__name__}"
        return
    detail = state.pop("detail")
    keep = ("last_message_age_s", "last_data_age_s", "trades_per_s", "reconnects", "dropped_frames",
            "malformed_frames", "symbols_streamed", "symbols_requested", "unstreamed", "retry_in_s",
            "last_disconnect", "behind_s")
    checks["stream"] = {**state, **{k: detail[k] for k in keep if k in detail}}
    always = (cfg.STREAM_PROVIDER == "sim" and not cfg.SIM_FOLLOWS_MARKET_HOURS) or cfg.STREAM_ALWAYS_OPEN
    if cfg.STREAM_PROVIDER == "none" or not (market_open or always):
        return
    age = detail.get("last_data_age_s")
    if state["state"] == "not running":
        if cfg.MARKET_DATA_PROVIDER == "stream":
            problems.append(f"stream: {state['reason']}; the minute tick reads its bars")
    elif state["state"] == "down" or state["state"] == "standby":
        problems.append(f"stream {state['state']}: {state['reason'] or 'no leader holds the connection'}")
    elif state["state"] != "connected" and (age is None or age > 10):
        problems.append(f"stream {state['state']}: {state['reason']}")
    elif (detail.get("behind_s") or 0) > STREAM_BEHIND_SECONDS:
        problems.append(f"stream: {detail['behind_s']:.0f} s behind its feed (frames queued); its bars close "
                        "as their trades are applied, so ticks and rules wait for them")


EVALUATE_LAG_SECONDS = 10.0  # a shard this far behind its stream is a problem


def _evaluate_health(cfg: Config, checks: dict[str, Any], problems: list[str]) -> None:
    """The evaluate processes: which shard each holds and how far behind its stream it is (seconds);
    a shard nobody holds is judged by the tick each minute (said, not a problem), a shard far behind
    or a process stuck on an outage is."""
    try:
        shards = max(1, cfg.TICK_SHARDS)
        held = evaluation.owned_shards(get_redis(), shards)
        seen = evaluation.statuses(get_redis())
    except Exception as exc:  # Redis: already reported by its own check
        checks["evaluate"] = f"error: {type(exc).__name__}"
        return
    lag: dict[str, float | None] = {}
    for st in seen:
        lag.update(st.get("lag_s") or {})
        if st.get("error"):
            problems.append(f"evaluate {st['host']}: {st['error']}; fires wait, none is lost")
    fed = cfg.MARKET_DATA_PROVIDER == "stream"
    checks["evaluate"] = {"processes": len(seen), "shards": shards, "held": sorted(held), "lag_s": lag,
                          "judged": ("on each trade" if fed and len(held) == shards else
                                     "partly on each trade" if fed and held else "each minute (the tick)")}
    for shard, behind in lag.items():
        if behind is not None and behind > EVALUATE_LAG_SECONDS:
            problems.append(f"evaluate: shard {shard} is {behind:.0f} s behind the stream")
    try:
        live = bool(get_redis().exists(names.SCAN_LIVE_KEY))
    except Exception:  # Redis: already reported by its own check
        return
    timings = [st["scan_second_ms_p99"] for st in seen if st.get("scan_second_ms_p99") is not None]
    checks["scanner"] = {"every": "second (the evaluate processes)" if live else "minute (the tick)",
                         "second_ms_p99": max(timings, default=None)}


def _redis_health(cfg: Config, now: datetime, checks: dict[str, Any], problems: list[str]
                  ) -> tuple[dict[str, Any] | None, int | str]:
    """Redis, and the parts it tells about: scheduler, workers, pipeline, web (last tick, spooled)."""
    from rq import Worker
    from rq_scheduler import Scheduler

    client = get_redis()
    try:
        client.ping()
        beat = client.get(names.SCHEDULER_HEARTBEAT_KEY)
        registered = client.zscore(Scheduler.scheduled_jobs_key, names.TICK_JOB_ID) is not None
        workers = sum(1 for w in Worker.all(connection=client) if cfg.QUEUE_NAME in w.queue_names())
        loads = web_loads(client)
        svc = tick_services()
        last = svc.hot.last_tick()
        spooled = svc.spool.waiting() if svc.spool is not None else 0
    except Exception as exc:  # the point is to report it, whatever it is
        checks["redis"] = f"error: {type(exc).__name__}"
        problems.append(f"redis: {exc}")
        return None, "unknown"
    checks["redis"] = "ok"
    checks["spooled_ticks"] = spooled
    allowed = 2 * cfg.TICK_SECONDS + 10
    age = None if last is None else now.timestamp() - datetime.fromisoformat(last["ran_at"]).timestamp()
    checks["last_tick"] = None if last is None else {**last, "age_seconds": round(age, 1)}
    seen = current_app.extensions
    if last is not None:
        seen["health_saw_a_tick"] = True
    if last is None and seen.get("health_saw_a_tick") and not (beat and registered and workers):
        checks["redis"] = "emptied"
        problems.append("redis: its data is gone (FLUSHALL, or restarted without persistence); the "
                        "scheduler and workers register again and the next tick rebuilds from Postgres")
        return None, spooled
    if not beat:
        checks["scheduler"] = "missing"
        problems.append("scheduler: no heartbeat (is the scheduler process running?)")
    elif not registered:
        checks["scheduler"] = "tick job not registered"
        problems.append("scheduler: running, but the tick job is not registered (Redis was emptied?); "
                        "it registers it again within a second")
    else:
        checks["scheduler"] = "ok"
    ticking = age is not None and age <= allowed
    checks["workers"] = workers if workers or not ticking else "re-registering (ticks run)"
    if not workers and not ticking:
        problems.append(f"worker: no RQ worker is listening on queue {cfg.QUEUE_NAME!r}")
    if last is None:
        problems.append("pipeline: no tick recorded (none has run yet, or Redis was emptied)")
    elif age is not None and age > allowed:
        problems.append(f"pipeline: last tick ran {age:.0f} s ago (limit {allowed} s, about two ticks)")
    checks["web"] = {"processes": len(loads), "clients": sum(v.get("clients", 0) for v in loads.values()),
                     "refused": sum(v.get("refused", 0) for v in loads.values())}
    full = [v for v in loads.values() if v.get("clients", 0) >= v.get("max_clients", 1 << 30)]
    if full:
        problems.append(f"web: {len(full)} process(es) full at {full[0]['max_clients']} clients, "
                        f"refusing new connections ({checks['web']['refused']} refused so far); "
                        "start another web process")
    return last, spooled


DELIVERY_OVERDUE_SECONDS = 120  # a due delivery nobody claimed this long: no deliver process is working
