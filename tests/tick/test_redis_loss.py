"""Redis losing its data (a FLUSHALL, a restart without persistence) at every moment of a slot:
nothing pushed twice, nothing lost (issue 26, item 2).

A slot's moments, in order: its Postgres commit, its Redis write (which marks it done), its emits.
Redis can lose everything between any two of them, or between slots.  The next tick finds the done
marker gone and the slot's rows in Postgres; only Postgres can say whether that slot's alerts went
out, so each shard's last emitted slot is recorded there.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from tests.helpers import EmitCapture, alerts_are_the_reference, minutes, user_id
from webapp import names
from webapp.config import DEFAULT_SYMBOLS
from webapp.core.market import slot_of
from webapp.extensions import db, get_redis
from webapp.services import context, rules
from webapp.store import rules as rules_store
from webapp.store.subscriptions import ListenerRegistry
from webapp.tick.pipeline import run_tick

MOMENTS = ("after_commit", "before_emit", "after_emit")


@pytest.mark.parametrize("moment", MOMENTS)
def test_redis_flushed_at_each_moment_of_a_slot_pushes_nothing_twice(app, pg, rdb, service_urls,
                                                                    moment) -> None:
    times = minutes(14)
    doomed = slot_of(times[6], app.config["TRACKER"].TICK_SECONDS)[0]
    owner = user_id("ann")
    rule = rules_store.create(db.session, rules.rule_spec(
        {"name": "every cross of SMA 3", "scope": {"all": True}, "frequency": "once_per_bar",
         "cooldown_seconds": 0, "condition": {"op": "crossing", "a": {"field": "close"}, "b": {"sma": 3}}},
        owner), owner)

    def listeners() -> None:  # a page of the owner's is on the feed (the registry lives in Redis too)
        ListenerRegistry(get_redis()).publish({names.user_room(owner)})

    def flush(slot: int) -> None:
        if slot == doomed:
            rdb.flushall()
            listeners()

    hooks = {m: None for m in MOMENTS}
    hooks[moment] = flush
    svc = dataclasses.replace(context.tick_services(), **hooks)
    listeners()
    symbols = list(DEFAULT_SYMBOLS)
    capture = EmitCapture(service_urls[0])
    try:
        for at in times:
            run_tick(svc, symbols, at)
        emitted = capture.events("alert")
        fired = capture.events(names.EVENT_ALERT_EVENT)
    finally:
        capture.close()

    _, stored = alerts_are_the_reference(pg, times)
    sent = Counter((p["ticker"], p["time"], p["kind"]) for room, p in emitted if room == "alerts")
    assert sent == Counter((t, when.isoformat(), kind) for t, when, kind in stored)  # each once, none lost
    assert any(when in (times[6], times[7]) for _, when, _ in stored)  # the slots around the flush had some
    with pg.cursor() as cur:
        cur.execute("SELECT id FROM alert_events WHERE rule_id = %s", (rule["id"],))
        events = [r[0] for r in cur.fetchall()]
    assert events and Counter(p["id"] for _, p in fired) == Counter(events)
