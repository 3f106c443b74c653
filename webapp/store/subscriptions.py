"""Which ticker rooms have listeners, shared through Redis.

Each web process writes the whole set of ``ticker:XYZ`` rooms that have a
client there (a hash per process, with a TTL), from the Socket.IO server's
own rooms, whenever a subscription changes and again every few seconds; the
worker reads the union once per tick.  Because the set is rewritten, never
counted up and down, it cannot drift or go negative, and after Redis loses
its data the next refresh puts it back.  A ``quote`` is then emitted only
for tickers someone is listening to: at 10,000 symbols that is the
difference between ~10,000 messages a minute through every web process and
a handful.  The same goes for the rules' ``alert_event``: to a rule's own
room (``rule:<id>``, kept in the set by its room name; a ticker has no
colon) and to the feed (``alerts``) only when someone is there.
``stock_update`` (room ``all``) and the SMA ``alert`` go out regardless.

Each process also publishes its load beside the set (clients connected,
its ``WEB_MAX_CLIENTS`` capacity, connections refused since it started), so
health can say a process is full.

A client that subscribes between the worker's read and its emit gets its
first ``quote`` a tick later; the same tick's ``stock_update`` carries the
reading meanwhile.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable

import orjson
import redis

from webapp import names

log = logging.getLogger(__name__)

TTL_SECONDS = 30
REFRESH_SECONDS = 5

LISTENING_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local out = {}
for _, host in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local kv = redis.call('HGETALL', ARGV[2] .. host)
  for i = 1, #kv, 2 do
    if tonumber(kv[i + 1]) > 0 then out[#out + 1] = kv[i] end
  end
end
return out
"""


class ListenerRegistry:
    """The web process's side: publish the tickers whose rooms have clients here."""

    def __init__(self, client: redis.Redis, host_id: str | None = None) -> None:
        self.client = client
        self.host_id = host_id or uuid.uuid4().hex
        self.key = names.listeners_key(self.host_id)

    def publish(self, tickers: Iterable[str], load: dict[str, int] | None = None) -> None:
        """Replace this process's set, and its load when given (one round-trip)."""
        wanted = sorted(set(tickers))
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key)
        if wanted:
            pipe.hset(self.key, mapping=dict.fromkeys(wanted, 1))
        pipe.expire(self.key, TTL_SECONDS)
        if load is not None:
            pipe.set(names.web_load_key(self.host_id), orjson.dumps(load), ex=TTL_SECONDS)
        pipe.zadd(names.LISTENER_HOSTS_KEY, {self.host_id: time.time() + TTL_SECONDS})
        pipe.execute()


def web_loads(client: redis.Redis) -> dict[str, dict[str, int]]:
    """Each live web process's last published load, by process id (two round-trips)."""
    hosts = [h.decode() for h in client.zrangebyscore(names.LISTENER_HOSTS_KEY, time.time(), "+inf")]
    if not hosts:
        return {}
    raw = client.mget([names.web_load_key(h) for h in hosts])
    return {h: orjson.loads(v) for h, v in zip(hosts, raw, strict=True) if v}


class Listening:
    """The worker's side: which tickers have a listener anywhere right now."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(LISTENING_SCRIPT)

    def __call__(self, now: float | None = None) -> set[str]:
        """One round-trip; hosts whose registration expired are dropped on the way."""
        got = self._script(keys=[names.LISTENER_HOSTS_KEY],
                           args=[now if now is not None else time.time(), names.LISTENERS_PREFIX])
        return {t.decode() for t in got}
