"""The recurring tick job."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from flask import current_app, has_app_context

from jobs import get_app

log = logging.getLogger(__name__)


def tick(at: str | None = None) -> dict[str, Any]:
    """Run the tick for the slot containing ``at`` (ISO time; default now).

    Idempotent for its slot: a second run finds the slot done and returns.
    """
    when = datetime.fromisoformat(at) if at else datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    app = current_app._get_current_object() if has_app_context() else get_app()  # type: ignore[attr-defined]
    from webapp import services

    with app.app_context():
        report = services.run_tick_now(when)
    summary = report.as_dict()
    log.info(
        "tick %s: accepted %d/%d, stale %d, alerts %d, emitted %d%s in %.0f ms",
        summary["at"], report.accepted, report.symbols, len(report.stale), len(report.alerts),
        report.emitted, f" ({report.skipped})" if report.skipped else "", report.duration_ms,
    )
    return summary
