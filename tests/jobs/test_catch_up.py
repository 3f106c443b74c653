"""Slots a stall left unrun: run late, in order, where the provider can; recorded as missed where not.

The scheduler only enqueues from the next boundary after a Redis outage or
its own restart, so the slots in between exist nowhere but in the gap the
next tick job finds.  These run the real job through RQ.
"""
from __future__ import annotations

import pytest

from tests.fakes.providers import ScriptedProvider
from tests.helpers import minutes, reference, run_via_rq, stored_alerts, stored_quotes
from webapp import names
from webapp.config import DEFAULT_SYMBOLS
from webapp.core.quotes import Quote
from webapp.extensions import get_redis
from webapp.services import context, ticks


def _slots(rows) -> list:
    return [r[0] for r in rows]


@pytest.mark.parametrize("flushed", [False, True], ids=["redis-kept", "redis-emptied"])
def test_a_stall_is_run_late_in_order_like_an_unbroken_run(app, pg, flushed) -> None:
    times = minutes(14)
    run_via_rq(app, times[:4])
    if flushed:  # Redis restarted empty: the last slot that ran comes from Postgres
        get_redis().flushall()
    done = run_via_rq(app, times[10:])  # the scheduler's first job after the stall
    assert done[0]["caught_up"] == 6 and done[1]["caught_up"] == 0
    quotes = stored_quotes(pg)
    assert sorted(quotes) == sorted(DEFAULT_SYMBOLS)
    assert all(_slots(rows) == times for rows in quotes.values())  # 0 slots lost
    expected = sorted((t, rows[i][0], kind) for t, rows in quotes.items()
                      for i, kind in enumerate(reference([r[1] for r in rows], 5)) if kind)
    assert [(a[0], a[1], a[2]) for a in stored_alerts(pg)] == expected  # no false alert, none missed
    for rows in quotes.values():
        prices = [r[1] for r in rows]
        for i in range(4, len(rows)):
            assert rows[i][2] == pytest.approx(sum(prices[i - 4:i + 1]) / 5, abs=1e-4)
    body = app.test_client().get("/api/health").get_json()
    assert body["checks"]["missed_slots"]["recorded_24h"] == 0


def test_past_the_catch_up_bound_the_rest_are_recorded_missed(make_app, pg) -> None:
    app = make_app(CATCH_UP_SLOTS=2)
    times = minutes(12)
    with app.app_context():
        run_via_rq(app, times[:3])
        assert run_via_rq(app, times[10:11])[0]["caught_up"] == 2  # slots 8 and 9 run late
        client = app.test_client()
        page = client.get("/api/stocks/AAPL/history").get_json()
        health = client.get("/api/health").get_json()
    assert _slots(stored_quotes(pg)["AAPL"]) == [*times[:3], *times[8:11]]
    assert page["missed"] == [{"start": times[3].isoformat(), "end": times[8].isoformat(), "slots": 5,
                               "reason": "more than CATCH_UP_SLOTS=2 slots behind"}]
    assert health["checks"]["missed_slots"] == {"recorded_24h": 5, "latest_end": times[8].isoformat()}
    with app.app_context():  # a page that does not reach the gap does not list it
        later = app.test_client().get("/api/stocks/AAPL/history",
                                      query_string={"start": times[9].isoformat()}).get_json()
    assert later["missed"] == []


def test_a_live_feed_records_every_missed_slot_once(make_app, pg) -> None:
    app = make_app()
    provider = ScriptedProvider()  # a real feed: its quote is "now", it cannot answer for the past
    with app.app_context():
        svc = context.tick_services()
        svc.provider = provider
        times = minutes(9)

        def quotes_at(at):
            return [Quote(t, 100.0 + i + at.minute / 10, at) for i, t in enumerate(DEFAULT_SYMBOLS)]

        for at in times[:2]:
            provider.next = quotes_at(at)
            ticks.run_tick_now(at)
        from jobs.tick import tick

        provider.next = quotes_at(times[6])
        assert tick(at=times[6].isoformat())["caught_up"] == 0
        assert tick(at=times[6].isoformat())["skipped"] == "slot already done"  # retried: recorded once
        rows = pg.cursor()
        rows.execute('SELECT start, "end", slots, reason FROM missed_slots')
        assert rows.fetchall() == [(times[2], times[6], 4, "provider script cannot answer for a past minute")]
        assert get_redis().get(names.LAST_TICK_KEY) is not None
