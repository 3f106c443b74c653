"""The webhook outbox (tables ``deliveries``, ``delivery_attempts``): claims, attempts, retries.

A claim leases rows with ``FOR UPDATE SKIP LOCKED`` and commits before the
request, so no two processes send one delivery and a killed one's lease runs
out; each attempt is logged, and an endpoint failing for days is disabled.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core import delivery as policy
from webapp.store.alert_events import EVENT_COLUMNS, event_json


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
    """Lease up to ``limit`` due deliveries, at most 2 in flight per endpoint; committed before return.

    The oldest due first.  When those are all endpoints whose slots are taken (a slow receiver's
    backlog), the other endpoints' oldest are looked for endpoint by endpoint: one user's backlog
    never holds back another's webhooks.
    """
    cap = policy.IN_FLIGHT_PER_ENDPOINT
    rows = session.execute(_OLDEST_DUE, {"now": now, "n": limit * 4}).all()
    if len(rows) == limit * 4:  # there may be more behind them: are these all capped endpoints'?
        seen = {r.endpoint_id for r in rows}
        full = {e for e, n in _in_flight(session, seen, now).items() if n >= cap}
        if not seen - full:
            rows += session.execute(_DUE_ELSEWHERE, {"now": now, "n": limit * 4, "cap": cap,
                                                     "full": sorted(full)}).all()
    if not rows:
        session.commit()
        return []
    ends = sorted({r.endpoint_id for r in rows})
    # the endpoint rows serialise claimers of one endpoint, so the in-flight cap holds across workers;
    # NO KEY UPDATE, not UPDATE: the key-share lock a transaction writing fires to the endpoint holds
    # (the foreign key) until its commit must not hold the claim up
    session.execute(sa.text("SELECT id FROM webhook_endpoints WHERE id = ANY(:ids) ORDER BY id "
                            "FOR NO KEY UPDATE"), {"ids": ends})
    busy = _in_flight(session, set(ends), now)  # counted again under the locks
    chosen = []
    for r in rows:
        if len(chosen) < limit and busy.get(r.endpoint_id, 0) < cap:
            busy[r.endpoint_id] = busy.get(r.endpoint_id, 0) + 1
            chosen.append(r.id)
    got = session.execute(_lease("id = ANY(:ids)"),
                          {"ids": chosen, "now": now, "lease": float(lease_seconds)}).all()
    session.commit()
    return [_claimed(r, now) for r in got]


_DUE_NOW = ("(d.status = 'pending' AND d.next_attempt_at <= :now) "
            "OR (d.status = 'in_flight' AND d.locked_until < :now)")
_OLDEST_DUE = sa.text(f"""
    SELECT d.id, d.endpoint_id FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
    WHERE w.status = 'active' AND ({_DUE_NOW})
    ORDER BY d.next_attempt_at, d.id LIMIT :n FOR UPDATE OF d SKIP LOCKED""")
# every endpoint with deliveries waiting (a skip scan of deliveries_endpoint_due_idx, a probe per
# endpoint), those not full each giving its oldest due: the endpoints behind a capped one's backlog
_DUE_ELSEWHERE = sa.text(f"""
    WITH RECURSIVE ends(id) AS (
        (SELECT endpoint_id FROM deliveries WHERE status IN ('pending', 'in_flight')
         ORDER BY endpoint_id LIMIT 1)
        UNION ALL
        SELECT (SELECT d.endpoint_id FROM deliveries d WHERE d.status IN ('pending', 'in_flight')
                AND d.endpoint_id > ends.id ORDER BY d.endpoint_id LIMIT 1)
        FROM ends WHERE ends.id IS NOT NULL)
    SELECT d.id, d.endpoint_id FROM deliveries d
    WHERE d.id IN (
        SELECT x.id FROM ends JOIN webhook_endpoints w ON w.id = ends.id AND w.status = 'active'
        CROSS JOIN LATERAL (
            SELECT d.id, d.next_attempt_at FROM deliveries d
            WHERE d.endpoint_id = ends.id AND ({_DUE_NOW})
            ORDER BY d.next_attempt_at, d.id LIMIT :cap) x
        WHERE ends.id <> ALL(:full)
        ORDER BY x.next_attempt_at, x.id LIMIT :n)
      AND ({_DUE_NOW})
    ORDER BY d.next_attempt_at, d.id FOR UPDATE OF d SKIP LOCKED""")


def _in_flight(session: Session, ends: set[int], now: datetime) -> dict[int, int]:
    """How many of each endpoint's deliveries are in flight now (the rest count 0)."""
    return dict(session.execute(sa.text(
        "SELECT endpoint_id, count(*) FROM deliveries WHERE endpoint_id = ANY(:ids) AND status = 'in_flight' "
        "AND locked_until >= :now GROUP BY endpoint_id"), {"ids": sorted(ends), "now": now}).all())


