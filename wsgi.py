"""Web entry point: ``gunicorn -k gevent -w 1 wsgi:app`` (and ``flask --app wsgi``).

gunicorn's gevent worker monkey-patches before loading this module, and
``gunicorn.conf.py`` adds psycogreen, so this file stays free of patching
and the CLI commands that import it run unpatched.  A bad setting prints
one line and exits 2.
"""
from __future__ import annotations

from webapp import create_app
from webapp.config import exit_on_config_error

with exit_on_config_error():
    app = create_app()
