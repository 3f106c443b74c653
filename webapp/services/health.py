"""Shared services the edges call: routes, Socket.IO handlers, CLI and jobs.

Each edge stays thin; building the tick's collaborators, reading the
snapshot and judging health happen here once.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import sqlalchemy as sa
from flask import Flask, current_app

from webapp import names
from webapp.config import Config
from webapp.core import delivery as delivery_policy
from webapp.core import indicator_series
from webapp.core import scanner as scan_core
from webapp.core.market import (
    EXCHANGE_TZ,
    RANGE_ALIASES,
    exchange_day_start,
    gap_slots,
    market_state,
    range_start,
    slot_of,
)
from webapp.core.rules import Rule, RuleError, RuleSpec, parse_rule, reading_series
from webapp.core.rules import evaluate as rule_evaluate
from webapp.core.scanner import Filters
from webapp.core.shards import split
from webapp.core.validation import normalise_ticker
from webapp.delivery import sender
from webapp.extensions import db, get_redis
from webapp.providers import get_provider
from webapp.store import alerts as alert_store
from webapp.store import history, missed, symbols
from webapp.store import rules as rules_store
from webapp.store.hot import HotStore
from webapp.store.scanstore import ScanStore
from webapp.store.spool import Spool
from webapp.store.streamstate import STATUS_TTL_SECONDS, stream_status
from webapp.store.subscriptions import web_loads
from webapp.tick import scanner
from webapp.tick.pipeline import TickReport, TickServices, max_age, run_tick
from webapp.tick.publisher import Publisher
from webapp.tick.rules import RuleEngine

log = logging.getLogger(__name__)


def config(app: Flask | None = None) -> Config:
    return (app or current_app).config["TRACKER"]


def tracked_symbols(fresh: bool = False) -> tuple[str, ...]:
    """Symbols to track: the table, seeded from SYMBOLS (web: cached for seconds)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = app.extensions.setdefault("tracked", symbols.TrackedCache())
    if fresh:
        cache.clear()
    return cache.get(db.session, config(app).SYMBOLS)


def tick_services() -> TickServices:
    """The tick's collaborators, built once per app (and so once per process)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    svc = app.extensions.get("tick_services")
    if svc is None:
        cfg = config(app)
        client = get_redis()
        svc = TickServices(
            config=cfg,
            provider=get_provider(cfg, client),
            hot=HotStore(client, cfg.HOT_TTL_SECONDS, cfg.SMA_PERIOD,
                         done_ttl=max(600, 100 * cfg.TICK_SECONDS), shards=cfg.TICK_SHARDS),
            session=db.session,
            publisher=Publisher(client),
            spool=Spool(client, cfg.SPOOL_MAX_TICKS),
            rules=RuleEngine(),
            after_commit=_pause_when_asked(client) if cfg.FAULT_INJECTION else None,
        )
        app.extensions["tick_services"] = svc
    return svc


def _pause_when_asked(client: Any) -> Callable[[int], None]:
    """FAULT_INJECTION: the fault suite's way to hold a real worker between Postgres and Redis.

    The test sets FAULT_PAUSE_KEY to some seconds; the next tick to commit
    takes it, says which slot it holds in FAULT_PAUSED_KEY, and sleeps there,
    so the test can SIGKILL the worker exactly at that point.
    """
    def pause(slot: int) -> None:
        seconds = client.getdel(names.FAULT_PAUSE_KEY)
        if seconds:
            log.warning("FAULT_INJECTION: slot %s pausing %s s after its Postgres commit", slot,
                        seconds.decode())
            client.set(names.FAULT_PAUSED_KEY, slot, ex=120)
            time.sleep(float(seconds))
            client.delete(names.FAULT_PAUSED_KEY)

    return pause


def stream_anchors(tickers: Sequence[str]) -> dict[str, float]:
    """Where the simulated stream starts each ticker: its latest reading, else the minute sim's start."""
    import numpy as np

    from webapp.providers.sim import SimProvider

    previous = tick_services().hot.read_all().previous()
    out = {t: previous[t].price for t in tickers if t in previous}
    new = [t for t in tickers if t not in out]
    if new:
        sim = SimProvider(config().SIM_SEED)
        keys = np.array([sim._ticker_key(t) for t in new], dtype=np.uint64)
        out.update(zip(new, np.round(sim.base_prices(new, keys), 2).tolist(), strict=True))
    return out


