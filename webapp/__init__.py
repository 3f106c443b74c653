"""The Flask application factory.

``create_app(config)`` binds every extension with ``init_app`` and registers
the blueprints, the Socket.IO handlers and the CLI.  It does no gevent
patching: the web entry point's gunicorn worker does that, and workers and
CLI commands must never inherit it.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from webapp.config import Config

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: Config | None = None) -> Flask:
    # Imported here, not at module level: gunicorn's master imports webapp.config
    # to check the settings, and must not pull in redis and urllib3 (and ssl)
    # before the gevent worker patches them.
    from flask import Flask

    config = config or Config.from_env()
    config.require_services()
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.from_mapping(config.as_flask_mapping())
    app.config["TRACKER"] = config
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=config.LOG_LEVEL,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    from webapp.extensions import PromptRedisManager, csrf, db, migrate, redis_ext, socketio
    from webapp.names import SOCKETIO_CHANNEL
    from webapp.store import models  # noqa: F401  (register tables with the metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))
    redis_ext.init_app(app)
    # The manager is built explicitly: Flask-SocketIO picks one by URL scheme
    # and would hand a unix:// Redis URL (the embedded server) to kombu.
    socketio.init_app(
        app,
        client_manager=PromptRedisManager(config.REDIS_URL, channel=SOCKETIO_CHANNEL),
        async_mode=config.SOCKETIO_ASYNC_MODE,
        cors_allowed_origins=None,
    )

    from webapp.web import (
        alerts,
        auth,
        cli,
        errors,
        health,
        http,
        openapi,
        pages,
        realtime,
        rules,
        scanner,
        stocks,
        symbols,
        tokens,
        watchlists,
        webhooks,
    )

    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(tokens.pages_bp)
    # the JSON API: one blueprint per resource
    for resource in (stocks, symbols, alerts, health, scanner, rules, webhooks, watchlists, tokens, openapi):
        app.register_blueprint(resource.bp, url_prefix="/api")
        csrf.exempt(resource.bp)  # a bearer token, or the session with its CSRF header (webapp.web.access)
    csrf.init_app(app)
    auth.init_app(app)
    if config.WEBHOOK_ALLOWED_CIDRS:
        logging.getLogger(__name__).warning(
            "WEBHOOK_ALLOWED_CIDRS=%s: webhooks may call these private networks (tests, self-hosting only)",
            ",".join(config.WEBHOOK_ALLOWED_CIDRS))
    errors.init_app(app)
    http.init_app(app, config)
    realtime.init_app(app)
    cli.init_app(app)
    return app
