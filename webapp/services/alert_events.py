"""Stored alert events for the pages and for a reconnecting Socket.IO client's gap, each scoped to
what the caller may see."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webapp.extensions import db
from webapp.store import alert_events

MAX_MISSED_EVENTS = 500


def recent_events(owner: int | None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest alert events ``owner`` may see (theirs and the built-in rule's; None: the built-in
    rule's only): the rules page's feed, before live ones arrive."""
    return alert_events.events(db.session, owner, limit=limit)


def missed_events(after: int, owner: int | None, rule_ids: Sequence[int] | None = None
                  ) -> list[dict[str, Any]]:
    """Alert events ``owner`` may see after id ``after`` (of some rules, or all), oldest first: a
    reconnecting client's gap."""
    return alert_events.events(db.session, owner, rule_ids=rule_ids, after=after, limit=MAX_MISSED_EVENTS)
