"""The tick end to end against real Redis and Postgres, run by a real RQ worker."""
from __future__ import annotations

from datetime import timedelta
from time import monotonic, sleep

import pytest

from bench.counting import count_io
from tests.conftest import utc
from tests.fakes.providers import ScriptedProvider
from tests.helpers import (
    START,
    EmitCapture,
    hot_state,
    minutes,
    reference,
    run_via_rq,
    scripted_services,
    stored_alerts,
    stored_quotes,
)
from webapp import names
from webapp.config import DEFAULT_SYMBOLS
from webapp.core.quotes import Quote
from webapp.extensions import db, get_redis
from webapp.services import context, stocks, ticks
from webapp.store.subscriptions import ListenerRegistry
from webapp.tick.pipeline import run_tick


def test_full_tick_through_rq_worker(app, pg, rdb) -> None:
    reports = run_via_rq(app, minutes(12))
    assert [r["accepted"] for r in reports] == [15] * 12

    quotes = stored_quotes(pg)
    assert sorted(quotes) == sorted(DEFAULT_SYMBOLS)
    assert all(len(rows) == 12 for rows in quotes.values())

    docs, windows = hot_state(rdb, DEFAULT_SYMBOLS)
    expected_alerts = []
    for ticker, rows in quotes.items():
        prices = [r[1] for r in rows]
        assert windows[ticker] == prices[-5:]  # RPUSH + LTRIM kept the last SMA_PERIOD
        assert docs[ticker]["v"]["price"] == prices[-1]
        assert docs[ticker]["v"]["sma"] == pytest.approx(sum(prices[-5:]) / 5, abs=1e-4)
        assert docs[ticker]["w"] == [round(p * 10_000) for p in prices[-5:]]
        assert rows[3][2] is None and rows[4][2] == pytest.approx(sum(prices[:5]) / 5, abs=1e-4)
        for (time, price, sma), kind in zip(rows, reference(prices, 5), strict=True):
            if kind:
                expected_alerts.append((ticker, time, kind, price, sma))
        # every key carries a TTL
        for key in (names.latest_key(), names.window_key(ticker)):
            assert 0 < rdb.ttl(key) <= app.config["TRACKER"].HOT_TTL_SECONDS
    assert expected_alerts, "a 12-minute sim run over 15 tickers should cross somewhere"
    assert stored_alerts(pg) == expected_alerts
    assert rdb.ttl(names.LAST_TICK_KEY) > 0


def test_same_minute_twice_changes_nothing(app, pg, rdb, service_urls) -> None:
    run_via_rq(app, minutes(7))
    capture = EmitCapture(service_urls[0])
    try:
        before = (stored_quotes(pg), stored_alerts(pg), hot_state(rdb, DEFAULT_SYMBOLS))
        again = run_via_rq(app, [START + timedelta(minutes=6, seconds=20)])[0]
        assert again["skipped"] == "slot already done"
        # Even if the slot marker is gone (a second scheduler racing the first),
        # the data-level guards hold: no row, window entry or emit is added.
        rdb.delete(names.tick_done_key(again["slot"]))
        forced = run_via_rq(app, [START + timedelta(minutes=6)])[0]
        assert forced["accepted"] == 0
        after = (stored_quotes(pg), stored_alerts(pg), hot_state(rdb, DEFAULT_SYMBOLS))
        assert after == before
        emitted = capture.settle()
        # the forced re-run may announce the slot once more, never a quote, alert or
        # scanner change (the lists did not change, so no scan_update either)
        assert all(m["event"] == names.EVENT_STOCK_UPDATE for m in emitted)
        assert len(emitted) <= 1
    finally:
        capture.close()


def test_rebuild_from_postgres_after_redis_is_flushed(make_app, rdb, pg) -> None:
    """Flushing Redis mid-run must leave exactly what an unbroken run leaves."""
    app = make_app()
    with app.app_context():
        run_via_rq(app, minutes(10))
        control_docs, control_windows = hot_state(rdb, DEFAULT_SYMBOLS)
        control_alerts = stored_alerts(pg)

    app = make_app()  # the `make_app` fixture cleaned state before; clean again by hand
    rdb.flushdb()
    with pg.cursor() as cur:
        cur.execute("TRUNCATE quotes, alerts")
    with app.app_context():
        run_via_rq(app, minutes(9))
        rdb.flushdb()  # a Redis restart: all hot data gone
        report = run_via_rq(app, [START + timedelta(minutes=9)])[0]
        assert report["restored"] == 15
        docs, windows = hot_state(rdb, DEFAULT_SYMBOLS)
    assert windows == control_windows
    for t in DEFAULT_SYMBOLS:
        assert docs[t] == control_docs[t]
    assert stored_alerts(pg) == control_alerts


