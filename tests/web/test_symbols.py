"""Tracked symbols through the API: tokens, writes, and the next tick."""
from __future__ import annotations

import hashlib

import pytest

from tests.helpers import START, EmitCapture, minutes, token_for, user_id
from webapp import names
from webapp.extensions import db
from webapp.services import context, ticks
from webapp.store import tokens


@pytest.fixture
def token(app) -> str:
    return token_for("test", admin=True)


def test_tokens_cli_create_list_revoke(app, pg) -> None:
    runner = app.test_cli_runner()
    assert "no user 'ci'" in runner.invoke(args=["tokens", "create", "ci"]).output
    user_id("ci")
    created = runner.invoke(args=["tokens", "create", "ci", "--name", "ci-bot", "--scope", "read",
                                  "--scope", "rules:write", "--expires-days", "30"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("stk_")
    with pg.cursor() as cur:
        cur.execute("SELECT token_hash, scopes, expires_at > now() + interval '29 days' FROM api_tokens")
        stored, scopes, expires_later = cur.fetchone()
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    assert scopes == ["read", "rules:write"] and expires_later
    assert "only an admin" in runner.invoke(args=["tokens", "create", "ci", "--scope", "admin"]).output
    listed = runner.invoke(args=["tokens", "list"]).output
    assert "ci-bot" in listed and token[:12] in listed and token not in listed
    assert "read,rules:write" in listed
    assert tokens.resolve(db.session, token) is not None
    assert runner.invoke(args=["tokens", "revoke", token[:12]]).exit_code == 0
    assert tokens.resolve(db.session, token) is None
    assert runner.invoke(args=["tokens", "revoke", "nope"]).exit_code != 0


def test_writes_need_a_valid_token(app, token) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
        resp = client.post("/api/symbols", json={"ticker": "AMD"}, headers=headers)
        assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "unauthorized"
        assert client.delete("/api/symbols/AAPL", headers=headers).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    bad = client.post("/api/symbols", json={"ticker": "NOT A TICKER"}, headers=auth)
    assert bad.status_code == 400 and "ticker" in bad.get_json()["error"]["message"]
    assert client.post("/api/symbols", data="AMD", headers=auth).status_code == 400
    assert client.delete("/api/symbols/ZZZZ", headers=auth).status_code == 404


def test_added_symbol_is_in_the_next_tick(app, token, service_urls) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    ticks.run_tick_now(START)
    added = client.post("/api/symbols", json={"ticker": "amd"}, headers=auth)
    assert added.status_code == 201 and added.get_json() == {"ticker": "AMD", "active": True, "changed": True}
    again = client.post("/api/symbols", json={"ticker": "AMD"}, headers=auth)
    assert again.status_code == 200 and again.get_json()["changed"] is False
    assert client.delete("/api/symbols/KO", headers=auth).get_json()["active"] is False
    listed = [s["ticker"] for s in client.get("/api/symbols").get_json()["symbols"]]
    assert "AMD" in listed and "KO" not in listed and listed[0] == "AAPL"

    capture = EmitCapture(service_urls[0])
    try:
        ticks.run_tick_now(minutes(2)[1])  # the next tick, same process, no restart
        (_, update), = capture.events(names.EVENT_STOCK_UPDATE)
    finally:
        capture.close()
    tickers = [s["ticker"] for s in update["stocks"]]
    assert "AMD" in tickers and "KO" not in tickers
    # removing a configured symbol sticks: the seed from SYMBOLS does not bring it back
    assert "KO" not in context.tracked_symbols(fresh=True)


def test_the_simulated_market_lists_its_universe_and_invents_nothing(app, token) -> None:
    """Search finds listed symbols by company name, tracked or not; "Track" is offered only for a
    symbol the simulated market lists; an unlisted one is refused everywhere, saying why, and gets
    no fabricated history (issue 26, items 10 and 12)."""
    c = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    google = c.get("/api/search?q=google").get_json()
    assert [h["ticker"] for h in google["results"]] == ["GOOGL", "GOOG"] and google["track"] is None
    assert [h["tracked"] for h in google["results"]] == [True, False]
    micro = {h["ticker"] for h in c.get("/api/search?q=micro").get_json()["results"]}
    assert micro == {"MSFT", "AMD", "MU"}
    assert c.get("/api/search?q=Apple").get_json()["track"] is None  # not "APPLE"
    assert c.get("/api/search?q=amd").get_json()["track"] == "AMD"
    assert c.get("/api/search?q=ZZZZZ").get_json() == {"query": "ZZZZZ", "results": [], "track": None}

    refused = c.post("/api/symbols", json={"ticker": "ZZZZZ"}, headers=auth)
    assert refused.status_code == 404
    assert "ZZZZZ is not in the simulated market" in refused.get_json()["error"]["message"]
    assert "ZZZZZ" not in context.tracked_symbols(fresh=True)
    with db.engine.connect() as conn:
        assert conn.execute(db.text("SELECT count(*) FROM daily_bars WHERE ticker = 'ZZZZZ'")).scalar() == 0


def test_a_watchlist_takes_an_untracked_symbol_and_tracks_it(app) -> None:
    """The watchlist box used to refuse INTC ("not tracked"); only the header's Track worked (item 9)."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('wendy')}"
    made = c.post("/api/watchlists", json={"name": "Chips"}).get_json()
    added = c.post(f"/api/watchlists/{made['id']}/tickers", json={"ticker": "intc"})
    assert added.status_code == 200 and added.get_json()["tickers"] == ["INTC"]
    assert "INTC" in context.tracked_symbols(fresh=True)
    with db.engine.connect() as conn:
        assert conn.execute(db.text("SELECT added_by FROM symbols WHERE ticker = 'INTC'")).scalar() == \
            user_id("wendy")
    nope = c.post(f"/api/watchlists/{made['id']}/tickers", json={"ticker": "ZZZZZ"})
    assert nope.status_code == 404 and "not in the simulated market" in nope.get_json()["error"]["message"]
    reader = app.test_client()  # a token that may not track symbols adds only tracked ones
    reader.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('wendy', ('read', 'watchlists:write'))}"
    held = reader.post(f"/api/watchlists/{made['id']}/tickers", json={"ticker": "AMD"})
    assert held.status_code == 404 and "AMD is not tracked" in held.get_json()["error"]["message"]
    assert reader.post(f"/api/watchlists/{made['id']}/tickers", json={"ticker": "KO"}).status_code == 200
    other = app.test_client()  # someone else's list tracks nothing either
    other.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('mallory')}"
    assert other.post(f"/api/watchlists/{made['id']}/tickers", json={"ticker": "AMD"}).status_code == 404
    assert "AMD" not in context.tracked_symbols(fresh=True)
