"""JSON endpoints against real Redis and Postgres."""
from __future__ import annotations

from datetime import datetime, timezone

from jobs.scheduler import make_scheduler
from webapp import services
from webapp.config import DEFAULT_SYMBOLS
from webapp.extensions import get_redis


def test_stocks_before_and_after_a_tick(app) -> None:
    client = app.test_client()
    body = client.get("/api/stocks").get_json()
    assert body["stocks"] == [] and body["awaiting_first_reading"] == list(DEFAULT_SYMBOLS)
    assert body["market"]["exchange"] == "XNYS" and body["market"]["state"] in ("open", "closed")

    services.run_tick_now()
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
    assert any(p.startswith("scheduler:") for p in problems)
    assert any(p.startswith("pipeline: no tick") for p in problems)

    cfg = services.config()
    make_scheduler(get_redis(), cfg).heartbeat()
    services.run_tick_now(datetime.now(timezone.utc))
    resp = client.get("/api/health")
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["checks"]["redis"] == "ok" and body["checks"]["postgres"] == "ok"
    assert body["checks"]["last_tick"]["age_seconds"] < 5


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
