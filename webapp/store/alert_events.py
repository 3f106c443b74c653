"""Alert events (table ``alert_events``): written with their webhook deliveries and the rules'
changed states in one statement each, inside the caller's transaction, and read back for the
feed, the API and a reconnecting client.

An event's dedupe key names rule, ticker, bar and frequency bucket, so a
retried tick or a second writer stores nothing twice.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.rules.state import Fire, TickerState


@dataclass(frozen=True)
class FireRow:
    """A fire with what the store needs besides the pure record."""

    fire: Fire
    rule_name: str
    endpoints: tuple[int, ...]
    source: str | None
    data_age_seconds: float | None
    latency_ms: float
    stale: bool = False


_WRITE_FIRES = sa.text("""
WITH r AS (
  SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    dedupe_key text, rule_id bigint, rule_version int, ticker text, bar_time timestamptz, bucket text,
    inputs jsonb, explanation text, source text, data_age_seconds float8, latency_ms float8, stale bool,
    endpoints jsonb)
), e AS (
  INSERT INTO alert_events (dedupe_key, rule_id, rule_version, ticker, bar_time, bucket, inputs,
                            explanation, source, data_age_seconds, latency_ms, stale, owner_id)
  SELECT dedupe_key, rule_id, rule_version, ticker, bar_time, bucket, inputs, explanation, source,
         data_age_seconds, latency_ms, stale, (SELECT owner_id FROM alert_rules a WHERE a.id = r.rule_id)
  FROM r
  ON CONFLICT (dedupe_key) DO NOTHING
  RETURNING id, dedupe_key, owner_id
), d AS (
  INSERT INTO deliveries (event_id, endpoint_id)
  SELECT e.id, w.id FROM e JOIN r USING (dedupe_key)
  CROSS JOIN LATERAL jsonb_array_elements_text(r.endpoints) AS x(endpoint)
  JOIN webhook_endpoints w ON w.id = x.endpoint::bigint AND w.owner_id = e.owner_id
  ON CONFLICT DO NOTHING
  RETURNING id
)
SELECT e.id, e.dedupe_key, e.owner_id, (SELECT count(*) FROM d) AS deliveries FROM e
""")


_WRITE_STATES = sa.text("""
WITH s AS (
  INSERT INTO alert_rule_states (rule_id, ticker, armed, last_fire, recent, status, last_bar)
  SELECT s.rule_id, s.ticker, s.armed, s.last_fire, s.recent, s.status, s.last_bar
  FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS s(
    rule_id bigint, rule_version int, ticker text, armed bool, last_fire bigint, recent jsonb, status text,
    last_bar bigint)
  JOIN alert_rules a ON a.id = s.rule_id AND a.version = s.rule_version
  ON CONFLICT (rule_id, ticker) DO UPDATE SET armed = EXCLUDED.armed, last_fire = EXCLUDED.last_fire,
    recent = EXCLUDED.recent, status = EXCLUDED.status, last_bar = EXCLUDED.last_bar
  RETURNING 1
)
INSERT INTO alert_rule_progress (shard, shards, last_slot)
SELECT CAST(:shard AS int), CAST(:shards AS int), CAST(:slot AS bigint)
WHERE CAST(:slot AS bigint) IS NOT NULL
ON CONFLICT (shard, shards) DO UPDATE SET last_slot = EXCLUDED.last_slot
""")


class Written(NamedTuple):
    made: dict[str, int]  # dedupe key -> the new event's id (a fire already stored is absent)
    queued: int  # webhook deliveries queued
    owners: dict[str, int | None]  # dedupe key -> the event's owner (None: the built-in rule's)


def write_fires(session: Session | sa.Connection, fires: Sequence[FireRow],
                states: Sequence[tuple[int, int, str, TickerState]],
                progress: tuple[tuple[int, int], int] | None = None) -> Written:
    """Insert events, their deliveries and the changed states, and with ``progress`` (shard, slot) mark
    that slot's bar evaluated for that shard; no commit (the caller's transaction).

    ``states`` are (rule id, rule version, ticker, state); a state of a rule
    changed since it was read is dropped (the new version starts armed).
    An event belongs to its rule's owner, and a delivery goes only to an
    endpoint of that owner's.
    """
    made: dict[str, int] = {}
    owners: dict[str, int | None] = {}
    queued = 0
    if fires:
        rows = [{"dedupe_key": f.fire.dedupe_key, "rule_id": f.fire.rule_id,
                 "rule_version": f.fire.rule_version, "ticker": f.fire.ticker,
                 "bar_time": datetime.fromtimestamp(f.fire.bar_time, timezone.utc).isoformat(),
                 "bucket": f.fire.bucket, "inputs": f.fire.inputs, "explanation": f.fire.explanation,
                 "source": f.source, "data_age_seconds": f.data_age_seconds, "latency_ms": f.latency_ms,
                 "stale": f.stale, "endpoints": [str(e) for e in f.endpoints]} for f in fires]
        for r in session.execute(_WRITE_FIRES, {"rows": orjson.dumps(rows).decode()}):
            made[r.dedupe_key] = r.id
            owners[r.dedupe_key] = r.owner_id
            queued = int(r.deliveries)
    if states or progress:
        (shard, shards), slot = progress or ((None, None), None)
        session.execute(_WRITE_STATES, {"rows": orjson.dumps([
            {"rule_id": rid, "rule_version": ver, "ticker": t, "armed": s.armed, "last_fire": s.last_fire,
             "recent": list(s.recent), "status": s.status, "last_bar": s.last_bar}
            for rid, ver, t, s in states]).decode(), "shard": shard, "shards": shards, "slot": slot})
    return Written(made, queued, owners)


EVENT_COLUMNS = ("e.id, e.owner_id, e.rule_id, e.rule_version, r.name AS rule_name, e.ticker, e.bar_time, "
                 "e.bucket, e.inputs, e.explanation, e.source, e.data_age_seconds, e.latency_ms, e.stale, "
                 "e.created_at")


# an owner sees their own events and the built-in rule's (owner_id NULL); ALL_OWNERS sees every one
_VISIBLE = "(e.owner_id IS NULL OR e.owner_id = :owner OR CAST(:owner AS bigint) = -1)"


def trade_time(inputs: dict[str, Any]) -> str | None:
    """The trade that made a fire on the print true (ISO, milliseconds); None for a fire at a close."""
    ms = inputs.get("trade_time_ms")
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def event_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "rule_id": r.rule_id, "rule_version": r.rule_version, "rule_name": r.rule_name,
            "ticker": r.ticker, "bar_time": r.bar_time.isoformat(), "trade_time": trade_time(r.inputs),
            "bucket": r.bucket, "inputs": r.inputs,
            "explanation": r.explanation, "source": r.source, "data_age_seconds": r.data_age_seconds,
            "latency_ms": r.latency_ms, "stale": r.stale, "fired_at": r.created_at.isoformat()}


def fire_json(f: FireRow, event_id: int, fired_at: datetime) -> dict[str, Any]:
    """A just-stored fire as :func:`event_json` shows it (the tick emits it without reading it back)."""
    return {"id": event_id, "rule_id": f.fire.rule_id, "rule_version": f.fire.rule_version,
            "rule_name": f.rule_name, "ticker": f.fire.ticker,
            "bar_time": datetime.fromtimestamp(f.fire.bar_time, timezone.utc).isoformat(),
            "trade_time": trade_time(f.fire.inputs),
            "bucket": f.fire.bucket, "inputs": f.fire.inputs, "explanation": f.fire.explanation,
            "source": f.source,
            "data_age_seconds": f.data_age_seconds, "latency_ms": f.latency_ms, "stale": f.stale,
            "fired_at": fired_at.isoformat()}


ALL_OWNERS = -1  # events(owner=ALL_OWNERS): everyone's (tests, retention); never from a request


def events(session: Session, owner: int | None, *, rule_id: int | None = None,
           rule_ids: Sequence[int] | None = None, ticker: str | None = None,
           after: int | None = None, before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The events ``owner`` may see (theirs and the built-in rule's; ``None``: the built-in rule's only),
    newest first (``before``: a cursor, older than that id), or oldest first after ``after``."""
    where, params = [_VISIBLE], {"limit": limit, "owner": owner}
    for clause, key, value in (("e.rule_id = :rule_id", "rule_id", rule_id),
                               ("e.rule_id = ANY(:rule_ids)", "rule_ids",
                                list(rule_ids) if rule_ids is not None else None),
                               ("e.ticker = :ticker", "ticker", ticker),
                               ("e.id > :after", "after", after), ("e.id < :before", "before", before)):
        if value is not None:
            where.append(clause)
            params[key] = value
    order = "ASC" if after is not None else "DESC"
    return [event_json(r) for r in session.execute(sa.text(
        f"SELECT {EVENT_COLUMNS} FROM alert_events e LEFT JOIN alert_rules r ON r.id = e.rule_id "
        f"WHERE {' AND '.join(where)} ORDER BY e.id {order} LIMIT :limit"), params)]