def test_an_unreadable_latest_table_is_rebuilt_not_fatal(app, rdb, pg, caplog) -> None:
    """Garbage under the latest table's key (a bad deploy, a stray SET) counts as lost
    state: the tick rebuilds it from Postgres and carries on, with no false alert."""
    run_via_rq(app, minutes(9))
    rdb.set(names.latest_key(), b"not a latest table")
    report = run_via_rq(app, [START + timedelta(minutes=9)])[0]
    assert report["restored"] == 15 and report["accepted"] == 15
    assert "does not hold a latest table" in caplog.text
    docs, windows = hot_state(rdb, DEFAULT_SYMBOLS)
    expected_alerts = []
    for ticker, rows in stored_quotes(pg).items():
        prices = [r[1] for r in rows]
        assert windows[ticker] == prices[-5:] and docs[ticker]["v"]["price"] == prices[-1]
        for (time, price, sma), kind in zip(rows, reference(prices, 5), strict=True):
            if kind:
                expected_alerts.append((ticker, time, kind, price, sma))
    assert stored_alerts(pg) == sorted(expected_alerts)
    assert len(stocks.snapshot(START + timedelta(minutes=9))["stocks"]) == 15


def test_touch_then_cross_through_the_pipeline(app, pg, service_urls) -> None:
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    ListenerRegistry(get_redis()).publish(["AAPL"])  # a browser is watching AAPL
    capture = EmitCapture(service_urls[0])
    prices = [10, 10, 10, 10, 8, 9.5, 11]
    try:
        for i, (at, price) in enumerate(zip(minutes(len(prices)), prices, strict=True)):
            provider.next = [Quote("AAPL", price, at, 100, 10.0, source="script")]
            report = run_tick(svc, ["AAPL"], at + timedelta(seconds=5))
            assert report.accepted == 1
            assert [a["kind"] for a in report.alerts] == (["bullish"] if i == 6 else [])
        alerts = capture.events(names.EVENT_ALERT)
    finally:
        capture.close()
    assert stored_alerts(pg) == [("AAPL", START + timedelta(minutes=6), "bullish", 11.0, 9.7)]
    assert sorted(room for room, _ in alerts) == ["alerts", "ticker:AAPL"]
    assert alerts[0][1] == {"ticker": "AAPL", "kind": "bullish", "price": 11.0, "sma": 9.7,
                            "time": (START + timedelta(minutes=6)).isoformat()}


def test_bad_quotes_mark_stale_and_lose_nothing(app, pg, rdb, service_urls) -> None:
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    provider.next = [Quote("AAPL", 100.0, START, 5, source="script"),
                     Quote("MSFT", 200.0, START, 5, source="script")]
    run_tick(svc, ["AAPL", "MSFT"], START)
    at = START + timedelta(minutes=1)
    provider.next = [
        Quote("AAPL", float("nan"), at, 5, source="script"),
        Quote("MSFT", 200.5, START, 5, source="script"),  # unchanged provider time
        Quote("NOPE", 1.0, at, 5, source="script"),  # not asked for
    ]
    capture = EmitCapture(service_urls[0])
    try:
        report = run_tick(svc, ["AAPL", "MSFT"], at)
        quotes_emitted = capture.events(names.EVENT_QUOTE)
        update = capture.events(names.EVENT_STOCK_UPDATE)
    finally:
        capture.close()
    assert report.accepted == 0
    assert "non-finite" in report.stale["AAPL"] and "stale" in report.stale["MSFT"]
    assert quotes_emitted == []
    assert {s["ticker"]: s["stale"] for s in update[0][1]["stocks"]} == {"AAPL": True, "MSFT": True}
    assert {t: len(r) for t, r in stored_quotes(pg).items()} == {"AAPL": 1, "MSFT": 1}
    assert rdb.lrange(names.window_key("AAPL"), 0, -1) == [b"100.0"]
    snap = stocks.snapshot(at)
    assert {s["ticker"]: s["stale_reason"] for s in snap["stocks"]} == report.stale


