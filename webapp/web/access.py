"""Who is asking and what they may do: the one place every API door and Socket.IO connection asks.

Deny by default (OWASP ASVS V4).  A caller is a :class:`Principal`: a
signed-in user (the page's session) or a bearer token's owner.  What it may
do is a set of scopes:

- a session carries every scope its user's role allows;
- a token carries the scopes it was made with, intersected with what its
  owner's role allows *now* (a demoted admin's token loses ``admin``), so a
  token never does more than its owner (GitHub's fine-grained tokens).

The doors an endpoint is declared with (:data:`PUBLIC`, :data:`PRIVATE`,
:func:`writer`, :data:`SESSION_ONLY`) check that before the view runs; the
view then asks :func:`me` for the caller and scopes its reads and writes
to ``me().id``.  Market data is public unless ``API_READ_TOKEN_REQUIRED``
or ``PAGES_SIGN_IN_REQUIRED`` makes the whole site private; a user's own
things (rules, webhooks, events, tokens, watchlists) are never public.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request
from flask_login import current_user
from flask_wtf.csrf import validate_csrf

from webapp.extensions import db
from webapp.services import context
from webapp.store import tokens, users
from webapp.web.errors import ApiError

_CACHE = "tracker.principal"
MEMBER_SCOPES = frozenset(s for s in tokens.SCOPES if s != "admin")
ADMIN_SCOPES = frozenset(tokens.SCOPES)
_SIGN_IN = ("send Authorization: Bearer <token> (make one at /tokens or with flask --app wsgi tokens "
            "create), or sign in at /login")


@dataclass(frozen=True)
class Principal:
    """The caller: a user, the scopes this request carries, and how it came (``session``/``token``)."""

    user: users.User
    scopes: frozenset[str]
    via: str
    token_id: int | None = None

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def can(self, scope: str) -> bool:
        return scope in self.scopes


def role_scopes(user: users.User) -> frozenset[str]:
    return ADMIN_SCOPES if user.is_admin else MEMBER_SCOPES


def from_token(text: str) -> Principal | None:
    """The principal of a bearer token's text, or None (unknown, revoked, expired, owner gone)."""
    token = tokens.resolve(db.session, text)
    owner = users.get(db.session, token.user_id) if token else None
    if token is None or owner is None:
        return None
    return Principal(owner, frozenset(token.scopes) & role_scopes(owner), "token", token.id)


def from_session() -> Principal | None:
    if not current_user.is_authenticated:
        return None
    user: users.User = current_user.user  # type: ignore[union-attr]
    return Principal(user, role_scopes(user), "session")


def _bearer() -> str | None:
    scheme, _, text = request.headers.get("Authorization", "").partition(" ")
    if not scheme:
        return None
    if scheme.lower() != "bearer" or not text.strip():
        raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <token>'")
    return text.strip()


def principal() -> Principal | None:
    """This request's caller (computed once per request).  A bearer token that is not valid is a 401,
    even when a session rides along: a client that sends a token means that token."""
    # cached on the request itself: ``g`` outlives a request when an app context is already pushed
    if _CACHE in request.environ:
        return request.environ[_CACHE]  # type: ignore[no-any-return]
    text = _bearer()
    if text is not None:
        got = from_token(text)
        if got is None:
            raise ApiError(401, "unauthorized", "the token is unknown, revoked or expired")
    else:
        got = from_session()
    request.environ[_CACHE] = got
    return got


def me() -> Principal:
    """The caller an endpoint's door has already let in."""
    got = principal()
    if got is None:  # a door that lets anonymous callers in must not call this
        raise ApiError(401, "unauthorized", _SIGN_IN)
    return got


def private_mode() -> bool:
    """The whole site is private: nothing, not even market data, without signing in."""
    cfg = context.config()
    return cfg.API_READ_TOKEN_REQUIRED or cfg.PAGES_SIGN_IN_REQUIRED


def csrf_ok() -> bool:
    try:
        validate_csrf(request.headers.get("X-CSRFToken", ""))
    except Exception:  # ValidationError: missing, expired or wrong
        return False
    return True


class Door:
    """An endpoint's check, run before anything else (``kind`` also shapes the OpenAPI security)."""

    def __init__(self, kind: str, scope: str | None, *, anonymous: bool = False,
                 session_only: bool = False) -> None:
        self.kind, self.scope = kind, scope
        self.anonymous, self.session_only = anonymous, session_only

    def __call__(self) -> None:
        who = principal()
        if who is None:
            if self.anonymous and not private_mode():
                return
            raise ApiError(401, "unauthorized", _SIGN_IN)
        if self.session_only and who.via != "session":
            raise ApiError(403, "forbidden", "tokens are managed from a signed-in page (/tokens) or the "
                                             "CLI, not with a token")
        if self.scope and not who.can(self.scope):
            raise ApiError(403, "forbidden", _missing(who, self.scope))
        if who.via == "session" and request.method not in ("GET", "HEAD", "OPTIONS") and not csrf_ok():
            raise ApiError(401, "unauthorized", "the X-CSRFToken header is missing or wrong: reload the page")

    def __repr__(self) -> str:
        return f"Door({self.kind!r}, {self.scope!r})"


def _missing(who: Principal, scope: str) -> str:
    if scope == "admin" or scope not in role_scopes(who.user):
        return "only an admin may do this"
    return f"this token lacks the {scope!r} scope"


PUBLIC = Door("public", "read", anonymous=True)  # market data: open unless the site is private
PRIVATE = Door("private", "read")  # the caller's own things: always signed in or a token
SESSION_ONLY = Door("session", None, session_only=True)  # token management: never with a token
_WRITERS: dict[str, Door] = {}


def writer(scope: str) -> Door:
    """A write that needs ``scope`` (a session's writes also need the page's CSRF token)."""
    if scope not in tokens.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return _WRITERS.setdefault(scope, Door("write", scope))


def for_socket(auth: Any) -> Principal | None:
    """A Socket.IO connection's caller: the ``auth`` payload's token, or the session's user.

    Raises ``ValueError`` with the reason for a token that is not valid."""
    if isinstance(auth, dict) and auth.get("token") is not None:
        text = auth["token"]
        got = from_token(text) if isinstance(text, str) and len(text) <= 200 else None
        if got is None:
            raise ValueError("the token is unknown, revoked or expired")
        return got
    return from_session()
