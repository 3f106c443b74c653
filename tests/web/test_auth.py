"""Sign-in: users made by the CLI, sessions, CSRF on session writes, pages private when asked."""
from __future__ import annotations

from webapp.extensions import db
from webapp.store import users


def _form_token(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def _sign_in(client, name: str = "ann", password: str = "long enough pw") -> str:
    """Sign in; the session's CSRF token afterwards (a new one: it rotates at sign-in)."""
    before = _form_token(client)
    resp = client.post("/login", data={"username": name, "password": password, "csrf_token": before,
                                       "next": "https://evil.example/steal"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"  # never an open redirect
    after = _form_token(client)
    assert after != before
    return after


def test_the_cli_makes_users_with_hashed_passwords_and_says_what_is_wrong(app) -> None:
    runner = app.test_cli_runner()
    made = runner.invoke(args=["users", "create", "Ann", "--password-stdin"], input="long enough pw\n")
    assert made.exit_code == 0 and "created member 'ann'" in made.output
    again = runner.invoke(args=["users", "create", "ann", "--password-stdin"], input="long enough pw\n")
    assert again.exit_code != 0 and "exists already" in again.output
    short = runner.invoke(args=["users", "create", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in short.output
    stored = db.session.execute(db.text("SELECT password_hash FROM users WHERE username = 'ann'")).scalar()
    assert stored.startswith("scrypt:") and "long enough pw" not in stored
    assert users.authenticate(db.session, "ANN", "long enough pw") is not None
    assert users.authenticate(db.session, "ann", "wrong") is None


def test_pages_can_be_made_private_and_session_writes_need_the_csrf_token(make_app) -> None:
    app = make_app(PAGES_SIGN_IN_REQUIRED=True)
    with app.app_context():
        users.create(db.session, "ann", "long enough pw")
        client = app.test_client()
        resp = client.get("/scanner")
        assert resp.status_code == 302 and "/login?next=/scanner" in resp.headers["Location"]
        assert client.get("/api/stocks").status_code == 401  # a private site: its market data too
        form_token = _sign_in(client)
        assert client.get("/scanner").status_code == 200
        assert client.get("/api/stocks").status_code == 200
        refused = client.post("/api/symbols", json={"ticker": "AMD"})
        assert refused.status_code == 401 and "X-CSRFToken" in refused.get_json()["error"]["message"]
        tracked = client.post("/api/symbols", json={"ticker": "AMD"}, headers={"X-CSRFToken": form_token})
        assert tracked.status_code == 201
        assert client.post("/logout").status_code == 400  # a form without its token is refused
        assert client.post("/logout", data={"csrf_token": form_token}).status_code == 302
        assert client.get("/").status_code == 302
