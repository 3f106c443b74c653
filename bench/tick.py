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

    python -m bench.tick --symbols 10000 --ticks 15 [--scanner] [--rules 1000]
    python -m bench.tick [--scanner] [N ...]   # default: 15, 1,000 and 10,000 symbols

With ``--rules R`` it measures the same ticks twice in one run, first with
no alert rule and then with R rules of mixed operators, scopes and
frequencies (:func:`bench_rules`), and reports what the rules added.

The plain tick runs with the scanner off; ``--scanner`` adds every scanner
metric and list (and a volume profile for RVOL) and reports the bytes a
client receives per tick in one list's room against room ``all`` (``*``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from bench import bench_app
from bench.counting import count_io
from webapp import names
from webapp.core.market import slot_of
from webapp.core.quotes import Quote
from webapp.core.scanner import LISTS
from webapp.extensions import db, get_redis
from webapp.providers.base import FetchResult
from webapp.providers.sim import SimProvider
from webapp.services import context
from webapp.services import rules as rules_service
from webapp.store.scanstore import ScanStore
from webapp.tick.context import TickServices
from webapp.tick.pipeline import run_tick
from webapp.tick.rules import RuleEngine
from webapp.tick.scanner import minute_of_day

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


def _cleanup(symbols: Sequence[str], slots: Sequence[int], times: Sequence[datetime]) -> None:
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    for s in symbols:
        pipe.delete(names.window_key(s))
    pipe.delete(names.latest_key())
    for slot in slots:
        pipe.delete(names.tick_done_key(slot), names.shards_finished_key(slot))
    pipe.delete(names.scan_table_key(), names.SCAN_ANNOUNCED_KEY, *map(names.scan_list_key, LISTS))
    for at in times:
        day, minute = minute_of_day(at)
        pipe.delete(names.rvol_tickers_key(day), names.rvol_minute_key(day, minute))
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


def _seed_profile(symbols: Sequence[str], times: Sequence[datetime]) -> None:
    """A volume profile for the bench symbols, so RVOL is computed as in production."""
    rng = np.random.default_rng(7)
    daily = rng.uniform(2e5, 5e7, len(symbols))
    store = ScanStore(get_redis(), 1, 3600)
    by_day: dict[str, dict[int, np.ndarray]] = {}
    for at in times:
        day, minute = minute_of_day(at)
        by_day.setdefault(day, {})[minute] = daily * min(1.0, (minute - 570) / 390)
    for day, minutes in by_day.items():
        store.save_profile(day, symbols, [10] * len(symbols), minutes, 3600)


def _room_bytes(messages: Sequence[bytes]) -> dict[str, int]:
    """Bytes a client in each room receives: the Socket.IO event packets' JSON."""
    out: dict[str, int] = {}
    for raw in messages:
        m = orjson.loads(raw)
        packet = len(orjson.dumps([m["event"], *m["data"]])) + 2  # `42` + ["event", data]
        out[m["room"]] = out.get(m["room"], 0) + packet
    return out


