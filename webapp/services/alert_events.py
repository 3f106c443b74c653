"""Stored alert events for the pages and for a reconnecting Socket.IO client's gap."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webapp.extensions import db
from webapp.store import alert_events

MAX_MISSED_EVENTS = 500


def recent_events(limit: int = 50) -> list[dict[str, Any]]:
    """The newest alert events (the rules page's feed, before live ones arrive)."""
    return alert_events.events(db.session, limit=limit)


def missed_events(after: int, rule_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Alert events after id ``after`` (of some rules, or all), oldest first: a reconnecting client's gap."""
    return alert_events.events(db.session, rule_ids=rule_ids, after=after, limit=MAX_MISSED_EVENTS)
