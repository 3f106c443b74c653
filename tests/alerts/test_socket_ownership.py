"""Socket.IO follows the same rules as HTTP: a real client against the real gunicorn/gevent web process.

The handshake authenticates with a token (``auth``) or the session; a private
site refuses anonymous connections; ``follow_rules`` joins only the
caller's rules (and the built-in one); ``follow_alerts`` delivers the
caller's own events and the built-in rule's, live and on reconnect, never
another user's.
"""
from __future__ import annotations

import pytest
import socketio

from tests.helpers import minutes, run_via_rq, token_for, user_id
from tests.processes import WebProcess
from tests.web.test_realtime import Recorder
from webapp.extensions import db
from webapp.services import rules as rules_service
from webapp.store import alert_events
from webapp.store import rules as rules_store

pytestmark = pytest.mark.slow

EVERY_CROSS = {"scope": {"tickers": ["AAPL", "MSFT"]}, "cooldown_seconds": 0, "frequency": "once_per_bar",
               "condition": {"op": "crossing", "a": {"field": "close"}, "b": {"sma": 3}}}


def _refused(url: str, **connect) -> str:
    """The server's reason for refusing the connection ("" when it connected)."""
    client = socketio.Client(reconnection=False)
    reasons: list[str] = []
    client.on("connect_error", lambda data: reasons.append(str(data.get("message") if isinstance(data, dict)
                                                                 else data)))
    try:
        client.connect(url, transports=["websocket"], wait_timeout=10, **connect)
    except socketio.exceptions.ConnectionError:
        return " ".join(reasons) or "refused"
    client.disconnect()
    return ""


def test_a_private_site_refuses_anonymous_sockets_and_bad_tokens(service_urls, app) -> None:
    token = token_for("ann", ("read",))
    web = WebProcess(*service_urls, API_READ_TOKEN_REQUIRED="true").start()
    try:
        assert "this site is private" in _refused(web.url)
        assert "unknown, revoked or expired" in _refused(web.url, auth={"token": "stk_forged"})
        assert "unknown, revoked or expired" in _refused(web.url, auth={"token": ["not", "text"]})
        no_read = token_for("ann", ("rules:write",))
        assert "lacks the 'read' scope" in _refused(web.url, auth={"token": no_read})
        rec = Recorder(["websocket"])
        rec.sio.connect(web.url, transports=["websocket"], wait_timeout=10, auth={"token": token})
        try:
            assert rec.sio.call("subscribe", {"tickers": ["AAPL"]}, timeout=5)["ok"] is True
        finally:
            rec.sio.disconnect()
    finally:
        web.stop()


def test_follows_give_only_the_callers_own_events_and_the_builtin_rules(service_urls, app) -> None:
    ann, bob = user_id("ann"), user_id("bob")
    a_rule = rules_store.create(db.session, rules_service.rule_spec({**EVERY_CROSS, "name": "ann's"}, ann),
                                ann)
    b_rule = rules_store.create(db.session, rules_service.rule_spec({**EVERY_CROSS, "name": "bob's"}, bob),
                                bob)
    builtin = rules_service.builtin_rule()["id"]
    web = WebProcess(*service_urls).start()
    recs = {name: Recorder(["websocket"]) for name in ("ann", "bob", "anon")}
    try:
        for name, rec in recs.items():
            rec.sio.on("alert_event", rec._handler("alert_event"))
            auth = {"token": token_for(name, ("read",))} if name != "anon" else None
            rec.sio.connect(web.url, transports=["websocket"], wait_timeout=10, auth=auth)
        bob_sio = recs["bob"].sio
        refused = bob_sio.call("follow_rules", {"rules": [a_rule["id"]], "after": 0}, timeout=5)
        reason = f"no rule {a_rule['id']} of yours (a rule room is its owner's only)"
        assert refused == {"ok": False, "error": reason}
        assert bob_sio.call("follow_rules", {"rules": [b_rule["id"], builtin]}, timeout=5)["ok"] is True
        assert recs["anon"].sio.call("follow_rules", {"rules": [a_rule["id"]]}, timeout=5)["ok"] is False
        for rec in recs.values():
            ack = rec.sio.call("follow_alerts", {"on": True}, timeout=5)
            assert ack["ok"] is True and ("alerts" in ack["rooms"])
        run_via_rq(app, minutes(20))
        for name, rec in recs.items():
            rec.wait_for("alert_event", 1, timeout=5 if name == "anon" else 20)
        heard = {name: {e["rule_id"] for e in rec.events["alert_event"]} for name, rec in recs.items()}
        assert heard["ann"] == {a_rule["id"]}, heard  # the built-in rule sends `alert`, not alert_event
        assert heard["bob"] == {b_rule["id"]}, heard
        assert heard["anon"] == set(), heard
        db.session.commit()
        everyone = alert_events.events(db.session, alert_events.ALL_OWNERS, limit=500)
        assert {e["rule_id"] for e in everyone} == {a_rule["id"], b_rule["id"]}
        gap = recs["bob"].sio.call("follow_alerts", {"on": True, "after": 0}, timeout=5)["missed"]
        assert gap and {e["rule_id"] for e in gap} == {b_rule["id"]}
        anon_gap = recs["anon"].sio.call("follow_alerts", {"on": True, "after": 0}, timeout=5)["missed"]
        assert anon_gap == []
    finally:
        for rec in recs.values():
            if rec.sio.connected:
                rec.sio.disconnect()
        web.stop()