def bench_rules(symbols: Sequence[str], n: int, seed: int = 11) -> list[dict[str, Any]]:
    """``n`` rules as users write them: mostly one to five tickers, 10 % lists of 50, 0.5 % over all."""
    rng = np.random.default_rng(seed)
    field, price = {"field": "close"}, {"price": True}
    conditions = [
        {"op": "crossing_up", "a": field, "b": {"sma": 5}},
        {"op": "crossing_down", "a": field, "b": {"sma": 20}},
        {"op": "crossing", "a": {"ema": 9}, "b": {"sma": 20}},
        {"op": "greater_than", "a": price, "b": {"const": 100.0}},
        {"op": "less_than", "a": price, "b": {"const": 50.0}},
        {"op": "greater_than", "a": {"metric": "change_pct"}, "b": {"const": 1.0}},
        {"op": "entering_channel", "a": field, "lower": {"sma": 10}, "upper": {"const": 150.0}},
        {"op": "exiting_channel", "a": field, "lower": {"sma": 20}, "upper": {"sma": 5}},
        {"op": "inside_channel", "a": field, "lower": {"const": 90.0}, "upper": {"const": 110.0}},
        {"op": "outside_channel", "a": field, "lower": {"metric": "day_low"},
         "upper": {"metric": "day_high"}},
        {"op": "moving_up", "a": field, "bars": 5, "value": 0.5},
        {"op": "moving_down", "a": field, "bars": 3, "value": 0.5},
        {"op": "moving_up_pct", "a": price, "bars": 15, "value": 0.3},
        {"op": "moving_down_pct", "a": price, "bars": 15, "value": 0.3},
    ]
    frequencies = ["once_per_bar_close", "once_per_bar", "every_time", "once"]
    out = []
    for i in range(n):
        draw = rng.random()
        if draw < 0.005:
            scope: dict[str, Any] = {"all": True}
        elif draw < 0.12:
            scope = {"tickers": [symbols[j] for j in rng.choice(len(symbols), min(50, len(symbols)), False)]}
        else:
            k = int(rng.integers(1, 6))
            scope = {"tickers": [symbols[j] for j in rng.choice(len(symbols), min(k, len(symbols)), False)]}
        out.append({"name": f"bench {i}", "scope": scope, "condition": conditions[i % len(conditions)],
                    "frequency": frequencies[i % len(frequencies)], "cooldown_seconds": 300})
    return out


def _add_rules(rules: Sequence[dict[str, Any]]) -> None:
    from bench import bench_user
    from webapp.store import rules as rules_store

    owner = bench_user()
    for raw in rules:
        rules_store.create(db.session, rules_service.rule_spec(raw, owner), owner)


def _drop_rules() -> None:
    db.session.execute(sa.text("DELETE FROM alert_events WHERE rule_id IN "
                               "(SELECT id FROM alert_rules WHERE name LIKE 'bench %')"))
    db.session.execute(sa.text("DELETE FROM alert_rules WHERE name LIKE 'bench %'"))
    db.session.commit()


