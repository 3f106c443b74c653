"""Each shard's last emitted slot (table ``emitted_slots``), in Postgres because Redis may lose it.

Written by the tick right after its emits went out; read by the repair
of a slot whose Redis "done" marker is missing
(:func:`webapp.tick.repairs.diverged`).  That repair cannot tell a tick
that died before its emits from a Redis that lost its data after them;
this row can.  The slot only moves forward, so a late or retried tick
never moves it back.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

Shard = tuple[int, int]  # (index, count), as :data:`webapp.store.hot.Shard`

_MARK = sa.text("""
    INSERT INTO emitted_slots (shard, shards, slot) VALUES (:shard, :shards, :slot)
    ON CONFLICT (shard, shards)
    DO UPDATE SET slot = greatest(emitted_slots.slot, EXCLUDED.slot), at = now()""")
_LAST = sa.text("SELECT slot FROM emitted_slots WHERE shard = :shard AND shards = :shards")


def mark(session: Session, slot: int, shard: Shard) -> None:
    """Record that ``slot``'s emits for ``shard`` went out; commits."""
    session.execute(_MARK, {"shard": shard[0], "shards": shard[1], "slot": slot})
    session.commit()


def was_emitted(session: Session, slot: int, shard: Shard) -> bool:
    last = session.execute(_LAST, {"shard": shard[0], "shards": shard[1]}).scalar()
    return last is not None and last >= slot
