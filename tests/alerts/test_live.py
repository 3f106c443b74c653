"""Rules evaluated inside the tick: the events it stores, what it emits, and live ≡ replay."""
from __future__ import annotations

from tests.helpers import EmitCapture, minutes, token_for
from webapp import names
from webapp.extensions import get_redis
from webapp.services import context, ticks
from webapp.store.subscriptions import ListenerRegistry

RULES = [
    {"name": "AAPL over its SMA 5", "scope": {"tickers": ["AAPL"]}, "cooldown_seconds": 0,
     "condition": {"op": "crossing_up", "a": {"field": "close"}, "b": {"sma": 5}}},
    {"name": "all: up 0.3% in 3 bars", "scope": {"all": True}, "cooldown_seconds": 120,
     "condition": {"op": "moving_up_pct", "a": {"price": True}, "bars": 3, "value": 0.3}},
    {"name": "MSFT leaves EMA band", "scope": {"tickers": ["MSFT", "NVDA"]}, "frequency": "once_per_bar",
     "condition": {"op": "exiting_channel", "a": {"field": "close"}, "lower": {"ema": 3},
                   "upper": {"sma": 8}}},
    {"name": "a new high of the day", "scope": {"all": True}, "frequency": "once_per_bar",
     "cooldown_seconds": 0,
     "condition": {"op": "greater_than", "a": {"field": "close"}, "b": {"metric": "prior_day_high"}}},
    # the chart's studies (issue 26 item 6): RSI, a Bollinger band, MACD against its signal
    {"name": "RSI(3) over 60", "scope": {"all": True}, "cooldown_seconds": 0,
     "condition": {"op": "crossing_up", "a": {"rsi": 3}, "b": {"const": 60}}},
    {"name": "close over the upper band", "scope": {"all": True}, "cooldown_seconds": 0,
     "condition": {"op": "crossing_up", "a": {"field": "close"}, "b": {"bb_upper": [5, 1]}}},
    {"name": "MACD over its signal", "scope": {"all": True}, "cooldown_seconds": 0,
     "condition": {"op": "crossing_up", "a": {"macd": [3, 6, 2]}, "b": {"macd_signal": [3, 6, 2]}}},
]


def _events(pg, rule_id):
    with pg.cursor() as cur:
        cur.execute("SELECT ticker, bar_time, inputs, explanation, rule_version FROM alert_events "
                    "WHERE rule_id = %s ORDER BY ticker, bar_time", (rule_id,))
        return cur.fetchall()


def test_the_tick_fires_what_a_replay_of_the_same_bars_fires(app, client, pg) -> None:
    made = [client.post("/api/rules", json=r).get_json() for r in RULES]
    times = minutes(40)
    for at in times:
        ticks.run_tick_now(at)
    span = {"start": times[0].isoformat(), "end": (times[-1] + (times[1] - times[0])).isoformat()}
    total = 0
    for rule in made:  # an EMA too: its value at a bar depends on that bar's window only
        live = _events(pg, rule["id"])
        replay = client.post(f"/api/rules/{rule['id']}/replay", json=span).get_json()
        replayed = sorted((f["ticker"], f["bar_time"], f["explanation"]) for f in replay["fires"])
        assert replayed == [(t, b.isoformat(), x) for t, b, _, x, _ in live], rule["name"]
        inputs = {(f["ticker"], f["bar_time"]): f["inputs"] for f in replay["fires"]}
        assert inputs == {(t, b.isoformat()): i for t, b, i, *_ in live}
        total += len(live)
        assert live or rule["name"] in [r["name"] for r in RULES[:3]], rule["name"]  # item 6: each fires
    assert total > 3
    # what the built-in SMA alert says, the AAPL rule says too
    with pg.cursor() as cur:
        cur.execute("SELECT time FROM alerts WHERE ticker = 'AAPL' AND kind = 'bullish' ORDER BY time")
        assert [t for (t,) in cur.fetchall()] == [b for _, b, *_ in _events(pg, made[0]["id"])]


def test_a_retried_tick_stores_and_emits_no_fire_twice(app, client, pg, service_urls) -> None:
    rule = client.post("/api/rules", json={**RULES[1], "cooldown_seconds": 0}).get_json()
    times = minutes(12)
    capture = EmitCapture(service_urls[0])
    try:
        fired = sum(ticks.run_tick_now(at).rule_fires for at in times[:-1])
        unheard = capture.events(names.EVENT_ALERT_EVENT)
    finally:
        capture.close()
    assert fired > 0 and unheard == []  # nobody on the feed nor following the rule: nothing sent
    # a web process has a page on the feed and one following the rule
    feed = names.user_room(rule["owner_id"])  # the owner's own feed
    ListenerRegistry(get_redis()).publish({feed, names.rule_room(rule["id"])})
    capture = EmitCapture(service_urls[0])
    try:
        first = ticks.run_tick_now(times[-1])
        context.tick_services().hot.client.delete(names.tick_done_key(first.slot, 0, 1))  # a duplicate job
        again = ticks.run_tick_now(times[-1])
        sent = capture.events(names.EVENT_ALERT_EVENT)
    finally:
        capture.close()
    assert first.rule_fires > 0 and again.rule_fires == 0
    with pg.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT dedupe_key) FROM alert_events WHERE bar_time = %s",
                    (times[-1].replace(second=0),))
        n, distinct = cur.fetchone()
    assert n == distinct == first.rule_fires
    rooms = {room for room, _ in sent}
    assert rooms == {feed, names.rule_room(rule["id"])}
    assert len(sent) == 2 * first.rule_fires
    payload = sent[0][1]
    assert payload["id"] > 0 and payload["rule_id"] == rule["id"] and "moved up" in payload["explanation"]


