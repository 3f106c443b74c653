"""The daily retention job (safe to run twice): see :mod:`webapp.store.retention`."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jobs import job_app


def retention(today: str | None = None) -> dict[str, Any]:
    """Roll up daily bars, drop expired quote partitions, create the next ones, delete old alert events
    and intra-bar seconds."""
    app = job_app()
    from webapp.extensions import db
    from webapp.store import retention as service

    day = datetime.fromisoformat(today).date() if today else datetime.now(timezone.utc).date()
    with app.app_context():
        cfg = app.config["TRACKER"]
        return service.run(db.session, day, cfg.QUOTE_RETENTION_DAYS,
                           event_days=cfg.ALERT_EVENT_RETENTION_DAYS,
                           intrabar_days=cfg.INTRABAR_RETENTION_DAYS)
