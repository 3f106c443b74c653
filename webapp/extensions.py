"""Extensions, created unbound and attached by ``init_app`` in the factory."""
from __future__ import annotations

import logging
import time

import redis
import socketio as socketio_lib
from flask import Flask, current_app
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

log = logging.getLogger(__name__)

db = SQLAlchemy()
migrate = Migrate()
socketio = SocketIO()
login_manager = LoginManager()  # page sign-in (webapp/web/auth.py)
csrf = CSRFProtect()  # every form; the API checks its own (a bearer token, or the session's header)


class RedisExtension:
    """One Redis client per app, bytes in and out (the hot path parses bytes)."""

    def init_app(self, app: Flask) -> None:
        app.extensions["redis"] = redis.Redis.from_url(
            app.config["REDIS_URL"], health_check_interval=30
        )


redis_ext = RedisExtension()


def get_redis() -> redis.Redis:
    return current_app.extensions["redis"]


class PromptRedisManager(socketio_lib.RedisManager):
    """python-socketio's Redis manager, reconnecting its listener within a second.

    The stock listener doubles its wait after each failed reconnect, up to
    60 s: after a 10 s Redis restart a web process stayed deaf for several
    more seconds, and every emit the workers sent meanwhile was lost to its
    browsers.  This retries every 0.2-1 s instead, and logs once per outage.
    """

    def _redis_listen_with_retries(self):  # type: ignore[no-untyped-def]
        wait, subscribed, failing = 0.2, False, False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    self.pubsub.subscribe(self.channel)
                    subscribed = True
                    if failing:
                        log.warning("socket.io message queue: listening on Redis again")
                    wait, failing = 0.2, False
                yield from self.pubsub.listen()
            except Exception as exc:
                if not failing:
                    log.error("socket.io message queue: lost Redis (%s); reconnecting", type(exc).__name__)
                subscribed, failing = False, True
                time.sleep(wait)
                wait = min(1.0, wait * 2)