def slot_time(queued_at: datetime | None, now: datetime | None = None) -> datetime:
    """The time a scheduled tick job runs for: the moment it was queued.

    A worker that was paused or busy runs a backlog of jobs late; each must
    run for its own slot, in order, not all for the current one.  Only a
    provider that can answer for a past minute (``serves_past``) can do
    that; a real feed's quote is "now", so its late job runs for now.
    """
    now = now or datetime.now(timezone.utc)
    if queued_at is None or not getattr(tick_services().provider, "serves_past", False):
        return now
    return queued_at if queued_at.tzinfo else queued_at.replace(tzinfo=timezone.utc)


CATCH_UP_HORIZON = timedelta(days=1)  # a Redis that lost its tick record looks this far back in Postgres


def catch_up(when: datetime) -> list[datetime]:
    """The slots that never ran before the one containing ``when``: those to run first, in order.

    After a stall (Redis or every worker down, the scheduler stopped), the
    scheduler enqueues from the next boundary on; the slots in between would
    be lost.  A provider that serves the past runs them now, oldest first (up
    to ``CATCH_UP_SLOTS``); the rest are recorded as missed, with the reason,
    for health and the history API.  The last slot that ran comes from Redis,
    or, when Redis lost it, from the newest quote in Postgres.
    """
    svc = tick_services()
    cfg = svc.config
    slot = slot_of(when, cfg.TICK_SECONDS)[0]
    last_tick = svc.hot.last_tick()
    last: int | None = last_tick["slot"] if last_tick else None
    if last is None:
        try:
            stored = missed.last_stored(db.session, when - CATCH_UP_HORIZON)
        except history.DB_DOWN:
            db.session.rollback()
            stored = None
        last = slot_of(stored, cfg.TICK_SECONDS)[0] if stored else None
    if last is None or slot - last <= 1:
        return []
    provider = svc.provider
    serves_past = getattr(provider, "serves_past", False)

    def open_at(s: int) -> bool:
        if not provider.follows_market_hours:
            return True
        return market_state(datetime.fromtimestamp(s * cfg.TICK_SECONDS, timezone.utc)).is_open

    run, lost = gap_slots(last, slot, serves_past, cfg.CATCH_UP_SLOTS, open_at)
    if lost:
        why = (f"more than CATCH_UP_SLOTS={cfg.CATCH_UP_SLOTS} slots behind" if serves_past
               else f"provider {provider.name} cannot answer for a past minute")
        log.warning("%d slot(s) before %s never ran and are recorded as missed: %s", len(lost),
                    when.isoformat(), why)
        try:
            missed.record(db.session, lost, cfg.TICK_SECONDS, why)
        except history.DB_DOWN as exc:
            db.session.rollback()
            log.error("could not record %d missed slot(s) (Postgres: %s)", len(lost), type(exc).__name__)
    if run:
        log.warning("%d slot(s) before %s never ran; running them now, oldest first", len(run),
                    when.isoformat())
    return [datetime.fromtimestamp(s * cfg.TICK_SECONDS, timezone.utc) for s in run]


def run_tick_now(at: datetime | None = None, shard: tuple[int, int] = (0, 1)) -> TickReport:
    """Run the tick (or one shard of it) for the slot containing ``at`` (default: now)."""
    symbols_now = tracked_symbols(fresh=True)
    mine = split(symbols_now, shard[1])[shard[0]] if shard[1] > 1 else symbols_now
    return run_tick(tick_services(), mine, at or datetime.now(timezone.utc), shard, symbols_now)


