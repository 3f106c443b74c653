"""The scanner through the real pipeline, Redis and Postgres."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from tests.conftest import utc
from tests.fakes.providers import ScriptedProvider
from tests.helpers import START, EmitCapture, minutes, run_via_rq, scripted_services
from webapp import names
from webapp.core.quotes import Quote
from webapp.core.scanner import LISTS
from webapp.core.scanner_live import LIVE_LISTS
from webapp.core.tables import unpack
from webapp.extensions import db, get_redis
from webapp.services import scanner
from webapp.store import quotes as quotes_store
from webapp.store import tick_write
from webapp.store.subscriptions import ListenerRegistry
from webapp.tick.pipeline import run_tick

TICKERS = ["AAA", "BBB", "CCC", "DDD", "EEE"]


def q(ticker, price, at, volume=1000, prev_close=10.0, day_open=10.0) -> Quote:
    return Quote(ticker, price, at, volume, prev_close, day_open, None, None, "script")


def ranked(rdb, name) -> list[tuple[str, float]]:
    return [(t.decode(), -s) for t, s in rdb.zrange(names.scan_list_key(name), 0, -1, withscores=True)]


@pytest.fixture
def scripted(make_app):
    app = make_app(SYMBOLS=tuple(TICKERS), UNUSUAL_VOLUME_BARS=5, UNUSUAL_VOLUME_MIN_BARS=3)
    with app.app_context():
        provider = ScriptedProvider()
        yield scripted_services(app, provider), provider, app


def test_lists_deltas_and_in_play_through_the_pipeline(scripted, rdb, service_urls) -> None:
    svc, provider, app = scripted
    ListenerRegistry(get_redis()).publish(["CCC"])  # someone watches CCC
    times = minutes(5)
    capture = EmitCapture(service_urls[0])
    try:
        for i, at in enumerate(times[:4]):
            provider.next = [
                q("AAA", 10.5 + i * 0.1, at),  # +5 % and rising
                q("BBB", 9.0, at, day_open=9.6),  # -10 %, gapped down 4 %
                q("CCC", 10.1, at),  # +1 %
                q("DDD", 0.5, at, prev_close=0.4, day_open=0.4),  # +25 % but under the $1 minimum
                q("EEE", 10.0, at),  # flat: on no list
            ]
            run_tick(svc, TICKERS, at)
        # minute 5: CCC trades 10x its recent volume and jumps above AAA; AAA goes stale
        provider.next = [q("BBB", 9.0, times[4], day_open=9.6), q("CCC", 11.5, times[4], volume=10_000),
                         q("DDD", 0.5, times[4], prev_close=0.4, day_open=0.4),
                         q("EEE", 10.0, times[4])]
        provider.problems = {"AAA": "no data"}
        run_tick(svc, TICKERS, times[4])
        updates = capture.events(names.EVENT_SCAN_UPDATE)
        in_play = capture.events(names.EVENT_IN_PLAY)
        quotes = capture.events(names.EVENT_QUOTE)
    finally:
        capture.close()

    # AAA's fetch failed: it is stale now and ranks nowhere, whatever it last did
    assert [t for t, _ in ranked(rdb, "gainers")] == ["CCC"]
    assert ranked(rdb, "gainers")[0][1] == pytest.approx(15.0)
    assert [t for t, _ in ranked(rdb, "losers")] == ["BBB"]
    assert [t for t, _ in ranked(rdb, "gappers")] == ["BBB"]
    assert [t for t, _ in ranked(rdb, "unusual_volume")] == ["CCC"]
    assert [t for t, _ in ranked(rdb, "new_highs")] == ["CCC"]

    fresh = scanner.scanner_list("gainers", 10, now=times[4] + timedelta(seconds=5))
    assert [r["ticker"] for r in fresh["rows"]] == ["CCC"] and fresh["stale"] is False
    # minutes later with no tick, the same list says it is stale
    later = scanner.scanner_list("gainers", 10, now=times[4] + timedelta(minutes=4))
    assert later["stale"] is True and later["rows"] == fresh["rows"]
    row = fresh["rows"][0]
    assert row["day_volume"] == 14_000 and row["vol_ratio"] == 10.0 and row["unusual"]
    assert row["vwap"] == pytest.approx((10.1 * 4000 + 11.5 * 10_000) / 14_000, abs=1e-4)

    by_list = {}
    for room, payload in updates:
        assert room == names.scan_room(payload["list"])
        by_list.setdefault(payload["list"], []).append(payload)
    # a list is sent on the first tick and then only when it changed (unusual volume:
    # empty until CCC's spike)
    assert sorted(by_list) == sorted(LISTS) and len(by_list["gainers"]) == 5
    assert len(by_list["unusual_volume"]) == 2 and by_list["unusual_volume"][1]["prev_seq"] == \
        by_list["unusual_volume"][0]["seq"]
    first, *rest = by_list["gainers"]
    assert first["full"] and [r["ticker"] for r in first["rows"]] == ["AAA", "CCC"]
    # minute 2: AAA's price rose to a new high, CCC only traded: only changed fields travel
    assert rest[0]["full"] is False and "order" not in rest[0] and rest[0]["add"] == []
    assert [set(u) for u in rest[0]["update"]] == [
        {"ticker", "price", "change_pct", "value", "time", "day_volume", "vwap", "new_high"},
        {"ticker", "time", "day_volume"}]
    last = rest[-1]
    assert last["order"] == ["CCC"] and last["remove"] == ["AAA"] and last["prev_seq"] == rest[-2]["seq"]
    # CCC entered unusual volume and new highs: its watchers hear it; nobody else's room gets in_play
    assert [(room, p["lists"]) for room, p in in_play][-1] == (
        "ticker:CCC", ["unusual_volume#1", "new_highs#1"])
    assert {room for room, _ in in_play} == {"ticker:CCC"}
    assert quotes[-1][1]["scan"]["unusual"] is True


@pytest.mark.parametrize("lost", ["flushed", "unreadable"])
def test_scan_state_is_rebuilt_from_postgres_after_redis_is_lost(make_app, rdb, pg, lost) -> None:
    app = make_app(UNUSUAL_VOLUME_MIN_BARS=3)
    with app.app_context():
        run_via_rq(app, minutes(8))
        _, control, _ = unpack(rdb.get(names.scan_table_key()))
        control = {k: np.array(v) for k, v in control.items()}
        control_lists = {n: ranked(rdb, n) for n in LISTS}
    rdb.flushdb()
    with pg.cursor() as cur:
        cur.execute("TRUNCATE quotes, alerts")
    with app.app_context():
        run_via_rq(app, minutes(7))
        if lost == "flushed":  # a Redis restart
            rdb.flushdb()
        else:  # garbage under the key: counted as lost, not fatal
            rdb.set(names.scan_table_key(), b'{"tickers": 7}\n')
        run_via_rq(app, [START + timedelta(minutes=7)])
        _, table, _ = unpack(rdb.get(names.scan_table_key()))
    for name, column in control.items():
        assert np.allclose(table[name], column, equal_nan=True, rtol=1e-12), name
    assert {n: [t for t, _ in ranked(rdb, n)] for n in LISTS} == {
        n: [t for t, _ in v] for n, v in control_lists.items()}


def test_rvol_compares_with_the_same_minute_of_earlier_sessions(scripted, pg) -> None:
    svc, provider, app = scripted
    today = utc("2026-11-20T15:00:00")  # Friday 10:00 New York
    # Wed 18 and Thu 19: AAA traded 100 then 300 at 09:59 and 10:00; BBB only on Thursday
    rows = []
    for day, (v1, v2) in (("2026-11-18", (100, 300)), ("2026-11-19", (200, 200))):
        for minute, vol in ((utc(f"{day}T14:59:00"), v1), (utc(f"{day}T15:00:00"), v2)):
            rows.append(quotes_store.QuoteRow(q("AAA", 10.0, minute, vol), None))
            if day == "2026-11-19":
                rows.append(quotes_store.QuoteRow(q("BBB", 10.0, minute, 50), None))
    tick_write.insert_tick(db.session, rows, [])
    built = scanner.build_volume_profile(today)
    assert built["symbols"] == 2 and built["sessions"][-2:] == ["2026-11-18", "2026-11-19"]
    assert scanner.build_volume_profile(today)["skipped"] == "already built"  # safe twice

    provider.next = [q("AAA", 10.0, today - timedelta(minutes=1), 150),
                     q("BBB", 10.0, today - timedelta(minutes=1), 100)]
    run_tick(svc, ["AAA", "BBB"], today - timedelta(minutes=1))
    provider.next = [q("AAA", 10.5, today, 450), q("BBB", 10.5, today, 100)]
    run_tick(svc, ["AAA", "BBB"], today)
    rows_ = {r["ticker"]: r for r in scanner.scanner_list("gainers", 5, now=today)["rows"]}
    # AAA: 600 so far vs the average of (100+300, 200+200) = 400 at 10:00 -> 1.5, over 2 sessions
    assert rows_["AAA"]["rvol"] == 1.5 and rows_["AAA"]["rvol_sessions"] == 2
    # BBB: 200 vs its one session's 100 -> 2.0, and it says it rests on one session
    assert rows_["BBB"]["rvol"] == 2.0 and rows_["BBB"]["rvol_sessions"] == 1


def test_scanner_api_contract_filters_and_refusals(scripted, rdb) -> None:
    from tests.helpers import check

    svc, provider, app = scripted
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    for at in (now - timedelta(minutes=1), now):  # real time: the API judges freshness by the clock
        provider.next = [q("AAA", 10.5, at, 500_000), q("BBB", 20.0, at, 1000, prev_close=19.0),
                         q("CCC", 10.2, at, 10)]
        run_tick(svc, TICKERS, at)
    client = app.test_client()
    spec = client.get("/api/openapi.json").get_json()
    body = check(spec, "/api/scanner/{list_name}", client.get("/api/scanner/gainers"))
    assert [r["ticker"] for r in body["rows"]] == ["BBB", "AAA", "CCC"] and body["stale"] is False
    body = check(spec, "/api/scanner/{list_name}",
                 client.get("/api/scanner/gainers?min_volume=5000&max_price=15"))
    assert [r["ticker"] for r in body["rows"]] == ["AAA"]
    assert body["filters"] == {"min_price": 1.0, "max_price": 15.0, "min_volume": 5000.0, "min_rvol": None}
    body = check(spec, "/api/scanner/{list_name}", client.get("/api/scanner/gainers?limit=1"))
    assert [r["ticker"] for r in body["rows"]] == ["BBB"]
    index = check(spec, "/api/scanner", client.get("/api/scanner"))
    assert [x["name"] for x in index["lists"]] == [*LISTS, *LIVE_LISTS]
    for query, needle in (("limit=0", "limit"), ("min_rvol=-1", "min_rvol"),
                          ("sort=x", "unknown parameter"), ("min_price=5&max_price=1", "must not exceed")):
        resp = client.get(f"/api/scanner/gainers?{query}")
        assert resp.status_code == 400 and needle in resp.get_json()["error"]["message"]
    resp = client.get("/api/scanner/winners")
    assert resp.status_code == 404 and "one of gainers" in resp.get_json()["error"]["message"]
    assert rdb.exists(names.scan_list_key("gainers"))  # refusals touched nothing
