"""A Postgres outage does not stop the live path, and loses nothing.

The database sits behind a proxy the test cuts (every connection drops, new
ones are refused) and restores, as a Postgres restart looks to a client.
"""
from __future__ import annotations

import pytest

from tests.helpers import minutes, reference, stored_alerts, stored_quotes
from webapp.config import DEFAULT_SYMBOLS
from webapp.services import stocks, ticks


def test_ticks_go_on_spooled_and_postgres_catches_up_once(make_app, proxy, pg) -> None:
    app = make_app(DATABASE_URL=proxy.url)
    times = minutes(8)
    with app.app_context():
        client = app.test_client()
        for at in times[:3]:
            assert ticks.run_tick_now(at).spooled == 0
        proxy.cut()
        for n, at in enumerate(times[3:6], start=1):
            report = ticks.run_tick_now(at)
            assert report.accepted == 15 and report.spooled == n  # Redis, browsers and alerts go on
        detail = stocks.stock_detail("AAPL")
        assert detail["latest"]["time"] == times[5].isoformat()
        assert client.get("/api/stocks").status_code == 200  # answered from Redis
        down = client.get("/api/alerts")
        assert down.status_code == 503 and down.get_json()["error"]["code"] == "database_unavailable"
        health = client.get("/api/health").get_json()
        assert any(p.startswith("postgres: down") and "3 tick(s) spooled" in p for p in health["problems"])
        assert client.get("/").status_code in (200, 503)  # a page never answers 500
        proxy.restore()
        report = ticks.run_tick_now(times[6])
        assert report.drained == 3 and report.spooled == 0
        ticks.run_tick_now(times[7])
        assert client.get("/api/health").get_json()["checks"]["spooled_ticks"] == 0
    quotes = stored_quotes(pg)
    assert sorted(quotes) == sorted(DEFAULT_SYMBOLS)
    assert all([r[0] for r in rows] == times for rows in quotes.values())  # every minute, once
    expected = [(t, rows[i][0], kind) for t, rows in quotes.items()
                for i, kind in enumerate(reference([r[1] for r in rows], 5)) if kind]
    assert [(a[0], a[1], a[2]) for a in stored_alerts(pg)] == sorted(expected)  # none lost, none false
    for rows in quotes.values():  # the stored SMAs are the history's
        prices = [r[1] for r in rows]
        for i in range(4, len(rows)):
            assert rows[i][2] == pytest.approx(sum(prices[i - 4:i + 1]) / 5, abs=1e-4)


@pytest.mark.parametrize("how", ["spool-overflowed", "spool-deleted"])
def test_redis_ahead_of_postgres_is_recorded_missed_and_rebuilt(make_app, proxy, pg, how) -> None:
    """Ticks that ran on Redis while their rows were lost (a spool past its bound, or deleted):
    Postgres is the record, so those slots are recorded missed and the windows follow Postgres."""
    from webapp import names
    from webapp.extensions import get_redis

    app = make_app(DATABASE_URL=proxy.url, SPOOL_MAX_TICKS=2)
    times = minutes(14)
    with app.app_context():
        for at in times[:3]:
            ticks.run_tick_now(at)
        proxy.cut()
        outage = times[3:7] if how == "spool-overflowed" else times[3:5]
        for at in outage:
            ticks.run_tick_now(at)
        if how == "spool-deleted":
            get_redis().delete(names.SPOOL_KEY, names.SPOOL_COUNT_KEY)
        proxy.restore()
        after = times[3 + len(outage):]
        repaired = ticks.run_tick_now(after[0])
        assert repaired.restored == 15
        for at in after[1:]:
            ticks.run_tick_now(at)
        page = app.test_client().get("/api/stocks/AAPL/history").get_json()
    lost = times[3:5]  # the two oldest outage ticks in both cases
    why = "ticks ran while Postgres was down and their spooled rows were lost"
    assert page["missed"] == [{"start": lost[0].isoformat(), "end": times[5].isoformat(), "slots": 2,
                               "reason": why}]
    quotes = stored_quotes(pg)
    assert all([r[0] for r in rows] == [*times[:3], *times[5:]] for rows in quotes.values())
    # from the repaired tick on, every SMA and alert is the stored history's (an SMA needs 5 stored readings)
    first = [*times[:3], *times[5:]].index(after[0])
    for ticker, rows in quotes.items():
        prices = [r[1] for r in rows]
        for i in range(first, len(rows)):
            want = sum(prices[i - 4:i + 1]) / 5 if i >= 4 else None
            assert rows[i][2] == (want if want is None else pytest.approx(want, abs=1e-4)), (ticker, i)
    expected = sorted((t, rows[i][0], kind) for t, rows in quotes.items()
                      for i, kind in enumerate(reference([r[1] for r in rows], 5)) if kind and i >= first)
    assert [(a[0], a[1], a[2]) for a in stored_alerts(pg) if a[1] >= after[0]] == expected