def _lease(which: str) -> sa.TextClause:
    """Lease the deliveries ``which`` names (an SQL condition on ``deliveries``), returning what sending
    them needs: the endpoint's URL and keys, the event."""
    return sa.text(f"""
        WITH c AS (UPDATE deliveries SET status = 'in_flight', attempts = attempts + 1,
                          locked_until = :now + make_interval(secs => :lease)
                   WHERE {which} RETURNING id, event_id, endpoint_id, attempts, trigger)
        SELECT c.id AS delivery_id, c.attempts AS attempt_no, c.trigger AS how, c.endpoint_id AS endpoint,
               w.url, w.secret, w.previous_secret, w.previous_until, {EVENT_COLUMNS}
        FROM c JOIN webhook_endpoints w ON w.id = c.endpoint_id JOIN alert_events e ON e.id = c.event_id
        LEFT JOIN alert_rules r ON r.id = e.rule_id ORDER BY c.id""")


def _claimed(r: Any, now: datetime) -> Claimed:
    keys = (r.secret,) + ((r.previous_secret,) if r.previous_secret and r.previous_until
                          and r.previous_until > now else ())
    return Claimed(r.delivery_id, r.attempt_no, r.how, r.url, keys, r.endpoint, event_json(r))


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


def finish(session: Session, c: Claimed, a: Attempt, now: datetime, jitter: float,
           sent_as: int | None = None, next_lease: float | None = None) -> tuple[str, Claimed | None]:
    """Log the attempt and move the delivery on; returns its new status, and with ``next_lease`` the
    endpoint's next due delivery, leased for that long in the same transaction.  Commits.

    ``sent_as``: the attempt number the request went out as, when it is not
    the claim's (an earlier holder sent it and noted the answer; this claim
    records it in place of sending, and the row's count goes back to it).

    The next one takes the slot this one leaves in the one commit, so the endpoint's in-flight count
    never rises (a claimer counting it under the endpoint's lock sees this one or that one): a
    burst to one receiver costs a transaction a delivery, not a claim's and a record's.  Only a
    pending one is taken so (a lapsed lease's row may carry a dead holder's note: the claim's to read).
    """
    sent = sent_as or c.attempt
    v = policy.verdict(sent if c.trigger == "scheduled" else policy.MAX_ATTEMPTS, a.status_code, now,
                       jitter, a.retry_after)
    status = {"delivered": "delivered", "retry": "pending", "dead": "failed", "disable": "failed"}[v.state]
    # one statement (a round trip, not three: at a burst's rate the outbox's share of Postgres and of
    # the deliverer's CPU is mostly statements): the attempt logged, the row moved on, and a delivered
    # one ending its endpoint's failing spell.  Only the lease holder moves the row on: one whose lease
    # ran out and was re-claimed logs, nothing more.
    moved = session.execute(_FINISH, {
        "d": c.id, "n": c.attempt, "sent": sent, "t": c.trigger, "s": a.started_at, "ms": a.duration_ms,
        "code": a.status_code, "cls": a.error_class, "err": a.error, "resp": a.response, "st": status,
        "next": v.next_at, "now": now, "ok": v.state == "delivered"}).scalar()
    if moved and v.state != "delivered":
        _endpoint_health(session, c.endpoint_id, v.state, now)
    following = None
    if moved and v.state == "delivered" and next_lease is not None:
        got = session.execute(_NEXT, {"e": c.endpoint_id, "now": now, "lease": float(next_lease),
                                      "cap": policy.IN_FLIGHT_PER_ENDPOINT}).first()
        following = _claimed(got, now) if got is not None else None
    session.commit()
    return (status if moved else "superseded"), following


