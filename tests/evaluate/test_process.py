"""The evaluate process in this test's hands (real Redis, real Postgres, the real stream writer):
rules fire on the print, once, with the trade that made them true, through crashes and outages."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import redis as redis_lib
import redis.asyncio as aredis

from tests.helpers import START, EmitCapture, minutes, run_async, run_via_rq, user_id
from webapp import names
from webapp.extensions import db, get_redis
from webapp.services import evaluation
from webapp.services import rules as rules_service
from webapp.store import alert_events
from webapp.store import rules as rules_store
from webapp.store.streamstate import StreamWriter
from webapp.store.subscriptions import ListenerRegistry

BAR = int((START + timedelta(minutes=6)).timestamp())  # the bar after the stored ones (its end)
OPEN = BAR - 60


def _stored_close(pg, ticker: str) -> float:
    with pg.cursor() as cur:
        cur.execute("SELECT price FROM quotes WHERE ticker = %s ORDER BY time DESC LIMIT 1", (ticker,))
        return float(cur.fetchone()[0])


def _rule(owner: int, level: float, frequency: str = "once_per_bar", tickers=("AAPL",)) -> int:
    spec = rules_service.rule_spec({
        "name": f"over {level}", "scope": {"tickers": list(tickers)}, "frequency": frequency,
        "cooldown_seconds": 0, "condition": {"op": "crossing_up", "a": {"field": "close"},
                                             "b": {"const": level}}}, owner)
    return rules_store.create(db.session, spec, owner)["id"]


def _flush(url: str, rows: list[list], at_ms: int) -> None:
    async def go() -> None:
        client = aredis.Redis.from_url(url)
        await StreamWriter(client, 3600).flush(provisional=rows, at_ms=at_ms)
        await client.aclose()
    run_async(go)


def _bar(ticker: str, o: float, h: float, lo: float, c: float, last_s: float, high_s: float, low_s: float,
         start: int = OPEN, trades: int = 10) -> list:
    return [ticker, start, o, h, lo, c, 1000.0, trades, int((start + last_s) * 1000),
            int((start + high_s) * 1000), int((start + low_s) * 1000)]


def _events(pg, rule_id: int) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute("SELECT ticker, bar_time, inputs, explanation, source, latency_ms FROM alert_events "
                    "WHERE rule_id = %s ORDER BY id", (rule_id,))
        return cur.fetchall()


@pytest.fixture
def stored(app, pg):
    run_via_rq(app, minutes(6))
    return _stored_close(pg, "AAPL")


def _process(app, host: str = "a"):
    proc = evaluation.evaluator(host)
    proc.symbols_of = lambda: ("AAPL", "MSFT", "KO")
    return proc


def test_a_cross_between_two_hand_offs_fires_once_with_its_trade(app, pg, rdb, stored, service_urls) -> None:
    """The high crossed the level and the price fell back before the next hand-off: the cross is
    judged at the high (when it printed), fires once for the bar, and says which trade made it."""
    owner = user_id("trader")
    level = round(stored + 0.5, 2)
    rid = _rule(owner, level)
    ListenerRegistry(get_redis()).publish({names.user_room(owner)})
    capture = EmitCapture(service_urls[0])
    proc = _process(app)
    try:
        proc.step()  # takes the shard; nothing to read yet
        _flush(service_urls[0], [_bar("AAPL", stored, level + 0.02, stored - 0.01, level - 0.01, 3, 2.417, 1),
                                 _bar("MSFT", 400, 400.5, 399, 400.2, 3, 2, 1)], OPEN * 1000 + 3000)
        assert proc.step() == 1
        got = _events(pg, rid)
        assert len(got) == 1
        ticker, bar_time, inputs, explanation, source, latency = got[0]
        assert ticker == "AAPL" and int(bar_time.timestamp()) == BAR and source == "stream"
        assert inputs["trade_price"] == pytest.approx(level + 0.02)
        assert inputs["trade_time_ms"] == (OPEN + 2.417) * 1000
        assert f"crossed above {level:.2f}" in explanation and "on the print: high" in explanation
        assert latency is not None
        # the same bar again, higher: once_per_bar fires nothing more; nothing is left pending
        _flush(service_urls[0], [_bar("AAPL", stored, level + 0.3, stored - 0.01, level + 0.25, 9, 8, 1,
                                      trades=20)], OPEN * 1000 + 9000)
        assert proc.step() == 1 and len(_events(pg, rid)) == 1
        assert rdb.xpending(names.provisional_stream_key(0, 1), names.EVALUATE_GROUP)["pending"] == 0
        pushed = [d for room, d in capture.events(names.EVENT_ALERT_EVENT) if room == names.user_room(owner)]
    finally:
        capture.close()
        proc.leases.release_all()
    assert len(pushed) == 1 and pushed[0]["rule_id"] == rid
    # the feed and the API place it at its trade, not at the bar's end
    trade = datetime.fromtimestamp(OPEN + 2.417, timezone.utc).isoformat(timespec="milliseconds")
    assert pushed[0]["trade_time"] == trade
    assert alert_events.events(db.session, owner)[0]["trade_time"] == trade


def _killed_at(app, stored: float, url: str, hook: str, frequency: str):
    """A rule of "trader" over AAPL, a page on its feed, and a process that stores its fire for a
    crossing hand-off and dies at ``hook`` ("after_commit" or "after_push"), its lease short so the
    next holder takes over soon: (owner, rule id, the capture of emits, that process)."""
    owner = user_id("trader")
    level = round(stored + 0.5, 2)
    rid = _rule(owner, level, frequency)
    ListenerRegistry(get_redis()).publish({names.user_room(owner)})
    capture = EmitCapture(url)
    first = _process(app, "first")
    first.leases.ttl_ms = 600

    def die() -> None:
        raise SystemExit(f"killed {hook}")

    first.step()
    first.hooks[hook] = die
    _flush(url, [_bar("AAPL", stored, level + 0.1, stored, level + 0.1, 3, 3, 1)], OPEN * 1000)
    with pytest.raises(SystemExit):
        first.step()
    return owner, rid, capture, first


def test_killed_after_its_commit_the_next_holder_pushes_once_and_stores_nothing_twice(
        app, pg, rdb, stored, service_urls) -> None:
    """A process dies between storing a fire and pushing it (its entries unacknowledged): the process
    that takes the shard pushes that event, judges the entries again and stores nothing new."""
    owner, rid, capture, first = _killed_at(app, stored, service_urls[0], "after_commit", "every_time")
    try:
        assert len(_events(pg, rid)) == 1 and capture.events(names.EVENT_ALERT_EVENT) == []
        second = _process(app, "second")
        threading.Event().wait(0.8)  # the first one's lease lapses
        second.step()  # takes the shard: pushes the stored event, claims and judges the entry again
        second.step()
        assert rdb.xpending(names.provisional_stream_key(0, 1), names.EVALUATE_GROUP)["pending"] == 0
        pushed = [d for room, d in capture.events(names.EVENT_ALERT_EVENT) if room == names.user_room(owner)]
        assert len(_events(pg, rid)) == 1
        assert len(pushed) == 1 and pushed[0]["ticker"] == "AAPL"
    finally:
        capture.close()
        first.leases.release_all()


def test_postgres_down_fires_wait_and_are_stored_once_it_is_back(make_app, proxy, pg, service_urls) -> None:
    app = make_app(DATABASE_URL=proxy.url)
    with app.app_context():
        run_via_rq(app, minutes(6))
        stored = _stored_close(pg, "AAPL")
        level = round(stored + 0.5, 2)
        rid = _rule(user_id("trader"), level)
        proc = _process(app)
        try:
            proc.step()
            proc.step()  # the rules read once while Postgres is up
            proxy.cut()
            _flush(service_urls[0], [_bar("AAPL", stored, level + 0.1, stored, level + 0.1, 3, 3, 1)],
                   OPEN * 1000)
            for _ in range(2):  # Postgres down: the batch fails, its entries stay pending
                with pytest.raises(Exception):  # noqa: B017 (DB_DOWN: what the run loop backs off on)
                    proc.step()
            assert _events(pg, rid) == []
            key = names.provisional_stream_key(0, 1)
            assert get_redis().xpending(key, names.EVALUATE_GROUP)["pending"] == 1
            proxy.restore()
            proc.step()
            assert len(_events(pg, rid)) == 1
            proc.step()
            assert len(_events(pg, rid)) == 1
            proc.judged_seconds.over(int(time.time()) + 1)
            assert proc.judged_seconds.drain()
            with pg.cursor() as cur:  # what it judged waited too, and is stored for replays
                cur.execute("SELECT count(*) FROM intrabar_seconds WHERE ticker = 'AAPL'")
                assert cur.fetchone()[0] == 1
        finally:
            proc.leases.release_all()


def test_two_processes_divide_the_shards_and_redis_losing_its_data_is_ridden_out(
        make_app, pg, service_urls) -> None:
    app = make_app(TICK_SHARDS=4)
    with app.app_context():
        a, b = _process(app, "a"), _process(app, "b")
        try:
            a.step()
            b.step()
            a._lease_at = 0  # the next step looks at its share again (a second process joined)
            a.step()
            b._lease_at = 0
            b.step()
            assert len(a.leases.held) == len(b.leases.held) == 2 and not a.leases.held & b.leases.held
            rdb = redis_lib.Redis.from_url(service_urls[0])
            rdb.flushall()  # Redis restarted empty: groups, leases and streams gone
            with pytest.raises(redis_lib.RedisError):
                a.step()
            a._lost_redis()
            a.step()  # takes shards again (b has none registered now) and remakes the groups
            assert a.leases.held
            for s in a.leases.held:
                groups = rdb.xinfo_groups(names.provisional_stream_key(s, 4))
                assert groups[0]["name"] == names.EVALUATE_GROUP.encode()
        finally:
            a.leases.release_all()
            b.leases.release_all()


def test_killed_after_its_push_the_next_holder_pushes_nothing_again(app, pg, rdb, stored,
                                                                    service_urls) -> None:
    """Between the push and recording it in Postgres: the push's own script set the shard's marker,
    so the next holder knows it went out."""
    owner, rid, capture, first = _killed_at(app, stored, service_urls[0], "after_push", "once_per_bar")
    try:
        second = _process(app, "second")
        threading.Event().wait(0.8)
        second.step()
        second.step()
        pushed = [d for room, d in capture.events(names.EVENT_ALERT_EVENT) if room == names.user_room(owner)]
        assert len(_events(pg, rid)) == 1 and len(pushed) == 1
        with pg.cursor() as cur:
            cur.execute("SELECT pushed FROM evaluate_progress")
            assert cur.fetchone()[0] is True
    finally:
        capture.close()
        first.leases.release_all()


def test_a_malformed_hand_off_is_refused_row_by_row_and_the_rest_counts(app, pg, stored, service_urls,
                                                                       caplog) -> None:
    owner = user_id("trader")
    level = round(stored + 0.5, 2)
    rid = _rule(owner, level)
    proc = _process(app)
    try:
        proc.step()
        good = _bar("AAPL", stored, level + 0.1, stored, level + 0.1, 3, 3, 1)
        _flush(service_urls[0], [["AAPL", "x"], ["MSFT", OPEN, 1, 2, 3, 4, 5, 6, 7, 8, 9], good], OPEN * 1000)
        key = names.provisional_stream_key(0, 1)
        get_redis().xadd(key, {"bars": b"{not json"})
        get_redis().xadd(key, {"bars": orjson.dumps([["KO", 1]])})  # as the previous version wrote them
        get_redis().xadd(key, {"tickers": b"KO\nPEP", "cols": b"\x00" * 8 * 14})  # one row's numbers for two
        assert proc.step() == 4  # every entry handled (acknowledged), none stops the process
        assert len(_events(pg, rid)) == 1  # the good row fired
        assert proc.counts["malformed"] == 5
        said = " ".join(r.getMessage() for r in caplog.records)
        for why in ("AAPL has a missing or non-numeric field", "MSFT is not a bar", "bars are not JSON",
                    "a provisional bar is 15 fields", "2 tickers has 112 bytes of columns"):
            assert why in said
    finally:
        proc.leases.release_all()


def test_a_takeover_while_postgres_is_down_pushes_the_dead_holders_batch_once_it_is_back(
        make_app, proxy, pg, service_urls) -> None:
    """The repair of a batch stored and not pushed waits for Postgres; the shard judges nothing new
    meanwhile (a new batch would overwrite the record of the one to push)."""
    app = make_app(DATABASE_URL=proxy.url)
    with app.app_context():
        run_via_rq(app, minutes(6))
        stored = _stored_close(pg, "AAPL")
        owner, rid, capture, first = _killed_at(app, stored, service_urls[0], "after_commit", "every_time")
        try:
            proxy.cut()
            second = _process(app, "second")
            threading.Event().wait(0.8)
            with pytest.raises(Exception):  # noqa: B017 (DB_DOWN: the run loop backs off on it)
                second.step()
            assert second.unrepaired == {0}
            proxy.restore()
            second.step()
            second.step()
            room = names.user_room(owner)
            pushed = [d for r, d in capture.events(names.EVENT_ALERT_EVENT) if r == room]
            assert len(_events(pg, rid)) == 1 and len(pushed) == 1
        finally:
            capture.close()
            first.leases.release_all()


def test_a_replay_judges_the_stored_seconds_and_finds_what_fired_live(app, pg, rdb, stored,
                                                                      service_urls) -> None:
    """Live, the evaluate process fires at a hand-off's high; it stores each ticker's second, and a
    replay of the rule over them finds the same fire (bar, bucket, trade and price), judged on the
    print, while a bar nobody judged on the print is judged at its close, as the tick judged it."""
    owner = user_id("trader")
    level = round(stored + 0.5, 2)
    rid = _rule(owner, level, "every_time")
    proc = _process(app)
    try:
        proc.step()
        # two hand-offs in one second (the first crosses at its high), then a later second that
        # crosses again in the same minute (every_time: at most once a minute: nothing more)
        _flush(service_urls[0],
               [_bar("AAPL", stored, level + 0.02, stored - 0.01, level - 0.01, 3.1, 3.05, 1)],
               OPEN * 1000 + 3100)
        proc.step()
        _flush(service_urls[0], [_bar("AAPL", stored, level + 0.02, stored - 0.01, level - 0.05, 3.6, 3.05, 1,
                                      trades=12)], OPEN * 1000 + 3600)
        proc.step()
        _flush(service_urls[0], [_bar("AAPL", stored, level + 0.2, stored - 0.01, level + 0.1, 7.5, 7.2, 1,
                                      trades=20)], OPEN * 1000 + 7500)
        proc.step()
        time.sleep(1.05)  # the seconds that are over are stored once a second (by a thread)
        proc.step()
        assert proc.judged_seconds.drain()
    finally:
        proc.leases.release_all()
    live = _events(pg, rid)
    assert len(live) == 1
    with pg.cursor() as cur:
        cur.execute("SELECT second, high, high_ms, trades FROM intrabar_seconds WHERE ticker = 'AAPL' "
                    "ORDER BY second")
        assert [(r[0], r[3]) for r in cur.fetchall()] == [(OPEN + 3, 12), (OPEN + 7, 20)]
    rule = rules_store.get(db.session, rid, owner)
    spec = rules_service.rule_spec({k: rule[k] for k in ("name", "scope", "frequency", "cooldown_seconds",
                                                           "condition")}, owner)
    got = rules_service.replay_rule(spec, START, START + timedelta(minutes=8), rid, rule["version"])
    assert got["judged_on_print"] == 1 and got["count"] == 1
    fire = got["fires"][0]
    assert fire["on_print"] and int(fire["inputs"]["trade_time_ms"]) == live[0][2]["trade_time_ms"]
    assert fire["inputs"]["trade_price"] == pytest.approx(live[0][2]["trade_price"])
    assert fire["bar_time"] == live[0][1].isoformat() and fire["explanation"] == live[0][3]
    # the same rule judged at the close where nothing was stored: the minute readings alone
    with pg.cursor() as cur:
        cur.execute("DELETE FROM intrabar_seconds")
    again = rules_service.replay_rule(spec, START, START + timedelta(minutes=8), rid, rule["version"])
    assert again["judged_on_print"] == 0 and all(not f["on_print"] for f in again["fires"])


def test_a_rise_back_after_a_dip_below_the_bars_high_fires_live_and_in_the_replay(app, pg, stored,
                                                                                    service_urls) -> None:
    """``price > level``, true as a bar ends (so not re-armed), stays true as the next bar opens
    (its high); a later hand-off dips below (re-armed), rises above again below the bar's high and
    falls back before the hand-off: live fires at that trade (the segment's high), and the replay
    of the stored seconds finds the same fire."""
    owner = user_id("trader")
    level = round(stored + 0.5, 2)
    spec = rules_service.rule_spec({
        "name": "above", "scope": {"tickers": ["AAPL"]}, "frequency": "once_per_bar", "cooldown_seconds": 0,
        "condition": {"op": "greater_than", "a": {"price": True}, "b": {"const": level}}}, owner)
    rid = rules_store.create(db.session, spec, owner)["id"]
    b = OPEN + 60

    def seg(row: list, hi: float, hi_s: float, lo: float, lo_s: float, start: int) -> list:
        return [*row, hi, int((start + hi_s) * 1000), lo, int((start + lo_s) * 1000)]

    proc = _process(app)
    try:
        proc.step()
        first = _bar("AAPL", stored, level + 0.1, stored, level + 0.1, 5, 5, 0)
        _flush(service_urls[0], [seg(first, level + 0.1, 5, level + 0.1, 5, OPEN)], OPEN * 1000 + 5000)
        proc.step()  # bar A: fires, and ends true
        opened = _bar("AAPL", level + 0.2, level + 0.3, level + 0.2, level + 0.25, 2, 1, 0.5, start=b,
                      trades=3)
        _flush(service_urls[0], [seg(opened, level + 0.3, 1, level + 0.2, 0.5, b)], b * 1000 + 2000)
        proc.step()  # bar B opens above: no edge, nothing
        _flush(service_urls[0], [seg(_bar("AAPL", level + 0.2, level + 0.3, level - 0.4, level - 0.2, 5.5, 1,
                                          3, start=b, trades=9),
                                     level + 0.1, 4, level - 0.4, 3, b)],
               b * 1000 + 5500)
        proc.step()  # dipped at 3 s, back above at 4 s (under the bar's high), below again by 5.5 s
        time.sleep(1.05)
        proc.step()
        assert proc.judged_seconds.drain()
    finally:
        proc.leases.release_all()
    live = _events(pg, rid)
    assert [int(e[1].timestamp()) for e in live] == [OPEN + 60, b + 60]
    assert live[1][2]["trade_time_ms"] == (b + 4) * 1000 and "on the print: trade" in live[1][3]
    got = rules_service.replay_rule(spec, START, START + timedelta(minutes=9), rid, 1)
    on_print = [(f["bar_time"], int(f["inputs"]["trade_time_ms"])) for f in got["fires"] if f["on_print"]]
    assert on_print == [(e[1].isoformat(), e[2]["trade_time_ms"]) for e in live]


@pytest.mark.parametrize("closed_at", ["before it took the shard", "after its first hand-off"])
def test_a_process_that_took_the_shard_over_judges_against_the_bar_the_stream_closed(
        app, pg, stored, service_urls, closed_at) -> None:
    """The tick has not stored the bar before the one judged, and this process saw no hand-off of it
    (it took the shard over): the previous bar is the stream's closed one, not the older stored one
    (whose close, above the level, would hide the cross); until the stream has closed it, the
    shard's batch waits (nothing judged, stored or acknowledged), so the cross fires at the trade
    that made it, not at a later one."""
    owner = user_id("trader")
    level = round(stored - 0.5, 2)  # the last stored close is above it
    rid = _rule(owner, level)
    before = [stored, stored, level - 0.3, level - 0.2, 5000.0, level - 0.1, 40, True, "sim"]

    async def close_the_bar() -> None:
        client = aredis.Redis.from_url(service_urls[0])
        await StreamWriter(client, 3600).flush(bars={BAR: {"AAPL": before}}, closed_until=BAR)
        await client.aclose()
    if closed_at == "before it took the shard":
        run_async(close_the_bar)
    proc = _process(app)
    try:
        proc.step()  # takes the shard
        _flush(service_urls[0], [_bar("AAPL", level - 0.1, level + 0.1, level - 0.15, level + 0.05, 3, 2, 1,
                                      start=BAR)], BAR * 1000 + 3000)
        if closed_at == "after its first hand-off":
            assert proc.step() == 0 and proc.step() == 0  # waits for the previous bar
            assert _events(pg, rid) == [] and proc.counts["previous_bar_waits"] >= 1
            pending = get_redis().xpending(names.provisional_stream_key(0, 1), names.EVALUATE_GROUP)
            assert pending["pending"] == 1  # not acknowledged: a process killed now leaves it to the next
            run_async(close_the_bar)
            time.sleep(0.3)  # past the pause between tries
        assert proc.step() == 1
    finally:
        proc.leases.release_all()
    got = _events(pg, rid)
    assert [(t, int(b.timestamp())) for t, b, *_ in got] == [("AAPL", BAR + 60)]
    assert f"{level - 0.2:.2f}" in got[0][3]  # the previous close it crossed from
    assert got[0][2]["trade_time_ms"] == (BAR + 2) * 1000  # the first hand-off's high: the trade that crossed


def test_a_shard_waits_for_the_previous_bar_only_so_long(app, pg, stored, service_urls, monkeypatch,
                                                         caplog) -> None:
    """Neither the tick nor the stream ever gives the bar before: after PREVIOUS_BAR_WAIT_SECONDS
    the batch is judged without it (an older bar as ``x[1]``), and the log says so once."""
    from webapp.evaluate import process

    monkeypatch.setattr(process, "PREVIOUS_BAR_WAIT_SECONDS", 0.5)
    owner = user_id("trader")
    rid = _rule(owner, round(stored + 0.5, 2))
    proc = _process(app)
    try:
        proc.step()
        _flush(service_urls[0], [_bar("AAPL", stored, stored + 1, stored - 0.1, stored + 0.6, 3, 2, 1,
                                      start=BAR)], BAR * 1000 + 3000)
        assert proc.step() == 0
        time.sleep(0.6)
        assert proc.step() == 1  # judged now, against the older stored bar (its close below the level)
        _flush(service_urls[0], [_bar("AAPL", stored, stored + 1, stored - 0.1, stored + 0.7, 5, 2, 1,
                                      start=BAR, trades=12)], BAR * 1000 + 5000)
        assert proc.step() == 1  # the same bar's next batch does not wait again
    finally:
        proc.leases.release_all()
    assert len(_events(pg, rid)) == 1
    said = [r.getMessage() for r in caplog.records if "without the bar before it" in r.getMessage()]
    assert len(said) == 1
