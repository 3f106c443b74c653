"""A real Socket.IO client gets ``alert_event``s in its rule's room, and on reconnect what it missed."""
from __future__ import annotations

import pytest

from tests.helpers import minutes, run_via_rq, token_for, user_id
from tests.processes import WebProcess
from tests.web.test_realtime import Recorder
from webapp.extensions import db
from webapp.store import rules as rules_store
from webapp.web.rules import RuleBody

pytestmark = pytest.mark.slow

RULE = {"name": "AAPL crosses SMA 5", "scope": {"tickers": ["AAPL"]}, "cooldown_seconds": 0,
        "condition": {"op": "crossing", "a": {"field": "close"}, "b": {"sma": 5}}}


def test_rule_room_events_and_the_gap_after_a_reconnect(service_urls, app) -> None:
    from webapp.services import rules

    ann = user_id("ann")
    token = token_for("ann", ("read",))
    rule = rules_store.create(db.session, rules.rule_spec(RuleBody(**RULE).model_dump(), ann), ann)
    other = rules_store.create(db.session, rules.rule_spec(RuleBody(**{**RULE, "name": "MSFT",
                                                                         "scope": {"tickers": ["MSFT"]}})
                                                              .model_dump(), ann), ann)
    web = WebProcess(*service_urls).start()
    rec = Recorder(["websocket"])
    rec.sio.on("alert_event", rec._handler("alert_event"))
    try:
        rec.sio.connect(web.url, transports=["websocket"], wait_timeout=10, auth={"token": token})
        ack = rec.sio.call("follow_rules", {"rules": [rule["id"]]}, timeout=5)
        assert ack == {"ok": True, "rooms": [f"rule:{rule['id']}"]}
        for payload, needle in [({"rules": "1"}, "rule ids"), ({"rules": [1], "after": "x"}, '"after"'),
                                ("nope", "payload must be")]:
            bad = rec.sio.call("follow_rules", payload, timeout=5)
            assert bad["ok"] is False and needle in bad["error"], bad
        times = minutes(30)
        run_via_rq(app, times[:20])
        live = rec.wait_for("alert_event", 1, timeout=20)
        assert live and {e["rule_id"] for e in live} == {rule["id"]}  # not the MSFT rule's
        assert live[0]["id"] > 0 and "sma(5)" in live[0]["explanation"]
        last_seen = max(e["id"] for e in rec.events["alert_event"])
        rec.sio.disconnect()
        run_via_rq(app, times[20:])  # fires while the client is away
        from webapp.store import alert_events

        db.session.commit()
        missed = alert_events.events(db.session, ann, rule_id=rule["id"], after=last_seen, limit=500)
        assert missed, "the rule should have fired while the client was away"
        rec2 = Recorder(["websocket"])
        rec2.sio.connect(web.url, transports=["websocket"], wait_timeout=10, auth={"token": token})
        try:
            back = rec2.sio.call("follow_rules", {"rules": [rule["id"]], "after": last_seen}, timeout=5)
            assert [e["id"] for e in back["missed"]] == [e["id"] for e in missed]
            feed = rec2.sio.call("follow_alerts", {"on": True, "after": last_seen}, timeout=5)
            assert {e["rule_id"] for e in feed["missed"]} <= {rule["id"], other["id"]}
            assert [e["id"] for e in feed["missed"]] == sorted(e["id"] for e in feed["missed"])
        finally:
            rec2.sio.disconnect()
    finally:
        if rec.sio.connected:
            rec.sio.disconnect()
        web.stop()


def test_the_builtin_sma_crossover_is_a_rule_muting_it_stops_its_alert_events(service_urls, app) -> None:
    """Paused on the rules page, the built-in rule sends no ``alert``; ``stock_update`` still marks the
    crossings (the contract), and resuming brings the events back."""
    from webapp.services import rules

    builtin = rules.rules_with_state(user_id("ann"))[0]
    assert builtin["builtin"] and builtin["condition"] == {"op": "crossing", "a": {"field": "close"},
                                                           "b": {"sma": 5}}
    rules.set_rule_status(builtin["id"], "paused", None)
    web = WebProcess(*service_urls).start()
    rec = Recorder(["websocket"])
    try:
        rec.sio.connect(web.url, transports=["websocket"], wait_timeout=10)
        assert rec.sio.call("follow_alerts", {"on": True}, timeout=5)["ok"] is True
        assert rec.sio.call("subscribe", {"tickers": ["*"]}, timeout=5)["ok"] is True
        times = minutes(30)
        run_via_rq(app, times[:15])
        updates = rec.wait_for("stock_update", 15, timeout=20)
        crossed = [s for u in updates for s in u["stocks"] if s["alert"]]
        assert crossed and rec.events["alert"] == []
        rules.set_rule_status(builtin["id"], "active", None)
        run_via_rq(app, times[15:])
        heard = rec.wait_for("alert", 1, timeout=20)
        assert heard and {a["kind"] for a in heard} <= {"bullish", "bearish"}
    finally:
        if rec.sio.connected:
            rec.sio.disconnect()
        web.stop()