# (and only while the endpoint's other live leases leave a slot: this one's may have run out while
# its request lasted, and a claim have filled the endpoint meanwhile)
_NEXT = _lease("""id = (SELECT d.id FROM deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
                       WHERE d.endpoint_id = :e AND w.status = 'active' AND d.status = 'pending'
                       AND d.next_attempt_at <= :now
                       AND (SELECT count(*) FROM deliveries b WHERE b.endpoint_id = :e
                            AND b.status = 'in_flight' AND b.locked_until >= :now) < :cap
                       ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED)""")


_FINISH = sa.text("""
    WITH logged AS (
        INSERT INTO delivery_attempts (delivery_id, attempt_no, trigger, started_at, duration_ms, status_code,
                                       error_class, error, response)
        VALUES (:d, :sent, :t, :s, :ms, :code, :cls, :err, :resp)),
    moved AS (
        UPDATE deliveries SET status = :st, next_attempt_at = COALESCE(:next, next_attempt_at),
               attempts = :sent, locked_until = NULL, last_status = :code, last_error = :cls,
               trigger = 'scheduled', delivered_at = CASE WHEN :ok THEN :now ELSE delivered_at END
        WHERE id = :d AND status = 'in_flight' AND attempts = :n RETURNING endpoint_id),
    healthy AS (
        UPDATE webhook_endpoints SET failing_since = NULL
        WHERE :ok AND id = (SELECT endpoint_id FROM moved) AND failing_since IS NOT NULL)
    SELECT count(*) FROM moved""")


def _endpoint_health(session: Session, endpoint_id: int, state: str, now: datetime) -> None:
    """A failed attempt: the endpoint's failing spell begins (or goes on), and ends it after 5 days."""
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


def redeliver(session: Session, delivery_id: int, owner: int) -> bool:
    """Send ``owner``'s delivery once more now, with the same ``webhook-id`` (a manual attempt)."""
    moved = session.execute(sa.text(
        "UPDATE deliveries d SET status = 'pending', trigger = 'manual', next_attempt_at = now() "
        "FROM webhook_endpoints w WHERE d.id = :id AND d.status <> 'in_flight' AND w.id = d.endpoint_id "
        "AND w.owner_id = :o"), {"id": delivery_id, "o": owner}).rowcount
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


def deliveries(session: Session, owner: int, *, event_id: int | None = None, endpoint_id: int | None = None,
               delivery_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """``owner``'s deliveries (to their endpoints) newest first, each with its attempt log
    (``owner`` ``alert_events.ALL_OWNERS``: everyone's, for tests; never from a request)."""
    where = ["(CAST(:o AS bigint) = -1 OR d.endpoint_id IN "
             "(SELECT id FROM webhook_endpoints WHERE owner_id = :o))"]
    params: dict[str, Any] = {"limit": limit, "o": owner}
    for clause, key, value in (("d.event_id = :e", "e", event_id), ("d.endpoint_id = :p", "p", endpoint_id),
                               ("d.id = :d", "d", delivery_id)):
        if value is not None:
            where.append(clause)
            params[key] = value
    rows = session.execute(sa.text(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d "
                                   f"WHERE {' AND '.join(where)} ORDER BY d.id DESC LIMIT :limit"),
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
