"""Hot data in Redis: rolling windows, latest readings, staleness marks.

A tick costs a constant number of round-trips whatever the number of
symbols: one server-side script reads every window and latest reading, one
writes them back.  The write script re-checks each provider timestamp
atomically, so two runs of the same minute (a retry, a second scheduler)
can never push a price twice.  Every key carries a TTL: a symbol nobody
feeds any more disappears by itself, and Postgres rebuilds it if it returns.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import orjson
import redis

from webapp import names

log = logging.getLogger(__name__)

_READ = """
local out = {redis.call('EXISTS', KEYS[1])}
for i = 2, #KEYS, 3 do
  out[#out + 1] = redis.call('GET', KEYS[i]) or false
  out[#out + 1] = redis.call('LRANGE', KEYS[i + 1], 0, -1)
  out[#out + 1] = redis.call('GET', KEYS[i + 2]) or false
end
return out
"""

# KEYS: done, last_tick, then per restore (latest, window), per apply
#       (latest, window, stale), per stale mark (stale)
# ARGV: ttl, period, done_ttl, last_tick_json, n_restore, n_apply, n_stale,
#       then per restore: latest_json, n_prices, prices...;
#       per apply: t, price, latest_json; per stale mark: reason
_WRITE = """
local ttl, period, done_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n_restore, n_apply, n_stale = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local k, a = 3, 8
for i = 1, n_restore do
  local lk, wk = KEYS[k], KEYS[k + 1]
  local doc, n = ARGV[a], tonumber(ARGV[a + 1])
  if redis.call('EXISTS', lk) == 0 then
    redis.call('DEL', wk)
    for j = 1, n do redis.call('RPUSH', wk, ARGV[a + 1 + j]) end
    redis.call('LTRIM', wk, -period, -1)
    redis.call('EXPIRE', wk, ttl)
    redis.call('SET', lk, doc, 'EX', ttl)
  end
  k, a = k + 2, a + 2 + n
end
local applied = {}
for i = 1, n_apply do
  local lk, wk, sk = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local t, price, doc = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local cur = redis.call('GET', lk)
  if (not cur) or tonumber(cjson.decode(cur)['t']) < t then
    redis.call('RPUSH', wk, price)
    redis.call('LTRIM', wk, -period, -1)
    redis.call('EXPIRE', wk, ttl)
    redis.call('SET', lk, doc, 'EX', ttl)
    redis.call('DEL', sk)
    applied[#applied + 1] = i
  end
  k, a = k + 3, a + 3
end
for i = 1, n_stale do
  redis.call('SET', KEYS[k], ARGV[a], 'EX', ttl)
  k, a = k + 1, a + 1
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ttl)
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', done_ttl) and 1 or 0
return {first, applied}
"""


@dataclass
class HotState:
    """What Redis holds for a set of symbols at the start of a tick."""

    slot_done: bool
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    windows: dict[str, list[float]] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Restore:
    """A ticker rebuilt from Postgres after its hot keys were lost."""

    ticker: str
    latest: dict[str, Any]
    window: list[float]


@dataclass(frozen=True)
class Apply:
    """A new accepted reading to push."""

    ticker: str
    t: int
    price: float
    latest: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    first_for_slot: bool
    applied: list[str]


def format_price(price: float) -> str:
    """How prices are written into windows: shortest exact decimal text."""
    return repr(float(price))


class HotStore:
    def __init__(self, client: redis.Redis, ttl: int, period: int, done_ttl: int) -> None:
        self.client = client
        self.ttl = ttl
        self.period = period
        self.done_ttl = done_ttl
        self._read = client.register_script(_READ)
        self._write = client.register_script(_WRITE)

    def read(self, symbols: Sequence[str], slot: int) -> HotState:
        """One round-trip: the slot marker and every symbol's window and latest reading."""
        keys = [names.tick_done_key(slot)]
        for s in symbols:
            keys += (names.latest_key(s), names.window_key(s), names.stale_key(s))
        raw = self._read(keys=keys)
        state = HotState(slot_done=bool(raw[0]))
        for i, ticker in enumerate(symbols):
            doc, window, stale = raw[1 + 3 * i : 4 + 3 * i]
            if doc is not None:
                state.latest[ticker] = orjson.loads(doc)
                state.windows[ticker] = [float(p) for p in window]
            if stale is not None:
                state.stale[ticker] = stale.decode()
        return state

    def write(
        self,
        slot: int,
        summary: dict[str, Any],
        restores: Iterable[Restore],
        applies: Sequence[Apply],
        stale: dict[str, str],
    ) -> WriteResult:
        """One round-trip: restore, push, mark stale, record the tick."""
        restores = list(restores)
        keys: list[str] = [names.tick_done_key(slot), names.LAST_TICK_KEY]
        args: list[Any] = [
            self.ttl, self.period, self.done_ttl, orjson.dumps(summary),
            len(restores), len(applies), len(stale),
        ]
        for r in restores:
            keys += (names.latest_key(r.ticker), names.window_key(r.ticker))
            args += (orjson.dumps(r.latest), len(r.window), *map(format_price, r.window))
        for ap in applies:
            keys += (names.latest_key(ap.ticker), names.window_key(ap.ticker), names.stale_key(ap.ticker))
            args += (ap.t, format_price(ap.price), orjson.dumps(ap.latest))
        for ticker, reason in stale.items():
            keys.append(names.stale_key(ticker))
            args.append(reason)
        first, applied = self._write(keys=keys, args=args)
        return WriteResult(bool(first), [applies[i - 1].ticker for i in applied])

    def snapshot(self, symbols: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Latest readings and stale marks for ``symbols`` in one MGET."""
        if not symbols:
            return {}, {}
        keys = [names.latest_key(s) for s in symbols] + [names.stale_key(s) for s in symbols]
        values = self.client.mget(keys)
        n = len(symbols)
        latest = {s: orjson.loads(v) for s, v in zip(symbols, values[:n]) if v is not None}
        stale = {s: v.decode() for s, v in zip(symbols, values[n:]) if v is not None}
        return latest, stale

    def window(self, ticker: str) -> list[float]:
        return [float(p) for p in self.client.lrange(names.window_key(ticker), 0, -1)]

    def last_tick(self) -> dict[str, Any] | None:
        raw = self.client.get(names.LAST_TICK_KEY)
        return orjson.loads(raw) if raw else None
