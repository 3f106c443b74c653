"""Webhook endpoints (table ``webhook_endpoints``) and their signing secrets.

A secret is returned once, when made or rotated; for a day after a rotation
the previous one signs too, so a receiver can switch without dropping any.

An endpoint belongs to the user who made it: every function takes the
caller's id and touches only that user's endpoints, so someone else's is
"not found" (and so are its deliveries and their logs).
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


def create_endpoint(session: Session, url: str, description: str, owner: int) -> tuple[dict[str, Any], str]:
    secret = new_secret()
    row = session.execute(sa.text(
        f"INSERT INTO webhook_endpoints (url, description, secret, owner_id) VALUES (:u, :d, :s, :o) "
        f"RETURNING {_ENDPOINT_COLUMNS}"), {"u": url, "d": description, "s": secret, "o": owner}).one()
    session.commit()
    return endpoint_json(row), secret


def endpoints(session: Session, owner: int) -> list[dict[str, Any]]:
    return [endpoint_json(r) for r in session.execute(sa.text(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner_id = :o ORDER BY id"), {"o": owner})]


def endpoint(session: Session, endpoint_id: int, owner: int) -> dict[str, Any] | None:
    row = session.execute(sa.text(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints "
                                  "WHERE id = :id AND owner_id = :o"),
                          {"id": endpoint_id, "o": owner}).first()
    return endpoint_json(row) if row else None


def rotate_secret(session: Session, endpoint_id: int, overlap: timedelta, owner: int
                  ) -> tuple[dict[str, Any], str] | None:
    """A new secret; the old one keeps signing too (both signatures sent) until ``overlap`` ends."""
    secret = new_secret()
    row = session.execute(sa.text(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = now() + :overlap, "
        f"secret = :s WHERE id = :id AND owner_id = :o RETURNING {_ENDPOINT_COLUMNS}"),
        {"s": secret, "id": endpoint_id, "overlap": overlap, "o": owner}).first()
    session.commit()
    return (endpoint_json(row), secret) if row else None


def set_endpoint_status(session: Session, endpoint_id: int, status: str, owner: int) -> dict[str, Any] | None:
    row = session.execute(sa.text(
        "UPDATE webhook_endpoints SET status = :s, disabled_reason = CASE WHEN :s = 'active' THEN NULL "
        "ELSE 'disabled by the user' END, failing_since = CASE WHEN :s = 'active' THEN NULL "
        f"ELSE failing_since END WHERE id = :id AND owner_id = :o RETURNING {_ENDPOINT_COLUMNS}"),
        {"s": status, "id": endpoint_id, "o": owner}).first()
    session.commit()
    return endpoint_json(row) if row else None


def delete_endpoint(session: Session, endpoint_id: int, owner: int) -> bool:
    gone = session.execute(sa.text("DELETE FROM webhook_endpoints WHERE id = :id AND owner_id = :o"),
                           {"id": endpoint_id, "o": owner}).rowcount
    session.commit()
    return bool(gone)


def existing_endpoints(session: Session, ids: Sequence[int], owner: int) -> set[int]:
    """Of ``ids``, the endpoints of ``owner``'s (a rule delivers only to its owner's endpoints)."""
    return {r.id for r in session.execute(sa.text(
        "SELECT id FROM webhook_endpoints WHERE id = ANY(:ids) AND owner_id = :o"),
        {"ids": list(ids), "o": owner})}
