"""The evaluate process, built on this app's Postgres and Redis; and where each rule is judged now."""
from __future__ import annotations

from typing import Any

import redis

from webapp.extensions import db, get_redis
from webapp.services.context import config, tracked_symbols


def evaluator(host_id: str | None = None) -> Any:
    """The evaluate process's loop (:class:`webapp.evaluate.process.EvaluateProcess`)."""
    from webapp.evaluate.process import EvaluateProcess

    cfg = config()
    client = redis.Redis.from_url(cfg.REDIS_URL, socket_timeout=5, socket_connect_timeout=5,
                                  health_check_interval=10)
    engine = db.engine

    def symbols() -> tuple[str, ...]:
        return tracked_symbols(True)

    return EvaluateProcess(cfg, engine, client, symbols, host_id)


def judged_where(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each rule with where it is judged now, and why (``judged``, ``judged_why``): "on each trade"
    by an evaluate process when the rule has an intra-bar frequency, the stream feeds the prices and
    is connected, and processes hold the shards; else "each minute" by the tick."""
    from webapp.core.rules.model import judged_on_print
    from webapp.services.health import stream_state
    from webapp.store.evaluation import owned_shards

    cfg = config()
    shards = max(1, cfg.TICK_SHARDS)
    if cfg.MARKET_DATA_PROVIDER != "stream":
        live = f"prices come from {cfg.MARKET_DATA_PROVIDER} snapshots, not the stream"
    elif (state := stream_state(cfg)["state"]) != "connected":
        live = f"the stream is {state}"
    elif len(held := owned_shards(get_redis(), shards)) < shards:
        live = (f"evaluate processes hold {len(held)} of {shards} symbol shard(s) (is `python -m "
                "jobs.evaluate` running?)")
    else:
        live = ""
    out = []
    for r in rules:
        scope = r.get("scope") or {}
        if r.get("builtin"):
            where, why = "each minute", "the built-in SMA crossover is the tick's (the `alert` event)"
        elif not judged_on_print(r.get("frequency", ""), scope):
            where, why = "each minute", ("a scanner list's members change each minute" if "scan" in scope
                                         else "once_per_bar_close fires at the bar's close")
        elif live:
            where, why = "each minute", live
        else:
            where = "on each trade"
            why = "the stream feeds the prices and evaluate processes hold every shard"
        out.append({**r, "judged": where, "judged_why": why})
    return out