def test_postgres_down_at_the_rule_step_is_caught_up_once_it_is_back(make_app, proxy, pg) -> None:
    """Rules and their states live in Postgres: while it is down the ticks go on (spooled) without
    rules; the first tick after it is back, once the spooled rows are stored, evaluates the missed bars
    too, so the rules fire exactly where a replay of the stored bars does, with nothing stored twice
    and each late fire saying how old its bar was."""
    app = make_app(DATABASE_URL=proxy.url)
    times = minutes(40)
    outage = times[12:17]
    with app.app_context():
        c = app.test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('outage', admin=True)}"
        rule = c.post("/api/rules", json={**RULES[0], "scope": {"all": True}}).get_json()
        for at in times[:12]:
            assert ticks.run_tick_now(at).rules == 1
        proxy.cut()
        for n, at in enumerate(outage, start=1):
            report = ticks.run_tick_now(at)
            assert report.spooled == n and report.accepted == 15 and report.rule_fires == 0
        proxy.restore()
        back = [ticks.run_tick_now(at) for at in times[17:]]
        assert all(r.spooled == 0 for r in back)
        span = {"start": times[0].isoformat(), "end": (times[-1] + (times[1] - times[0])).isoformat()}
        replay = c.post(f"/api/rules/{rule['id']}/replay", json=span).get_json()
    expected = sorted((f["ticker"], f["bar_time"], f["explanation"]) for f in replay["fires"])
    live = [(t, b.isoformat(), x) for t, b, _, x, _ in _events(pg, rule["id"])]
    assert live == expected and len(live) > 5
    skipped = {at.isoformat() for at in outage}
    late = [f for f in replay["fires"] if f["bar_time"] in skipped]
    assert late, "the outage should have had fires to catch up"
    assert back[0].rule_fires >= len(late)  # all sent by the first tick after the outage
    with pg.cursor() as cur:
        cur.execute("SELECT min(data_age_seconds), bool_and(source IS NULL) FROM alert_events "
                    "WHERE rule_id = %s AND bar_time = ANY(%s)", (rule["id"], list(outage)))
        oldest, no_source = cur.fetchone()
    assert oldest >= 60 and no_source  # times[17] - times[16]: at least a minute late, and said so


def test_postgres_lost_during_the_rules_write_spools_the_tick_and_catches_it_up(app, client, pg) -> None:
    """The rules' events and states are written on the COPY's thread.  Its connection is killed right
    there, mid-statement (the states' write waits on a lock until the test terminates its backend):
    the tick spools its rows and carries on, and the next tick stores them and evaluates that bar,
    so every fire a replay finds is stored once."""
    import threading
    import time

    import psycopg2

    rule = client.post("/api/rules", json={**RULES[0], "scope": {"all": True}}).get_json()
    times = minutes(30)
    for at in times[:12]:
        ticks.run_tick_now(at)
    locker = psycopg2.connect(pg.dsn)  # holds writes to the progress table back, reads go on
    got: dict = {}

    def doomed_tick() -> None:
        with app.app_context():
            got["report"] = ticks.run_tick_now(times[12])

    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE alert_rule_progress IN SHARE MODE")
        worker = threading.Thread(target=doomed_tick)
        worker.start()
        deadline, pid = time.monotonic() + 15, None
        while pid is None and time.monotonic() < deadline:
            with pg.cursor() as cur:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE '%INSERT INTO alert_rule_states%'")  # the text is cut at 1 KB
                row = cur.fetchone()
            pid = row[0] if row else time.sleep(0.05)
        assert pid is not None, "the tick's rule write never reached Postgres"
        with pg.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        locker.rollback()
        locker.close()
    worker.join(20)
    assert not worker.is_alive()
    report = got["report"]
    assert report.spooled == 1 and report.accepted == 15  # the tick went on; its rows wait in Redis
    after = [ticks.run_tick_now(at) for at in times[13:]]
    assert after[0].drained == 1 and all(r.spooled == 0 for r in after)
    span = {"start": times[0].isoformat(), "end": (times[-1] + (times[1] - times[0])).isoformat()}
    replay = client.post(f"/api/rules/{rule['id']}/replay", json=span).get_json()
    expected = sorted((f["ticker"], f["bar_time"], f["explanation"]) for f in replay["fires"])
    live = [(t, b.isoformat(), x) for t, b, _, x, _ in _events(pg, rule["id"])]
    assert live == expected and any(b == times[12].isoformat() for _, b, _ in live)
