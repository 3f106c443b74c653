"""Hot and cold data over time: day partitions, daily bars, retention.

``quotes`` is partitioned by UTC day.  The tick makes sure its day's
partition exists before it writes (rows that slip into the DEFAULT partition
are moved when their partition is created), and the daily retention job:

1. rolls minute quotes up into ``daily_bars`` (New York session dates, kept
   forever) for the days since the last roll-up, and for the days it is about
   to drop;
2. drops partitions older than ``QUOTE_RETENTION_DAYS`` (a DROP, not a DELETE);
3. creates the partitions for the next few days;
4. deletes alert events older than ``ALERT_EVENT_RETENTION_DAYS`` with their
   deliveries and attempt logs, except events a delivery still waits on or
   is sending (an endpoint retries for up to 5 days; it finishes first);
5. deletes what the evaluate process judged on the print (``intrabar_seconds``,
   what replays of intra-bar rules read) older than ``INTRABAR_RETENTION_DAYS``.

Every step is idempotent: a second run changes nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.store import intrabar_tape

log = logging.getLogger(__name__)

_known: set[date] = set()  # partitions this process has seen, to skip the catalog lookup


def partition_name(day: date) -> str:
    return f"quotes_{day:%Y%m%d}"


def _bounds(day: date) -> tuple[str, str]:
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def existing_partitions(session: Session) -> dict[date, str]:
    rows = session.execute(sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = 'quotes' AND c.relname ~ '^quotes_[0-9]{8}$'"))
    return {datetime.strptime(r.relname[7:], "%Y%m%d").date(): r.relname for r in rows}


def ensure_partitions(session: Session, days: Iterable[date]) -> list[str]:
    """Create the day partitions that are missing (moving any rows the DEFAULT
    partition holds for those days).  Runs in the caller's transaction."""
    wanted = set(days) - _known
    if not wanted:
        return []
    have = existing_partitions(session)
    _known.update(have)
    created = []
    for day in sorted(wanted - set(have)):
        lo, hi = _bounds(day)  # our own formatting of a date: safe to inline in DDL
        name = partition_name(day)
        session.execute(sa.text(
            f"CREATE TEMP TABLE moving_rows ON COMMIT DROP AS SELECT * FROM quotes_default "
            f"WHERE time >= '{lo}' AND time < '{hi}'"))
        session.execute(sa.text(f"DELETE FROM quotes_default WHERE time >= '{lo}' AND time < '{hi}'"))
        session.execute(sa.text(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF quotes FOR VALUES FROM ('{lo}') TO ('{hi}')"))
        session.execute(sa.text("INSERT INTO quotes SELECT * FROM moving_rows"))
        session.execute(sa.text("DROP TABLE moving_rows"))
        created.append(name)
        _known.add(day)
    if created:
        log.info("created quote partitions %s", ", ".join(created))
    return created


_ROLL_UP = sa.text("""
    INSERT INTO daily_bars (ticker, day, open, high, low, close, volume, quotes)
    SELECT ticker, (time AT TIME ZONE 'America/New_York')::date AS day,
           (array_agg(price ORDER BY time))[1], max(price), min(price),
           (array_agg(price ORDER BY time DESC))[1], sum(volume), count(*)
    FROM quotes
    WHERE time >= :start AND time < :end
    GROUP BY 1, 2
    ON CONFLICT (ticker, day) DO UPDATE SET
        open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        volume = EXCLUDED.volume, quotes = EXCLUDED.quotes
""")


def _ny_midnight(day: date) -> datetime:
    from webapp.core.market import EXCHANGE_TZ

    return datetime.combine(day, time(), tzinfo=EXCHANGE_TZ).astimezone(timezone.utc)


_OLD_EVENTS = sa.text("""
DELETE FROM alert_events e WHERE e.created_at < :cutoff
AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status IN ('pending', 'in_flight'))
""")


def run(session: Session, today: date, keep_days: int, ahead: int = 3,
        event_days: int | None = None, intrabar_days: int | None = None) -> dict[str, Any]:
    """One retention pass for UTC date ``today``; safe to run any number of times."""
    cutoff = today - timedelta(days=keep_days)  # partitions before this day go
    stored = existing_partitions(session)
    expiring = sorted(day for day in stored if day < cutoff)
    last_rolled = session.execute(sa.text("SELECT max(day) FROM daily_bars")).scalar()
    # Roll up from the day before the last roll-up (it may have been partial),
    # or from the oldest stored day on a first run; and always from before the
    # oldest expiring partition, so nothing is dropped before it has its bar.
    # A UTC day's early hours belong to the previous New York date: one day more.
    starts = [last_rolled if last_rolled is not None else min(stored, default=today)]
    if expiring:
        starts.append(expiring[0])
    first = min(starts) - timedelta(days=1)
    rolled = session.execute(_ROLL_UP, {"start": _ny_midnight(first),
                                        "end": _ny_midnight(today + timedelta(days=1))}).rowcount
    dropped = []
    for day, name in sorted(stored.items()):
        if day < cutoff:
            session.execute(sa.text(f"DROP TABLE {name}"))
            _known.discard(day)
            dropped.append(name)
    created = ensure_partitions(session, (today + timedelta(days=i) for i in range(ahead + 1)))
    events = 0
    if event_days is not None:  # deliveries and their attempts go with their event (ON DELETE CASCADE)
        cut = datetime.combine(today - timedelta(days=event_days), time(), tzinfo=timezone.utc)
        events = session.execute(_OLD_EVENTS, {"cutoff": cut}).rowcount or 0
    seconds = 0
    if intrabar_days is not None:
        cut = datetime.combine(today - timedelta(days=intrabar_days), time(), tzinfo=timezone.utc)
        seconds = intrabar_tape.prune(session, int(cut.timestamp()))
    session.commit()
    summary = {"today": today.isoformat(), "kept_days": keep_days, "daily_bars_upserted": rolled,
               "dropped": dropped, "created": created, "alert_events_deleted": events,
               "intrabar_seconds_deleted": seconds}
    log.info("retention: %s", summary)
    return summary
