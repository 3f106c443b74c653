"""Users who sign in to change things on the pages, and their page settings.

Passwords are stored only as werkzeug's salted scrypt hash.  A user is made
with ``flask --app wsgi users create NAME``; there is no sign-up page.
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
# a fixed hash to check against when the name is unknown, so a wrong name and a wrong password take
# the same time
_DUMMY = generate_password_hash("not a password")


class UserError(ValueError):
    """A user that cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    settings: dict[str, Any] = field(default_factory=dict)


def _user(r: Any) -> User:
    return User(r.id, r.username, dict(r.settings or {}))


def create(session: Session, username: str, password: str) -> User:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise UserError("a user name is 2-64 characters of a-z 0-9 . _ - (starting with a letter or digit)")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    row = session.execute(sa.text(
        "INSERT INTO users (username, password_hash) VALUES (:u, :h) ON CONFLICT (username) DO NOTHING "
        "RETURNING id, username, settings"), {"u": name, "h": generate_password_hash(password)}).first()
    if row is None:
        session.rollback()
        raise UserError(f"user {name!r} exists already")
    session.commit()
    return _user(row)


def authenticate(session: Session, username: str, password: str) -> User | None:
    row = session.execute(sa.text(
        "SELECT id, username, settings, password_hash FROM users WHERE username = :u"),
        {"u": username.strip().lower()}).first()
    if row is None:
        check_password_hash(_DUMMY, password)
        return None
    return _user(row) if check_password_hash(row.password_hash, password) else None


def get(session: Session, user_id: int) -> User | None:
    row = session.execute(sa.text("SELECT id, username, settings FROM users WHERE id = :id"),
                          {"id": user_id}).first()
    return _user(row) if row else None


def update_settings(session: Session, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the user's settings; returns them."""
    got = session.execute(sa.text(
        "UPDATE users SET settings = settings || CAST(:c AS jsonb) WHERE id = :id RETURNING settings"),
        {"c": orjson.dumps(changes).decode(), "id": user_id}).scalar_one()
    session.commit()
    return dict(got)
