"""Every user's own: two users, A (ann) and B (bob), and a token of each scope, over every endpoint.

The tables below are the authorization contract.  ``AGAINST_A`` is every
door that names one of A's things by id: B gets a 404 for each (an id
confirms nothing), by token and by signed-in session, and A's things are
unchanged afterwards.  ``LISTS`` are the collections: B never sees A's
items.  ``WRITES`` is every write: a read-only token gets 403 for each.
``ADMIN_ONLY`` are the doors a member cannot open.  The last test checks
that every endpoint the API declares is in a table here, so a new endpoint
cannot ship without its row.
"""
from __future__ import annotations

import pytest

from tests.helpers import START, token_for, user_id
from webapp.core.rules.state import Fire
from webapp.extensions import db
from webapp.services import context
from webapp.services import rules as rules_service
from webapp.store import alert_events, tokens
from webapp.store import rules as rules_store
from webapp.store import watchlists as watchlists_store
from webapp.store import webhooks as webhooks_store
from webapp.web.apispec import ENDPOINTS

RULE = {"name": "A's rule", "scope": {"tickers": ["AAPL"]}, "cooldown_seconds": 0,
        "condition": {"op": "crossing_up", "a": {"field": "close"}, "b": {"sma": 5}}}

# B acting on A's things by id: each answers 404, and changes nothing
AGAINST_A = [
    ("GET", "/api/rules/{rule}", None),
    ("PUT", "/api/rules/{rule}", {**RULE, "name": "renamed by bob"}),
    ("PATCH", "/api/rules/{rule}", {"status": "paused"}),
    ("DELETE", "/api/rules/{rule}", None),
    ("POST", "/api/rules/{rule}/replay", {}),
    ("GET", "/api/alert-events/{event}", None),
    ("GET", "/api/webhooks/{hook}", None),
    ("PATCH", "/api/webhooks/{hook}", {"status": "disabled"}),
    ("POST", "/api/webhooks/{hook}/rotate", None),
    ("DELETE", "/api/webhooks/{hook}", None),
    ("POST", "/api/deliveries/{delivery}/redeliver", None),
    ("PATCH", "/api/watchlists/{watchlist}", {"name": "bob was here"}),
    ("DELETE", "/api/watchlists/{watchlist}", None),
    ("POST", "/api/watchlists/{watchlist}/tickers", {"ticker": "MSFT"}),
    ("DELETE", "/api/watchlists/{watchlist}/tickers/AAPL", None),
    ("DELETE", "/api/tokens/{token}", None),  # a session's door: B's token is refused before (403)
]
# collections: what B lists never holds A's
LISTS = [("/api/rules", "rules", "rule"), ("/api/alert-events", "events", "event"),
         ("/api/webhooks", "endpoints", "hook"), ("/api/watchlists", "watchlists", "watchlist"),
         ("/api/tokens", "tokens", "token")]
# every write, done by B on B's own things (or new ones) with a read-only token: 403 each
WRITES = [
    ("POST", "/api/rules", RULE),
    ("PUT", "/api/rules/{b_rule}", RULE),
    ("PATCH", "/api/rules/{b_rule}", {"status": "paused"}),
    ("DELETE", "/api/rules/{b_rule}", None),
    ("POST", "/api/webhooks", {"url": "https://example.com/hook"}),
    ("PATCH", "/api/webhooks/{b_hook}", {"status": "disabled"}),
    ("POST", "/api/webhooks/{b_hook}/rotate", None),
    ("DELETE", "/api/webhooks/{b_hook}", None),
    ("POST", "/api/deliveries/{b_delivery}/redeliver", None),
    ("POST", "/api/watchlists", {"name": "new"}),
    ("PATCH", "/api/watchlists/{b_watchlist}", {"name": "x"}),
    ("DELETE", "/api/watchlists/{b_watchlist}", None),
    ("POST", "/api/watchlists/{b_watchlist}/tickers", {"ticker": "MSFT"}),
    ("DELETE", "/api/watchlists/{b_watchlist}/tickers/AAPL", None),
    ("PATCH", "/api/me/settings", {"dashboard_columns": ["price"]}),
    ("POST", "/api/symbols", {"ticker": "AMD"}),
    ("DELETE", "/api/symbols/KO", None),
    ("POST", "/api/tokens", {"name": "more", "scopes": ["read"]}),
    ("DELETE", "/api/tokens/{b_token}", None),
]
# a member's token of every member scope is refused these: only an admin may
ADMIN_ONLY = [("DELETE", "/api/symbols/KO", None), ("PATCH", "/api/rules/{builtin}", {"status": "paused"})]
# the doors that answer anyone (market data; open unless the site is private) and read-only ones that
# show only the caller's own or shared things; the guard below checks every endpoint is in some table
PUBLIC_OR_OWN_READS = [
    ("GET", "/api/stocks"), ("GET", "/api/stocks/{ticker}"), ("GET", "/api/stocks/{ticker}/history"),
    ("GET", "/api/stocks/{ticker}/chart"), ("GET", "/api/backfill/{ticker}"), ("GET", "/api/search"),
    ("GET", "/api/alerts"), ("GET", "/api/health"), ("GET", "/api/symbols"), ("GET", "/api/scanner"),
    ("GET", "/api/scanner/{list_name}"), ("GET", "/api/stream"), ("GET", "/api/openapi.json"),
    ("GET", "/api/me"), ("POST", "/api/rules/replay"),
]