def snapshot(now: datetime | None = None, tickers: Sequence[str] | None = None) -> dict[str, Any]:
    """The latest reading of every tracked ticker (or of ``tickers``), as users see it."""
    now = now or datetime.now(timezone.utc)
    svc = tick_services()
    market = market_state(now)
    symbols = tracked_symbols() if tickers is None else tuple(dict.fromkeys(tickers))
    latest = svc.hot.read_all()
    limit_age = max_age(svc.config, svc.provider, market)
    stocks = latest.views_of(symbols, now, limit_age)
    have = {v["ticker"] for v in stocks}
    waiting = [s for s in symbols if s not in have]
    return {
        "timestamp": now.isoformat(),
        "market": market.as_json(),
        "provider": svc.provider.name,
        "sma_period": svc.config.SMA_PERIOD,
        "tick_seconds": svc.config.TICK_SECONDS,
        "max_age_seconds": limit_age,  # a reading older than this is stale (null: not while closed)
        "last_tick": svc.hot.last_tick(),
        "stocks": stocks,
        "awaiting_first_reading": waiting,
    }


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
        hooks = checks["webhooks"] = alert_store.delivery_health(db.session, now)
        if hooks["overdue_s"] > DELIVERY_OVERDUE_SECONDS:
            problems.append(f"webhooks: {hooks['pending']} delivery(ies) waiting, the oldest due "
                            f"{hooks['overdue_s']:.0f} s ago (is `python -m jobs.deliver` running?)")
    except Exception as exc:
        db.session.rollback()
        checks["postgres"] = f"error: {type(exc).__name__}"
        problems.append(f"postgres: down ({type(exc).__name__}), {spooled} tick(s) spooled in Redis")
    market = market_state(now)
    _stream_health(cfg, market.is_open, checks, problems)
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
    if cfg.STREAM_PROVIDER == "none":
        return {"running": False, "state": "off", "provider": "none", "reason": "STREAM_PROVIDER=none",
                "detail": {}}
    status = stream_status(get_redis())
    if status is None:
        return {"running": False, "state": "not running", "provider": cfg.STREAM_PROVIDER,
                "reason": f"no stream process has reported for {STATUS_TTL_SECONDS} s "
                          "(is `python -m jobs.stream` running?)", "detail": {}}
    return {"running": True, "state": status["state"], "provider": status["provider"],
            "reason": status.get("reason", ""), "detail": status}


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
            "last_disconnect")
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


MAX_CHART_POINTS = 20_000
MAX_FEED_ALERTS = 500


class UnknownTicker(LookupError):
    """A ticker we neither track nor have history for."""


def known_ticker(raw: str) -> str:
    """The normalised ticker if it is tracked or has history; else UnknownTicker."""
    ticker = normalise_ticker(raw)
    if ticker is None:
        raise UnknownTicker(f"{raw!r} is not a ticker (1-10 characters of A-Z 0-9 . -)")
    if ticker not in tracked_symbols() and not history.has_history(db.session, ticker):
        raise UnknownTicker(f"{ticker} is not tracked and has no stored history")
    return ticker


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def stock_detail(ticker: str, now: datetime | None = None) -> dict[str, Any]:
    """One ticker's latest reading (with staleness), its Redis window and the market."""
    now = now or datetime.now(timezone.utc)
    svc = tick_services()
    latest = svc.hot.read_all()
    market = market_state(now)
    views = latest.views_of([ticker], now, max_age(svc.config, svc.provider, market))
    view = views[0] if views else None
    return {"ticker": ticker, "latest": view, "window": svc.hot.window(ticker),
            "sma_period": svc.config.SMA_PERIOD, "market": market.as_json()}


CHART_INTERVALS = history.INTERVALS


def chart_interval(range_name: str, span: history.Span, now: datetime) -> str:
    """The finest timeframe that keeps a range's bars readable (TradingView's defaults: 1D in
    minutes, 5D in 5 minutes, a month in hours, longer in days), judged by the part of the range
    that holds data: a new install shows minute candles whatever the range.  Where the minute
    readings cover too little of the range (older days are daily bars only), days."""
    if span.first_minute is None and span.first_day is None:
        return "1m"  # nothing yet: the live readings, as they come
    start = range_start(now, range_name)
    have = min([t for t in (span.first_minute, span.first_day) if t is not None], default=now)
    begins = max(start, have)
    days = ((span.last or now) - begins).total_seconds() / 86_400
    interval = "1m" if days <= 1.5 else "5m" if days <= 8 else "1h" if days <= 45 else "1d"
    if interval != "1d" and (span.first_minute is None or span.first_minute > begins + timedelta(days=3)):
        return "1d"
    return interval


