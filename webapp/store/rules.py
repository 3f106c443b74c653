"""Alert rules in Postgres: create, read, change (a new version), pause, delete.

Every rule but the built-in one has an owner; the functions a request
calls take the caller's id and touch only that user's rules (the built-in
rule is readable by everyone), so someone else's rule is "not found".

A change of condition, scope, frequency, cooldown or expiry bumps the
rule's ``version`` and clears its per-ticker state, so events always name
the version they fired on and a changed rule starts armed.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.rules.parse import RuleSpec

_COLUMNS = ("id, name, version, condition, scope, frequency, cooldown_seconds, expires_at, channels, "
            "status, created_at, updated_at, builtin, owner_id")
_MINE = "owner_id = :owner"  # a rule the caller may change
_SEEN = "(owner_id = :owner OR builtin IS NOT NULL)"  # a rule the caller may read
BUILTIN_SMA = "sma_cross"


def _row(r: Any) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "version": r.version, "condition": r.condition, "scope": r.scope,
            "frequency": r.frequency, "cooldown_seconds": r.cooldown_seconds,
            "expires_at": int(r.expires_at.timestamp()) if r.expires_at else None, "channels": r.channels,
            "status": r.status, "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(), "builtin": r.builtin is not None, "owner_id": r.owner_id}


def _params(spec: RuleSpec) -> dict[str, Any]:
    return {"name": spec.name, "condition": json.dumps(spec.condition.as_json()),
            "scope": json.dumps(spec.scope), "frequency": spec.frequency, "cooldown": spec.cooldown_seconds,
            "expires": datetime.fromtimestamp(spec.expires_at, timezone.utc) if spec.expires_at else None,
            "channels": json.dumps(list(spec.channels))}


def create(session: Session, spec: RuleSpec, owner: int) -> dict[str, Any]:
    row = session.execute(sa.text(
        "INSERT INTO alert_rules (name, condition, scope, frequency, cooldown_seconds, expires_at, channels, "
        "owner_id) VALUES (:name, CAST(:condition AS jsonb), CAST(:scope AS jsonb), :frequency, :cooldown, "
        f":expires, CAST(:channels AS jsonb), :owner) RETURNING {_COLUMNS}"),
        {**_params(spec), "owner": owner}).one()
    session.commit()
    return _row(row)


def builtin_sma(period: int) -> dict[str, Any]:
    """The built-in rule as it is evaluated: every tracked ticker's close crossing its SMA, each cross."""
    return {"name": f"Price crossing its {period}-period SMA",
            "condition": {"op": "crossing", "a": {"field": "close"}, "b": {"sma": period}},
            "scope": {"all": True}, "frequency": "once_per_bar", "cooldown_seconds": 0, "expires_at": None,
            "channels": ["browser"]}


def builtin(session: Session) -> dict[str, Any] | None:
    row = session.execute(sa.text(f"SELECT {_COLUMNS} FROM alert_rules WHERE builtin = :b"),
                          {"b": BUILTIN_SMA}).first()
    return _row(row) if row else None


def ensure_builtin(session: Session, period: int) -> dict[str, Any]:
    """The built-in rule's row: made on first read, or brought to the configured SMA period (a new
    version); otherwise only read."""
    rule = builtin_sma(period)
    found = builtin(session)
    if found is not None and found["condition"] == rule["condition"]:
        return found
    session.execute(sa.text(
        "INSERT INTO alert_rules (name, condition, scope, frequency, cooldown_seconds, channels, builtin) "
        "VALUES (:name, CAST(:condition AS jsonb), CAST(:scope AS jsonb), :frequency, :cooldown, "
        "CAST(:channels AS jsonb), :builtin) ON CONFLICT (builtin) DO UPDATE SET name = EXCLUDED.name, "
        "condition = EXCLUDED.condition, version = alert_rules.version + 1, updated_at = now() "
        "WHERE alert_rules.condition <> EXCLUDED.condition"),
        {"name": rule["name"], "condition": json.dumps(rule["condition"]), "scope": json.dumps(rule["scope"]),
         "frequency": rule["frequency"], "cooldown": rule["cooldown_seconds"],
         "channels": json.dumps(rule["channels"]), "builtin": BUILTIN_SMA})
    session.commit()
    made = builtin(session)
    assert made is not None
    return made


def get(session: Session, rule_id: int, owner: int) -> dict[str, Any] | None:
    """A rule ``owner`` may read: theirs, or the built-in one."""
    row = session.execute(sa.text(f"SELECT {_COLUMNS} FROM alert_rules WHERE id = :id AND {_SEEN}"),
                          {"id": rule_id, "owner": owner}).first()
    return _row(row) if row else None


def all_rules(session: Session, owner: int) -> list[dict[str, Any]]:
    """The rules ``owner`` may read, the built-in one first."""
    return [_row(r) for r in session.execute(sa.text(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE {_SEEN} ORDER BY builtin IS NULL, id"), {"owner": owner})]


def readable_ids(session: Session, ids: list[int], owner: int | None) -> set[int]:
    """Of ``ids``, the rules ``owner`` may follow (theirs and the built-in one; None: only that)."""
    return set(session.execute(sa.text(
        f"SELECT id FROM alert_rules WHERE id = ANY(:ids) AND {_SEEN}"),
        {"ids": ids, "owner": owner}).scalars())


def replace(session: Session, rule_id: int, spec: RuleSpec, owner: int) -> dict[str, Any] | None:
    row = session.execute(sa.text(
        "UPDATE alert_rules SET name = :name, condition = CAST(:condition AS jsonb), "
        "scope = CAST(:scope AS jsonb), frequency = :frequency, cooldown_seconds = :cooldown, "
        "expires_at = :expires, "
        "channels = CAST(:channels AS jsonb), version = version + 1, updated_at = now() "
        f"WHERE id = :id AND {_MINE} RETURNING {_COLUMNS}"), {**_params(spec), "id": rule_id, "owner": owner}
    ).first()
    if row is not None:
        session.execute(sa.text("DELETE FROM alert_rule_states WHERE rule_id = :id"), {"id": rule_id})
    session.commit()
    return _row(row) if row else None


def set_status(session: Session, rule_id: int, status: str, owner: int | None) -> dict[str, Any] | None:
    """Pause or resume ``owner``'s rule (``owner`` None: the built-in rule, which only an admin may)."""
    row = session.execute(sa.text(
        f"UPDATE alert_rules SET status = :s, updated_at = now() WHERE id = :id "
        f"AND (owner_id = :owner OR (CAST(:owner AS bigint) IS NULL AND builtin IS NOT NULL)) "
        f"RETURNING {_COLUMNS}"), {"s": status, "id": rule_id, "owner": owner}).first()
    session.commit()
    return _row(row) if row else None


def delete(session: Session, rule_id: int, owner: int) -> bool:
    gone = session.execute(sa.text(f"DELETE FROM alert_rules WHERE id = :id AND {_MINE}"),
                           {"id": rule_id, "owner": owner}).rowcount
    session.commit()
    return bool(gone)


def readings(session: Session, tickers: list[str], start: datetime, end: datetime, limit: int
             ) -> list[Any]:
    """Stored minute readings of ``tickers`` in [start, end), by ticker then time (for replays)."""
    return list(session.execute(sa.text(
        "SELECT ticker, time, price::float8 AS price, volume, prev_close::float8 AS prev_close, "
        "high::float8 AS high, low::float8 AS low FROM quotes "
        "WHERE ticker = ANY(:t) AND time >= :start AND time < :end ORDER BY ticker, time LIMIT :limit"),
        {"t": tickers, "start": start, "end": end, "limit": limit}))
