"""Alert events, rule states and the webhook outbox in Postgres.

The tick writes a fire's event, its deliveries and the rule state it
changed inside the transaction that stores the tick's quotes
(:func:`write_fires`), so an event exists exactly when its state moved
and its webhooks are owed.  The unique dedupe key makes a retried tick
write nothing twice.

Delivery workers claim due rows with ``FOR UPDATE SKIP LOCKED`` and a
lease (:func:`claim`) and commit before they call out; what the call
answered is written by :func:`finish` with an attempt row for the log.
A lease that runs out (a killed worker) makes the row claimable again.
"""
from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core import delivery as policy
from webapp.core.rules.state import Fire, TickerState

# ---- live rules and their states ------------------------------------------------------

_LIVE = sa.text("""
SELECT r.id, r.version, r.updated_at, k.id IS NOT NULL AS known,
       CASE WHEN k.id IS NULL THEN r.name END AS name,
       CASE WHEN k.id IS NULL THEN r.condition END AS condition,
       CASE WHEN k.id IS NULL THEN r.scope END AS scope, r.frequency, r.cooldown_seconds, r.expires_at,
       CASE WHEN k.id IS NULL THEN r.channels END AS channels
FROM alert_rules r LEFT JOIN unnest(CAST(:ids AS bigint[]), CAST(:versions AS int[])) AS k(id, version)
  ON k.id = r.id AND k.version = r.version
WHERE r.status = 'active' AND r.builtin IS NULL ORDER BY r.id""")
_STATES = sa.text("SELECT rule_id, ticker, armed, last_fire, recent, status, last_bar "
                  "FROM alert_rule_states WHERE rule_id = ANY(:ids)")


@dataclass(frozen=True)
class RulesNow:
    """What a tick reads of its rules first, in one statement."""

    fingerprint: tuple[Any, ...]  # changes when an active rule is added, changed, paused, resumed, deleted
    builtin_muted: bool  # the built-in SMA crossover's row exists and is paused (no row yet: it is on)
    evaluated_through: int | None  # the last slot this shard's rules were evaluated on (None: never)


def rules_now(session: Session, shard: tuple[int, int]) -> RulesNow:
    r = session.execute(sa.text(
        "SELECT count(*), max(updated_at), coalesce(sum(id), 0), coalesce(sum(version), 0), "
        "EXISTS (SELECT 1 FROM alert_rules WHERE builtin IS NOT NULL AND status = 'paused'), "
        "(SELECT last_slot FROM alert_rule_progress WHERE shard = :i AND shards = :n) "
        "FROM alert_rules WHERE status = 'active' AND builtin IS NULL"), {"i": shard[0], "n": shard[1]}).one()
    return RulesNow(tuple(r[:4]), bool(r[4]), None if r[5] is None else int(r[5]))


def live_rules(session: Session, known: Sequence[tuple[int, int]] = ()) -> list[Any]:
    """The active rules; those ``known`` (id, version) already come without their JSON (``known`` true)."""
    return list(session.execute(_LIVE, {"ids": [k[0] for k in known], "versions": [k[1] for k in known]}))


def states_of(session: Session, rule_ids: Sequence[int]) -> dict[int, dict[str, TickerState]]:
    """Every stored (non-default) state of these rules, by rule and ticker (one statement)."""
    out: dict[int, dict[str, TickerState]] = {}
    if not rule_ids:
        return out
    for r in session.execute(_STATES, {"ids": list(rule_ids)}):
        out.setdefault(r.rule_id, {})[r.ticker] = TickerState(
            r.armed, r.last_fire, tuple(r.recent), r.status, r.last_bar)
    return out


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
                            explanation, source, data_age_seconds, latency_ms, stale)
  SELECT dedupe_key, rule_id, rule_version, ticker, bar_time, bucket, inputs, explanation, source,
         data_age_seconds, latency_ms, stale FROM r
  ON CONFLICT (dedupe_key) DO NOTHING
  RETURNING id, dedupe_key
), d AS (
  INSERT INTO deliveries (event_id, endpoint_id)
  SELECT e.id, w.id FROM e JOIN r USING (dedupe_key)
  CROSS JOIN LATERAL jsonb_array_elements_text(r.endpoints) AS x(endpoint)
  JOIN webhook_endpoints w ON w.id = x.endpoint::bigint
  ON CONFLICT DO NOTHING
  RETURNING id
)
SELECT e.id, e.dedupe_key, (SELECT count(*) FROM d) AS deliveries FROM e
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


