"""Hot data in Redis: rolling windows, latest readings, staleness marks.

A tick costs a constant number of round-trips whatever the number of
symbols: one ``SET NX`` takes the tick lock, one ``MGET`` reads every
latest reading and stale mark, and one server-side script writes them back
and releases the lock.

Ticks run one at a time (the lock), so the reading a tick computes from
cannot change under it; that is what makes a second run of the same minute
(a retry, a second scheduler) harmless together with the slot marker.

Per ticker the script does RPUSH + LTRIM on the window list and SET EX on
the latest-reading document.  The document also carries the window (as
integer ticks): the tick reads that copy with one MGET instead of one LRANGE
per symbol; both are written together from the same values.  The list's TTL
is set when the list is created and refreshed every ``REFRESH_EVERY`` slots,
well inside the TTL, which saves a call per symbol on the other ticks.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import redis

from webapp import names

log = logging.getLogger(__name__)

REFRESH_EVERY = 10

Shard = tuple[int, int]  # (index, count); (0, 1) is the whole list

# KEYS: done, last_tick, lock, shards_finished, then per restore (latest, window), per set
#       (stale marks, then the scanner's values), per cleared mark (stale), per first-only
#       set (key), per scanner list (sorted set)
# ARGV: ttl, period, done_ttl, last_tick_json, lock_token, refresh(0|1),
#       n_restore, n_apply, n_set, n_clear, latest key prefix, window key prefix, shards,
#       n_first_set, n_list, list depth,
#       then per restore: latest_json, n_prices, prices...;
#       per apply: one string "ticker<US>price<US>latest_json" (US = \x1f);
#       per set and first-only set: value (a stale mark's value is its reason);
#       per list: replace(1|0), n_remove, members..., n_add, (score, member)...
# First-only sets (the scanner's announcement) are written only by the run
# that finishes the slot, so a duplicate run cannot change what was announced.
# A new reading travels as one argument: at 10,000 symbols redis-py's
# per-argument encoding costs more than the server's work on it.  Its two
# keys are made here from the prefixes webapp.names passes in.
_WRITE = """
local ttl, period, done_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local refresh = ARGV[6] == '1'
local n_restore, n_apply = tonumber(ARGV[7]), tonumber(ARGV[8])
local n_set, n_clear = tonumber(ARGV[9]), tonumber(ARGV[10])
local latest_prefix, window_prefix = ARGV[11], ARGV[12]
local n_first, n_list, depth = tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local US = string.char(31)
local k, a = 5, 17
for i = 1, n_restore do
  local lk, wk = KEYS[k], KEYS[k + 1]
  local doc, n = ARGV[a], tonumber(ARGV[a + 1])
  redis.call('DEL', wk)
  for j = 1, n do redis.call('RPUSH', wk, ARGV[a + 1 + j]) end
  redis.call('EXPIRE', wk, ttl)
  redis.call('SET', lk, doc, 'EX', ttl)
  k, a = k + 2, a + 2 + n
end
for i = 1, n_apply do
  local item = ARGV[a]
  local s1 = string.find(item, US, 1, true)
  local s2 = string.find(item, US, s1 + 1, true)
  local ticker = string.sub(item, 1, s1 - 1)
  local wk = window_prefix .. ticker
  local len = redis.call('RPUSH', wk, string.sub(item, s1 + 1, s2 - 1))
  if len > period then redis.call('LTRIM', wk, -period, -1) end
  if refresh or len == 1 then redis.call('EXPIRE', wk, ttl) end
  redis.call('SET', latest_prefix .. ticker, string.sub(item, s2 + 1), 'EX', ttl)
  a = a + 1
end
for i = 1, n_set do
  redis.call('SET', KEYS[k], ARGV[a], 'EX', ttl)
  k, a = k + 1, a + 1
end
for i = 1, n_clear do
  redis.call('DEL', KEYS[k])
  k = k + 1
end
local fk, fa = k, a
k, a = k + n_first, a + n_first
for i = 1, n_list do
  local key = KEYS[k]
  if ARGV[a] == '1' then redis.call('DEL', key) end
  local n_rem = tonumber(ARGV[a + 1])
  a = a + 2
  for j = 1, n_rem do redis.call('ZREM', key, ARGV[a]); a = a + 1 end
  local n_add = tonumber(ARGV[a])
  a = a + 1
  for j = 1, n_add do redis.call('ZADD', key, ARGV[a], ARGV[a + 1]); a = a + 2 end
  redis.call('ZREMRANGEBYRANK', key, depth, -1)
  redis.call('EXPIRE', key, ttl)
  k = k + 1
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ttl)
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', done_ttl) and 1 or 0
local finished = 0
if first == 1 then
  for i = 0, n_first - 1 do redis.call('SET', KEYS[fk + i], ARGV[fa + i], 'EX', ttl) end
  if tonumber(ARGV[13]) > 1 then  -- shards: count the finished ones; the last announces
    finished = redis.call('INCR', KEYS[4])
    redis.call('EXPIRE', KEYS[4], done_ttl)
  end
end
if redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
return {first, finished}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TickBusy(RuntimeError):
    """Another tick still holds the lock after the wait."""


@dataclass
class HotState:
    """What Redis holds for a set of symbols at the start of a tick."""

    slot_done: bool
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)
    extra: list[bytes | None] = field(default_factory=list)  # values of the extra keys asked for


class Restore(NamedTuple):
    """A ticker rebuilt from Postgres after its hot keys were lost."""

    ticker: str
    latest: dict[str, Any]
    window: list[float]