def events_between(session: Session, tickers: Sequence[str], start: datetime, end: datetime
                   ) -> list[tuple[dict[str, Any], int | None]]:
    """The events of these tickers' bars in [start, end), in the order they were stored, each with its
    owner (whose feed it goes to)."""
    return [(event_json(r), r.owner_id) for r in session.execute(sa.text(
        f"SELECT {EVENT_COLUMNS} FROM alert_events e LEFT JOIN alert_rules r ON r.id = e.rule_id "
        "WHERE e.ticker = ANY(:t) AND e.bar_time >= :start AND e.bar_time < :end ORDER BY e.id"),
        {"t": list(tickers), "start": start, "end": end})]


def owners_of(session: Session, ids: Sequence[int]) -> dict[int, int | None]:
    """Each event's owner (None: the built-in rule's), to push it to the right feed."""
    return dict(session.execute(sa.text("SELECT id, owner_id FROM alert_events WHERE id = ANY(:i)"),
                                {"i": list(ids)}).all())  # type: ignore[arg-type]


def events_by_id(session: Session, ids: Sequence[int], owner: int | None) -> list[dict[str, Any]]:
    """These events, of those ``owner`` may see."""
    return [event_json(r) for r in session.execute(sa.text(
        f"SELECT {EVENT_COLUMNS} FROM alert_events e LEFT JOIN alert_rules r ON r.id = e.rule_id "
        f"WHERE e.id = ANY(:ids) AND {_VISIBLE} ORDER BY e.id"), {"ids": list(ids), "owner": owner})]
