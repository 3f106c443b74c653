"""gunicorn settings for the web process (read automatically from the cwd).

The configuration is checked here, in the master, before any worker starts:
a bad setting prints its one line and gunicorn exits 2, instead of a worker
failing to boot with a traceback, over and over.
"""
from __future__ import annotations

from webapp.config import Config, exit_on_config_error

with exit_on_config_error():
    _config = Config.from_env()
    _config.require_services()

# Heroku and the Procfile need every interface; `make run` sets WEB_HOST=127.0.0.1.
bind = f"{_config.WEB_HOST or '0.0.0.0'}:{_config.PORT}"
worker_class = "gevent"
workers = 1  # Socket.IO long-polling needs sticky sessions; scale with more processes
# Socket.IO refuses clients past WEB_MAX_CLIENTS with a clear connect_error;
# the headroom keeps plain HTTP (health, pages, the refusals themselves)
# answering instead of waiting in the accept queue behind a full pool.
worker_connections = _config.WEB_MAX_CLIENTS + 500
accesslog = "-"
graceful_timeout = 5


def post_fork(server, worker):
    # Without this a psycopg2 query blocks the whole gevent loop, and with it
    # every socket of every connected browser.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
