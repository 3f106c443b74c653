"""Day partitions, daily bars and retention against real Postgres."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from jobs.retention import retention as retention_job
from webapp.core.quotes import Quote
from webapp.extensions import db
from webapp.store import quotes, retention, tick_write


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)


def partitions(pg) -> list[str]:
    with pg.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'quotes' ORDER BY 1")
        return [r[0] for r in cur.fetchall()]


def test_quotes_is_partitioned_and_ticks_land_in_day_partitions(app, pg) -> None:
    with pg.cursor() as cur:
        cur.execute("SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'quotes'::regclass")
        assert cur.fetchone() == ("r",)
    day = date(2026, 11, 20)
    row = quotes.QuoteRow(Quote("AAPL", 1.5, at(day, 15), 10, source="t"), None)
    tick_write.insert_tick(db.session, [row], [])
    with pg.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text FROM quotes")
        assert cur.fetchall() == [("quotes_20261120",)]


def test_rows_in_the_default_partition_move_into_a_new_day(app, pg) -> None:
    day = date(2031, 5, 6)
    with pg.cursor() as cur:  # a row written while its day had no partition
        cur.execute("INSERT INTO quotes (ticker, time, price, source) VALUES ('KO', %s, 60, 't')",
                    (at(day, 14),))
    assert retention.ensure_partitions(db.session, [day]) == ["quotes_20310506"]
    db.session.commit()
    with pg.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, ticker FROM quotes WHERE time = %s", (at(day, 14),))
        assert cur.fetchall() == [("quotes_20310506", "KO")]
        cur.execute("SELECT count(*) FROM quotes_default")
        assert cur.fetchone() == (0,)


def test_retention_rolls_up_drops_and_is_safe_twice(app, pg) -> None:
    today = date(2026, 11, 20)
    rows = []
    for back in range(0, 40, 3):  # a reading every third day, 39 days back to today
        day = today - timedelta(days=back)
        for minute, price in ((0, 10.0 + back), (1, 12.0 + back), (2, 9.0 + back)):
            rows.append(quotes.QuoteRow(Quote("AAPL", price, at(day, 15, minute), 100, source="t"), None))
    tick_write.insert_tick(db.session, rows, [])

    first = retention_job(today.isoformat())
    assert first["dropped"] == [f"quotes_{(today - timedelta(days=b)):%Y%m%d}" for b in (39, 36, 33)]
    ahead = {f"quotes_{(today + timedelta(days=i)):%Y%m%d}" for i in range(4)}
    assert ahead <= set(partitions(pg))  # the next days exist (other tests may have made some)
    with pg.cursor() as cur:
        cur.execute("SELECT min(time)::date FROM quotes")
        assert cur.fetchone()[0] >= today - timedelta(days=30)
        cur.execute("SELECT day, open::float8, high::float8, low::float8, close::float8, volume, quotes "
                    "FROM daily_bars WHERE ticker = 'AAPL' ORDER BY day")
        bars = cur.fetchall()
    # every day is kept as a bar, including the days whose quotes were just dropped
    assert [b[0] for b in bars] == sorted(today - timedelta(days=b) for b in range(0, 40, 3))
    assert bars[-1][1:] == (10.0, 12.0, 9.0, 9.0, 300, 3)

    before = partitions(pg)
    second = retention_job(today.isoformat())
    assert second["dropped"] == [] and second["created"] == [] and partitions(pg) == before
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM daily_bars")
        assert cur.fetchone()[0] == len(bars)


def test_old_alert_events_go_with_their_deliveries_unless_one_is_still_due(app, pg) -> None:
    today = date(2026, 11, 20)
    old, recent = at(today - timedelta(days=91), 15), at(today - timedelta(days=89), 15)
    with pg.cursor() as cur:
        cur.execute("INSERT INTO webhook_endpoints (url, secret) VALUES ('https://example.com/h', 'whsec_x') "
                    "RETURNING id")
        endpoint = cur.fetchone()[0]
        events = {}
        for name, created, status in (("done", old, "delivered"), ("due", old, "pending"),
                                      ("young", recent, "delivered")):
            cur.execute("INSERT INTO alert_events (dedupe_key, rule_id, rule_version, ticker, bar_time, "
                        "bucket, inputs, explanation, created_at) "
                        "VALUES (%s, 1, 1, 'AAPL', %s, 'b', '{}', 'x', %s) RETURNING id",
                        (name, created, created))
            events[name] = cur.fetchone()[0]
            cur.execute("INSERT INTO deliveries (event_id, endpoint_id, status) VALUES (%s, %s, %s) "
                        "RETURNING id", (events[name], endpoint, status))
            cur.execute("INSERT INTO delivery_attempts (delivery_id, attempt_no, trigger, started_at, "
                        "duration_ms) VALUES (%s, 1, 'scheduled', %s, 5)", (cur.fetchone()[0], created))
    pg.commit()
    assert retention_job(today.isoformat())["alert_events_deleted"] == 1
    assert retention_job(today.isoformat())["alert_events_deleted"] == 0  # safe twice
    with pg.cursor() as cur:
        cur.execute("SELECT id FROM alert_events ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [events["due"], events["young"]]
        cur.execute("SELECT count(*) FROM deliveries")
        assert cur.fetchone()[0] == 2
        cur.execute("SELECT count(*) FROM delivery_attempts")
        assert cur.fetchone()[0] == 2


def test_intrabar_seconds_older_than_their_retention_go(app, pg) -> None:
    """What the evaluate process judged is kept INTRABAR_RETENTION_DAYS (5) days for replays."""
    today = date(2026, 11, 20)
    old, recent = at(today - timedelta(days=6), 15), at(today - timedelta(days=4), 15)
    with pg.cursor() as cur:
        for when in (old, recent):
            s = int(when.timestamp())
            cur.execute("INSERT INTO intrabar_seconds VALUES ('AAPL', %s, %s, 1, 1, 1, 1, 10, 1, %s, %s, %s, "
                        "false)", (s, s + 60, s * 1000, s * 1000, s * 1000))
    pg.commit()
    assert retention_job(today.isoformat())["intrabar_seconds_deleted"] == 1
    assert retention_job(today.isoformat())["intrabar_seconds_deleted"] == 0  # safe twice
    with pg.cursor() as cur:
        cur.execute("SELECT second FROM intrabar_seconds")
        assert [r[0] for r in cur.fetchall()] == [int(recent.timestamp())]