@pytest.fixture
def world(app):
    """A's things (a rule delivering to A's endpoint, an event with its delivery, a watchlist, a token),
    B's own of each, and the clients: B by token of every scope, B read-only, B signed in."""
    ann, bob = user_id("ann"), user_id("bob")
    context.tracked_symbols()  # the configured symbols seed the shared set
    ids: dict[str, int] = {}
    for who, prefix in ((ann, ""), (bob, "b_")):
        hook, _ = webhooks_store.create_endpoint(db.session, "https://example.com/hook", "mine", who)
        spec = rules_service.rule_spec({**RULE, "channels": ["browser", f"webhook:{hook['id']}"]}, who)
        rule = rules_store.create(db.session, spec, who)
        fire = Fire(rule["id"], 1, "AAPL", int(START.timestamp()), f"bucket-{who}", {"a": 1.0}, "crossed")
        written = alert_events.write_fires(db.session, [alert_events.FireRow(
            fire, rule["name"], (hook["id"],), "sim", 0.0, 1.0)], [])
        db.session.commit()
        event = next(iter(written.made.values()))
        delivery = db.session.execute(db.text("SELECT id FROM deliveries WHERE event_id = :e"),
                                      {"e": event}).scalar_one()
        watchlist = watchlists_store.create(db.session, who, "mine", ["AAPL"])
        token, _ = tokens.create(db.session, who, "mine", ["read"], admin=False)
        ids.update({f"{prefix}hook": hook["id"], f"{prefix}rule": rule["id"], f"{prefix}event": event,
                    f"{prefix}delivery": delivery, f"{prefix}watchlist": watchlist["id"],
                    f"{prefix}token": token.id})
    ids["builtin"] = rules_service.builtin_rule()["id"]
    clients = {}
    for name, scopes in (("bob", None), ("bob_read", ("read",))):
        c = app.test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('bob', scopes)}"
        clients[name] = c
    session = app.test_client()
    page = session.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert session.post("/login", data={"username": "bob", "password": "password-bob",
                                        "csrf_token": csrf}).status_code == 302
    page = session.get("/login").get_data(as_text=True)
    session.environ_base["HTTP_X_CSRFTOKEN"] = page.split('name="csrf_token" value="')[1].split('"')[0]
    clients["bob_session"] = session
    return ids, clients, ann


def _call(client, method: str, path: str, body, ids: dict[str, int]):
    return client.open(path.format(**ids), method=method, json=body)


def _a_state(ann: int, ids: dict[str, int]) -> tuple:
    rule = rules_store.get(db.session, ids["rule"], ann)
    hook = webhooks_store.endpoint(db.session, ids["hook"], ann)
    secret = db.session.execute(db.text("SELECT secret FROM webhook_endpoints WHERE id = :i"),
                                {"i": ids["hook"]}).scalar_one()
    delivery = db.session.execute(db.text("SELECT status, trigger FROM deliveries WHERE id = :i"),
                                  {"i": ids["delivery"]}).one()
    lists = watchlists_store.lists(db.session, ann)
    token = [t.revoked_at for t in tokens.of_user(db.session, ann)]
    return (rule["name"], rule["status"], rule["version"], hook["status"], secret, tuple(delivery),
            [(w["name"], w["tickers"]) for w in lists], token)


@pytest.mark.parametrize("via", ["bob", "bob_session"])
@pytest.mark.parametrize(("method", "path", "body"), AGAINST_A)
def test_b_can_do_nothing_to_as_things(world, via, method, path, body) -> None:
    ids, clients, ann = world
    before = _a_state(ann, ids)
    resp = _call(clients[via], method, path, body, ids)
    expected = 403 if path.startswith("/api/tokens") and via == "bob" else 404
    assert resp.status_code == expected, resp.get_json()
    db.session.rollback()
    assert _a_state(ann, ids) == before


