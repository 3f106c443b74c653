"""The volume-profile job (safe to run twice): see :func:`webapp.tick.scanner.build_profile`."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jobs import job_app


def volume_profile(at: str | None = None, force: bool = False) -> dict[str, Any]:
    """Build today's RVOL profile from Postgres unless it is already in Redis."""
    app = job_app()
    from webapp.services import scanner

    now = datetime.fromisoformat(at) if at else datetime.now(timezone.utc)
    with app.app_context():
        return scanner.build_volume_profile(now, force=force)
