"""A tick split into shards run as separate RQ jobs: nothing lost, nothing twice."""
from __future__ import annotations

from datetime import timedelta

import orjson
from rq import Queue, SimpleWorker

from tests.helpers import START, EmitCapture, hot_state, minutes, stored_alerts, stored_quotes
from webapp import names
from webapp.config import DEFAULT_SYMBOLS
from webapp.core.scanner import LISTS
from webapp.core.shards import shard_of, split
from webapp.extensions import get_redis
from webapp.store.subscriptions import ListenerRegistry


def test_split_is_stable_disjoint_and_complete() -> None:
    parts = split(DEFAULT_SYMBOLS, 3)
    assert sorted(t for p in parts for t in p) == sorted(DEFAULT_SYMBOLS)
    assert all(shard_of(t, 3) == i for i, p in enumerate(parts) for t in p)
    assert split(DEFAULT_SYMBOLS, 1) == [list(DEFAULT_SYMBOLS)]


def scan_state(rdb):
    lists = {n: rdb.zrange(names.scan_list_key(n), 0, -1, withscores=True) for n in LISTS}
    announced = orjson.loads(rdb.get(names.SCAN_ANNOUNCED_KEY))
    return lists, {n: a["rows"] for n, a in announced.items()}


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
        control_scan = scan_state(rdb)
    rdb.flushdb()
    with pg.cursor() as cur:
        cur.execute("TRUNCATE quotes, alerts")

    app = make_app(TICK_SHARDS=3)
    with app.app_context():
        ListenerRegistry(get_redis()).publish(list(DEFAULT_SYMBOLS))
        run_sharded(app, minutes(6))
        capture = EmitCapture(service_urls[0])
        try:
            run_sharded(app, [START + timedelta(minutes=6)])
            updates = capture.events(names.EVENT_STOCK_UPDATE)
            quotes = capture.events(names.EVENT_QUOTE)
            scan_updates = capture.events(names.EVENT_SCAN_UPDATE)
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
        sharded_scan = scan_state(rdb)
    assert sharded == control  # same rows, alerts, windows and documents as one process
    assert len(updates) == 1 and len(updates[0][1]["stocks"]) == 15  # announced once, complete
    assert sorted(q["ticker"] for _, q in quotes) == sorted(DEFAULT_SYMBOLS)  # each once
    assert after == before
    # the lists combine every shard's symbols: the same as one process ranked them
    assert sharded_scan == control_scan and any(control_scan[0].values())
    sent = [u["list"] for _, u in scan_updates]
    assert "gainers" in sent and len(sent) == len(set(sent)) and set(sent) <= set(LISTS)  # once each
