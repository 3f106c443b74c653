"""API tokens, like GitHub's fine-grained ones: an owner, scopes, an optional expiry, a last use.

A token is stored only as its SHA-256: it is shown once, when made.  Lists
show its prefix.  What a token may do is its scopes *and* what its owner
may do (:mod:`webapp.web.access` intersects them), so a token never does
more than its owner.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

TOKEN_PREFIX = "stk_"
PREFIX_LENGTH = 12
# read: everything the owner may see; X:write: change X; admin: the tracked symbol set's removals, the
# built-in rule, and acting as an admin (only an admin's token may carry it)
SCOPES = ("read", "rules:write", "webhooks:write", "watchlists:write", "symbols:write", "admin")
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token
_COLUMNS = ("t.id, t.name, t.prefix, t.user_id, t.scopes, t.created_at, t.expires_at, t.last_used_at, "
            "t.revoked_at")


class TokenError(ValueError):
    """A token that cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    prefix: str
    user_id: int
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"id": self.id, "name": self.name, "prefix": self.prefix, "scopes": list(self.scopes),
                "created_at": self.created_at.isoformat(), "expires_at": iso(self.expires_at),
                "last_used_at": iso(self.last_used_at), "revoked_at": iso(self.revoked_at)}


def _token(r: Any) -> Token:
    return Token(r.id, r.name, r.prefix, r.user_id, tuple(r.scopes), r.created_at, r.expires_at,
                 r.last_used_at, r.revoked_at)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str], admin: bool) -> tuple[str, ...]:
    """The scopes in their canonical order; unknown ones, or admin for a member, refused."""
    wanted = set(scopes)
    unknown = wanted - set(SCOPES)
    if unknown:
        raise TokenError(f"unknown scope(s) {', '.join(sorted(unknown))}: use {', '.join(SCOPES)}")
    if not wanted:
        raise TokenError(f"a token needs at least one scope of {', '.join(SCOPES)}")
    if "admin" in wanted and not admin:
        raise TokenError("only an admin's token may carry the admin scope")
    return tuple(s for s in SCOPES if s in wanted)


def create(session: Session, user_id: int, name: str, scopes: Iterable[str], *, admin: bool,
           expires_at: datetime | None = None) -> tuple[Token, str]:
    """A new token and its secret text: the only time the text is ever shown."""
    chosen = check_scopes(scopes, admin)
    if expires_at is not None and expires_at <= datetime.now(timezone.utc):
        raise TokenError("expires_at must be in the future")
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = session.execute(sa.text(
        "INSERT INTO api_tokens AS t (name, prefix, token_hash, user_id, scopes, expires_at) "
        f"VALUES (:n, :p, :h, :u, :s, :e) RETURNING {_COLUMNS}"),
        {"n": name, "p": text[:PREFIX_LENGTH], "h": _hash(text), "u": user_id, "s": list(chosen),
         "e": expires_at}).one()
    session.commit()
    return _token(row), text


def of_user(session: Session, user_id: int | None = None) -> list[Token]:
    """A user's tokens (or everyone's, for the CLI), oldest first."""
    rows = session.execute(sa.text(
        f"SELECT {_COLUMNS} FROM api_tokens t WHERE CAST(:u AS bigint) IS NULL OR t.user_id = :u "
        "ORDER BY t.id"), {"u": user_id})
    return [_token(r) for r in rows]


def revoke(session: Session, ident: str | int, user_id: int | None = None) -> int:
    """Revoke by id or by the shown prefix, of one user (or any, for the CLI); how many were revoked."""
    text = str(ident).rstrip("…")
    by = "t.id = CAST(:i AS bigint)" if text.isascii() and text.isdigit() else "t.prefix = :i"
    count = session.execute(sa.text(
        f"UPDATE api_tokens t SET revoked_at = now() WHERE {by} AND t.revoked_at IS NULL "
        "AND (CAST(:u AS bigint) IS NULL OR t.user_id = :u)"), {"i": text, "u": user_id}).rowcount
    session.commit()
    return count


def resolve(session: Session, text: str, now: datetime | None = None) -> Token | None:
    """The live token with this text (not revoked, not expired, with an owner), its use recorded."""
    now = now or datetime.now(timezone.utc)
    row = session.execute(sa.text(
        f"SELECT {_COLUMNS} FROM api_tokens t WHERE t.token_hash = :h AND t.revoked_at IS NULL "
        "AND t.user_id IS NOT NULL AND (t.expires_at IS NULL OR t.expires_at > :now)"),
        {"h": _hash(text), "now": now}).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        session.execute(sa.text("UPDATE api_tokens SET last_used_at = :now WHERE id = :id"),
                        {"now": now, "id": row.id})
        session.commit()
    return _token(row)
