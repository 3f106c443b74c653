"""Extensions, created unbound and attached by ``init_app`` in the factory."""
from __future__ import annotations

import redis
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()
socketio = SocketIO()


class RedisExtension:
    """One Redis client per app, bytes in and out (the hot path parses bytes)."""

    def init_app(self, app: Flask) -> None:
        app.extensions["redis"] = redis.Redis.from_url(
            app.config["REDIS_URL"], health_check_interval=30
        )


redis_ext = RedisExtension()


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]
