"""Signing in to change things: Flask-Login sessions, a login page, CSRF on every form.

Pages stay readable without signing in (unless ``PAGES_SIGN_IN_REQUIRED``);
changing things from a page (tracking a symbol, watchlists, column
choices) needs a signed-in user.  The API keeps its bearer tokens; a page's
own requests may instead ride the session, with its CSRF token in the
``X-CSRFToken`` header (:func:`session_write_allowed`).  Users are made with
``flask --app wsgi users create NAME``.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, validate_csrf

from webapp.config import DEV_SECRET_KEY
from webapp.extensions import db, login_manager
from webapp.services import context
from webapp.store import symbols, users
from webapp.web.errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


class SignedIn(UserMixin):
    """The signed-in user as Flask-Login holds it."""

    def __init__(self, user: users.User) -> None:
        self.user = user
        self.id = str(user.id)
        self.username = user.username


def signed_in() -> users.User | None:
    return current_user.user if current_user.is_authenticated else None  # type: ignore[union-attr]


def session_write_allowed() -> bool:
    """A signed-in user's request that carries the session's CSRF token (``X-CSRFToken``)."""
    if not current_user.is_authenticated:
        return False
    try:
        validate_csrf(request.headers.get("X-CSRFToken", ""))
    except Exception:  # ValidationError: missing, expired or wrong
        return False
    return True


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host): never an open redirect."""
    if not target:
        return url_for("pages.dashboard")
    parts = urlsplit(target)
    same_site = (not parts.scheme and not parts.netloc and target.startswith("/")
                 and not target.startswith("//"))
    return target if same_site else url_for("pages.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        user = users.authenticate(db.session, request.form.get("username", ""),
                                  request.form.get("password", ""))
        if user is not None:
            login_user(SignedIn(user), remember=bool(request.form.get("remember")))
            log.info("signed in: %s", user.username)
            return redirect(_safe_next(request.form.get("next")))
        error = "That user name and password do not match."
    status = 401 if error else 200
    return render_template("login.html", error=error, next=request.values.get("next", "")), status


@bp.post("/logout")
def logout():
    logout_user()
    flash("Signed out.")
    return redirect(url_for("pages.dashboard"))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"

    @login_manager.user_loader
    def _load(user_id: str) -> SignedIn | None:
        try:
            got = users.get(db.session, int(user_id))
        except ValueError:
            return None
        return SignedIn(got) if got else None

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return render_template("error.html", status=400, title="Form refused",
                               message=f"{exc.description} Reload the page and try again."), 400

    @app.before_request
    def _pages_need_sign_in() -> Any:
        if (context.config().PAGES_SIGN_IN_REQUIRED and not current_user.is_authenticated
                and request.blueprint == "pages"):
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return None

    @app.context_processor
    def _user() -> dict[str, Any]:
        return {"signed_in": signed_in()}

    if app.config["TRACKER"].SECRET_KEY == DEV_SECRET_KEY:
        log.warning("SECRET_KEY is the development default: sign-in sessions could be forged; set SECRET_KEY "
                    "(make run makes one for you)")


# ---- the API's doors: a bearer token, or a signed-in page's session ----

def require_read_token() -> None:
    """Reads are public unless API_READ_TOKEN_REQUIRED is set."""
    if context.config().API_READ_TOKEN_REQUIRED:
        require_token()


def require_token() -> None:
    """A write: a bearer token, or a signed-in page's session with its CSRF token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if session_write_allowed():
            return
        raise ApiError(401, "unauthorized",
                       "send Authorization: Bearer <token> (flask --app wsgi tokens create), "
                       "or sign in at /login and send the page's X-CSRFToken")
    if not symbols.token_is_valid(db.session, token.strip()):
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
