"""Each shard's last committed batch of alerts on the print (table ``evaluate_progress``).

Written in the transaction that stores the batch's fires, with ``pushed``
false; marked pushed once their ``alert_event`` emits went out.  Whoever
takes a shard reads it first: events of a batch never marked pushed are
pushed then (the process died between its commit and its emits).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

Shard = tuple[int, int]

_WRITE = sa.text("""
    INSERT INTO evaluate_progress (shard, shards, entry_id, event_ids, pushed)
    VALUES (:shard, :shards, :entry, CAST(:ids AS bigint[]), :pushed)
    ON CONFLICT (shard, shards) DO UPDATE SET entry_id = EXCLUDED.entry_id, event_ids = EXCLUDED.event_ids,
      pushed = EXCLUDED.pushed, at = now()""")


class Progress(NamedTuple):
    entry_id: str
    event_ids: list[int]
    pushed: bool


def write(session: Session, shard: Shard, entry_id: str, event_ids: Sequence[int]) -> None:
    """In the caller's transaction: this batch's events, not yet pushed (a batch that stored no event
    is recorded as pushed: there is nothing to repair)."""
    session.execute(_WRITE, {"shard": shard[0], "shards": shard[1], "entry": entry_id,
                             "ids": list(event_ids), "pushed": not event_ids})


def mark_pushed(session: Session, shard: Shard, event_ids: Sequence[int]) -> None:
    """The batch with these events was pushed; commits.  A later batch's row is left alone."""
    session.execute(sa.text("UPDATE evaluate_progress SET pushed = true WHERE shard = :shard AND "
                            "shards = :shards AND event_ids = CAST(:ids AS bigint[])"),
                    {"shard": shard[0], "shards": shard[1], "ids": list(event_ids)})
    session.commit()


def read(session: Session, shard: Shard) -> Progress | None:
    r = session.execute(sa.text("SELECT entry_id, event_ids, pushed FROM evaluate_progress "
                                "WHERE shard = :shard AND shards = :shards"),
                        {"shard": shard[0], "shards": shard[1]}).first()
    return None if r is None else Progress(r.entry_id, list(r.event_ids), r.pushed)
