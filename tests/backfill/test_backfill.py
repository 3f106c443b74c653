"""A newly tracked symbol's history, from each provider in its own wire format: fetched, paged,
rate-limited and resumed, stored once however often it runs."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fakes.history_server import FakeHistory
from tests.helpers import START, minutes
from webapp.core.market import session_minute_starts, sessions_back
from webapp.services import backfill, charts, ticks

ALPACA = {"APCA-API-KEY-ID": "AKTESTKEY", "APCA-API-SECRET-KEY": "secret-abc-123"}
POLYGON = {"Authorization": "Bearer pk-test-456"}
NOW = START + timedelta(minutes=5)  # Friday 2026-11-20 15:05 UTC (10:05 in New York)


def stored(pg, ticker: str) -> tuple[list[tuple], list[tuple]]:
    with pg.cursor() as cur:
        cur.execute("SELECT time, price::float8, bar_open::float8, bar_high::float8, bar_low::float8, "
                    "volume, prev_close::float8, open::float8, sma::float8, source FROM quotes "
                    "WHERE ticker = %s ORDER BY time", (ticker,))
        quotes = cur.fetchall()
        cur.execute("SELECT day, open::float8, close::float8, volume FROM daily_bars WHERE ticker = %s "
                    "ORDER BY day", (ticker,))
        return quotes, cur.fetchall()


def expected_minutes(n_sessions: int, end=START) -> int:
    """Regular-session minutes from ``n_sessions`` back up to ``end`` (the first live reading, or now)."""
    return len(session_minute_starts(sessions_back(NOW, n_sessions)[0], end))


@pytest.fixture
def fake():
    server = FakeHistory({})
    yield server
    server.close()


def provider_app(make_app, fake, name: str):
    if name == "alpaca":
        fake.headers = ALPACA
        return make_app(MARKET_DATA_PROVIDER="alpaca", ALPACA_BASE_URL=fake.url,
                        ALPACA_API_KEY_ID="AKTESTKEY", ALPACA_API_SECRET_KEY="secret-abc-123",
                        BACKFILL_MINUTE_SESSIONS=3, BACKFILL_DAILY_DAYS=30)
    fake.headers = POLYGON
    return make_app(MARKET_DATA_PROVIDER="polygon", POLYGON_BASE_URL=fake.url, POLYGON_API_KEY="pk-test-456",
                    BACKFILL_MINUTE_SESSIONS=3, BACKFILL_DAILY_DAYS=30)


def test_sim_history_runs_straight_into_the_live_walk_and_twice_is_once(make_app, pg) -> None:
    app = make_app(BACKFILL_MINUTE_SESSIONS=3, BACKFILL_DAILY_DAYS=30)
    with app.app_context():
        for at in minutes(5):
            ticks.run_tick_now(at)
        out = backfill.backfill("AAPL", now=NOW)
        assert out.state == "done" and out.sessions == 4  # three sessions and this morning before 10:00
        quotes, daily = stored(pg, "AAPL")
        history = [q for q in quotes if q[0] < START]
        assert len(history) == expected_minutes(3) == 3 * 390 + 30
        assert all(q[-1] == "sim" and q[2] is not None for q in history)
        live = [q for q in quotes if q[0] >= START]
        assert abs(history[-1][1] / live[0][1] - 1) < 0.01  # the history ends where the live walk begins
        assert 18 <= len(daily) <= 22 and daily[-1][0] < history[0][0].date()
        assert abs(daily[-1][2] / history[0][2] - 1) < 0.05  # the last daily close leads into the minutes
        # each day's previous close is the day before's last price; the SMA is the tracker's
        by_day: dict = {}
        for q in history:
            by_day.setdefault(q[0].date(), []).append(q)
        days = sorted(by_day)
        assert by_day[days[1]][0][6] == pytest.approx(by_day[days[0]][-1][1])
        prices = [q[1] for q in history]
        assert history[10][8] == pytest.approx(sum(prices[6:11]) / 5, abs=1e-4)
        chart = charts.chart_data("AAPL", "5d", now=NOW)
        assert chart["interval"] == "5m" and len(chart["bars"]) == 3 * 78 + 6 + 1  # 5D has data at once
        assert backfill.backfill_status("AAPL")["state"] == "done"
        again = backfill.backfill("AAPL", now=NOW)
        assert again.state == "done" and again.readings == 0 and again.daily_bars == 0
        assert stored(pg, "AAPL") == (quotes, daily)


@pytest.mark.parametrize("name", ["alpaca", "polygon"])
def test_provider_history_is_paged_rate_limited_resumed_and_stored_once(make_app, pg, fake, name) -> None:
    app = provider_app(make_app, fake, name)
    with app.app_context():
        # a 429 in the middle (the second page of the first minute session): waited out, then resumed
        fake.script = [("ok", None), ("ok", None), ("429", 1), ("ok", None)]
        waited: list[float] = []
        out = backfill.backfill("KO", now=NOW, sleep=waited.append)
        assert out.state == "done" and waited == [1.0], out
        quotes, daily = stored(pg, "KO")
        assert len(quotes) == expected_minutes(3, NOW) and all(q[-1] == name for q in quotes)
        assert len(daily) >= 18
        pages = [r for r in fake.requests if "bars" in r["path"] or "range/1/minute" in r["path"]]
        assert len(pages) > 4  # 390-bar sessions at 500 a page, and the morning: paged
        # the first bar is the wire's, whole
        from tests.fakes.history_server import bar

        want = bar("KO", quotes[0][0], daily=False)
        assert (quotes[0][2], quotes[0][3], quotes[0][4], quotes[0][1], quotes[0][5]) == \
            (want["o"], want["h"], want["l"], want["c"], want["v"])
        before = len(fake.requests)
        again = backfill.backfill("KO", now=NOW)
        assert again.readings == 0 and stored(pg, "KO") == (quotes, daily)
        assert len(fake.requests) - before <= 3  # only the edge before the oldest reading is asked again


def test_a_backfill_cut_short_is_resumed_by_the_next_run(make_app, pg, fake) -> None:
    app = provider_app(make_app, fake, "alpaca")
    with app.app_context():
        clean = backfill.backfill("KO", now=NOW)
        full = stored(pg, "KO")
    with pg.cursor() as cur:
        cur.execute("TRUNCATE quotes, daily_bars")
        pg.commit()
    app = make_app(MARKET_DATA_PROVIDER="alpaca", ALPACA_BASE_URL=fake.url, ALPACA_API_KEY_ID="AKTESTKEY",
                   ALPACA_API_SECRET_KEY="secret-abc-123", BACKFILL_MINUTE_SESSIONS=1, BACKFILL_DAILY_DAYS=30)
    with app.app_context():
        partial = backfill.backfill("KO", now=NOW)  # as if it stopped after the newest sessions
        assert 0 < partial.readings < clean.readings
        failing = provider_app(make_app, fake, "alpaca")
    fake.script = [("ok", None), ("status", 500)]  # the next run fails part way: nothing half-stored
    with failing.app_context():
        broken = backfill.backfill("KO", now=NOW)
        assert broken.state == "failed" and "resumes" in broken.message
        assert backfill.backfill_status("KO")["state"] == "failed"
    fake.script = [("ok", None)]
    with failing.app_context():
        resumed = backfill.backfill("KO", now=NOW)
    assert resumed.state == "done" and partial.readings + resumed.readings == clean.readings
    # the same bars as a run never cut short (where the cut was, the later session's previous close
    # and first SMAs came from the daily bars, as the first run had nothing older)
    bars = lambda rows: [(q[0], *q[1:6], q[-1]) for q in rows]  # noqa: E731
    got = stored(pg, "KO")
    assert bars(got[0]) == bars(full[0])
    # and the provider's daily bars the first run took for the days the minutes now cover, kept
    extra = set(got[1]) - set(full[1])
    assert set(full[1]) <= set(got[1]) and {d[0] for d in extra} <= {q[0].date() for q in got[0]}


def test_finnhub_says_it_has_no_history_instead_of_failing(make_app, pg) -> None:
    app = make_app(MARKET_DATA_PROVIDER="finnhub", FINNHUB_API_KEY="fh-test")
    with app.app_context():
        out = backfill.backfill("AAPL", now=NOW)
        status = backfill.backfill_status("AAPL")
    assert out.state == "unavailable" and "premium" in out.message
    assert status["state"] == "unavailable" and "no history from this provider" in status["message"]
    assert stored(pg, "AAPL") == ([], [])


def test_tracking_a_symbol_queues_its_backfill_once(app, client, rdb) -> None:
    from rq import Queue

    from webapp import names

    assert client.post("/api/symbols", json={"ticker": "AMD"}).status_code == 201
    assert client.post("/api/symbols", json={"ticker": "AMD"}).status_code == 200  # tracked already
    queue = Queue(names.backfill_queue(app.config["TRACKER"].QUEUE_NAME), connection=rdb)
    assert [j.args for j in queue.jobs] == [("AMD",)]
    assert backfill.enqueue_backfill(["AMD"]) == 0  # its job still waits
    assert backfill.enqueue_backfill(["BRK.B"]) == 1  # a ticker with a dot makes a valid job id
    status = client.get("/api/backfill/AMD").get_json()
    assert status["state"] == "queued"
    assert client.get("/api/backfill/NOPE").status_code == 404


def test_postgres_going_away_mid_backfill_fails_the_run_with_the_reason_and_the_next_resumes(
        make_app, pg, fake, proxy) -> None:
    clean_app = provider_app(make_app, fake, "alpaca")
    with clean_app.app_context():
        backfill.backfill("KO", now=NOW)
        full = stored(pg, "KO")
    with pg.cursor() as cur:
        cur.execute("TRUNCATE quotes, daily_bars")
        pg.commit()
    app = make_app(MARKET_DATA_PROVIDER="alpaca", ALPACA_BASE_URL=fake.url, ALPACA_API_KEY_ID="AKTESTKEY",
                   ALPACA_API_SECRET_KEY="secret-abc-123", BACKFILL_MINUTE_SESSIONS=3,
                   BACKFILL_DAILY_DAYS=30, DATABASE_URL=proxy.url)
    # Postgres goes away while the minutes are being fetched: the daily bars are in, no session is
    fake.script = [("ok", None), ("ok", None), ("hook", proxy.cut), ("ok", None)]
    with app.app_context():
        broken = backfill.backfill("KO", now=NOW)
        assert broken.state == "failed" and "Postgres unavailable" in broken.message
        assert backfill.backfill_status("KO")["state"] == "failed"
        proxy.restore()
        fake.script = [("ok", None)]
        resumed = backfill.backfill("KO", now=NOW)
    assert resumed.state == "done"
    got = stored(pg, "KO")
    bars = lambda rows: [(q[0], *q[1:6], q[-1]) for q in rows]  # noqa: E731
    assert bars(got[0]) == bars(full[0]) and got[1] == full[1]


def test_a_backfill_whose_job_died_is_not_reported_running_forever(app, rdb) -> None:
    import time

    from webapp import names
    from webapp.store.backfillstate import SILENT_SECONDS, BackfillProgress

    progress = BackfillProgress(rdb, "KO")
    progress.set("running", done=3, total=9)
    assert backfill.backfill_status("KO")["state"] == "running"
    rdb.hset(names.backfill_key("KO"), "updated", int(time.time()) - SILENT_SECONDS - 1)  # then nothing
    status = backfill.backfill_status("KO")
    assert status["state"] == "failed" and "job stopped" in status["message"] and status["done"] == 3
