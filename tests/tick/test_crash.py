"""A tick that dies between its Postgres commit and its Redis write.

A test-only hook (``TickServices.after_commit``) raises at exactly that point,
as a SIGKILL there would leave things: the slot is in Postgres, not in Redis,
and nothing of it was emitted.  The next tick must rebuild from the stored
history and send the stored alerts, so the result is an unbroken run's.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from tests.helpers import EmitCapture, alerts_are_the_reference, minutes, user_id
from webapp import names
from webapp.config import DEFAULT_SYMBOLS
from webapp.core.market import slot_of
from webapp.core.tables import unpack
from webapp.extensions import db, get_redis
from webapp.services import context, rules
from webapp.store import rules as rules_store
from webapp.store.subscriptions import ListenerRegistry
from webapp.tick.pipeline import run_tick


class Killed(BaseException):
    """What the process would have died of."""


def test_a_crash_after_the_commit_is_repaired_by_the_next_tick(app, pg, service_urls) -> None:
    times = minutes(14)
    doomed = slot_of(times[6], app.config["TRACKER"].TICK_SECONDS)[0]

    def crash(slot: int) -> None:
        if slot == doomed:
            raise Killed

    owner = user_id("ann")
    rule = rules_store.create(db.session, rules.rule_spec(
        {"name": "every cross of SMA 3", "scope": {"all": True}, "frequency": "once_per_bar",
         "cooldown_seconds": 0, "condition": {"op": "crossing", "a": {"field": "close"}, "b": {"sma": 3}}},
        owner), owner)
    ListenerRegistry(get_redis()).publish({names.user_room(owner)})  # a page of the owner's is on the feed
    svc = dataclasses.replace(context.tick_services(), after_commit=crash)
    symbols = list(DEFAULT_SYMBOLS)
    for at in times[:6]:
        run_tick(svc, symbols, at)
    capture = EmitCapture(service_urls[0])
    try:
        with pytest.raises(Killed):
            run_tick(svc, symbols, times[6])
        reports = [run_tick(svc, symbols, at) for at in times[7:]]
        emitted = capture.events("alert")
        fired = capture.events(names.EVENT_ALERT_EVENT)
    finally:
        capture.close()
    assert reports[0].restored == 15  # Postgres was ahead: every ticker rebuilt from it

    quotes, stored = alerts_are_the_reference(pg, times)
    for rows in quotes.values():  # stored SMAs are the history's
        prices = [r[1] for r in rows]
        for i in range(4, len(rows)):
            assert rows[i][2] == pytest.approx(sum(prices[i - 4:i + 1]) / 5, abs=1e-4)
    # every alert from the crashed slot on went out exactly once (room "alerts")
    sent = Counter((p["ticker"], p["time"], p["kind"]) for room, p in emitted if room == "alerts")
    due = Counter((t, when.isoformat(), kind) for t, when, kind in stored if when >= times[6])
    assert sent == due and all(n == 1 for n in sent.values())
    assert any(when == times[6] for _, when, _ in stored)  # the crashed slot had alerts to deliver
    # and so had its rule: every stored fire from that slot on reached the feed exactly once
    with pg.cursor() as cur:
        cur.execute("SELECT id, bar_time FROM alert_events WHERE rule_id = %s AND bar_time >= %s ORDER BY id",
                    (rule["id"], times[6]))
        events = cur.fetchall()
    assert any(bar == times[6] for _, bar in events)
    assert Counter(p["id"] for _, p in fired) == Counter(i for i, _ in events)


def test_the_scanners_session_sums_count_the_repaired_minute_once(app, rdb, pg) -> None:
    """Day volume, VWAP and the day's range after the repair are an unbroken run's."""
    times = minutes(10)

    def run(crash_at: int | None) -> dict[str, np.ndarray]:
        doomed = slot_of(times[crash_at], 60)[0] if crash_at is not None else None

        def crash(slot: int) -> None:
            if slot == doomed:
                raise Killed

        svc = dataclasses.replace(context.tick_services(), after_commit=crash)
        for at in times:
            try:
                run_tick(svc, list(DEFAULT_SYMBOLS), at)
            except Killed:
                pass
        _, table, _ = unpack(rdb.get(names.scan_table_key()))
        return {k: np.array(v) for k, v in table.items()}

    unbroken = run(None)
    rdb.flushdb()
    with pg.cursor() as cur:
        cur.execute("TRUNCATE quotes, alerts")
    repaired = run(6)
    for name in ("cv", "pv", "hi", "lo", "day_volume", "vwap", "price"):
        assert np.allclose(repaired[name], unbroken[name], equal_nan=True, rtol=1e-12), name