def _bucket(when: datetime, interval: str) -> int:
    """The start (epoch seconds) of the bar of ``interval`` that ``when`` falls in."""
    if interval == "1d":
        return _epoch(exchange_day_start(when))
    width = history.INTERVAL_SECONDS[interval]
    return _epoch(when) // width * width


def chart_data(ticker: str, range_name: str, interval: str | None = None, studies: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    """Everything the chart page draws before any request: OHLCV bars at a timeframe, the
    indicator lines (computed here, by :mod:`webapp.core.indicator_series`, never in the browser),
    the SMA alerts and rule fires as markers on their bars.

    ``studies`` is the chart's ``indicators`` text (``sma:20,rsi:14``); None means the tracker's own
    SMA.  Raises :class:`indicator_series.StudyError` for one it cannot draw.
    """
    now = now or datetime.now(timezone.utc)
    range_name = RANGE_ALIASES.get(range_name, range_name)
    start = range_start(now, range_name)
    interval = interval or chart_interval(range_name, history.data_span(db.session, ticker), now)
    chosen = indicator_series.parse(f"sma:{config().SMA_PERIOD}" if studies is None else studies)
    warm = history.bars_before(db.session, ticker, interval, start, indicator_series.lookback(chosen))
    shown = history.bars(db.session, ticker, interval, start, now + timedelta(days=1), None, MAX_CHART_POINTS)
    every = [*warm, *shown]
    cols = {k: np.array([getattr(b, k) for b in every], float) for k in ("open", "high", "low", "close")}
    cols["volume"] = np.array([b.volume or 0 for b in every], float)
    cols["session"] = np.array([b.time.astimezone(EXCHANGE_TZ).date().toordinal() for b in every])
    times = [_epoch(b.time) for b in shown]
    lines = []
    for study in chosen:
        got = indicator_series.compute(study, cols)
        pane = indicator_series.PANE.get(study.kind, "price")
        lines.append({"key": study.key, "kind": study.kind, "pane": pane,
                      "lines": {name: [{"time": t, "value": float(v)}
                                       for t, v in zip(times, values[len(warm):].tolist(), strict=True)
                                       if v == v]
                                for name, values in got.items()}})
    alerts = [a for _, a in history.alerts_page(db.session, ticker, None, start, None, MAX_CHART_POINTS)]
    return {
        **stock_detail(ticker, now),
        "range": range_name,
        "interval": interval,
        "intervals": list(CHART_INTERVALS),
        "bucket_seconds": history.INTERVAL_SECONDS[interval],
        "today_start": _epoch(exchange_day_start(now)),
        "tick_seconds": config().TICK_SECONDS,
        "bars": [{"time": _epoch(b.time), "open": b.open, "high": b.high, "low": b.low, "close": b.close,
                  "volume": b.volume} for b in shown],
        "studies": lines,
        "backfill": backfill_status(ticker),
        "alerts": [{"time": _bucket(a.time, interval), "iso": a.time.isoformat(), "kind": a.kind,
                    "price": a.price, "sma": a.sma} for a in reversed(alerts)],
    }


def alert_json(a: history.AlertRow) -> dict[str, Any]:
    """An alert as the API, the feed page and the ``alert`` event show it."""
    return {"ticker": a.ticker, "kind": a.kind, "time": a.time.isoformat(), "price": a.price, "sma": a.sma}


def alert_feed(ticker: str | None, limit: int = MAX_FEED_ALERTS) -> list[dict[str, Any]]:
    """Stored alerts, newest first."""
    start = range_start(datetime.now(timezone.utc), "all")
    return [alert_json(a) for _, a in history.alerts_page(db.session, ticker, None, start, None, limit)]


def sparklines(tickers: list[str], points: int = 30) -> dict[str, list[float]]:
    """The last ``points`` stored prices per ticker (one query), for dashboard sparklines."""
    return {t: [q.price for q in quotes]
            for t, quotes in history.recent_quotes(db.session, tickers, points).items()}


def replay(path: str, speed: float, each: Callable[[TickReport], None] | None = None) -> list[TickReport]:
    """Play a recorded file of minute bars through the tick pipeline.

    ``speed`` is recorded minutes per real minute (60: a minute a second;
    0: as fast as it goes).  The file's tickers are added to the tracked
    symbols so the pages show them.  Each recorded minute is its own slot, so
    replaying a file twice adds nothing.
    """
    from pathlib import Path

    from webapp.providers.replay import ReplayProvider, load_bars

    provider = ReplayProvider(load_bars(Path(path)))
    base = tick_services()
    svc = TickServices(base.config, provider, base.hot, db.session, base.publisher, spool=base.spool,
                       rules=RuleEngine())
    tickers = provider.tickers
    symbols.seed(db.session, tickers)
    for t in tickers:
        symbols.add(db.session, t)
    tracked_symbols(fresh=True)
    reports = []
    for minute in provider.minutes:
        started = time.monotonic()
        report = run_tick(svc, tickers, minute)
        reports.append(report)
        if each is not None:
            each(report)
        if speed > 0:
            time.sleep(max(0.0, 60.0 / speed - (time.monotonic() - started)))
    return reports


# --- scanner ---------------------------------------------------------------

def scan_store() -> ScanStore:
    cfg = config()
    return ScanStore(get_redis(), cfg.TICK_SHARDS, cfg.HOT_TTL_SECONDS)


def build_volume_profile(now: datetime, force: bool = False) -> dict[str, Any]:
    """Today's RVOL profile from the earlier sessions in Postgres (skipped when built)."""
    return scanner.build_profile(db.session, scan_store(), config(), now, force)


def scanner_lists(wanted: Sequence[str], limit: int, extra: Filters | None = None,
                  now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Ranked lists as users see them, with how fresh they are (one read of the scan).

    A list is the last tick's: only symbols that had a fresh reading then are
    in it (a stale one never ranks, whatever its last values were); ``as_of``
    is that tick and ``stale`` says when it is too old to act on.
    """
    unknown = [name for name in wanted if name not in scan_core.LISTS]
    if unknown:
        raise UnknownList(unknown[0])
    now = now or datetime.now(timezone.utc)
    svc = tick_services()
    cfg = svc.config
    market = market_state(now)
    limit_age = max_age(cfg, svc.provider, market)
    last = svc.hot.last_tick()
    ran_at = datetime.fromisoformat(last["ran_at"]) if last else now
    rows = (scanner.ranked_lists(scan_store(), cfg, wanted, ran_at, limit_age, limit, extra) if last
            else {name: [] for name in wanted})
    stale = last is None or (limit_age is not None and now.timestamp() - ran_at.timestamp() > limit_age)
    applied = (scanner.filters(cfg).tightened(extra) if extra else scanner.filters(cfg))._asdict()
    market_json = market.as_json()
    return {
        name: {"list": name, "title": scan_core.LIST_TITLES[name], "rule": scan_core.LIST_RULES[name],
               "as_of": last["at"] if last else None, "stale": stale, "market": market_json,
               "filters": applied, "rows": rows[name]}
        for name in wanted
    }


def scanner_list(name: str, limit: int, extra: Filters | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """One ranked list (see :func:`scanner_lists`)."""
    return scanner_lists([name], limit, extra, now)[name]


class UnknownList(LookupError):
    """A scanner list name that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown scanner list {name!r}: one of {', '.join(scan_core.LISTS)}")


# ---- alert rules ----

REPLAY_MAX_ROWS = 2_000_000
REPLAY_MAX_DAYS = 31


class ReplayError(ValueError):
    """A replay that cannot be run as asked (the message says why)."""


def rule_spec(raw: dict[str, Any]) -> RuleSpec:
    """A rule as sent, validated (raises :class:`~webapp.core.rules.RuleError` with the reason).

    A ``webhook:<id>`` channel must name an existing endpoint.
    """
    spec = parse_rule(raw, scan_core.LISTS)
    wanted = {int(c.split(":", 1)[1]) for c in spec.channels if c.startswith("webhook:")}
    unknown = wanted - alert_store.existing_endpoints(db.session, list(wanted)) if wanted else set()
    if unknown:
        raise RuleError(f"channels: no webhook endpoint {', '.join(map(str, sorted(unknown)))} "
                        "(create one with POST /api/webhooks)")
    return spec


def set_rule_status(rule_id: int, status: str) -> dict[str, Any] | None:
    """Pause (mute) or resume a rule; resuming also re-enables tickers the storm breaker stopped."""
    if status == "active":
        alert_store.rearm_stopped(db.session, rule_id)
    return rules_store.set_status(db.session, rule_id, status)


def builtin_rule() -> dict[str, Any]:
    """The built-in SMA crossover as a rule (made on first read): its id and whether it is muted."""
    return rules_store.ensure_builtin(db.session, config().SMA_PERIOD)


def rules_with_state() -> list[dict[str, Any]]:
    """Every rule, the built-in SMA crossover first, with the tickers the storm breaker stopped
    (``stopped_too_often``)."""
    builtin_rule()
    rules = rules_store.all_rules(db.session)
    stopped = alert_store.stopped_tickers(db.session, [r["id"] for r in rules])
    return [{**r, "stopped_too_often": stopped.get(r["id"], [])} for r in rules]


MAX_MISSED_EVENTS = 500


def recent_events(limit: int = 50) -> list[dict[str, Any]]:
    """The newest alert events (the rules page's feed, before live ones arrive)."""
    return alert_store.events(db.session, limit=limit)
DELIVERY_OVERDUE_SECONDS = 120  # a due delivery nobody claimed this long: no deliver process is working


def missed_events(after: int, rule_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Alert events after id ``after`` (of some rules, or all), oldest first: a reconnecting client's gap."""
    return alert_store.events(db.session, rule_ids=rule_ids, after=after, limit=MAX_MISSED_EVENTS)


# ---- webhooks ----

ROTATION_OVERLAP = timedelta(hours=24)


def webhook_networks() -> tuple[Any, ...]:
    return delivery_policy.networks(config().WEBHOOK_ALLOWED_CIDRS)


def check_webhook_url(url: str) -> None:
    """Refuse a URL that is not http(s) or resolves to a forbidden address (:class:`UrlRefused`)."""
    try:
        sender.resolve_checked(url, webhook_networks())
    except OSError as exc:
        raise delivery_policy.UrlRefused(f"cannot resolve the host: {exc}") from None


def create_webhook(url: str, description: str) -> dict[str, Any]:
    """A new endpoint, with its signing secret: shown this once."""
    check_webhook_url(url)
    endpoint, secret = alert_store.create_endpoint(db.session, url, description)
    return {**endpoint, "secret": secret}


def rotate_webhook_secret(endpoint_id: int) -> dict[str, Any] | None:
    """A new secret; for 24 h both the old and the new sign every request."""
    got = alert_store.rotate_secret(db.session, endpoint_id, ROTATION_OVERLAP)
    return None if got is None else {**got[0], "secret": got[1]}


def delivery_worker() -> Any:
    """The deliver process's loop, on this app's Postgres and Redis."""
    from webapp.delivery.worker import DeliveryWorker

    cfg = config()
    return DeliveryWorker(db.engine, get_redis(), webhook_networks(), cfg.DELIVERY_CONCURRENCY,
                          cfg.DELIVERY_POLL_SECONDS, timeout=cfg.WEBHOOK_TIMEOUT_SECONDS,
                          lease_seconds=cfg.DELIVERY_LEASE_SECONDS)


def rule_tickers(scope: dict[str, Any]) -> list[str]:
    """The tickers a scope names now: its list, every tracked symbol, or a scanner list's members."""
    if "tickers" in scope:
        return list(scope["tickers"])
    if scope.get("all"):
        return list(tracked_symbols())
    members = scanner_list(scope["scan"], config().SCAN_DEPTH)["rows"]
    return [r["ticker"] for r in members]


def replay_rule(spec: RuleSpec, start: datetime | None, end: datetime | None, rule_id: int = 0,
                version: int = 0, now: datetime | None = None) -> dict[str, Any]:
    """The fires ``spec`` would have made over the stored minute readings, with their inputs.

    The same evaluator as the live tick (:func:`webapp.core.rules.evaluate`),
    from a fresh (armed) state; nothing is stored or delivered.  Readings
    before ``start`` warm up SMAs, EMAs and N-bar references.  The default
    span is the last 5 XNYS sessions, what the rule form shows as you edit.
    """
    import numpy as np

    now = now or datetime.now(timezone.utc)
    start = start or range_start(now, "5d")
    end = end or now
    if start >= end:
        raise ReplayError("start must be before end")
    if end - start > timedelta(days=REPLAY_MAX_DAYS):
        raise ReplayError(f"a replay covers at most {REPLAY_MAX_DAYS} days")
    cfg = config()
    tickers = rule_tickers(spec.scope)
    warm = timedelta(seconds=max(3 * 86400, 4 * spec.condition.lookback * cfg.TICK_SECONDS))
    rows = rules_store.readings(db.session, tickers, start - warm, end, REPLAY_MAX_ROWS + 1)
    if len(rows) > REPLAY_MAX_ROWS:
        raise ReplayError(f"more than {REPLAY_MAX_ROWS:,} stored readings in that span: narrow it")
    times = np.array(sorted({int(r.time.timestamp()) for r in rows}), np.int64)
    at = {t: i for i, t in enumerate(times.tolist())}
    row_of = {t: i for i, t in enumerate(tickers)}
    shape = (len(tickers), len(times))
    cols = {k: np.full(shape, np.nan) for k in ("close", "volume", "prev_close", "day_high", "day_low")}
    for r in rows:
        i, j = row_of[r.ticker], at[int(r.time.timestamp())]
        cols["close"][i, j] = r.price
        cols["volume"][i, j] = r.volume if r.volume is not None else np.nan
        cols["prev_close"][i, j] = r.prev_close if r.prev_close is not None else np.nan
        cols["day_high"][i, j] = r.high if r.high is not None else np.nan
        cols["day_low"][i, j] = r.low if r.low is not None else np.nan
    series = reading_series(cols)
    first = int(np.searchsorted(times, int(start.timestamp())))
    rule = Rule(rule_id, version, spec.condition, spec.frequency, spec.cooldown_seconds, spec.expires_at)
    out = (rule_evaluate(rule, tickers, series, times, {}, np.isnan(cols["close"]), first)
           if len(times) else None)
    fires = [] if out is None else [
        {"ticker": f.ticker, "bar_time": datetime.fromtimestamp(f.bar_time, timezone.utc).isoformat(),
         "bucket": f.bucket, "inputs": f.inputs, "explanation": f.explanation} for f in out.fires]
    return {"start": start.isoformat(), "end": end.isoformat(), "tickers": len(tickers),
            "bars": max(0, len(times) - first), "count": len(fires), "fires": fires,
            "stopped_too_often": [] if out is None else out.stopped,
            "note": "minute readings as stored: a bar's open, high and low are its price; vwap, rvol, "
                    "gap_pct and day_volume are not stored per minute, so conditions on them do not hold "
                    "in a replay"}


# ---- history from day one -------------------------------------------------------------

def track_symbol(ticker: str) -> bool:
    """Track ``ticker`` and queue its backfill; False when it was tracked already (nothing queued)."""
    changed = symbols.add(db.session, ticker)
    tracked_symbols(fresh=True)
    if changed:
        enqueue_backfill([ticker])
    return changed


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
    first = history.first_reading(db.session, ticker)
    anchor = first or (now, None)  # sim walks back from here, fixed for the run
    source = history_source(cfg, lambda _t: anchor)
    return runner.run(db.session, source, BackfillProgress(get_redis(), ticker), ticker, now,
                      first[0] if first else None, cfg.BACKFILL_MINUTE_SESSIONS, cfg.BACKFILL_DAILY_DAYS,
                      cfg.SMA_PERIOD, sleep)


def backfill_status(ticker: str) -> dict[str, Any]:
    from webapp.store.backfillstate import BackfillProgress

    got = BackfillProgress(get_redis(), ticker).read()
    return {"ticker": ticker, **(got or {"state": "none", "message": "no backfill has run for it lately"})}


# ---- finding symbols ------------------------------------------------------------------

def search_symbols(query: str, limit: int = 10) -> dict[str, Any]:
    """Tracked symbols for the header's search (company names where the provider gives them)."""
    from webapp.core.symbol_search import search
    from webapp.providers import company_names

    return search(query, tracked_symbols(), company_names(config()), limit)
