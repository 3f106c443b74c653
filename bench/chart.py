"""Benchmark the chart page: its HTML (with its data) and what switching timeframe fetches.

One ticker gets a year of daily bars and five sessions of minutes (today's
among them on a session day) from the ``sim`` backfill, then:

* ``chart_page_ms``: the median time of ``GET /stocks/<t>?range=1y`` (daily
  candles and the default SMA, the data embedded in the HTML), through the
  app in this process (no network), with ``chart_page_kb`` its size;
* ``chart_page_1d_ms``: the same for ``range=1d`` (minute candles);
* ``timeframe_switch_kb_gzip``: the largest gzipped ``/api/stocks/<t>/chart``
  answer over the timeframes a user switches between (1m, 5m, 15m and 1h
  over 5D, 1d over 1Y), with ``per_interval_kb_gzip`` each.

    python -m bench.chart [--requests 30]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from bench import bench_app

TICKER = "ZCHART"


def _timed(client: Any, url: str, n: int, **kw: Any) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        resp = client.get(url, **kw)
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, (url, resp.status_code)
        size = len(resp.data)
    return statistics.median(times), size


def run(app: Any, n: int) -> dict[str, Any]:
    from webapp.extensions import db
    from webapp.services import backfill, charts

    def clean() -> None:
        db.session.execute(sa.text("DELETE FROM quotes WHERE ticker = :t"), {"t": TICKER})
        db.session.execute(sa.text("DELETE FROM daily_bars WHERE ticker = :t"), {"t": TICKER})
        db.session.commit()

    clean()
    try:
        out = backfill.backfill(TICKER, now=datetime.now(timezone.utc))
        client = app.test_client()
        client.get(f"/stocks/{TICKER}?range=1y")  # warm: templates, calendars
        page_ms, page_bytes = _timed(client, f"/stocks/{TICKER}?range=1y", n)
        day_ms, day_bytes = _timed(client, f"/stocks/{TICKER}?range=1d", n)
        sizes = {}
        for interval, range_ in (("1m", "5d"), ("5m", "5d"), ("15m", "5d"), ("1h", "5d"), ("1d", "1y")):
            resp = client.get(f"/api/stocks/{TICKER}/chart?range={range_}&interval={interval}",
                              headers={"Accept-Encoding": "gzip"})
            assert resp.status_code == 200 and resp.headers.get("Content-Encoding") == "gzip", resp.headers
            sizes[f"{interval}/{range_}"] = round(len(resp.data) / 1024, 1)
        bars = len(charts.chart_data(TICKER, "1y")["bars"])
    finally:
        clean()
    return {
        "bench": "chart", "requests": n, "daily_bars": out.daily_bars, "minute_readings": out.readings,
        "bars_on_1y_page": bars,
        "chart_page_ms": round(page_ms, 1), "chart_page_kb": round(page_bytes / 1024, 1),
        "chart_page_1d_ms": round(day_ms, 1), "chart_page_1d_kb": round(day_bytes / 1024, 1),
        "timeframe_switch_kb_gzip": max(sizes.values()), "per_interval_kb_gzip": sizes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chart", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with bench_app(BACKFILL_MINUTE_SESSIONS=5, BACKFILL_DAILY_DAYS=365) as (_, app), app.app_context():
        print(json.dumps(run(app, args.requests)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
