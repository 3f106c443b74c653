"""Users: who signs in, their role, their session version and their page settings.

Passwords are stored only as werkzeug's salted scrypt hash.  A user is made
with ``flask --app wsgi users create NAME [--admin]``; there is no sign-up
page.  ``session_version`` is part of every session and remember-cookie id
(Flask-Login's ``alternative_id`` pattern): :func:`end_sessions` bumps it,
and every cookie made before stops working.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 8
ROLES = ("admin", "member")
# a fixed hash to check against when the name is unknown, so a wrong name and a wrong password take
# the same time
_DUMMY = generate_password_hash("not a password")
_COLUMNS = "id, username, settings, role, session_version, disabled_at"
# tables whose rows made before owners existed wait for the first admin (migration 0010)
_ORPHANS = (("alert_rules", "owner_id", " AND builtin IS NULL"), ("webhook_endpoints", "owner_id", ""),
            ("alert_events", "owner_id", " AND rule_id NOT IN (SELECT id FROM alert_rules "
                                         "WHERE builtin IS NOT NULL)"),
            ("api_tokens", "user_id", ""))


class UserError(ValueError):
    """A user that cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    settings: dict[str, Any] = field(default_factory=dict)
    role: str = "member"
    session_version: int = 1
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _user(r: Any) -> User:
    return User(r.id, r.username, dict(r.settings or {}), r.role, r.session_version,
                r.disabled_at is not None)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


def create(session: Session, username: str, password: str, admin: bool = False) -> User:
    """A new user.  The first admin adopts the rows made before owners existed."""
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise UserError("a user name is 2-64 characters of a-z 0-9 . _ - (starting with a letter or digit)")
    _check_password(password)
    row = session.execute(sa.text(
        "INSERT INTO users (username, password_hash, role) VALUES (:u, :h, :r) "
        f"ON CONFLICT (username) DO NOTHING RETURNING {_COLUMNS}"),
        {"u": name, "h": generate_password_hash(password), "r": "admin" if admin else "member"}).first()
    if row is None:
        session.rollback()
        raise UserError(f"user {name!r} exists already")
    if admin:
        for table, column, extra in _ORPHANS:
            session.execute(sa.text(f"UPDATE {table} SET {column} = :id WHERE {column} IS NULL{extra}"),
                            {"id": row.id})
    session.commit()
    return _user(row)


def authenticate(session: Session, username: str, password: str) -> User | None:
    row = session.execute(sa.text(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = :u"),
        {"u": username.strip().lower()}).first()
    if row is None:
        check_password_hash(_DUMMY, password)
        return None
    ok = check_password_hash(row.password_hash, password)
    return _user(row) if ok and row.disabled_at is None else None


def get(session: Session, user_id: int) -> User | None:
    """The user behind a session or a token: none while disabled."""
    row = session.execute(sa.text(f"SELECT {_COLUMNS} FROM users WHERE id = :id AND disabled_at IS NULL"),
                          {"id": user_id}).first()
    return _user(row) if row else None


def by_name(session: Session, username: str) -> User | None:
    row = session.execute(sa.text(f"SELECT {_COLUMNS} FROM users WHERE username = :u"),
                          {"u": username.strip().lower()}).first()
    return _user(row) if row else None


def all_users(session: Session) -> list[User]:
    return [_user(r) for r in session.execute(sa.text(f"SELECT {_COLUMNS} FROM users ORDER BY id"))]


def end_sessions(session: Session, user_id: int) -> None:
    """Every session and remember-cookie of this user stops working (sign-out, a new password)."""
    session.execute(sa.text("UPDATE users SET session_version = session_version + 1 WHERE id = :id"),
                    {"id": user_id})
    session.commit()


def set_password(session: Session, user_id: int, password: str) -> None:
    """A new password, which also ends every session of the user."""
    _check_password(password)
    session.execute(sa.text("UPDATE users SET password_hash = :h, session_version = session_version + 1 "
                            "WHERE id = :id"), {"h": generate_password_hash(password), "id": user_id})
    session.commit()


def set_disabled(session: Session, user_id: int, disabled: bool) -> None:
    """Disable a user (their sessions end, their tokens and sign-in stop working, their rules rest:
    the tick judges no rule of a disabled owner) or enable them again, with all they own."""
    session.execute(sa.text(
        "UPDATE users SET disabled_at = CASE WHEN :d THEN coalesce(disabled_at, now()) END, "
        "session_version = session_version + 1 WHERE id = :id"), {"d": disabled, "id": user_id})
    session.execute(sa.text("UPDATE alert_rules SET updated_at = now() WHERE owner_id = :id"),
                    {"id": user_id})
    session.commit()


def delete(session: Session, user_id: int) -> None:
    """Remove a user and everything they own (rules, their events and states, webhook endpoints and
    deliveries, tokens, watchlists: the owner keys cascade)."""
    session.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": user_id})
    session.commit()


def set_role(session: Session, user_id: int, role: str) -> None:
    if role not in ROLES:
        raise UserError(f"a role is one of {', '.join(ROLES)}")
    session.execute(sa.text("UPDATE users SET role = :r WHERE id = :id"), {"r": role, "id": user_id})
    session.commit()


def update_settings(session: Session, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the user's settings; returns them."""
    got = session.execute(sa.text(
        "UPDATE users SET settings = settings || CAST(:c AS jsonb) WHERE id = :id RETURNING settings"),
        {"c": orjson.dumps(changes).decode(), "id": user_id}).scalar_one()
    session.commit()
    return dict(got)
