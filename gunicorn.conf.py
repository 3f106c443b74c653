"""gunicorn settings for the web process (read automatically from the cwd)."""
from __future__ import annotations

import os

# gunicorn binds 0.0.0.0:$PORT when PORT is set (Heroku, honcho); this is the fallback.
bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
worker_class = "gevent"
workers = 1  # Socket.IO long-polling needs sticky sessions; scale with more processes
worker_connections = 2000
accesslog = "-"
graceful_timeout = 5


def post_fork(server, worker):
    # Without this a psycopg2 query blocks the whole gevent loop, and with it
    # every socket of every connected browser.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