class ListWrite(NamedTuple):
    """A scanner list's change: replace it, or remove some members, then add."""

    key: str
    replace: bool
    remove: list[str]
    add: list[tuple[str, str]]  # (score, member)


class ScanWrite(NamedTuple):
    """The scanner's part of the tick's write."""

    sets: list[tuple[str, bytes]]  # key, value (with the hot TTL)
    first_sets: list[tuple[str, bytes]]  # written only by the run that finishes the slot
    lists: list[ListWrite]
    depth: int


NO_SCAN = ScanWrite([], [], [], 0)


class Apply(NamedTuple):
    """A new accepted reading to push."""

    ticker: str
    price: float
    latest: dict[str, Any]


def format_price(price: float) -> str:
    """How prices are written into window lists: shortest exact decimal text."""
    return repr(float(price))


class HotStore:
    def __init__(self, client: redis.Redis, ttl: int, period: int, done_ttl: int) -> None:
        self.client = client
        self.ttl = ttl
        self.period = period
        self.done_ttl = done_ttl
        self._write = client.register_script(_WRITE)
        self._release = client.register_script(_RELEASE)

    def lock(self, hold_seconds: float, wait_seconds: float, shard: Shard = (0, 1)) -> str:
        """Take the tick lock (one round-trip when free); returns its token."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_seconds
        key = names.tick_lock_key(*shard)
        while not self.client.set(key, token, nx=True, px=int(hold_seconds * 1000)):
            if time.monotonic() > deadline:
                raise TickBusy(f"another tick has held the lock for over {wait_seconds:.0f} s")
            time.sleep(0.05)
        return token

    def unlock(self, token: str, shard: Shard = (0, 1)) -> None:
        """Release the lock if still ours (only needed when a tick fails)."""
        self._release(keys=[names.tick_lock_key(*shard)], args=[token])

    def read(self, symbols: Sequence[str], slot: int | None, shard: Shard = (0, 1),
             extra: Sequence[str] = ()) -> HotState:
        """One round-trip: the slot's marker (unless ``slot`` is None), every
        latest reading and stale mark, and the ``extra`` keys' raw values."""
        marker = [names.tick_done_key(slot, *shard)] if slot is not None else []
        keys = (marker + list(extra) + [names.latest_key(s) for s in symbols]
                + [names.stale_key(s) for s in symbols])
        values = self.client.mget(keys) if keys else []
        done = bool(marker) and values[0] is not None
        more = values[len(marker):len(marker) + len(extra)]
        values = values[len(marker) + len(extra):]
        n = len(symbols)
        loads = orjson.loads
        return HotState(
            slot_done=done,
            extra=more,
            latest={s: loads(v) for s, v in zip(symbols, values[:n], strict=True) if v is not None},
            stale={s: v.decode() for s, v in zip(symbols, values[n:], strict=True) if v is not None},
        )

    def prepare_write(
        self,
        slot: int,
        token: str,
        summary: dict[str, Any],
        restores: Iterable[Restore],
        applies: Sequence[Apply],
        stale: dict[str, str],
        cleared: Iterable[str],
        shard: Shard = (0, 1),
        scan: ScanWrite = NO_SCAN,
    ) -> tuple[list[str], list[Any]]:
        """Keys and arguments of the write script (no I/O; see :meth:`write`)."""
        restores, cleared = list(restores), list(cleared)
        keys: list[str] = [names.tick_done_key(slot, *shard), names.LAST_TICK_KEY,
                           names.tick_lock_key(*shard), names.shards_finished_key(slot)]
        args: list[Any] = [
            self.ttl, self.period, self.done_ttl, orjson.dumps(summary), token,
            1 if slot % REFRESH_EVERY == 0 else 0,
            len(restores), len(applies), len(stale) + len(scan.sets), len(cleared),
            names.latest_key(""), names.window_key(""), shard[1],
            len(scan.first_sets), len(scan.lists), scan.depth,
        ]
        for r in restores:
            keys += (names.latest_key(r.ticker), names.window_key(r.ticker))
            args += (orjson.dumps(r.latest), len(r.window), *map(format_price, r.window))
        dumps = orjson.dumps
        args += [b"%s\x1f%r\x1f%s" % (ap.ticker.encode(), ap.price, dumps(ap.latest)) for ap in applies]
        sets = [(names.stale_key(ticker), reason) for ticker, reason in stale.items()] + scan.sets
        keys += [key for key, _ in sets]
        args += [value for _, value in sets]
        keys += [names.stale_key(t) for t in cleared]
        keys += [key for key, _ in scan.first_sets]
        args += [value for _, value in scan.first_sets]
        for lw in scan.lists:
            keys.append(lw.key)
            args += (1 if lw.replace else 0, len(lw.remove), *lw.remove, len(lw.add))
            for score, member in lw.add:
                args += (score, member)
        return keys, args

    def write(self, prepared: tuple[list[str], list[Any]]) -> tuple[bool, int]:
        """One round-trip: restore, push, mark/clear stale, record, unlock.

        Returns whether this run was the first to finish its slot (or shard of
        it), and then how many of the slot's shards are finished (0 unsharded).
        """
        keys, args = prepared
        first, finished = self._write(keys=keys, args=args)
        return bool(first), int(finished)

    def snapshot(self, symbols: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Latest readings and stale marks for ``symbols`` in one MGET."""
        state = self.read(symbols, None)
        return state.latest, state.stale

    def window(self, ticker: str) -> list[float]:
        return [float(p) for p in self.client.lrange(names.window_key(ticker), 0, -1)]

    def last_tick(self) -> dict[str, Any] | None:
        raw = self.client.get(names.LAST_TICK_KEY)
        return orjson.loads(raw) if raw else None
