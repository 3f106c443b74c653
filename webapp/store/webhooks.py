"""Webhook endpoints (table ``webhook_endpoints``) and their signing secrets.

A secret is returned once, when made or rotated; for a day after a rotation
the previous one signs too, so a receiver can switch without dropping any.
"""
from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

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