def test_stock_update_has_the_original_shape(app, service_urls) -> None:
    ListenerRegistry(get_redis()).publish(["AAPL", "BRK.B"])
    other_process = ListenerRegistry(get_redis())
    other_process.publish(["KO"])
    other_process.publish([])  # KO's only listener left again
    capture = EmitCapture(service_urls[0])
    try:
        run_via_rq(app, minutes(1))
        updates = capture.events(names.EVENT_STOCK_UPDATE)
        quotes = capture.events(names.EVENT_QUOTE)
    finally:
        capture.close()
    assert len(updates) == 1
    room, payload = updates[0]
    assert room == "all"
    assert payload["type"] == "stock_update"
    assert payload["timestamp"] == "2026-11-20T15:00:00+00:00"
    assert [s["ticker"] for s in payload["stocks"]] == list(DEFAULT_SYMBOLS)
    for s in payload["stocks"]:
        assert {"ticker", "price", "sma", "alert"} <= set(s)
        assert isinstance(s["price"], float) and s["sma"] is None and s["alert"] is None
    # a quote goes only where somebody listens
    assert sorted(room for room, _ in quotes) == ["ticker:AAPL", "ticker:BRK.B"]


def test_roundtrips_and_inserts_are_constant_in_symbols(make_app, rdb, pg) -> None:
    measured = {}
    for n in (15, 300):
        rdb.flushdb()
        with pg.cursor() as cur:
            cur.execute("TRUNCATE quotes, alerts")
        symbols = tuple(f"T{i:04d}" for i in range(n))
        app = make_app(SYMBOLS=symbols)
        with app.app_context():
            ticks.run_tick_now(START)  # first tick: nothing to rebuild from yet
            with count_io(db.engine) as counts:
                for at in minutes(3, START + timedelta(minutes=1)):
                    report = ticks.run_tick_now(at)
                    assert report.accepted == n
            measured[n] = (counts.redis_roundtrips, counts.sql_inserts)
    # lock, MGET, write script, listeners, one batch of emits: five per tick at any size
    assert measured[15][0] == measured[300][0] == 3 * 5
    # one COPY for the quotes, plus one INSERT for alerts on ticks that fired any
    assert all(3 <= inserts <= 6 for _, inserts in measured.values())


def test_market_closed_means_no_fetch_for_real_feeds(app, rdb) -> None:
    provider = ScriptedProvider(follows_market_hours=True)
    svc = scripted_services(app, provider)
    for closed in ("2026-11-21T15:00:00", "2026-11-26T15:00:00", "2026-11-27T18:30:00"):
        report = run_tick(svc, ["AAPL"], utc(closed))
        assert report.market == "closed" and "market closed" in report.skipped
    assert provider.calls == 0
    run_tick(svc, ["AAPL"], utc("2026-11-27T17:30:00"))  # early-close day, still open
    assert provider.calls == 1


def test_a_failed_tick_leaves_the_next_one_working(app, pg, rdb) -> None:
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    rdb.flushdb()  # the first tick will query Postgres to rebuild, opening a transaction
    provider.fail_next = ConnectionError("feed went away")
    with pytest.raises(ConnectionError):
        run_tick(svc, ["AAPL"], START)
    assert rdb.get(names.tick_lock_key()) is None  # the lock was released
    provider.next = [Quote("AAPL", 100.0, START, 5, source="script")]
    report = run_tick(svc, ["AAPL"], START)  # same slot: it was never finished
    assert report.accepted == 1 and stored_quotes(pg)["AAPL"][0][1] == 100.0


def test_changing_sma_period_rebuilds_from_postgres(make_app, rdb, pg) -> None:
    app = make_app()
    with app.app_context():
        run_via_rq(app, minutes(10))
    app = make_app(SMA_PERIOD=8)  # an operator changes the period and restarts
    with app.app_context():
        report = run_via_rq(app, [START + timedelta(minutes=10)])[0]
        assert report["restored"] == 15
        docs, windows = hot_state(rdb, DEFAULT_SYMBOLS, period=8)
    for ticker, rows in stored_quotes(pg).items():
        prices = [r[1] for r in rows]
        assert windows[ticker] == prices[-8:] and docs[ticker]["n"] == 8
        assert docs[ticker]["v"]["sma"] == pytest.approx(sum(prices[-8:]) / 8, abs=1e-4)


def test_a_dead_ticks_lock_frees_within_its_short_ttl(make_app, rdb) -> None:
    """The lock a tick holds lives seconds, so a tick killed mid-way delays the next by that, not a tick."""
    app = make_app(TICK_LOCK_TTL_SECONDS=1)
    seen = []

    class Peeking(ScriptedProvider):  # a feed that looks at the lock while the tick holds it
        def fetch(self, symbols, now, previous):
            seen.append(rdb.pttl(names.tick_lock_key()))
            return super().fetch(symbols, now, previous)

    with app.app_context():
        svc = scripted_services(app, Peeking())
        run_tick(svc, ["AAPL"], START)
        assert 0 < seen[0] <= 1000  # the tick's lock: TICK_LOCK_TTL_SECONDS, not TICK_SECONDS + 30
        svc.hot.lock(hold_seconds=1, wait_seconds=1)  # a dead tick's lock, never released
        started = monotonic()
        report = run_tick(svc, ["AAPL"], START + timedelta(minutes=1))
        waited = monotonic() - started
    assert report.skipped is None and waited < 3, waited


