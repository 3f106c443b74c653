"""A ticker's backfill progress, kept in Redis for the page and the API.

The job writes it as it goes (queued, running with sessions done of total,
waiting out a rate limit, done, unavailable from this provider, failed);
the page polls it through ``GET /api/backfill/<ticker>`` and draws the
history once it is done.  Postgres holds the history itself: losing this
hash loses only the progress bar.
"""
from __future__ import annotations

import time
from typing import Any

import redis

from webapp import names

TTL_SECONDS = 86_400
STATES = ("queued", "running", "waiting", "done", "unavailable", "failed")
# a running backfill writes progress at least every step (seconds); silent this long, its job stopped
# (a killed worker, Redis or Postgres gone under it) and saying "running" would be false
SILENT_SECONDS = 600


class BackfillProgress:
    def __init__(self, client: redis.Redis, ticker: str) -> None:
        self._client, self._key = client, names.backfill_key(ticker)

    def set(self, state: str, message: str = "", **counts: int) -> None:
        assert state in STATES
        fields: dict[str, Any] = {"state": state, "message": message, "updated": int(time.time()), **counts}
        with self._client.pipeline() as pipe:
            pipe.hset(self._key, mapping=fields)
            pipe.expire(self._key, TTL_SECONDS)
            pipe.execute()

    def read(self) -> dict[str, Any] | None:
        raw = self._client.hgetall(self._key)
        if not raw:
            return None
        got = {k.decode(): v.decode() for k, v in raw.items()}
        out: dict[str, Any] = {"state": got.get("state", "queued"), "message": got.get("message", "")}
        for k in ("done", "total", "readings", "daily_bars", "updated"):
            if k in got:
                out[k] = int(got[k])
        if out["state"] == "running" and time.time() - out.get("updated", 0) > SILENT_SECONDS:
            out["state"] = "failed"
            out["message"] = (f"no progress for over {SILENT_SECONDS // 60} minutes: its job stopped "
                              "(a killed worker, or Redis or Postgres gone); a later run resumes from here")
        return out