@pytest.mark.parametrize("via", ["bob", "bob_read", "bob_session"])
@pytest.mark.parametrize(("path", "key", "thing"), LISTS)
def test_b_never_lists_as_things(world, via, path, key, thing) -> None:
    ids, clients, _ = world
    resp = clients[via].get(path)
    assert resp.status_code == 200, resp.get_json()
    got = {item["id"] for item in resp.get_json()[key]}
    assert ids[thing] not in got
    if via != "bob_read" or thing != "token":
        assert ids[f"b_{thing}"] in got  # B's own are there: the filter is the owner, not "nothing"


def test_b_cannot_deliver_to_as_endpoint_or_read_as_delivery_logs(world) -> None:
    ids, clients, _ = world
    made = clients["bob"].post("/api/rules", json={**RULE, "channels": [f"webhook:{ids['hook']}"]})
    assert made.status_code == 400
    assert f"no webhook endpoint {ids['hook']}" in made.get_json()["error"]["message"]
    own = clients["bob"].get(f"/api/alert-events/{ids['b_event']}").get_json()
    assert [d["endpoint_id"] for d in own["deliveries"]] == [ids["b_hook"]]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_read_token_cannot_write(world, method, path, body) -> None:
    ids, clients, _ = world
    resp = _call(clients["bob_read"], method, path, body, ids)
    assert resp.status_code == 403, resp.get_json()
    assert "scope" in resp.get_json()["error"]["message"] or "admin" in resp.get_json()["error"]["message"] \
        or "tokens are managed" in resp.get_json()["error"]["message"]


@pytest.mark.parametrize(("method", "path", "body"), [*AGAINST_A, *WRITES])
def test_nobody_anonymous_reads_or_writes_anyones_things(world, app, method, path, body) -> None:
    ids, _, _ = world
    resp = _call(app.test_client(), method, path, body, ids)
    assert resp.status_code == 401, resp.get_json()


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_only_an_admin_removes_symbols_and_pauses_the_builtin_rule(world, app, method, path, body) -> None:
    ids, clients, _ = world
    assert _call(clients["bob"], method, path, body, ids).status_code == 403
    admin = app.test_client()
    admin.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('root', admin=True)}"
    assert _call(admin, method, path, body, ids).status_code == 200
    member_scoped = app.test_client()  # an admin's token without the admin scope is a member's
    narrow = token_for("root", ("read", "rules:write", "symbols:write"))
    member_scoped.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {narrow}"
    assert _call(member_scoped, method, path, body, ids).status_code == 403


def test_a_member_tracks_within_a_limit_and_a_token_never_outdoes_its_owner(world, make_app) -> None:
    ids, clients, _ = world
    app = make_app(MEMBER_SYMBOL_LIMIT=2)
    with app.app_context():
        c = app.test_client()
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('bob', ('read', 'symbols:write'))}"
        assert [c.post("/api/symbols", json={"ticker": t}).status_code for t in ("AMD", "INTC")] == [201, 201]
        over = c.post("/api/symbols", json={"ticker": "ORCL"})
        assert over.status_code == 409 and "MEMBER_SYMBOL_LIMIT" in over.get_json()["error"]["message"]
        added = db.session.execute(db.text("SELECT added_by FROM symbols WHERE ticker = 'AMD'")).scalar()
        assert added == user_id("bob")
        with pytest.raises(tokens.TokenError, match="only an admin"):
            tokens.create(db.session, user_id("bob"), "sneaky", ["admin"], admin=False)
        made = clients["bob_session"].post("/api/tokens", json={"name": "x", "scopes": ["read", "admin"]})
        assert made.status_code == 400 and "only an admin" in made.get_json()["error"]["message"]


def test_every_endpoint_is_in_a_table() -> None:
    tabled = {(m, p.split("?")[0]) for m, p, *_ in [*AGAINST_A, *WRITES, *ADMIN_ONLY, *PUBLIC_OR_OWN_READS]}
    tabled |= {("GET", p) for p, *_ in LISTS}
    names = {"{rule}": "{rule_id}", "{b_rule}": "{rule_id}", "{builtin}": "{rule_id}",
             "{event}": "{event_id}",
             "{hook}": "{webhook_id}", "{b_hook}": "{webhook_id}", "{delivery}": "{delivery_id}",
             "{b_delivery}": "{delivery_id}", "{watchlist}": "{list_id}", "{b_watchlist}": "{list_id}",
             "{token}": "{token_id}", "{b_token}": "{token_id}", "/AAPL": "/{ticker}", "/KO": "/{ticker}"}
    shapes = set()
    for method, path in tabled:
        for k, v in names.items():
            path = path.replace(k, v)
        shapes.add((method, path))
    declared = {(e.method.upper(), e.path.replace("<", "{").replace(">", "}")) for e in ENDPOINTS}
    assert declared - shapes == set(), "a new endpoint needs its row in the authorization tables"