def test_a_long_tick_keeps_its_lock(make_app, rdb) -> None:
    """The lock is renewed while the tick runs, so a slow one is not overtaken by the next."""
    app = make_app(TICK_LOCK_TTL_SECONDS=1)
    with app.app_context():
        svc = context.tick_services()
        token = svc.hot.lock(hold_seconds=1, wait_seconds=1)
        with svc.hot.held(token, 1):
            sleep(2.5)  # well past the TTL
            assert rdb.get(names.tick_lock_key()) == token.encode()
        svc.hot.unlock(token)
    assert rdb.get(names.tick_lock_key()) is None


def test_slots_finished_out_of_order_are_not_taken_for_lost_ones(app, pg, rdb) -> None:
    """Two workers can finish a shard's slots out of order (the later slot took the lock first).
    The stored-slot mark must not move back, or the next tick reads Redis as ahead of Postgres,
    records a false gap and rebuilds every window."""
    symbols = list(DEFAULT_SYMBOLS)
    with app.app_context():
        svc = context.tick_services()
        later, earlier, next_ = (run_tick(svc, symbols, START + timedelta(minutes=m)) for m in (1, 0, 2))
    assert later.accepted == 15 and not earlier.skipped  # it ran, second
    assert next_.accepted == 15 and next_.restored == 0
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM missed_slots")
        assert cur.fetchone()[0] == 0
    assert int(rdb.get(names.stored_slot_key(0, 1))) == next_.slot


def test_a_reading_without_a_previous_close_gets_the_stored_one(app, pg, service_urls) -> None:
    """Stream-fed readings carry no previous close, and the first tick may run before the backfill:
    the tick takes it from stored history (the last close of an earlier day), the moment it is there,
    so change %, gappers and gainers fill on the first day (issue 26, item 1)."""
    from webapp.core.backfill import HistoryBar
    from webapp.store import bars

    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    at = minutes(3)
    with app.app_context():
        bars.store_daily_bars(db.session, "AAPL", [HistoryBar(utc("2026-11-19T05:00:00"), 250, 255, 249,
                                                              253.59, 1000)])
    provider.next = [Quote("AAPL", 256.0, at[0], 100, None, 255.0, source="script"),
                     Quote("MSFT", 400.0, at[0], 100, None, 401.0, source="script")]
    run_tick(svc, ["AAPL", "MSFT"], at[0] + timedelta(seconds=5))
    with pg.cursor() as cur:
        cur.execute("SELECT ticker, prev_close::float8 FROM quotes ORDER BY ticker")
        assert cur.fetchall() == [("AAPL", 253.59), ("MSFT", None)]  # MSFT's history is not in yet
    rows = {s["ticker"]: s for s in stocks.snapshot(at[0] + timedelta(seconds=6))["stocks"]}
    assert rows["AAPL"]["prev_close"] == 253.59
    assert rows["AAPL"]["change_pct"] == pytest.approx((256 / 253.59 - 1) * 100, abs=0.01)

    # MSFT's backfill lands (here its minutes of the day before): the next tick has it
    with pg.cursor() as cur:
        cur.execute("INSERT INTO quotes (ticker, time, price, volume, source) VALUES "
                    "('MSFT', '2026-11-19T20:59:00Z', 398.25, 10, 'backfill')")
    pg.commit()
    provider.next = [Quote("AAPL", 257.0, at[1], 100, None, 255.0, source="script"),
                     Quote("MSFT", 402.0, at[1], 100, None, 401.0, source="script")]
    run_tick(svc, ["AAPL", "MSFT"], at[1] + timedelta(seconds=5))
    # a provider's own previous close is kept (a REST snapshot's is the exchange's)
    provider.next = [Quote("AAPL", 258.0, at[2], 100, 253.0, 255.0, source="script"),
                     Quote("MSFT", 403.0, at[2], 100, None, 401.0, source="script")]
    run_tick(svc, ["AAPL", "MSFT"], at[2] + timedelta(seconds=5))
    with pg.cursor() as cur:
        cur.execute("SELECT ticker, prev_close::float8 FROM quotes WHERE time > %s ORDER BY ticker, time",
                    (at[0],))
        assert cur.fetchall() == [("AAPL", 253.59), ("AAPL", 253.0), ("MSFT", 398.25), ("MSFT", 398.25)]
