"""``/api/tokens``: a user's API tokens, like GitHub's fine-grained ones.

Listing needs ``read``; making and revoking one needs the signed-in page
(session and CSRF token), never a token: a leaked token cannot mint
another or outlive its revocation.  The token's text is in the creation's
answer only; it is stored as its SHA-256.  The CLI does the same for an
operator (``flask --app wsgi tokens ...``).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from pydantic import BaseModel, ConfigDict, Field

from webapp.extensions import db
from webapp.store import tokens as store
from webapp.web.access import PRIVATE, SESSION_ONLY, from_session, me
from webapp.web.apispec import NAME_PATTERN, endpoint
from webapp.web.errors import ApiError

bp = Blueprint("tokens", __name__)
Scope = Literal[store.SCOPES]  # type: ignore[valid-type]
MAX_DAYS = 366


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None = Field(description="null: until revoked")
    last_used_at: datetime | None = Field(description="updated at most once a minute")
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="the token itself: shown only now (send it as Authorization: Bearer)")


class TokenList(BaseModel):
    tokens: list[TokenOut]


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80, pattern=NAME_PATTERN)
    scopes: list[Scope] = Field(min_length=1, max_length=len(store.SCOPES),
                                description="admin only for an admin; a token never does more than you")
    expires_in_days: int | None = Field(90, ge=1, le=MAX_DAYS, description="null: until revoked")


class Revoked(BaseModel):
    id: int
    revoked: bool


@endpoint(bp, "/tokens", response=TokenList, auth=PRIVATE, summary="Your API tokens")
def list_tokens():
    return jsonify({"tokens": [t.as_json() for t in store.of_user(db.session, me().id)]})


@endpoint(bp, "/tokens", method="POST", status=201, response=NewTokenOut, body=NewToken, auth=SESSION_ONLY,
          summary="Make an API token (its text is shown once)")
def create_token(data: NewToken):
    who = me()
    expires = (datetime.now(timezone.utc) + timedelta(days=data.expires_in_days)
               if data.expires_in_days else None)
    try:
        token, text = store.create(db.session, who.id, data.name.strip(), data.scopes,
                                   admin=who.user.is_admin, expires_at=expires)
    except store.TokenError as exc:
        raise ApiError(400, "bad_token", str(exc)) from None
    return jsonify({**token.as_json(), "token": text}), 201


@endpoint(bp, "/tokens/<token_id>", method="DELETE", response=Revoked, auth=SESSION_ONLY, errors=(404,),
          summary="Revoke one of your API tokens")
def revoke_token(token_id: str):
    if not store.revoke(db.session, int(token_id), me().id):
        raise ApiError(404, "unknown_token", f"no active token {token_id} of yours")
    return jsonify({"id": int(token_id), "revoked": True})


# ---- the page: /tokens (server-rendered forms, CSRF-checked like every form) ----

pages_bp = Blueprint("token_pages", __name__)


@pages_bp.route("/tokens", methods=["GET", "POST"])
def tokens_page():
    """Your tokens: make one (its text shown once, on this answer only) and revoke any."""
    who = from_session()
    if who is None:
        return redirect(url_for("auth.login", next=url_for("token_pages.tokens_page")))
    made, error = None, None
    if request.method == "POST":
        days = request.form.get("expires_in_days", "90")
        try:
            expires = (datetime.now(timezone.utc) + timedelta(days=int(days))
                       if days and days != "never" else None)
            if expires is not None and not 1 <= int(days) <= MAX_DAYS:
                raise store.TokenError(f"expiry: 1 to {MAX_DAYS} days, or never")
            name = request.form.get("name", "").strip()
            if not 1 <= len(name) <= 80 or not name.isprintable():
                raise store.TokenError("a name is 1-80 printable characters")
            made = store.create(db.session, who.id, name, request.form.getlist("scopes"),
                                admin=who.user.is_admin, expires_at=expires)
        except (store.TokenError, ValueError) as exc:
            error = str(exc) if isinstance(exc, store.TokenError) else "expiry: a number of days, or never"
    status = 400 if error else (201 if made else 200)
    return render_template("tokens.html", tokens=store.of_user(db.session, who.id), made=made, error=error,
                           scopes=[s for s in store.SCOPES if s != "admin" or who.user.is_admin]), status


@pages_bp.post("/tokens/<int:token_id>/revoke")
def revoke_page(token_id: int):
    who = from_session()
    if who is None:
        return redirect(url_for("auth.login", next=url_for("token_pages.tokens_page")))
    if store.revoke(db.session, token_id, who.id):
        flash(f"Token {token_id} revoked: it stops working now.")
    return redirect(url_for("token_pages.tokens_page"))
