"""The volume-profile job (safe to run twice): see :func:`webapp.tick.scanner.build_profile`."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import current_app, has_app_context

from jobs import get_app


def volume_profile(at: str | None = None, force: bool = False) -> dict[str, Any]:
    """Build today's RVOL profile from Postgres unless it is already in Redis."""
    app = current_app._get_current_object() if has_app_context() else get_app()  # type: ignore[attr-defined]
    from webapp import services

    now = datetime.fromisoformat(at) if at else datetime.now(timezone.utc)
    with app.app_context():
        return services.build_volume_profile(now, force=force)
