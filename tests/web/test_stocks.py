"""JSON endpoints against real Redis and Postgres."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.fakes.providers import ScriptedProvider
from tests.helpers import START, check, minutes, pretend_processes_run, scripted_services
from webapp import names
from webapp.config import DEFAULT_SYMBOLS
from webapp.core.quotes import Quote
from webapp.extensions import get_redis
from webapp.services import context, health, ticks
from webapp.tick.pipeline import run_tick


def test_stocks_before_and_after_a_tick(app) -> None:
    client = app.test_client()
    body = client.get("/api/stocks").get_json()
    assert body["stocks"] == [] and body["awaiting_first_reading"] == list(DEFAULT_SYMBOLS)
    assert body["market"]["exchange"] == "XNYS" and body["market"]["state"] in ("open", "closed")

    ticks.run_tick_now()
    body = client.get("/api/stocks").get_json()
    assert [s["ticker"] for s in body["stocks"]] == list(DEFAULT_SYMBOLS)
    for s in body["stocks"]:
        assert s["price"] > 0 and s["sma"] is None and s["stale"] is False
        assert "sma_total" not in s and "t" not in s  # internals stay internal
    assert body["last_tick"]["accepted"] == 15


def test_health_names_what_is_wrong(app) -> None:
    client = app.test_client()
    resp = client.get("/api/health")
    assert resp.status_code == 503
    problems = resp.get_json()["problems"]
    assert "scheduler: no heartbeat (is the scheduler process running?)" in problems
    assert any(p.startswith("worker: no RQ worker") for p in problems)
    assert any(p.startswith("pipeline: no tick recorded") for p in problems)

    pretend_processes_run(app)
    ticks.run_tick_now(datetime.now(timezone.utc))
    resp = client.get("/api/health")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["checks"]["redis"] == "ok" and body["checks"]["postgres"] == "ok"
    assert body["checks"]["last_tick"]["age_seconds"] < 5 and body["checks"]["workers"] == 1


def test_health_names_the_right_part_for_each_fault(app) -> None:
    client = app.test_client()
    pretend_processes_run(app)
    cfg = context.config()
    ticks.run_tick_now(datetime.now(timezone.utc))
    assert client.get("/api/health").status_code == 200
    # the tick job vanished (a FLUSHALL the scheduler has not repaired yet): the scheduler is blamed
    get_redis().zrem("rq:scheduler:scheduled_jobs", names.TICK_JOB_ID)
    problems = client.get("/api/health").get_json()["problems"]
    assert problems and all(p.startswith("scheduler: running, but the tick job is not registered")
                            for p in problems)
    pretend_processes_run(app)
    # a stall: the last tick is older than about two ticks
    ok, body = health.health(datetime.now(timezone.utc) + timedelta(seconds=2 * cfg.TICK_SECONDS + 15))
    assert not ok and any(p.startswith("pipeline: last tick ran") for p in body["problems"])
    # the provider serves nothing usable while it should
    provider = ScriptedProvider()
    provider.problems = {t: "provider timestamp unchanged" for t in context.tracked_symbols()}
    run_tick(scripted_services(app, provider), list(context.tracked_symbols()),
             datetime.now(timezone.utc) + timedelta(minutes=1))
    problems = health.health(datetime.now(timezone.utc) + timedelta(minutes=1))[1]["problems"]
    assert problems == ["provider: the last tick accepted no fresh reading of 15 (15 marked stale)"]


def test_health_is_503_when_redis_is_unreachable(make_app) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with app.app_context():
        resp = app.test_client().get("/api/health")
    body = resp.get_json()
    assert resp.status_code == 503
    assert body["checks"]["redis"].startswith("error")
    assert any(p.startswith("redis:") for p in body["problems"])
    assert body["checks"]["postgres"] == "ok"


def test_api_errors_are_json(app) -> None:
    client = app.test_client()
    resp = client.get("/api/nothing-here")
    assert resp.status_code == 404 and resp.is_json
    assert resp.get_json()["error"]["code"] == "not_found"
    resp = client.post("/api/stocks")
    assert resp.status_code == 405 and resp.get_json()["error"]["code"] == "method_not_allowed"


# ---- contract and pagination ----



@pytest.fixture
def seeded(app):
    for at in minutes(12):
        ticks.run_tick_now(at)
    return app.test_client()


def test_every_endpoint_matches_the_openapi_document(seeded) -> None:
    client = seeded
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == {"/api/stocks", "/api/stocks/{ticker}", "/api/stocks/{ticker}/history",
                                  "/api/stocks/{ticker}/chart", "/api/backfill/{ticker}", "/api/search",
                                  "/api/watchlists", "/api/watchlists/{list_id}",
                                  "/api/watchlists/{list_id}/tickers",
                                  "/api/watchlists/{list_id}/tickers/{ticker}", "/api/me", "/api/me/settings",
                                  "/api/alerts", "/api/health", "/api/symbols", "/api/symbols/{ticker}",
                                  "/api/scanner", "/api/scanner/{list_name}", "/api/stream",
                                  "/api/rules", "/api/rules/{rule_id}", "/api/rules/replay",
                                  "/api/rules/{rule_id}/replay", "/api/alert-events",
                                  "/api/alert-events/{event_id}", "/api/deliveries/{delivery_id}/redeliver",
                                  "/api/webhooks", "/api/webhooks/{webhook_id}",
                                  "/api/webhooks/{webhook_id}/rotate"}
    assert spec["paths"]["/api/symbols"]["post"]["security"] == [{"bearerToken": []},
                                                              {"sessionCookie": [], "csrfHeader": []}]
    check(spec, "/api/stocks", client.get("/api/stocks"))
    detail = check(spec, "/api/stocks/{ticker}", client.get("/api/stocks/brk.b"))
    assert detail["ticker"] == "BRK.B" and len(detail["window"]) == 5
    check(spec, "/api/stocks/{ticker}/history", client.get("/api/stocks/AAPL/history"))
    check(spec, "/api/stocks/{ticker}/history", client.get("/api/stocks/AAPL/history?interval=5m"))
    check(spec, "/api/alerts", client.get("/api/alerts"))
    check(spec, "/api/health", client.get("/api/health"), 503)  # no scheduler in this test
    stream = check(spec, "/api/stream", client.get("/api/stream"))
    assert stream["state"] == "not running" and "jobs.stream" in stream["reason"]  # none runs here
    check(spec, "/api/stocks/{ticker}", client.get("/api/stocks/NOPE"), 404)
    check(spec, "/api/stocks/{ticker}/history", client.get("/api/stocks/AAPL/history?limit=0"), 400)
    html = client.get("/api/docs").get_data(as_text=True)
    assert "/api/stocks/{ticker}/history" in html and "https://cdn" not in html


@pytest.mark.parametrize(
    "query, needle",
    [
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=ten", "limit: Input should be a valid integer"),
        ("interval=2m", "interval: Input should be"),
        ("start=yesterday", "start: Value error, expected ISO 8601 or unix seconds"),
        ("colour=red", "colour: unknown parameter"),
        ("cursor=bm9wZQ", "cursor: not a cursor this endpoint issued"),
        ("start=2026-11-20T16:00:00Z&end=2026-11-20T15:00:00Z", "start: must be before end"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(seeded, query, needle) -> None:
    resp = seeded.get(f"/api/stocks/AAPL/history?{query}")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_parameter"
    assert needle in resp.get_json()["error"]["message"]


def test_odd_but_valid_times_are_not_server_errors(seeded) -> None:
    # found by schemathesis: Postgres refuses offsets beyond ±15:59, Python allows ±24 h
    resp = seeded.get("/api/alerts?since=1360-11-09T03:59:11.451814%2B20:26")
    assert resp.status_code == 200
    resp = seeded.get("/api/alerts?since=0001-01-01T00:00:00%2B23:00")
    assert resp.status_code == 400 and "out of range" in resp.get_json()["error"]["message"]


def walk(client, url: str, key: str) -> list[dict]:
    items, cursor, pages = [], None, 0
    while True:
        resp = client.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()
        items += resp[key]
        pages += 1
        cursor = resp["next_cursor"]
        if cursor is None:
            return items, pages


def test_history_pages_walk_every_row_once(seeded) -> None:
    everything = seeded.get("/api/stocks/AAPL/history?limit=5000").get_json()["items"]
    assert len(everything) == 12 and everything[0]["time"] == START.isoformat()
    for limit in (1, 5, 6, 12):  # 12 divides exactly: one more, empty page ends the walk
        items, pages = walk(seeded, f"/api/stocks/AAPL/history?limit={limit}", "items")
        assert items == everything
        assert pages == 12 // limit + 1 if 12 % limit == 0 else pages == -(-12 // limit)
    window = seeded.get(f"/api/stocks/AAPL/history?start={int(START.timestamp()) + 120}"
                        "&end=2026-11-20T15:05:00Z").get_json()["items"]
    assert [i["time"][11:16] for i in window] == ["15:02", "15:03", "15:04"]


def test_bars_are_ohlcv_of_the_points(seeded) -> None:
    points = seeded.get("/api/stocks/AAPL/history").get_json()["items"]
    bars = seeded.get("/api/stocks/AAPL/history?interval=5m").get_json()["items"]
    assert [b["count"] for b in bars] == [5, 5, 2]
    # a reading is one price: each minute runs from the day's previous reading to it
    for n, (bar, chunk) in enumerate(zip(bars, [points[0:5], points[5:10], points[10:12]], strict=True)):
        opened = points[5 * n - 1]["price"] if n else chunk[0]["price"]
        prices = [opened, *(p["price"] for p in chunk)]
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
            opened, max(prices), min(prices), prices[-1])
        assert bar["volume"] == sum(p["volume"] for p in chunk)
        assert bar["time"] == chunk[0]["time"]
    day = seeded.get("/api/stocks/AAPL/history?interval=1d").get_json()["items"]
    assert len(day) == 1 and day[0]["time"] == "2026-11-20T05:00:00+00:00"  # New York midnight


def test_alert_pages_and_filters(app) -> None:
    provider = ScriptedProvider()
    svc = scripted_services(app, provider)
    series = [10, 10, 10, 10, 10, 12, 8, 12, 8, 12, 8]  # alternating crosses from the 6th on
    for at, p in zip(minutes(len(series)), series, strict=True):
        provider.next = [Quote("AAPL", p, at, 1, source="script"),
                         Quote("KO", 50.0 + p, at, 1, source="script")]
        run_tick(svc, ["AAPL", "KO"], at)
    client = app.test_client()
    everything = client.get("/api/alerts?limit=500").get_json()["alerts"]
    assert len(everything) == 12 and everything[0]["time"] > everything[-1]["time"]
    items, _ = walk(client, "/api/alerts?limit=5", "alerts")
    assert items == everything
    bullish = client.get("/api/alerts?kind=bullish&ticker=aapl").get_json()["alerts"]
    assert {a["kind"] for a in bullish} == {"bullish"} and {a["ticker"] for a in bullish} == {"AAPL"}
    since = client.get(f"/api/alerts?since={int(START.timestamp()) + 9 * 60}").get_json()["alerts"]
    assert len(since) == 4


def test_every_endpoint_refuses_unknown_parameters(seeded) -> None:
    for path in ("/api/stocks", "/api/stocks/AAPL", "/api/symbols", "/api/health", "/api/scanner",
                 "/api/alerts", "/api/stocks/AAPL/history", "/api/scanner/gainers"):
        resp = seeded.get(path + "?foo=1")
        assert resp.status_code == 400, path
        assert resp.get_json()["error"] == {"code": "bad_parameter", "message": "foo: unknown parameter"}


def test_stocks_takes_a_tickers_filter(seeded) -> None:
    body = seeded.get("/api/stocks?tickers=aapl,BRK.B").get_json()
    assert [s["ticker"] for s in body["stocks"]] == ["AAPL", "BRK.B"]
    assert seeded.get("/api/stocks?tickers=").get_json()["stocks"].__len__() == 15  # empty: no filter
    bad = seeded.get("/api/stocks?tickers=AAPL,NOPE")
    assert bad.status_code == 404 and "not tracked: NOPE" in bad.get_json()["error"]["message"]
    worse = seeded.get("/api/stocks?tickers=AAPL,$$")
    assert worse.status_code == 400 and worse.get_json()["error"]["message"].startswith("tickers: ")
    long = seeded.get("/api/stocks?tickers=AAPL,ABCDEFGHIJKL")
    assert long.status_code == 400 and long.get_json()["error"]["message"].startswith("tickers: ")


def test_an_empty_parameter_means_no_bound(seeded) -> None:
    """What a browser form sends for empty boxes: min_price=100&max_price=&min_volume=&min_rvol="""
    resp = seeded.get("/api/scanner/gainers?min_price=100&max_price=&min_volume=&min_rvol=")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["filters"]["min_price"] == 100 and body["filters"]["max_price"] is None
    assert all(r["price"] >= 100 for r in body["rows"])
    assert seeded.get("/api/stocks/AAPL/history?limit=").status_code == 200
