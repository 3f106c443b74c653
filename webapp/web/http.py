"""HTTP hygiene: rate limits, conditional GETs, compression, CORS, security headers.

Well-kept extensions do the work (Flask-Limiter on the ``limits`` library
with Redis storage, Flask-Compress, Flask-CORS); this module only configures
them and adds what they do not: weak ETags with 304s on JSON reads, the
standard ``RateLimit-*`` header names, and security headers on every response.
"""
from __future__ import annotations

import math
import time
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from flask_compress import Compress
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.config import Config, limits_storage_uri
from webapp.web.auth import SecureCookies


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has no spelling for them (``Infinity`` is not JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class FiniteJSONProvider(DefaultJSONProvider):
    """Every JSON answer is JSON: a non-finite number becomes null instead of a bare ``NaN``."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:  # only then walk the whole value
            return super().dumps(_finite(obj), **kwargs)


def _not_rate_limited() -> bool:
    """Only /api counts against a client's budget (pages, assets and Socket.IO do not)."""
    return not request.path.startswith("/api/") or request.path == "/api/health"



# Pages load only our own scripts and styles; Socket.IO needs ws(s) to ourselves.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'")


def init_app(app: Flask, config: Config) -> None:
    app.json = FiniteJSONProvider(app)
    app.wsgi_app = SecureCookies(app.wsgi_app)  # type: ignore[method-assign]  # inside ProxyFix: sees https
    if config.PROXY_HOPS:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.PROXY_HOPS,  # type: ignore[method-assign]
                                x_proto=config.PROXY_HOPS, x_host=config.PROXY_HOPS)

    @app.after_request
    def _reset_in_seconds(resp: Response) -> Response:
        # runs last: Flask-Limiter writes an epoch; the RateLimit header fields use seconds left
        reset = resp.headers.get("RateLimit-Reset")
        if reset and reset.isdigit() and int(reset) > 1_000_000_000:
            resp.headers["RateLimit-Reset"] = str(max(0, int(reset) - int(time.time())))
        if resp.status_code not in (429, 503):
            # Flask-Limiter adds Retry-After to every answer; it means "wait" only on these
            resp.headers.pop("Retry-After", None)
        return resp

    app.config.update(
        RATELIMIT_STORAGE_URI=limits_storage_uri(config.REDIS_URL or ""),
        RATELIMIT_HEADER_LIMIT="RateLimit-Limit",
        RATELIMIT_HEADER_REMAINING="RateLimit-Remaining",
        RATELIMIT_HEADER_RESET="RateLimit-Reset",
        RATELIMIT_HEADER_RETRY_AFTER_VALUE="delta-seconds",
        RATELIMIT_KEY_PREFIX="stk-ratelimit",
        # Redis down: count in this process until it is back, so history and rules (Postgres) still answer
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        COMPRESS_MIMETYPES=["application/json", "text/html", "text/css", "application/javascript"],
        COMPRESS_MIN_SIZE=1000,
    )
    Compress(app)
    # One budget per client across all of /api (an "application" limit). A
    # limiter per app: it reads its limits from the app it is created with.
    Limiter(get_remote_address, app=app, headers_enabled=True, strategy="moving-window",
            application_limits=[config.API_RATE_LIMIT],
            application_limits_exempt_when=_not_rate_limited)
    if config.CORS_ORIGINS:
        CORS(app, resources={r"/api/*": {"origins": list(config.CORS_ORIGINS)}},
             expose_headers=["ETag", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"])

    @app.after_request
    def _conditional_and_secure(resp: Response) -> Response:
        # runs first: ETag on the uncompressed JSON, 304 when the client has it
        if (request.method == "GET" and request.path.startswith("/api/") and resp.status_code == 200
                and resp.mimetype == "application/json" and not resp.direct_passthrough):
            resp.add_etag(weak=True)
            resp.make_conditional(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if resp.mimetype == "text/html":
            resp.headers.setdefault("Content-Security-Policy", _CSP)
            resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp
