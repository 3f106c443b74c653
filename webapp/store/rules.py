"""Alert rules in Postgres: create, read, change (a new version), pause, delete.

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
            "status, created_at, updated_at, builtin")
BUILTIN_SMA = "sma_cross"


def _row(r: Any) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "version": r.version, "condition": r.condition, "scope": r.scope,
            "frequency": r.frequency, "cooldown_seconds": r.cooldown_seconds,
            "expires_at": int(r.expires_at.timestamp()) if r.expires_at else None, "channels": r.channels,
            "status": r.status, "created_at": r.created_at.isoformat(),
            "updated_at": r.updated_at.isoformat(), "builtin": r.builtin is not None}


def _params(spec: RuleSpec) -> dict[str, Any]:
    return {"name": spec.name, "condition": json.dumps(spec.condition.as_json()),
            "scope": json.dumps(spec.scope), "frequency": spec.frequency, "cooldown": spec.cooldown_seconds,
            "expires": datetime.fromtimestamp(spec.expires_at, timezone.utc) if spec.expires_at else None,
            "channels": json.dumps(list(spec.channels))}


def create(session: Session, spec: RuleSpec) -> dict[str, Any]:
    row = session.execute(sa.text(
        "INSERT INTO alert_rules (name, condition, scope, frequency, cooldown_seconds, expires_at, channels) "
        "VALUES (:name, CAST(:condition AS jsonb), CAST(:scope AS jsonb), :frequency, :cooldown, :expires, "
        f"CAST(:channels AS jsonb)) RETURNING {_COLUMNS}"), _params(spec)).one()
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


def get(session: Session, rule_id: int) -> dict[str, Any] | None:
    row = session.execute(sa.text(f"SELECT {_COLUMNS} FROM alert_rules WHERE id = :id"),
                          {"id": rule_id}).first()
    return _row(row) if row else None


def all_rules(session: Session) -> list[dict[str, Any]]:
    return [_row(r) for r in session.execute(sa.text(
        f"SELECT {_COLUMNS} FROM alert_rules ORDER BY builtin IS NULL, id"))]


def replace(session: Session, rule_id: int, spec: RuleSpec) -> dict[str, Any] | None:
    row = session.execute(sa.text(
        "UPDATE alert_rules SET name = :name, condition = CAST(:condition AS jsonb), "
        "scope = CAST(:scope AS jsonb), frequency = :frequency, cooldown_seconds = :cooldown, "
        "expires_at = :expires, "
        "channels = CAST(:channels AS jsonb), version = version + 1, updated_at = now() "
        f"WHERE id = :id RETURNING {_COLUMNS}"), {**_params(spec), "id": rule_id}).first()
    if row is not None:
        session.execute(sa.text("DELETE FROM alert_rule_states WHERE rule_id = :id"), {"id": rule_id})
    session.commit()
    return _row(row) if row else None


def set_status(session: Session, rule_id: int, status: str) -> dict[str, Any] | None:
    row = session.execute(sa.text(
        f"UPDATE alert_rules SET status = :s, updated_at = now() WHERE id = :id RETURNING {_COLUMNS}"),
        {"s": status, "id": rule_id}).first()
    session.commit()
    return _row(row) if row else None


def delete(session: Session, rule_id: int) -> bool:
    gone = session.execute(sa.text("DELETE FROM alert_rules WHERE id = :id"), {"id": rule_id}).rowcount
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
