"""Signals as rule conditions in the evaluate process (real Redis, real Postgres, the real stream
writer): a new high of the day fires at the print that breaks it, a halt and a resume at the
stream's status messages, and nothing else is judged at a status message."""
from __future__ import annotations

import pytest
import redis.asyncio as aredis

from tests.evaluate.test_process import BAR, OPEN, _bar, _events, _process, stored  # noqa: F401
from tests.helpers import run_async, user_id
from webapp import names
from webapp.extensions import db
from webapp.services import rules as rules_service
from webapp.store import rules as rules_store
from webapp.store.streamstate import StreamWriter


def _rule(owner: int, condition: dict, frequency: str = "once_per_bar") -> int:
    raw = {"name": condition["op"], "scope": {"tickers": ["AAPL"]}, "frequency": frequency,
           "cooldown_seconds": 0, "condition": condition}
    spec = rules_service.rule_spec(raw, owner)
    return rules_store.create(db.session, spec, owner)["id"]


def _flush(url: str, at_ms: int, rows: list[list] = (), halts: dict | None = None) -> None:  # type: ignore[assignment]
    async def go() -> None:
        client = aredis.Redis.from_url(url)
        await StreamWriter(client, 3600).flush(provisional=list(rows), halts=halts, at_ms=at_ms)
        await client.aclose()
    run_async(go)


def _day_high(pg) -> float:
    with pg.cursor() as cur:
        cur.execute("SELECT high FROM quotes WHERE ticker = 'AAPL' ORDER BY time DESC LIMIT 1")
        return float(cur.fetchone()[0])


def test_a_new_high_of_day_fires_at_the_print_and_a_halt_and_resume_at_their_messages(
        app, pg, rdb, stored, service_urls) -> None:  # noqa: F811
    owner = user_id("trader")
    high = _day_high(pg)
    hod = _rule(owner, {"op": "new_high_of_day"})
    halted = _rule(owner, {"op": "halted"})
    resumed = _rule(owner, {"op": "resumed"}, "once")
    anything = _rule(owner, {"op": "greater_than", "a": {"price": True}, "b": {"const": 1}}, "every_time")
    proc = _process(app)
    try:
        proc.step()
        # the first hand-off stays under the day's high; the second breaks it at 00:04.250
        _flush(service_urls[0], OPEN * 1000 + 2000,
               [_bar("AAPL", high - 1, high - 0.5, high - 1, high - 0.6, 2, 1, 0)])
        assert proc.step() == 1
        assert _events(pg, hod) == [] and len(_events(pg, anything)) == 1
        _flush(service_urls[0], OPEN * 1000 + 5000,
               [_bar("AAPL", high - 1, high + 0.25, high - 1, high + 0.1, 4.5, 4.25, 0, trades=20)])
        assert proc.step() == 1
        (got,) = _events(pg, hod)
        ticker, bar_time, inputs, explanation, source, _ = got
        assert int(bar_time.timestamp()) == BAR and inputs["trade_time_ms"] == (OPEN + 4.25) * 1000
        assert inputs["trade_price"] == pytest.approx(high + 0.25) and inputs["level"] == pytest.approx(high)
        assert explanation.startswith(f"price {high + 0.25:.2f} broke the day's high {high:.2f}")
        # a halt in the next bar, with no trade: the halt rule fires at the message; the price rule,
        # which fires every minute on a trade, is not judged at a message (no trade printed)
        halt_ms = (BAR + 7) * 1000
        _flush(service_urls[0], halt_ms + 50, halts={"AAPL": {"halted": True, "code": "T1", "reason": "News",
                                                             "time_ms": halt_ms}})
        assert proc.step() == 1
        (got,) = _events(pg, halted)
        assert got[2]["trade_time_ms"] == halt_ms and "on the stream's status message: halted (T1)" in got[3]
        assert len(_events(pg, anything)) == 1 and _events(pg, resumed) == []
        # a malformed status row is refused and counted; the resume in the same entry still counts
        resume_ms = (BAR + 70) * 1000
        rdb.xadd(names.provisional_stream_key(0, 1), {"at": resume_ms, "bars": "[]",
                                                       "status": '[["AAPL", "paused", 1, ""]]'})
        _flush(service_urls[0], resume_ms + 50, halts={"AAPL": {"halted": False, "code": "T3", "reason": "",
                                                               "time_ms": resume_ms}})
        assert proc.step() == 2
        assert proc.counts["malformed"] == 1
        (got,) = _events(pg, resumed)
        assert got[2]["trade_time_ms"] == resume_ms and "resumed (T3)" in got[3]
        assert len(_events(pg, halted)) == 1 and rdb.hget(names.STREAM_HALTS_KEY, "AAPL") is None
        assert rdb.xpending(names.provisional_stream_key(0, 1), names.EVALUATE_GROUP)["pending"] == 0
    finally:
        proc.leases.release_all()
