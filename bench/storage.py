"""Postgres storage per trading day: minute quotes in a day partition, plus daily bars.

Stores M minutes of sim quotes for N symbols in the day partition of a day
in 2030 (through the pipeline's own COPY path), measures the partition with
``pg_total_relation_size`` (table, indexes and TOAST), and scales to a
390-minute regular session.  Daily bars are measured the same way by rolling
the minutes up.  Everything it wrote is dropped afterwards.

    python -m bench.storage [N] [M]     # default 10,000 symbols, 30 minutes
"""
from __future__ import annotations

import json
import sys
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from bench import bench_app
from webapp.extensions import db
from webapp.providers.sim import MINUTES_PER_SESSION, SimProvider
from webapp.store import quotes as quotes_store
from webapp.store import retention, tick_write

DAY = date(2030, 1, 3)  # a Thursday session far from real data
OPEN = datetime(2030, 1, 3, 14, 30, tzinfo=timezone.utc)


def _mb(n_bytes: int) -> float:
    return round(n_bytes / 1e6, 2)


def run(n_symbols: int, minutes: int) -> dict[str, Any]:
    """Measure (needs an app context)."""
    session = db.session
    partition = retention.partition_name(DAY)
    retention.ensure_partitions(session, [DAY])
    session.execute(sa.text(f"TRUNCATE {partition}"))
    session.execute(sa.text("DELETE FROM daily_bars WHERE day = :d"), {"d": DAY})
    session.commit()
    symbols = [f"ZS{i:05d}" for i in range(n_symbols)]
    sim = SimProvider(7, 60)
    previous: dict = {}
    t0 = time.perf_counter()
    try:
        for m in range(minutes):
            quotes = sim.fetch(symbols, OPEN + timedelta(minutes=m), previous).quotes
            tick_write.insert_tick(session, [quotes_store.QuoteRow(q, q.price) for q in quotes], [])
            previous = {q.ticker: q for q in quotes}
        copy_s = time.perf_counter() - t0
        quotes_bytes = session.execute(sa.text("SELECT pg_total_relation_size(:p)"),
                                       {"p": partition}).scalar()
        rows = session.execute(sa.text(f"SELECT count(*) FROM {partition}")).scalar()
        session.execute(sa.text(
            f"INSERT INTO daily_bars (ticker, day, open, high, low, close, volume, quotes) "
            f"SELECT ticker, :d, (array_agg(price ORDER BY time))[1], max(price), min(price), "
            f"(array_agg(price ORDER BY time DESC))[1], sum(volume), count(*) FROM {partition} "
            f"GROUP BY ticker"), {"d": DAY})
        session.commit()
        bars_bytes = session.execute(sa.text(
            "SELECT sum(pg_column_size(b.*)) FROM daily_bars b WHERE day = :d"), {"d": DAY}).scalar()
        bars = session.execute(sa.text("SELECT count(*) FROM daily_bars WHERE day = :d"), {"d": DAY}).scalar()
    finally:
        session.rollback()
        session.execute(sa.text(f"TRUNCATE {partition}"))
        session.execute(sa.text("DELETE FROM daily_bars WHERE day = :d"), {"d": DAY})
        session.commit()
    per_minute = quotes_bytes / minutes
    return {
        "bench": "storage",
        "symbols": n_symbols,
        "minutes_stored": minutes,
        "rows": rows,
        "bytes_per_quote_row": round(quotes_bytes / rows, 1),
        "quotes_mb_per_trading_day": _mb(per_minute * MINUTES_PER_SESSION),
        # rows' own bytes plus a B-tree entry (~32 bytes) per row in the primary key
        "daily_bars_mb_per_trading_day": _mb(int(bars_bytes or 0) + 32 * int(bars or 0)),
        "copy_seconds": round(copy_s, 1),
        "counted": "pg_total_relation_size of the day partition (heap, indexes, TOAST), scaled to 390 min",
    }


def main(argv: list[str] | None = None) -> int:
    args = [int(a) for a in (argv if argv is not None else sys.argv[1:])]
    n, m = (args + [10_000, 30][len(args):])[:2]
    with bench_app() as (_, app), app.app_context():
        print(json.dumps(run(n, m)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