def run(n_symbols: int, ticks: int, scanner: bool = False, rules: int = 0) -> dict[str, Any]:
    """Measure ``ticks`` ticks at ``n_symbols`` symbols (needs an app context)."""
    base = context.tick_services()
    cfg = base.config.with_overrides(SCANNER=scanner)
    symbols = [f"ZB{i:05d}" for i in range(n_symbols)]
    provider = TimedProvider(SimProvider(cfg.SIM_SEED, 60))
    svc = TickServices(cfg, provider, base.hot, db.session, base.publisher,
                       rules=RuleEngine() if rules else None)
    phases_at = [WARMUP + ticks, 2 * (WARMUP + ticks)] if rules else [WARMUP + ticks]
    times = [START + timedelta(minutes=i) for i in range(phases_at[-1])]
    slots = [slot_of(t, cfg.TICK_SECONDS)[0] for t in times]
    client = get_redis()
    # the live system's (if any), put back afterwards
    kept = {key: client.get(key) for key in (names.LAST_TICK_KEY, names.latest_key())}
    _cleanup(symbols, slots, times)
    _drop_rules()
    if scanner:
        _seed_profile(symbols, times)
    plain: dict[str, Any] = {}
    fires: list[int] = []
    totals, without_fetch, roundtrips, statements, emits = [], [], [], [], []
    room_bytes: dict[str, list[int]] = {}
    phases: dict[str, list[float]] = {}
    sent: list[bytes] = []
    real_send = base.publisher.send
    base.publisher.send = lambda messages, wake=False, mark=None: (  # type: ignore[method-assign]
        sent.extend(messages), real_send(messages, wake, mark))[1]
    try:
        for i, at in enumerate(times):
            if rules and i == phases_at[0]:  # the same ticks again, now with the rules
                plain = {"median_ms": statistics.median(totals), "roundtrips": sorted(set(roundtrips)),
                         "statements": sorted(set(statements)),
                         "phases": {k: round(statistics.median(v), 1) for k, v in phases.items()}}
                totals, without_fetch, roundtrips, statements, emits = [], [], [], [], []
                phases.clear()
                _add_rules(bench_rules(symbols, rules))
            sent.clear()
            with count_io(db.engine) as counts:
                t0 = time.perf_counter()
                report = run_tick(svc, symbols, at)
                elapsed = (time.perf_counter() - t0) * 1000
            if report.accepted != n_symbols:
                raise RuntimeError(f"tick accepted {report.accepted} of {n_symbols}")
            if i < WARMUP or (rules and phases_at[0] <= i < phases_at[0] + WARMUP):
                continue
            if rules and i >= phases_at[0]:
                fires.append(report.rule_fires)
            totals.append(elapsed)
            without_fetch.append(elapsed - provider.last_ms)
            roundtrips.append(counts.redis_roundtrips)
            statements.append(counts.sql_statements)
            emits.append(report.emitted)
            for room, size in _room_bytes(sent).items():
                room_bytes.setdefault(room, []).append(size)
            for name, ms in report.phases_ms.items():
                phases.setdefault(name, []).append(ms)
        baseline = _per_symbol_baseline(symbols, cfg.SMA_PERIOD)
    finally:
        base.publisher.send = real_send  # type: ignore[method-assign]
        _cleanup(symbols, slots, times)
        _drop_rules()
        for key, value in kept.items():
            if value is not None:
                client.set(key, value, ex=cfg.HOT_TTL_SECONDS)
    out = {
        "bench": "scanner-tick" if scanner else "tick",
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
    if rules:
        out.update({
            "bench": out["bench"] + "-rules", "rules": rules,
            "median_ms_without_rules": round(plain["median_ms"], 1),
            "rules_added_ms": round(out["median_ms"] - plain["median_ms"], 1),
            "redis_roundtrips_per_tick_without_rules": plain["roundtrips"],
            "sql_statements_per_tick_without_rules": plain["statements"],
            "rule_fires_per_tick": round(statistics.median(fires)),
            "median_phase_ms_without_rules": plain["phases"],
        })
    if scanner:  # what one client receives per tick in a list's room vs in room `all` (`*`)
        out["emitted_bytes_per_tick"] = {
            "scan:gainers": round(statistics.median(room_bytes.get(names.scan_room("gainers"), [0]))),
            "all": round(statistics.median(room_bytes.get(names.ROOM_ALL, [0]))),
        }
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tick", description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, metavar="N",
                        help="symbol counts (default 15 1000 10000)")
    parser.add_argument("--symbols", type=int, action="append", dest="more", metavar="N",
                        help="a symbol count (repeatable; same as a positional N)")
    parser.add_argument("--ticks", type=int, help="measured ticks per size (default 30, 15 from 1,000 on)")
    parser.add_argument("--scanner", action="store_true", help="with every scanner metric and list")
    parser.add_argument("--rules", type=int, default=0, metavar="R",
                        help="also measure the ticks with R alert rules of mixed operators")
    args = parser.parse_args(list(argv))
    args.sizes = [*args.sizes, *(args.more or [])] or [15, 1000, 10000]
    if any(n < 1 for n in args.sizes) or (args.ticks is not None and args.ticks < 1):
        parser.error("symbol counts and --ticks must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.tick``: embedded services when no URLs are set.

    The benchmark imports the app, never the reverse: the product has no
    command that reaches into ``bench/``.
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with bench_app() as (_, app), app.app_context():
        for n in args.sizes:
            ticks = args.ticks or (15 if n >= 1000 else 30)
            print(json.dumps(run(n, ticks, args.scanner, args.rules)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
