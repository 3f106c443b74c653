"""Sent but not yet recorded: a webhook attempt's outcome kept in Redis while Postgres is down.

A deliverer that has had its answer but cannot write it to Postgres must
not let the row's lease run out and the delivery go out again.  It keeps
the outcome in memory and here, under the delivery's id; whoever *takes*
the note (``GETDEL``, so exactly one) records it: the deliverer itself once
Postgres is back, or, if that deliverer died meanwhile, the next one to
claim the row, which then records instead of sending
(:mod:`webapp.delivery.worker`).  The note lives 7 days, longer than any
outage we wait out; without Redis only the in-memory copy remains.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

import orjson
import redis

from webapp import names
from webapp.store.deliveries import Attempt

TTL_SECONDS = 7 * 24 * 3600


def put(client: redis.Redis, delivery_id: int, attempt_no: int, attempt: Attempt) -> None:
    """Note attempt ``attempt_no``'s outcome (raises ``redis.RedisError`` when Redis is down)."""
    fields = dataclasses.asdict(attempt)
    fields["started_at"] = attempt.started_at.isoformat()
    client.set(names.delivery_outcome_key(delivery_id), orjson.dumps({"attempt_no": attempt_no, **fields}),
               ex=TTL_SECONDS)


def take(client: redis.Redis, delivery_ids: Sequence[int]) -> dict[int, tuple[int, Attempt]]:
    """Take (and remove) the notes of these deliveries: {id: (attempt number, outcome)}."""
    if not delivery_ids:
        return {}
    pipe = client.pipeline(transaction=False)
    for i in delivery_ids:
        pipe.getdel(names.delivery_outcome_key(i))
    out = {}
    for i, raw in zip(delivery_ids, pipe.execute(), strict=True):
        if raw is not None:
            fields = orjson.loads(raw)
            attempt_no = fields.pop("attempt_no")
            fields["started_at"] = datetime.fromisoformat(fields["started_at"])
            out[i] = (attempt_no, Attempt(**fields))
    return out
