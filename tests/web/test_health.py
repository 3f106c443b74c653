"""/api/health and /api/stream: every part checked for itself, and the stream process's state."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis.asyncio as aredis

from tests.fakes.providers import ScriptedProvider
from tests.helpers import pretend_processes_run, run_async, scripted_services
from webapp import names
from webapp.extensions import get_redis
from webapp.services import context, health, ticks
from webapp.store.streamstate import StreamWriter
from webapp.tick.pipeline import run_tick


def report(url: str, **status) -> None:
    async def go() -> None:
        client = aredis.Redis.from_url(url)
        await StreamWriter(client, 60).flush(status={"provider": "alpaca", "reason": "", **status})
        await client.aclose()
    run_async(go)


def stream_problems(app) -> tuple[list[str], dict]:
    with app.app_context():
        _, body = health.health()
    return [p for p in body["problems"] if p.startswith("stream")], body["checks"]["stream"]


def test_a_stream_the_tick_reads_is_an_outage_when_missing_down_or_silent(make_app, service_urls) -> None:
    app = make_app(MARKET_DATA_PROVIDER="stream", STREAM_ALWAYS_OPEN=True, STREAM_PROVIDER="alpaca",
                   ALPACA_API_KEY_ID="k", ALPACA_API_SECRET_KEY="s")
    problems, check = stream_problems(app)
    assert check["state"] == "not running" and len(problems) == 1 and "jobs.stream" in problems[0]
    report(service_urls[0], state="down", reason="alpaca 402 auth failed")
    assert stream_problems(app)[0] == ["stream down: alpaca 402 auth failed"]
    report(service_urls[0], state="reconnecting", reason="connection closed (1006)", last_data_age_s=42.0)
    assert stream_problems(app)[0] == ["stream reconnecting: connection closed (1006)"]
    report(service_urls[0], state="reconnecting", reason="connection closed (1006)", last_data_age_s=1.0)
    assert stream_problems(app)[0] == []  # a moment's reconnect is not an outage yet
    report(service_urls[0], state="connected", trades_per_s=120.5, symbols_streamed=30, symbols_requested=40,
           unstreamed=["X"], dropped_frames=0)
    problems, check = stream_problems(app)
    assert problems == [] and check["trades_per_s"] == 120.5 and check["unstreamed"] == ["X"]
    report(service_urls[0], state="connected", behind_s=2.5, dropped_frames=0)
    assert stream_problems(app)[0] == []  # a burst's moment behind is not an outage
    report(service_urls[0], state="connected", behind_s=14.2, dropped_frames=0)
    problems, check = stream_problems(app)
    assert check["behind_s"] == 14.2 and problems == [
        "stream: 14 s behind its feed (frames queued); its bars close as their trades are applied, so ticks "
        "and rules wait for them"]


def test_a_stream_nobody_reads_is_reported_but_not_an_outage(make_app) -> None:
    app = make_app()  # MARKET_DATA_PROVIDER=sim: the tick does not need it
    problems, check = stream_problems(app)
    assert problems == [] and check["state"] == "not running"
    off = make_app(STREAM_PROVIDER="none")
    assert stream_problems(off)[1]["state"] == "off"


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


def test_every_endpoint_answers_503_naming_redis_while_it_is_down(make_app) -> None:
    """Not a 500 with a ConnectionError traceback (issue 26, item 4): a 503 JSON that names the part,
    or the answer itself where Postgres alone serves it; pages say it in words."""
    import re

    from tests.helpers import token_for
    from webapp.web.apispec import ENDPOINTS

    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with app.app_context():
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('ops', admin=True)}"
        seen = {}
        for e in ENDPOINTS:
            if e.method != "get":
                continue
            path = e.path.replace("<ticker>", "AAPL").replace("<list_name>", "gainers")
            path = path.replace("<list>", "gainers")
            path = re.sub(r"<\w+_id>", "1", path)
            resp = client.get(path)
            seen[path] = resp.status_code
            assert resp.status_code != 500, (path, resp.get_json())
            if resp.status_code == 503 and path != "/api/health":
                assert resp.get_json()["error"]["code"] == "redis_unavailable", path
                assert "Redis" in resp.get_json()["error"]["message"] and "Retry-After" in resp.headers
        assert seen["/api/stocks"] == 503
        for page in ("/", "/stocks/AAPL", "/scanner", "/alerts"):
            resp = client.get(page)
            assert resp.status_code in (200, 503), (page, resp.status_code)
            if resp.status_code == 503:
                assert "Live data unavailable" in resp.get_data(as_text=True)
