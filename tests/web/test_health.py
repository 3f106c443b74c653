"""Health and /api/stream say what the stream process is doing, and when that is an outage."""
from __future__ import annotations

import redis.asyncio as aredis

from tests.helpers import run_async
from webapp.services import health
from webapp.store.streamstate import StreamWriter


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


def test_a_stream_nobody_reads_is_reported_but_not_an_outage(make_app) -> None:
    app = make_app()  # MARKET_DATA_PROVIDER=sim: the tick does not need it
    problems, check = stream_problems(app)
    assert problems == [] and check["state"] == "not running"
    off = make_app(STREAM_PROVIDER="none")
    assert stream_problems(off)[1]["state"] == "off"
