"""One owner for each rule and ticker at each moment: the tick leaves a ticker's intra-bar rules to the
evaluate process while the stream serves it and a process holds its shard, and takes them back."""
from __future__ import annotations

import redis.asyncio as aredis

from tests.helpers import minutes, run_async, user_id
from webapp.config import DEFAULT_SYMBOLS
from webapp.extensions import db, get_redis
from webapp.services import rules as rules_service
from webapp.services import ticks
from webapp.store import evaluation
from webapp.store import rules as rules_store
from webapp.store.streamstate import StreamWriter


def _stream_closes(url: str, times, connected: bool = True) -> None:
    """What the stream leader writes: each minute's closed bars, how far it closed, its status."""
    async def go() -> None:
        client = aredis.Redis.from_url(url)
        for i, at in enumerate(times):
            end = int(at.timestamp())
            bars = {t: [100.0 + i, 100.5 + i, 99.5 + i, 100.0 + i, 1000.0, 100.0 + i, 10, True, "trades"]
                    for t in DEFAULT_SYMBOLS}
            await StreamWriter(client, 3600).flush(
                closed_until=end, bars={end: bars},
                status={"state": "connected" if connected else "reconnecting", "provider": "sim",
                        "unstreamed": ["KO"]})
        await client.aclose()
    run_async(go)


def _fires(pg, rule_id: int) -> set[str]:
    with pg.cursor() as cur:
        cur.execute("SELECT DISTINCT ticker FROM alert_events WHERE rule_id = %s", (rule_id,))
        return {t for (t,) in cur.fetchall()}


def test_the_tick_leaves_intra_bar_rules_of_served_tickers_to_the_evaluate_process(
        make_app, pg, service_urls) -> None:
    app = make_app(MARKET_DATA_PROVIDER="stream")
    with app.app_context():
        owner = user_id("trader")
        made = {}
        for freq in ("once_per_bar", "once_per_bar_close"):
            spec = rules_service.rule_spec({
                "name": freq, "scope": {"tickers": ["AAPL", "KO"]}, "frequency": freq, "cooldown_seconds": 0,
                "condition": {"op": "moving_up", "a": {"field": "close"}, "bars": 1, "value": 0.5}}, owner)
            made[freq] = rules_store.create(db.session, spec, owner)["id"]
        times = minutes(4)
        _stream_closes(service_urls[0], times)
        leases = evaluation.ShardLeases(get_redis(), 1, 60_000, "evaluator")
        leases.maintain(int(times[0].timestamp() * 1000))  # an evaluate process holds the one shard
        for at in times[:3]:
            ticks.run_tick_now(at)
        # AAPL is streamed and its shard is held: its once_per_bar rule is judged on the print, not
        # here; KO is past the plan's cap (unstreamed): the tick judges it; at the close, both
        assert _fires(pg, made["once_per_bar"]) == {"KO"}
        assert _fires(pg, made["once_per_bar_close"]) == {"AAPL", "KO"}
        listed = {r["id"]: r for r in rules_service.rules_with_state(owner)}
        assert listed[made["once_per_bar"]]["judged"] == "on each trade"
        assert listed[made["once_per_bar_close"]]["judged"] == "each minute"
        leases.release_all()  # no evaluate process now: the tick takes AAPL's back
        ticks.run_tick_now(times[3])
        assert _fires(pg, made["once_per_bar"]) == {"AAPL", "KO"}
        listed = {r["id"]: r for r in rules_service.rules_with_state(owner)}
        assert listed[made["once_per_bar"]]["judged"] == "each minute"
        assert "hold 0 of 1" in listed[made["once_per_bar"]]["judged_why"]
