"""/api/alerts: the built-in SMA crossover alerts, paged and filtered."""
from __future__ import annotations

from tests.fakes.providers import ScriptedProvider
from tests.helpers import START, minutes, scripted_services, walk
from webapp.core.quotes import Quote
from webapp.tick.pipeline import run_tick


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
