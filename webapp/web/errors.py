"""Errors under /api are JSON ``{"error": {"code", "message"}}``, never HTML."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import HTTPException

from webapp.store.pg import DB_DOWN

# what a request meets when Redis is down or restarting (redis-py's errors; a refused socket is an OSError)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, BusyLoadingError)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raised by API code to answer with a JSON error and a status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _wants_json() -> bool:
    return request.path.startswith("/api")


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        resp = jsonify(error_body(exc.code, exc.message))
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return resp, exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        if _wants_json():
            return jsonify(error_body(code, exc.description or exc.name)), exc.code
        return render_template("error.html", status=exc.code, title=exc.name,
                               message=exc.description), exc.code

    def _database_down(exc: Exception):
        log.warning("Postgres unavailable on %s: %s", request.path, type(exc).__name__)
        message = "the database is unavailable; live data keeps coming from Redis, retry shortly"
        if _wants_json():
            resp = jsonify(error_body("database_unavailable", message))
        else:
            resp = render_template("error.html", status=503, title="Database unavailable", message=message)
        return resp, 503, {"Retry-After": "10"}

    for kind in DB_DOWN:
        app.register_error_handler(kind, _database_down)

    def _redis_down(exc: Exception):
        log.warning("Redis unavailable on %s: %s", request.path, type(exc).__name__)
        message = "the live data store (Redis) is unavailable; stored history still answers, retry shortly"
        if _wants_json():
            resp = jsonify(error_body("redis_unavailable", message))
        else:
            resp = render_template("error.html", status=503, title="Live data unavailable", message=message)
        return resp, 503, {"Retry-After": "5"}

    for kind in REDIS_DOWN:
        app.register_error_handler(kind, _redis_down)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.error("unhandled error on %s", request.path, exc_info=exc)
        if _wants_json():
            return jsonify(error_body("internal_error", "internal error; see the server log")), 500
        return render_template("error.html", status=500, title="Internal error",
                               message="Something went wrong; see the server log."), 500
