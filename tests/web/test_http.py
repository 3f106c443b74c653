"""Rate limits, conditional GETs, compression, CORS, security headers, read tokens."""
from __future__ import annotations

import gzip

from tests.helpers import token_for
from webapp.services import ticks


def test_rate_limit_headers_and_429_json(make_app) -> None:
    app = make_app(API_RATE_LIMIT="3/minute")
    with app.app_context():
        client = app.test_client()
        first = client.get("/api/alerts")
        assert first.headers["RateLimit-Limit"] == "3" and first.headers["RateLimit-Remaining"] == "2"
        assert "Retry-After" not in first.headers  # only a 429 or 503 asks the client to wait
        assert 0 < int(first.headers["RateLimit-Reset"]) <= 61  # seconds left (rounded up), not an epoch
        client.get("/api/stocks")  # one budget across /api
        client.get("/api/symbols")
        limited = client.get("/api/alerts")
        assert limited.status_code == 429 and limited.is_json
        assert limited.get_json()["error"]["code"] == "too_many_requests"
        assert 0 < int(limited.headers["Retry-After"]) <= 61
        # pages, health and another client are not counted against this one
        assert client.get("/").status_code == 200
        assert client.get("/api/health").status_code in (200, 503)
        other = client.get("/api/alerts", environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert other.status_code == 200


def test_etag_304_and_gzip(app) -> None:
    ticks.run_tick_now()
    client = app.test_client()
    first = client.get("/api/stocks/AAPL/history")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = client.get("/api/stocks/AAPL/history", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    zipped = client.get("/api/stocks", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert b'"stocks"' in gzip.decompress(zipped.data)


def test_security_headers_on_pages_and_cors_from_config(make_app) -> None:
    app = make_app(CORS_ORIGINS=("https://dash.example",))
    with app.app_context():
        client = app.test_client()
        page = client.get("/")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        allowed = client.get("/api/symbols", headers={"Origin": "https://dash.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://dash.example"
        other = client.get("/api/symbols", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers


def test_reads_can_require_a_token(make_app) -> None:
    app = make_app(API_READ_TOKEN_REQUIRED=True)
    with app.app_context():
        client = app.test_client()
        assert client.get("/api/stocks").status_code == 401
        token = token_for("reader", admin=True)
        assert client.get("/api/stocks", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/api/health").status_code in (200, 503)  # health stays open
