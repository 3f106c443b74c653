"""The backfill job: one ticker's recent history from its provider (:mod:`webapp.backfill.runner`).

Queued when a symbol is tracked (``symbols.track_symbol``) and for every
tracked symbol when the scheduler starts; safe to repeat, and a run cut
short is resumed by the next.
"""
from __future__ import annotations

import logging
from typing import Any

from jobs import job_app

log = logging.getLogger(__name__)


def backfill(ticker: str) -> dict[str, Any]:
    from webapp.services import backfill as backfill_service

    app = job_app()
    with app.app_context():
        out = backfill_service.backfill(ticker)
    log.info("backfill %s: %s (%s)", ticker, out.state, out.message)
    return {"ticker": out.ticker, "state": out.state, "sessions": out.sessions, "readings": out.readings,
            "daily_bars": out.daily_bars, "message": out.message}
