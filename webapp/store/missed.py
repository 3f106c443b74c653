"""Slots that got no data, kept as ranges in Postgres so nobody mistakes a gap for a quiet market.

Written by the tick job when it finds slots that never ran and cannot be run
late (see :func:`webapp.core.market.gap_slots`), and by the tick that finds
Redis ahead of Postgres (ticks whose rows never reached Postgres).  Read by
health and the history API.  A range is keyed by its first slot, so
recording the same gap twice (a retried job) keeps one row.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

_INSERT = sa.text(
    'INSERT INTO missed_slots (start, "end", slots, reason) VALUES (:start, :end, :slots, :reason) '
    "ON CONFLICT (start) DO NOTHING"
)
_BETWEEN = sa.text(
    'SELECT start, "end", slots, reason FROM missed_slots WHERE "end" > :start AND start < :end '
    "ORDER BY start LIMIT :limit"
)
_SINCE = sa.text(
    'SELECT coalesce(sum(slots), 0) AS slots, max("end") AS latest FROM missed_slots '
    "WHERE recorded_at > :since"
)
_LAST_STORED = sa.text("SELECT max(time) FROM quotes WHERE time >= :since")


def ranges(slots: Sequence[int], tick_seconds: int) -> list[tuple[datetime, datetime, int]]:
    """Consecutive slot numbers as (start, end, count) time ranges, end exclusive."""
    out: list[tuple[datetime, datetime, int]] = []
    for s in sorted(set(slots)):
        start = datetime.fromtimestamp(s * tick_seconds, timezone.utc)
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], start + timedelta(seconds=tick_seconds), out[-1][2] + 1)
        else:
            out.append((start, start + timedelta(seconds=tick_seconds), 1))
    return out


def record(session: Session, slots: Sequence[int], tick_seconds: int, reason: str) -> int:
    """Keep ``slots`` as missed (one statement per range); returns how many ranges."""
    spans = ranges(slots, tick_seconds)
    for start, end, n in spans:
        session.execute(_INSERT, {"start": start, "end": end, "slots": n, "reason": reason[:200]})
    session.commit()
    return len(spans)


def between(session: Session, start: datetime, end: datetime, limit: int = 1000) -> list[dict[str, Any]]:
    """Missed ranges overlapping [start, end), oldest first, as JSON-ready dicts."""
    rows = session.execute(_BETWEEN, {"start": start, "end": end, "limit": limit})
    return [{"start": r.start.isoformat(), "end": r.end.isoformat(), "slots": r.slots, "reason": r.reason}
            for r in rows]


def recorded_since(session: Session, when: datetime) -> tuple[int, datetime | None]:
    """How many missed slots were recorded after ``when``, and where the latest such gap ends."""
    row = session.execute(_SINCE, {"since": when}).one()
    return int(row.slots), row.latest


def last_stored(session: Session, horizon: datetime) -> datetime | None:
    """The newest quote time stored after ``horizon`` (None: none), for a Redis that lost its tick record."""
    return session.execute(_LAST_STORED, {"since": horizon}).scalar_one()
