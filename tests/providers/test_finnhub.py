"""The Finnhub provider against a local server speaking Finnhub's wire format."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import redis

from tests.conftest import utc
from tests.fakes.finnhub_server import FakeFinnhub
from webapp import names
from webapp.config import limits_storage_uri
from webapp.extensions import db
from webapp.providers.finnhub import (
    CallBudget,
    FinnhubProvider,
    MalformedQuote,
    parse_quote,
)
from webapp.services import context, stocks
from webapp.tick.context import TickServices
from webapp.tick.pipeline import run_tick

KEY = "sk-test-0123456789abcdef"
NOW = utc("2026-11-20T15:00:30")  # Friday, market open


@pytest.fixture
def fake():
    server = FakeFinnhub(KEY)
    yield server
    server.close()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_provider(fake, service_urls, clean, sleeps):
    def build(per_minute: int = 60, timeout: float = 2.0, key: str = KEY) -> FinnhubProvider:
        client = redis.Redis.from_url(service_urls[0])
        budget = CallBudget(client, limits_storage_uri(service_urls[0]), per_minute, 30)
        return FinnhubProvider(key, budget, base_url=fake.base_url, timeout=timeout,
                               max_retry_after=5.0, sleep=sleeps.append)

    return build


def test_recorded_quotes_parse_with_the_provider_time(fake, make_provider) -> None:
    result = make_provider().fetch(["AAPL", "MSFT", "BRK.B"], NOW, {})
    assert result.problems == {}
    by = {q.ticker: q for q in result.quotes}
    assert by["AAPL"].price == 255.78 and by["AAPL"].time == utc("2026-11-20T15:00:00")
    assert by["BRK.B"].time == utc("2026-11-20T14:59:55")  # the quote's own t, not ours
    assert by["MSFT"].prev_close == 403.5 and by["MSFT"].volume is None
    assert all(r["token"] == KEY and KEY not in r["path"] for r in fake.requests)


def test_short_429_is_honoured_then_retried(fake, make_provider, sleeps) -> None:
    fake.script["AAPL"] = [("429", 2), ("quote", None)]
    result = make_provider().fetch(["AAPL", "MSFT"], NOW, {})
    assert {q.ticker for q in result.quotes} == {"AAPL", "MSFT"}
    assert sleeps == [2.0]
    assert fake.requests_for("AAPL") == 2


def test_long_429_stops_the_batch_and_cools_down(fake, make_provider, rdb) -> None:
    fake.script["AAPL"] = [("429", 120)]
    provider = make_provider()
    result = provider.fetch(["AAPL", "MSFT"], NOW, {})
    assert result.quotes == []
    assert "429" in result.problems["AAPL"] and "429" in result.problems["MSFT"]
    assert fake.requests_for("MSFT") == 0  # stopped instead of hammering the quota
    assert 110 < rdb.pttl(names.provider_cooldown_key("finnhub")) / 1000 <= 120
    calls = len(fake.requests)
    later = make_provider().fetch(["AAPL", "MSFT"], NOW + timedelta(seconds=30), {})
    assert len(fake.requests) == calls  # the cool-down is shared: nobody calls
    assert all("wait" in reason for reason in later.problems.values())


def test_5xx_is_retried_once_then_reported(fake, make_provider) -> None:
    fake.script["AAPL"] = [("status", 502), ("quote", None)]
    fake.script["MSFT"] = [("status", 503)]
    result = make_provider().fetch(["AAPL", "MSFT", "BRK.B"], NOW, {})
    assert {q.ticker for q in result.quotes} == {"AAPL", "BRK.B"}
    assert result.problems == {"MSFT": "HTTP 503"}
    assert fake.requests_for("AAPL") == 2 and fake.requests_for("MSFT") == 2


def test_timeout_marks_only_that_symbol(fake, make_provider) -> None:
    fake.script["AAPL"] = [("slow", 1.5)]
    result = make_provider(timeout=0.4).fetch(["AAPL", "MSFT"], NOW, {})
    assert result.problems == {"AAPL": "timed out"}
    assert [q.ticker for q in result.quotes] == ["MSFT"]


@pytest.mark.parametrize(
    "raw, needle",
    [
        (b"<html>502 Bad Gateway</html>", "malformed JSON"),
        (b'{"c": 1.0', "malformed JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"c": 10.5}', "missing field"),
        (b'{"c": "ten", "t": 1795186800}', "not a finite number"),
        (b'{"c": 10.5, "t": "soon"}', "not a positive unix time"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(fake, make_provider, raw, needle) -> None:
    fake.script["AAPL"] = [("raw", raw)]
    result = make_provider().fetch(["AAPL", "MSFT"], NOW, {})
    assert needle in result.problems["AAPL"]
    assert [q.ticker for q in result.quotes] == ["MSFT"]


def test_budget_is_shared_and_rotates_longest_waiting_first(fake, make_provider) -> None:
    first = make_provider(per_minute=5).fetch(["AAPL", "MSFT", "BRK.B", "V", "KO", "PG", "DIS"], NOW, {})
    assert len(fake.requests) == 5
    assert sum("budget" in r for r in first.problems.values()) == 2
    # A second process (a fresh provider) draws on the same allowance.
    second = make_provider(per_minute=5).fetch(["AAPL"], NOW, {})
    assert len(fake.requests) == 5 and "budget" in second.problems["AAPL"]


def test_rejected_key_stops_the_batch(fake, make_provider) -> None:
    result = make_provider(key="wrong").fetch(["AAPL", "MSFT"], NOW, {})
    assert len(fake.requests) == 1
    assert result.problems == {"AAPL": "API key refused (HTTP 401)", "MSFT": "API key refused (HTTP 401)"}


def test_parse_quote_unit() -> None:
    q = parse_quote("AAPL", {"c": 1.23456, "t": 1795186800, "pc": 0})
    assert q.price == 1.2346 and q.prev_close is None
    with pytest.raises(MalformedQuote):
        parse_quote("AAPL", {"c": float("nan"), "t": 1})
    # a zero price with a real timestamp parses; validation refuses it later
    assert parse_quote("AAPL", {"c": 0, "t": 1795186800}).price == 0


def test_through_the_pipeline_with_unknown_symbol_and_no_key_leak(
    fake, make_provider, make_app, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(SYMBOLS=("AAPL", "MSFT", "NOSUCH"))
    with app.app_context():
        base = context.tick_services()
        svc = TickServices(base.config, make_provider(), base.hot, db.session, base.publisher)
        report = run_tick(svc, ["AAPL", "MSFT", "NOSUCH"], NOW)
        assert report.accepted == 2
        assert "no data for this symbol" in report.stale["NOSUCH"]
        # the same quotes again a minute later: unchanged provider time -> stale, not stored twice
        again = run_tick(svc, ["AAPL", "MSFT", "NOSUCH"], NOW + timedelta(minutes=1))
        assert again.accepted == 0 and "stale" in again.stale["AAPL"]
        snap = stocks.snapshot(NOW + timedelta(minutes=1))
    assert {s["ticker"]: s["stale"] for s in snap["stocks"]} == {"AAPL": True, "MSFT": True}
    assert KEY not in caplog.text
    assert KEY not in repr(svc.provider)
