"""Signing in: Flask-Login sessions, a throttled login page, sign-out that ends every session.

Pages stay readable without signing in (unless ``PAGES_SIGN_IN_REQUIRED``);
changing things needs a signed-in user or a token (:mod:`webapp.web.access`).
Users are made with ``flask --app wsgi users create NAME [--admin]``.

OWASP ASVS V2/V3, as the tools here do it:

- failed sign-ins are counted per account and per address
  (:class:`~webapp.store.signin_throttle.SignInThrottle`); past
  ``SIGN_IN_FAILURE_LIMIT`` the answer is 429 with ``Retry-After``, and
  every failure is logged with the address, never the password;
- a session's id is ``<user id>:<session version>`` (Flask-Login's
  ``alternative_id`` pattern): signing out or a new password bumps the
  version, so every session and remember-cookie made before stops working;
- cookies are ``Secure`` whenever the request came over HTTPS, directly or
  through ``PROXY_HOPS`` trusted proxies (:class:`SecureCookies`);
- the CSRF token is made anew at sign-in and sign-out.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError

from webapp.config import DEV_SECRET_KEY, limits_storage_uri
from webapp.extensions import db, login_manager
from webapp.services import context
from webapp.store import users
from webapp.store.signin_throttle import SignInThrottle

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


class SignedIn(UserMixin):
    """The signed-in user as Flask-Login holds it; its id names the session version it was made in."""

    def __init__(self, user: users.User) -> None:
        self.user = user
        self.id = f"{user.id}:{user.session_version}"
        self.username = user.username


def signed_in() -> users.User | None:
    return current_user.user if current_user.is_authenticated else None  # type: ignore[union-attr]


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host): never an open redirect."""
    if not target:
        return url_for("pages.dashboard")
    parts = urlsplit(target)
    same_site = (not parts.scheme and not parts.netloc and target.startswith("/")
                 and not target.startswith("//"))
    return target if same_site else url_for("pages.dashboard")


def _throttle() -> SignInThrottle:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    got = app.extensions.get("signin_throttle")
    if got is None:
        cfg = context.config()
        got = app.extensions["signin_throttle"] = SignInThrottle(limits_storage_uri(cfg.REDIS_URL or ""),
                                                                 cfg.SIGN_IN_FAILURE_LIMIT)
    return got


def _new_csrf_token() -> None:
    """Flask-WTF makes a new token when the session holds none (sign-in, sign-out)."""
    session.pop("csrf_token", None)
    g.pop("csrf_token", None)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        name = request.form.get("username", "")
        address = request.remote_addr or "unknown"
        wait = _throttle().retry_after(name, address)
        if wait is not None:
            log.warning("sign-in refused (too many failures) for %r from %s", name[:64], address)
            return render_template("login.html", next=request.values.get("next", ""),
                                   error=f"Too many failed sign-ins: try again in {wait} s."), \
                429, {"Retry-After": str(wait)}
        user = users.authenticate(db.session, name, request.form.get("password", ""))
        if user is not None:
            _throttle().succeeded(name, address)
            _new_csrf_token()
            login_user(SignedIn(user), remember=bool(request.form.get("remember")))
            log.info("signed in: %s from %s", user.username, address)
            return redirect(_safe_next(request.form.get("next")))
        _throttle().failed(name, address)
        log.warning("sign-in failed for %r from %s", name[:64], address)
        error = "That user name and password do not match."
    status = 401 if error else 200
    return render_template("login.html", error=error, next=request.values.get("next", "")), status


@bp.post("/logout")
def logout():
    user = signed_in()
    if user is not None:
        users.end_sessions(db.session, user.id)  # every session and remember-cookie of the user ends
    logout_user()
    _new_csrf_token()
    flash("Signed out.")
    return redirect(url_for("pages.dashboard"))


class SecureCookies:
    """WSGI middleware: ``Secure`` on every cookie of a response to an HTTPS request.

    Flask's ``SESSION_COOKIE_SECURE`` is one value for every request; this
    follows the request instead (``wsgi.url_scheme``, which ProxyFix sets from
    ``X-Forwarded-Proto`` for ``PROXY_HOPS`` trusted proxies), so ``make run``
    over plain HTTP still signs in while a deployment behind TLS never sends a
    session cookie in the clear.  It wraps the whole app because the session
    cookie is written after every ``after_request`` hook.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def secure(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            headers = [(k, v + "; Secure") if k.lower() == "set-cookie" and "; secure" not in v.lower()
                       else (k, v) for k, v in headers]
            return start_response(status, headers, *rest)

        return self.app(environ, secure)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"

    @login_manager.user_loader
    def _load(session_id: str) -> SignedIn | None:
        """The user of a session or remember-cookie, while its session version is the user's own."""
        uid, _, version = session_id.partition(":")
        if not (uid.isascii() and uid.isdigit() and version.isascii() and version.isdigit()):
            return None  # a cookie from before session versions, or forged
        got = users.get(db.session, int(uid))
        return SignedIn(got) if got and got.session_version == int(version) else None

    @app.before_request
    def _each_request_its_own_user() -> None:
        # Flask-Login keeps the user in ``g``, and Flask-WTF the CSRF token; ``g`` outlives a request
        # when an app context was pushed before it (scripts, tests): a request must never inherit the
        # one before's user or token
        g.pop("_login_user", None)
        g.pop("csrf_token", None)

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
