"""Benchmark one tick of the pipeline (sim provider, no network).

For each symbol count it runs a few warm-up ticks, then K measured ticks on
consecutive minutes, and prints one JSON line: the work size, the median
tick, the same without the simulated fetch, and what was counted per tick
(Redis round-trips, SQL statements, Socket.IO messages).  For comparison
inside the same run it also times the Redis part of a per-symbol design
(RPUSH and LTRIM sent one by one: two round-trips per symbol).

Uses the configured Redis/Postgres (or embedded ones when run through
``python -m bench.tick`` with nothing set).  Bench symbols are named
``ZB00000``… and tick times lie in 2030, so nothing real is touched; their
rows and keys are removed afterwards.

    flask --app wsgi bench-tick --symbols 10000 --ticks 15
    python -m bench.tick            # 15, 1,000 and 10,000 symbols
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from bench.counting import count_io
from webapp import names, services
from webapp.core.market import slot_of
from webapp.core.quotes import Quote
from webapp.extensions import db, get_redis
from webapp.pipeline import TickServices, run_tick
from webapp.providers.base import FetchResult
from webapp.providers.sim import SimProvider

START = datetime(2030, 1, 2, 14, 31, tzinfo=timezone.utc)  # a Wednesday session
WARMUP = 3


class TimedProvider:
    """Wraps the sim to time its fetch separately from the rest of the tick."""

    name = "sim"
    follows_market_hours = False

    def __init__(self, inner: SimProvider) -> None:
        self.inner = inner
        self.last_ms = 0.0

    def fetch(self, symbols: Sequence[str], now: datetime, previous: Mapping[str, Quote]) -> FetchResult:
        t0 = time.perf_counter()
        result = self.inner.fetch(symbols, now, previous)
        self.last_ms = (time.perf_counter() - t0) * 1000
        return result


def _cleanup(symbols: Sequence[str], slots: Sequence[int]) -> None:
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    for s in symbols:
        pipe.delete(names.latest_key(s), names.window_key(s), names.stale_key(s))
    for slot in slots:
        pipe.delete(names.tick_done_key(slot))
    pipe.execute()
    db.session.execute(sa.text("DELETE FROM quotes WHERE ticker LIKE 'ZB%'"))
    db.session.execute(sa.text("DELETE FROM alerts WHERE ticker LIKE 'ZB%'"))
    db.session.commit()


def _per_symbol_baseline(symbols: Sequence[str], period: int) -> float:
    """Redis time of a design that sends RPUSH and LTRIM per symbol."""
    client = get_redis()
    t0 = time.perf_counter()
    for s in symbols:
        client.rpush(names.window_key(s), "1.0")
        client.ltrim(names.window_key(s), -period, -1)
    return (time.perf_counter() - t0) * 1000


def run(n_symbols: int, ticks: int) -> dict[str, Any]:
    """Measure ``ticks`` ticks at ``n_symbols`` symbols (needs an app context)."""
    base = services.tick_services()
    cfg = base.config
    symbols = [f"ZB{i:05d}" for i in range(n_symbols)]
    provider = TimedProvider(SimProvider(cfg.SIM_SEED, 60))
    svc = TickServices(cfg, provider, base.hot, db.session, base.publisher)
    times = [START + timedelta(minutes=i) for i in range(WARMUP + ticks)]
    slots = [slot_of(t, cfg.TICK_SECONDS)[0] for t in times]
    client = get_redis()
    last_tick = client.get(names.LAST_TICK_KEY)  # the live system's, put back afterwards
    _cleanup(symbols, slots)
    totals, without_fetch, roundtrips, statements, emits = [], [], [], [], []
    phases: dict[str, list[float]] = {}
    try:
        for i, at in enumerate(times):
            with count_io(db.engine) as counts:
                t0 = time.perf_counter()
                report = run_tick(svc, symbols, at)
                elapsed = (time.perf_counter() - t0) * 1000
            if report.accepted != n_symbols:
                raise RuntimeError(f"tick accepted {report.accepted} of {n_symbols}")
            if i < WARMUP:
                continue
            totals.append(elapsed)
            without_fetch.append(elapsed - provider.last_ms)
            roundtrips.append(counts.redis_roundtrips)
            statements.append(counts.sql_statements)
            emits.append(report.emitted)
            for name, ms in report.phases_ms.items():
                phases.setdefault(name, []).append(ms)
        baseline = _per_symbol_baseline(symbols, cfg.SMA_PERIOD)
    finally:
        _cleanup(symbols, slots)
        if last_tick is not None:
            client.set(names.LAST_TICK_KEY, last_tick, ex=cfg.HOT_TTL_SECONDS)
    return {
        "bench": "tick",
        "symbols": n_symbols,
        "ticks": ticks,
        "median_ms": round(statistics.median(totals), 1),
        "median_ms_excluding_sim_fetch": round(statistics.median(without_fetch), 1),
        "max_ms": round(max(totals), 1),
        "redis_roundtrips_per_tick": sorted(set(roundtrips)),
        "sql_statements_per_tick": sorted(set(statements)),
        "socketio_messages_per_tick": round(statistics.median(emits)),
        "median_phase_ms": {k: round(statistics.median(v), 1) for k, v in phases.items()},
        "baseline_per_symbol_rpush_ltrim_ms": round(baseline, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.tick [N ...]``: embedded services when no URLs are set."""
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.config import Config
    from webapp.embedded import services_for

    sizes = [int(a) for a in (argv if argv is not None else sys.argv[1:])] or [15, 1000, 10000]
    with services_for(Config.from_env()) as cfg:
        app = create_app(cfg.with_overrides(LOG_LEVEL="WARNING"))
        with app.app_context():
            upgrade()
            for n in sizes:
                print(json.dumps(run(n, 15 if n >= 1000 else 30)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
