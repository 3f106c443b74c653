"""Alpaca and Polygon snapshot providers against a local server in their wire formats."""
from __future__ import annotations

import logging

import pytest
import redis

from tests.conftest import utc
from tests.fakes.snapshot_server import FakeSnapshots
from webapp import names
from webapp.config import Config
from webapp.providers import alpaca as alpaca_module
from webapp.providers import get_provider

NOW = utc("2026-11-20T15:01:05")
ALPACA_HEADERS = {"APCA-API-KEY-ID": "AKTESTKEY", "APCA-API-SECRET-KEY": "secret-abc-123"}
POLYGON_HEADERS = {"Authorization": "Bearer pk-test-456"}


def build(kind: str, url: str, service_urls, sleeps: list) -> object:
    env = {"MARKET_DATA_PROVIDER": kind, "REDIS_URL": service_urls[0], "SNAPSHOT_TIMEOUT_SECONDS": "0.5",
           "ALPACA_API_KEY_ID": "AKTESTKEY", "ALPACA_API_SECRET_KEY": "secret-abc-123",
           "ALPACA_BASE_URL": url, "POLYGON_API_KEY": "pk-test-456", "POLYGON_BASE_URL": url}
    provider = get_provider(Config.from_env(env), redis.Redis.from_url(service_urls[0]))
    provider.http._sleep = sleeps.append  # record instead of waiting
    return provider


def served(kind: str, headers: dict[str, str], service_urls):
    """(fake server, provider pointed at it, recorded sleeps); closes the server after."""
    server = FakeSnapshots(headers)
    sleeps: list = []
    yield server, build(kind, server.url, service_urls, sleeps), sleeps
    server.close()


@pytest.fixture
def alpaca(service_urls, clean):
    yield from served("alpaca", ALPACA_HEADERS, service_urls)


@pytest.fixture
def polygon(service_urls, clean):
    yield from served("polygon", POLYGON_HEADERS, service_urls)


def test_alpaca_recorded_snapshots(alpaca, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server, provider, _ = alpaca
    result = provider.fetch(["AAPL", "MSFT", "BRK.B", "NOPE"], NOW, {})
    by = {q.ticker: q for q in result.quotes}
    aapl = by["AAPL"]
    assert aapl.price == 255.78 and aapl.time == utc("2026-11-20T15:00:59.981234")
    assert (aapl.volume, aapl.prev_close) == (41822, 254.55)
    assert (aapl.open, aapl.high, aapl.low) == (254.0, 256.5, 253.1)
    assert by["BRK.B"].volume is None and by["BRK.B"].open is None  # no bars today yet
    assert result.problems == {"NOPE": "not in the snapshot (unknown ticker or no trades yet)"}
    assert server.requests[0]["query"] == {"symbols": "AAPL,MSFT,BRK.B,NOPE", "feed": "iex"}
    assert "secret-abc-123" not in caplog.text and "secret-abc-123" not in repr(provider)


def test_alpaca_chunks_many_symbols(alpaca, monkeypatch) -> None:
    server, provider, _ = alpaca
    monkeypatch.setattr(alpaca_module, "CHUNK", 2)
    result = provider.fetch(["AAPL", "MSFT", "BRK.B"], NOW, {})
    assert [r["query"]["symbols"] for r in server.requests] == ["AAPL,MSFT", "BRK.B"]
    assert len(result.quotes) == 3


def test_alpaca_429_short_then_ok_long_stops_and_cools_down(alpaca, rdb) -> None:
    server, provider, sleeps = alpaca
    server.script = [("429", 2), ("ok", None)]
    assert len(provider.fetch(["AAPL"], NOW, {}).quotes) == 1 and sleeps == [2.0]
    server.script = [("429", 90)]
    result = provider.fetch(["AAPL", "MSFT"], NOW, {})
    assert result.quotes == [] and all("429" in r for r in result.problems.values())
    assert 80 < rdb.pttl(names.provider_cooldown_key("alpaca")) / 1000 <= 90
    calls = len(server.requests)
    later = provider.fetch(["AAPL"], NOW, {})
    assert len(server.requests) == calls and "wait" in later.problems["AAPL"]


@pytest.mark.parametrize(
    "script, needle",
    [
        ([("status", 503)], "HTTP 503"),
        ([("raw", b"<html>gateway</html>")], "malformed JSON body"),
        ([("raw", b"[1, 2]")], "expected an object"),
        ([("slow", 2.0)], "timed out"),
    ],
)
def test_alpaca_failures_mark_the_chunk(alpaca, script, needle) -> None:
    server, provider, _ = alpaca
    server.script = script
    result = provider.fetch(["AAPL", "MSFT"], NOW, {})
    assert result.quotes == [] and set(result.problems) == {"AAPL", "MSFT"}
    assert all(needle in r for r in result.problems.values()), result.problems


def test_alpaca_bad_credentials(service_urls, clean) -> None:
    server = FakeSnapshots({"APCA-API-KEY-ID": "other", "APCA-API-SECRET-KEY": "other"})
    try:
        provider = build("alpaca", server.url, service_urls, [])
        result = provider.fetch(["AAPL"], NOW, {})
        assert result.problems == {"AAPL": "credentials refused (HTTP 401)"}
    finally:
        server.close()


def test_polygon_full_market_snapshot(polygon) -> None:
    server, provider, _ = polygon
    result = provider.fetch(["AAPL", "MSFT", "ZZZT", "BAD", "NOPE"], NOW, {})
    by = {q.ticker: q for q in result.quotes}
    assert by["AAPL"].price == 255.78 and by["AAPL"].time == utc("2026-11-20T15:00:59.981234")
    assert by["AAPL"].volume == 41822 and by["AAPL"].prev_close == 254.55
    assert by["ZZZT"].open is None and by["ZZZT"].volume is None  # zeros before the open
    assert "not a finite number" in result.problems["BAD"]
    assert "not in the snapshot" in result.problems["NOPE"]
    assert len(server.requests) == 1
    assert server.requests[0]["headers"]["Authorization"] == "Bearer pk-test-456"


def test_polygon_status_not_ok(polygon) -> None:
    server, provider, _ = polygon
    server.script = [("raw", b'{"status": "ERROR", "tickers": []}')]
    result = provider.fetch(["AAPL"], NOW, {})
    assert "status 'ERROR'" in result.problems["AAPL"]
