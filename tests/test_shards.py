"""A tick split into shards run as separate RQ jobs: nothing lost, nothing twice."""
from __future__ import annotations

from datetime import timedelta

from rq import Queue, SimpleWorker

from tests.helpers import EmitCapture
from tests.test_pipeline import START, hot_state, minutes, stored_alerts, stored_quotes
from webapp import names
from webapp.config import DEFAULT_SYMBOLS
from webapp.core.shards import shard_of, split
from webapp.extensions import get_redis
from webapp.subscriptions import ListenerRegistry


def test_split_is_stable_disjoint_and_complete() -> None:
    parts = split(DEFAULT_SYMBOLS, 3)
    assert sorted(t for p in parts for t in p) == sorted(DEFAULT_SYMBOLS)
    assert all(shard_of(t, 3) == i for i, p in enumerate(parts) for t in p)
    assert split(DEFAULT_SYMBOLS, 1) == [list(DEFAULT_SYMBOLS)]


def run_sharded(app, times) -> None:
    conn = get_redis()
    queue = Queue(app.config["TRACKER"].QUEUE_NAME, connection=conn)
    for t in times:
        queue.enqueue("jobs.tick.tick", t.isoformat())
    SimpleWorker([queue], connection=conn).work(burst=True)  # runs the ticks, then their shards


def test_sharded_ticks_match_an_unsharded_run(make_app, rdb, pg, service_urls) -> None:
    whole = make_app()
    with whole.app_context():
        run_sharded(whole, minutes(7))
        control = (stored_quotes(pg), stored_alerts(pg), hot_state(rdb, DEFAULT_SYMBOLS))
    rdb.flushdb()
    with pg.cursor() as cur:
        cur.execute("TRUNCATE quotes, alerts")

    app = make_app(TICK_SHARDS=3)
    with app.app_context():
        ListenerRegistry(get_redis()).joined(list(DEFAULT_SYMBOLS))
        run_sharded(app, minutes(6))
        capture = EmitCapture(service_urls[0])
        try:
            run_sharded(app, [START + timedelta(minutes=6)])
            updates = capture.events(names.EVENT_STOCK_UPDATE)
            quotes = capture.events(names.EVENT_QUOTE)
            before = len(capture.settle())
            # a shard run again (a retry) adds nothing and announces nothing
            conn = get_redis()
            queue = Queue(app.config["TRACKER"].QUEUE_NAME, connection=conn)
            queue.enqueue("jobs.tick.tick_shard", (START + timedelta(minutes=6)).isoformat(), 1, 3)
            SimpleWorker([queue], connection=conn).work(burst=True)
            after = len(capture.settle())
        finally:
            capture.close()
        sharded = (stored_quotes(pg), stored_alerts(pg), hot_state(rdb, DEFAULT_SYMBOLS))
    assert sharded == control  # same rows, alerts, windows and documents as one process
    assert len(updates) == 1 and len(updates[0][1]["stocks"]) == 15  # announced once, complete
    assert sorted(q["ticker"] for _, q in quotes) == sorted(DEFAULT_SYMBOLS)  # each once
    assert after == before
