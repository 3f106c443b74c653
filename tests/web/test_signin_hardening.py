"""Sign-in hardening (OWASP ASVS V2/V3): throttled guessing, sign-out that ends every session,
``Secure`` cookies behind HTTPS, and a CSRF token that changes at sign-in and sign-out."""
from __future__ import annotations

import logging

from tests.helpers import user_id
from webapp.extensions import db
from webapp.store import users


def _csrf(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def _post_login(client, name: str, password: str, remember: bool = False, **kw):
    data = {"username": name, "password": password, "csrf_token": _csrf(client)}
    if remember:
        data["remember"] = "1"
    return client.post("/login", data=data, **kw)


def test_fifty_wrong_passwords_are_throttled_and_logged_without_the_password(app, caplog) -> None:
    user_id("ann")
    client = app.test_client()
    caplog.set_level(logging.WARNING, logger="webapp.web.auth")
    codes = [_post_login(client, "ann", f"guess-{i}").status_code for i in range(50)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}  # SIGN_IN_FAILURE_LIMIT: 5/minute
    refused = _post_login(client, "ann", "password-ann")  # even the right one waits now
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    logged = caplog.text
    assert "sign-in failed for 'ann' from 127.0.0.1" in logged and "too many failures" in logged
    assert "guess-" not in logged and "password-ann" not in logged
    # per address too: another account from the same address is stopped as well
    other = [_post_login(client, "nobody", "x").status_code for _ in range(3)]
    assert other == [429] * 3
    # another address may still sign in to another account
    fresh = app.test_client()
    fresh.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    user_id("bob")
    ok = _post_login(fresh, "bob", "password-bob")
    assert ok.status_code == 302, ok.get_data(as_text=True)[-600:]


def test_sign_out_ends_the_session_and_the_remember_cookie_everywhere(app) -> None:
    user_id("ann")
    client = app.test_client()
    assert _post_login(client, "ann", "password-ann", remember=True).status_code == 302
    csrf = _csrf(client)
    saved_session = client.get_cookie("session").value
    saved_remember = client.get_cookie("remember_token").value
    assert client.get("/api/me").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    for cookies in ({"session": saved_session}, {"remember_token": saved_remember}):
        replay = app.test_client()
        for name, value in cookies.items():
            replay.set_cookie(name, value)
        assert replay.get("/api/me").status_code == 401, cookies
        made = replay.post("/api/watchlists", json={"name": "after sign-out"}, headers={"X-CSRFToken": csrf})
        assert made.status_code == 401


def test_a_new_password_ends_every_session(app) -> None:
    ann = user_id("ann")
    client = app.test_client()
    _post_login(client, "ann", "password-ann")
    assert client.get("/api/me").status_code == 200
    users.set_password(db.session, ann, "a brand new password")
    assert client.get("/api/me").status_code == 401
    result = app.test_cli_runner().invoke(args=["users", "password", "ann", "--password-stdin"],
                                          input="yet another password\n")
    assert result.exit_code == 0 and "sessions have ended" in result.output


def test_cookies_are_secure_behind_https_and_the_csrf_token_rotates(make_app) -> None:
    app = make_app(PROXY_HOPS=1)
    with app.app_context():
        user_id("ann")
        client = app.test_client()
        https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
                 "Referer": "https://localhost/login"}  # Flask-WTF checks the referrer over HTTPS
        before = _csrf(client)
        resp = client.post("/login", data={"username": "ann", "password": "password-ann", "remember": "1",
                                           "csrf_token": before}, headers=https)
        assert resp.status_code == 302
        cookies = resp.headers.getlist("Set-Cookie")
        assert {c.split("=")[0] for c in cookies} >= {"session", "remember_token"}
        assert all("; Secure" in c and "HttpOnly" in c for c in cookies), cookies
        after = _csrf(client)
        assert after != before
        out = client.post("/logout", data={"csrf_token": after}, headers=https)
        assert out.status_code == 302 and all("; Secure" in c for c in out.headers.getlist("Set-Cookie"))
        assert _csrf(client) != after
        plain = app.test_client()  # plain HTTP (make run on a laptop): no Secure, or it could not sign in
        resp = _post_login(plain, "ann", "password-ann")
        assert resp.status_code == 302
        assert all("; Secure" not in c for c in resp.headers.getlist("Set-Cookie"))


def test_an_operator_disables_enables_and_deletes_a_user_from_the_cli(app, pg) -> None:
    """Issue 26 item 18: ``flask users disable`` ends the user's sessions, refuses their sign-in and
    tokens and rests their rules, keeping all they own; ``enable`` gives it back; ``delete`` removes
    the user and everything they own."""
    from tests.helpers import token_for
    from webapp.store import rule_states

    ann = user_id("ann")
    token = token_for("ann")
    bearer = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    _post_login(client, "ann", "password-ann")
    made = client.post("/api/rules", headers=bearer, json={
        "name": "ann's", "scope": {"tickers": ["AAPL"]},
        "condition": {"op": "greater_than", "a": {"field": "close"}, "b": {"const": 1}}})
    assert made.status_code == 201
    client.post("/api/watchlists", headers=bearer, json={"name": "mine"})
    live = {r.id for r in rule_states.live_rules(db.session)}
    assert made.get_json()["id"] in live
    before = rule_states.rules_now(db.session, (0, 1)).fingerprint
    cli = app.test_cli_runner()

    result = cli.invoke(args=["users", "disable", "ann"])
    assert result.exit_code == 0, result.output
    assert client.get("/api/me").status_code == 401  # the session ended
    assert app.test_client().get("/api/me", headers=bearer).status_code == 401  # the token refused
    assert _post_login(app.test_client(), "ann", "password-ann").status_code != 302  # no sign-in
    assert made.get_json()["id"] not in {r.id for r in rule_states.live_rules(db.session)}
    assert rule_states.rules_now(db.session, (0, 1)).fingerprint != before  # the tick sees the change
    assert "disabled" in cli.invoke(args=["users", "list"]).output

    assert cli.invoke(args=["users", "enable", "ann"]).exit_code == 0
    assert app.test_client().get("/api/me", headers=bearer).status_code == 200
    assert made.get_json()["id"] in {r.id for r in rule_states.live_rules(db.session)}

    assert cli.invoke(args=["users", "delete", "ann"], input="n\n").exit_code != 0  # asks first
    assert cli.invoke(args=["users", "delete", "ann", "--yes"]).exit_code == 0
    with pg.cursor() as cur:
        for table, col in (("alert_rules", "owner_id"), ("api_tokens", "user_id"), ("watchlists", "user_id")):
            cur.execute(f"SELECT count(*) FROM {table} WHERE {col} = %s", (ann,))
            assert cur.fetchone()[0] == 0, table
    assert app.test_client().get("/api/me", headers=bearer).status_code == 401
    assert "no user 'nobody'" in cli.invoke(args=["users", "disable", "nobody"]).output