def write_fires(session: Session | sa.Connection, fires: Sequence[FireRow],
                states: Sequence[tuple[int, int, str, TickerState]],
                progress: tuple[tuple[int, int], int] | None = None) -> tuple[dict[str, int], int]:
    """Insert events, their deliveries and the changed states, and with ``progress`` (shard, slot) mark
    that slot's bar evaluated for that shard; no commit (the caller's transaction).

    ``states`` are (rule id, rule version, ticker, state); a state of a rule
    changed since it was read is dropped (the new version starts armed).
    Returns the new events' ids by dedupe key (a fire already stored is
    absent) and the number of deliveries queued.
    """
    made: dict[str, int] = {}
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
            queued = int(r.deliveries)
    if states or progress:
        (shard, shards), slot = progress or ((None, None), None)
        session.execute(_WRITE_STATES, {"rows": orjson.dumps([
            {"rule_id": rid, "rule_version": ver, "ticker": t, "armed": s.armed, "last_fire": s.last_fire,
             "recent": list(s.recent), "status": s.status, "last_bar": s.last_bar}
            for rid, ver, t, s in states]).decode(), "shard": shard, "shards": shards, "slot": slot})
    return made, queued


def rearm_stopped(session: Session, rule_id: int) -> int:
    """Re-enable a rule's tickers the storm breaker stopped (they start armed); no commit."""
    return session.execute(sa.text("DELETE FROM alert_rule_states WHERE rule_id = :id "
                                   "AND status = 'stopped_too_often'"), {"id": rule_id}).rowcount or 0


def stopped_tickers(session: Session, rule_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in session.execute(sa.text("SELECT rule_id, ticker FROM alert_rule_states "
                                     "WHERE rule_id = ANY(:ids) AND status = 'stopped_too_often' "
                                     "ORDER BY ticker"),
                             {"ids": list(rule_ids)}):
        out.setdefault(r.rule_id, []).append(r.ticker)
    return out


# ---- events -------------------------------------------------------------------------

_EVENT_COLUMNS = ("e.id, e.rule_id, e.rule_version, r.name AS rule_name, e.ticker, e.bar_time, e.bucket, "
                  "e.inputs, e.explanation, e.source, e.data_age_seconds, e.latency_ms, e.stale, "
                  "e.created_at")


def event_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "rule_id": r.rule_id, "rule_version": r.rule_version, "rule_name": r.rule_name,
            "ticker": r.ticker, "bar_time": r.bar_time.isoformat(), "bucket": r.bucket, "inputs": r.inputs,
            "explanation": r.explanation, "source": r.source, "data_age_seconds": r.data_age_seconds,
            "latency_ms": r.latency_ms, "stale": r.stale, "fired_at": r.created_at.isoformat()}


def fire_json(f: FireRow, event_id: int, fired_at: datetime) -> dict[str, Any]:
    """A just-stored fire as :func:`event_json` shows it (the tick emits it without reading it back)."""
    return {"id": event_id, "rule_id": f.fire.rule_id, "rule_version": f.fire.rule_version,
            "rule_name": f.rule_name, "ticker": f.fire.ticker,
            "bar_time": datetime.fromtimestamp(f.fire.bar_time, timezone.utc).isoformat(),
            "bucket": f.fire.bucket, "inputs": f.fire.inputs, "explanation": f.fire.explanation,
            "source": f.source,
            "data_age_seconds": f.data_age_seconds, "latency_ms": f.latency_ms, "stale": f.stale,
            "fired_at": fired_at.isoformat()}


def events(session: Session, *, rule_id: int | None = None, rule_ids: Sequence[int] | None = None,
           ticker: str | None = None,
           after: int | None = None, before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Events newest first (``before``: a cursor, older than that id), or oldest first after ``after``."""
    where, params = ["TRUE"], {"limit": limit}
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
        f"SELECT {_EVENT_COLUMNS} FROM alert_events e LEFT JOIN alert_rules r ON r.id = e.rule_id "
        f"WHERE {' AND '.join(where)} ORDER BY e.id {order} LIMIT :limit"), params)]


def events_between(session: Session, tickers: Sequence[str], start: datetime, end: datetime
                   ) -> list[dict[str, Any]]:
    """The events of these tickers' bars in [start, end), in the order they were stored."""
    return [event_json(r) for r in session.execute(sa.text(
        f"SELECT {_EVENT_COLUMNS} FROM alert_events e LEFT JOIN alert_rules r ON r.id = e.rule_id "
        "WHERE e.ticker = ANY(:t) AND e.bar_time >= :start AND e.bar_time < :end ORDER BY e.id"),
        {"t": list(tickers), "start": start, "end": end})]


def events_by_id(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    return [event_json(r) for r in session.execute(sa.text(
        f"SELECT {_EVENT_COLUMNS} FROM alert_events e LEFT JOIN alert_rules r ON r.id = e.rule_id "
        "WHERE e.id = ANY(:ids) ORDER BY e.id"), {"ids": list(ids)})]


# ---- webhook endpoints --------------------------------------------------------------

_ENDPOINT_COLUMNS = "id, url, description, status, disabled_reason, failing_since, previous_until, created_at"


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "url": r.url, "description": r.description, "status": r.status,
            "disabled_reason": r.disabled_reason,
            "failing_since": r.failing_since.isoformat() if r.failing_since else None,
            "rotating_until": r.previous_until.isoformat() if r.previous_until else None,
            "created_at": r.created_at.isoformat()}


def create_endpoint(session: Session, url: str, description: str) -> tuple[dict[str, Any], str]:
    secret = new_secret()
    row = session.execute(sa.text(
        f"INSERT INTO webhook_endpoints (url, description, secret) VALUES (:u, :d, :s) "
        f"RETURNING {_ENDPOINT_COLUMNS}"), {"u": url, "d": description, "s": secret}).one()
    session.commit()
    return endpoint_json(row), secret


def endpoints(session: Session) -> list[dict[str, Any]]:
    return [endpoint_json(r) for r in session.execute(sa.text(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"))]


def endpoint(session: Session, endpoint_id: int) -> dict[str, Any] | None:
    row = session.execute(sa.text(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = :id"),
                          {"id": endpoint_id}).first()
    return endpoint_json(row) if row else None


def rotate_secret(session: Session, endpoint_id: int, overlap: timedelta
                  ) -> tuple[dict[str, Any], str] | None:
    """A new secret; the old one keeps signing too (both signatures sent) until ``overlap`` ends."""
    secret = new_secret()
    row = session.execute(sa.text(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = now() + :overlap, "
        f"secret = :s WHERE id = :id RETURNING {_ENDPOINT_COLUMNS}"),
        {"s": secret, "id": endpoint_id, "overlap": overlap}).first()
    session.commit()
    return (endpoint_json(row), secret) if row else None


def set_endpoint_status(session: Session, endpoint_id: int, status: str) -> dict[str, Any] | None:
    row = session.execute(sa.text(
        "UPDATE webhook_endpoints SET status = :s, disabled_reason = CASE WHEN :s = 'active' THEN NULL "
        "ELSE 'disabled by the user' END, failing_since = CASE WHEN :s = 'active' THEN NULL "
        f"ELSE failing_since END WHERE id = :id RETURNING {_ENDPOINT_COLUMNS}"),
        {"s": status, "id": endpoint_id}).first()
    session.commit()
    return endpoint_json(row) if row else None


def delete_endpoint(session: Session, endpoint_id: int) -> bool:
    gone = session.execute(sa.text("DELETE FROM webhook_endpoints WHERE id = :id"),
                           {"id": endpoint_id}).rowcount
    session.commit()
    return bool(gone)


def existing_endpoints(session: Session, ids: Sequence[int]) -> set[int]:
    return {r.id for r in session.execute(sa.text("SELECT id FROM webhook_endpoints WHERE id = ANY(:ids)"),
                                          {"ids": list(ids)})}


# ---- deliveries ----------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds the lease of, with what it needs to send it."""

    id: int
    attempt: int
    trigger: str
    url: str
    secrets: tuple[str, ...]
    endpoint_id: int
    event: dict[str, Any]


def claim(session: Session, now: datetime, limit: int, lease_seconds: float = policy.LEASE_SECONDS
          ) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries, at most 2 in flight per endpoint; committed before return."""
    rows = session.execute(sa.text("""
        SELECT d.id, d.endpoint_id FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
        WHERE w.status = 'active' AND ((d.status = 'pending' AND d.next_attempt_at <= :now)
                                       OR (d.status = 'in_flight' AND d.locked_until < :now))
        ORDER BY d.next_attempt_at, d.id LIMIT :n FOR UPDATE OF d SKIP LOCKED"""),
        {"now": now, "n": limit * 4}).all()
    if not rows:
        session.commit()
        return []
    ends = sorted({r.endpoint_id for r in rows})
    # the endpoint rows serialise claimers of one endpoint, so the in-flight cap holds across workers
    session.execute(sa.text("SELECT id FROM webhook_endpoints WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
                    {"ids": ends})
    busy = dict(session.execute(sa.text(
        "SELECT endpoint_id, count(*) FROM deliveries WHERE endpoint_id = ANY(:ids) AND status = 'in_flight' "
        "AND locked_until >= :now GROUP BY endpoint_id"), {"ids": ends, "now": now}).all())
    chosen = []
    for r in rows:
        if len(chosen) < limit and busy.get(r.endpoint_id, 0) < policy.IN_FLIGHT_PER_ENDPOINT:
            busy[r.endpoint_id] = busy.get(r.endpoint_id, 0) + 1
            chosen.append(r.id)
    got = session.execute(sa.text(f"""
        WITH c AS (UPDATE deliveries SET status = 'in_flight', attempts = attempts + 1,
                          locked_until = :now + make_interval(secs => :lease)
                   WHERE id = ANY(:ids) RETURNING id, event_id, endpoint_id, attempts, trigger)
        SELECT c.id AS delivery_id, c.attempts AS attempt_no, c.trigger AS how, c.endpoint_id AS endpoint,
               w.url, w.secret, w.previous_secret, w.previous_until, {_EVENT_COLUMNS}
        FROM c JOIN webhook_endpoints w ON w.id = c.endpoint_id JOIN alert_events e ON e.id = c.event_id
        LEFT JOIN alert_rules r ON r.id = e.rule_id ORDER BY c.id"""),
        {"ids": chosen, "now": now, "lease": float(lease_seconds)}).all()
    session.commit()
    out = []
    for r in got:
        keys = (r.secret,) + ((r.previous_secret,) if r.previous_secret and r.previous_until
                              and r.previous_until > now else ())
        out.append(Claimed(r.delivery_id, r.attempt_no, r.how, r.url, keys, r.endpoint, event_json(r)))
    return out


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt came to, for the log and the next step."""

    started_at: datetime
    duration_ms: float
    status_code: int | None
    error_class: str | None
    error: str | None
    response: str | None
    retry_after: float | None = None


def finish(session: Session, c: Claimed, a: Attempt, now: datetime, jitter: float) -> str:
    """Log the attempt and move the delivery on; returns its new status.  Commits."""
    session.execute(sa.text(
        "INSERT INTO delivery_attempts (delivery_id, attempt_no, trigger, started_at, duration_ms, "
        "status_code, error_class, error, response) VALUES (:d, :n, :t, :s, :ms, :code, :cls, :err, :resp)"),
        {"d": c.id, "n": c.attempt, "t": c.trigger, "s": a.started_at, "ms": a.duration_ms,
         "code": a.status_code, "cls": a.error_class, "err": a.error, "resp": a.response})
    v = policy.verdict(c.attempt if c.trigger == "scheduled" else policy.MAX_ATTEMPTS, a.status_code, now,
                       jitter, a.retry_after)
    status = {"delivered": "delivered", "retry": "pending", "dead": "failed", "disable": "failed"}[v.state]
    # only the lease holder moves the row on: one whose lease ran out and was re-claimed logs, nothing more
    moved = session.execute(sa.text(
        "UPDATE deliveries SET status = :st, next_attempt_at = COALESCE(:next, next_attempt_at), "
        "locked_until = NULL, last_status = :code, last_error = :err, trigger = 'scheduled', "
        "delivered_at = CASE WHEN :st = 'delivered' THEN :now ELSE delivered_at END "
        "WHERE id = :id AND status = 'in_flight' AND attempts = :n"),
        {"st": status, "next": v.next_at, "code": a.status_code, "err": a.error_class, "now": now, "id": c.id,
         "n": c.attempt}).rowcount
    if moved:
        _endpoint_health(session, c.endpoint_id, v.state, now)
    session.commit()
    return status if moved else "superseded"


def _endpoint_health(session: Session, endpoint_id: int, state: str, now: datetime) -> None:
    if state == "delivered":
        session.execute(sa.text("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = :id "
                                "AND failing_since IS NOT NULL"), {"id": endpoint_id})
        return
    if state == "disable":
        session.execute(sa.text("UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = :why "
                                "WHERE id = :id"),
                        {"id": endpoint_id, "why": f"the endpoint answered 410 Gone at {now.isoformat()}"})
        return
    since = session.execute(sa.text(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, :now) WHERE id = :id "
        "RETURNING failing_since"), {"id": endpoint_id, "now": now}).scalar()
    if policy.failing_too_long(since, now):
        session.execute(sa.text("UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = :why "
                                "WHERE id = :id"),
                        {"id": endpoint_id,
                         "why": f"every delivery failed for 5 days (since {since.isoformat()})"})


def redeliver(session: Session, delivery_id: int) -> bool:
    """Send a delivery once more now, with the same ``webhook-id`` (a manual attempt)."""
    moved = session.execute(sa.text(
        "UPDATE deliveries SET status = 'pending', trigger = 'manual', next_attempt_at = now() "
        "WHERE id = :id AND status <> 'in_flight'"), {"id": delivery_id}).rowcount
    session.commit()
    return bool(moved)


_DELIVERY_COLUMNS = ("d.id, d.event_id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, "
                     "d.last_status, d.last_error, d.delivered_at, d.created_at")


def delivery_json(r: Any, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": r.id, "event_id": r.event_id, "endpoint_id": r.endpoint_id, "status": r.status,
            "attempts": r.attempts,
            "next_attempt_at": r.next_attempt_at.isoformat() if r.status == "pending" else None,
            "last_status": r.last_status, "last_error": r.last_error,
            "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            "created_at": r.created_at.isoformat(), "log": attempts}


def deliveries(session: Session, *, event_id: int | None = None, endpoint_id: int | None = None,
               delivery_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Deliveries newest first, each with its attempt log (two statements)."""
    where, params = [], {"limit": limit}
    for clause, key, value in (("d.event_id = :e", "e", event_id), ("d.endpoint_id = :p", "p", endpoint_id),
                               ("d.id = :d", "d", delivery_id)):
        if value is not None:
            where.append(clause)
            params[key] = value
    rows = session.execute(sa.text(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d "
                                   f"WHERE {' AND '.join(where) or 'TRUE'} ORDER BY d.id DESC LIMIT :limit"),
                           params).all()
    log: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for a in session.execute(sa.text(
                "SELECT delivery_id, attempt_no, trigger, started_at, duration_ms, status_code, error_class, "
                "error, response FROM delivery_attempts WHERE delivery_id = ANY(:ids) ORDER BY id"),
                {"ids": [r.id for r in rows]}):
            log.setdefault(a.delivery_id, []).append({
                "attempt": a.attempt_no, "trigger": a.trigger, "at": a.started_at.isoformat(),
                "duration_ms": round(a.duration_ms, 1), "status_code": a.status_code,
                "error_class": a.error_class, "error": a.error, "response": a.response})
    return [delivery_json(r, log.get(r.id, [])) for r in rows]



def delivery_health(session: Session, now: datetime) -> dict[str, Any]:
    """What health shows of the outbox: what waits, how late, what failed, which endpoints are off."""
    r = session.execute(sa.text(
        "SELECT count(*) FILTER (WHERE d.status = 'pending' AND w.status = 'active') AS pending, "
        "count(*) FILTER (WHERE d.status = 'in_flight') AS in_flight, "
        "min(d.next_attempt_at) FILTER (WHERE d.status = 'pending' AND w.status = 'active') AS oldest_due, "
        "count(*) FILTER (WHERE d.status = 'failed' AND d.created_at > :day) AS failed_24h "
        "FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id"),
        {"day": now - timedelta(days=1)}).one()
    off = session.execute(sa.text("SELECT id, disabled_reason FROM webhook_endpoints "
                                  "WHERE status = 'disabled' ORDER BY id")).all()
    overdue = max(0.0, (now - r.oldest_due).total_seconds()) if r.oldest_due else 0.0
    return {"pending": r.pending, "in_flight": r.in_flight, "overdue_s": round(overdue, 1),
            "failed_24h": r.failed_24h, "disabled_endpoints": [{"id": e.id, "reason": e.disabled_reason}
                                                               for e in off]}
