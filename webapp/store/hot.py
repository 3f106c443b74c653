"""Hot data in Redis: rolling windows and the latest readings.

A tick costs a constant number of round-trips whatever the number of
symbols: one ``SET NX`` takes the tick lock, one ``MGET`` reads the slot's
marker and the shard's table of latest readings, and one server-side script
writes them back and releases the lock.

Ticks run one at a time (the lock), so the readings a tick computes from
cannot change under it; that is what makes a second run of the same minute
(a retry, a second scheduler) harmless together with the slot marker.

The latest readings of a shard's tickers (with their windows as integer
ticks, SMA inputs, last alerts and stale marks) are one value, a table of
columns (:mod:`webapp.core.latest`): the tick reads and writes it whole, in
a few milliseconds at 10,000 symbols.  Per ticker the script also keeps the
window list that BRIEF describes, with RPUSH + LTRIM, from the same prices;
the list's TTL is set when the list is created and refreshed every
``REFRESH_EVERY`` slots, well inside the TTL, which saves a call per symbol
on the other ticks.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import redis

from webapp import names
from webapp.core.latest import Latest
from webapp.core.tables import Unreadable
from webapp.store.locks import RELEASE_SCRIPT, RENEW_SCRIPT

log = logging.getLogger(__name__)

REFRESH_EVERY = 10

Shard = tuple[int, int]  # (index, count); (0, 1) is the whole list

# KEYS: done, last_tick, lock, shards_finished, latest table, then per set (the
#       scanner's values), per first-only set (key), per scanner list (sorted set)
# ARGV: ttl, period, done_ttl, last_tick_json, lock_token, refresh(0|1), window key
#       prefix, shards, n_set, n_first_set, n_list, list depth, latest table,
#       restored windows ("TICKER p1 p2 ...\n" per ticker), pushes ("TICKER p\n"
#       per ticker), then per set and first-only set: value; per list: replace(1|0),
#       n_remove, members..., n_add, (score, member)...; last, when the slot's rows
#       are stored, the stored-slot mark's key (KEYS) and slot (ARGV)
# The mark only moves forward: two workers can finish a shard's slots out of
# order (slot s+1 took the lock first), and a mark moved back would read as
# Redis ahead of Postgres at the next tick.
# Windows and pushes travel as one text argument each: at 10,000 symbols
# redis-py's per-argument encoding costs more than the server's work.
# First-only sets (the scanner's announcement) are written only by the run
# that finishes the slot, so a duplicate run cannot change what was announced.
_WRITE = """
local ttl, period, done_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local refresh, prefix = ARGV[6] == '1', ARGV[7]
local n_set, n_first, n_list, depth = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]),
  tonumber(ARGV[12])
redis.call('SET', KEYS[5], ARGV[13], 'EX', ttl)
for line in string.gmatch(ARGV[14], '[^\\n]+') do
  local wk
  for word in string.gmatch(line, '%S+') do
    if wk then redis.call('RPUSH', wk, word) else wk = prefix .. word; redis.call('DEL', wk) end
  end
  redis.call('EXPIRE', wk, ttl)
end
for ticker, price in string.gmatch(ARGV[15], '(%S+) (%S+)') do
  local wk = prefix .. ticker
  local len = redis.call('RPUSH', wk, price)
  if len > period then redis.call('LTRIM', wk, -period, -1) end
  if refresh or len == 1 then redis.call('EXPIRE', wk, ttl) end
end
local k, a = 6, 16
for i = 1, n_set do
  redis.call('SET', KEYS[k], ARGV[a], 'EX', ttl)
  k, a = k + 1, a + 1
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
if KEYS[k] then
  local mark = tonumber(redis.call('GET', KEYS[k]) or '-1')
  if tonumber(ARGV[#ARGV]) > mark then redis.call('SET', KEYS[k], ARGV[#ARGV], 'EX', ttl) end
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ttl)
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', done_ttl) and 1 or 0
local finished = 0
if first == 1 then
  for i = 0, n_first - 1 do redis.call('SET', KEYS[fk + i], ARGV[fa + i], 'EX', ttl) end
  if tonumber(ARGV[8]) > 1 then  -- shards: count the finished ones; the last announces
    finished = redis.call('INCR', KEYS[4])
    redis.call('EXPIRE', KEYS[4], done_ttl)
  end
end
if redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
return {first, finished}
"""



class TickBusy(RuntimeError):
    """Another tick still holds the lock after the wait."""


@dataclass
class HotState:
    """What Redis holds for a shard at the start of a tick."""

    slot_done: bool
    latest: Latest
    extra: list[bytes | None] = field(default_factory=list)  # values of the extra keys asked for


class Restore(NamedTuple):
    """A ticker's window rebuilt from Postgres after its hot state was lost."""

    ticker: str
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


def _decode(key: str, blob: bytes | None) -> Latest | None:
    """The latest table in ``blob``; None when missing or unreadable, so it counts
    as lost and the tick rebuilds it from Postgres instead of failing every minute."""
    if blob is None:
        return None
    try:
        return Latest.unpack(blob)
    except Unreadable as exc:
        log.error("Redis key %s does not hold a latest table (%s); rebuilding it from Postgres", key, exc)
        return None


def format_price(price: float) -> str:
    """How prices are written into window lists: shortest exact decimal text."""
    return repr(float(price))


class HotStore:
    def __init__(self, client: redis.Redis, ttl: int, period: int, done_ttl: int, shards: int = 1) -> None:
        self.client = client
        self.ttl = ttl
        self.period = period
        self.done_ttl = done_ttl
        self.shards = shards
        self._write = client.register_script(_WRITE)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._extend = client.register_script(RENEW_SCRIPT)

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

    def extend(self, token: str, hold_seconds: float, shard: Shard = (0, 1)) -> bool:
        """Keep the lock for ``hold_seconds`` more if it is still ours."""
        return bool(self._extend(keys=[names.tick_lock_key(*shard)], args=[token, int(hold_seconds * 1000)]))

    @contextlib.contextmanager
    def held(self, token: str, hold_seconds: float, shard: Shard = (0, 1)) -> Iterator[None]:
        """Renew the lock every third of its TTL while the block runs.

        The TTL is short, so a tick that died (a SIGKILLed worker) frees its
        lock within seconds instead of after a whole tick; a live tick that
        runs long keeps it.  A tick shorter than a third of the TTL (all of
        them, normally) costs no extra round-trip.
        """
        done = threading.Event()

        def renew() -> None:
            while not done.wait(hold_seconds / 3):
                try:
                    if not self.extend(token, hold_seconds, shard):
                        return
                except Exception:
                    log.warning("could not renew the tick lock", exc_info=True)

        keeper = threading.Thread(target=renew, name="tick-lock", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join(5)

    def unlock(self, token: str, shard: Shard = (0, 1)) -> None:
        """Release the lock if still ours (only needed when a tick fails)."""
        self._release(keys=[names.tick_lock_key(*shard)], args=[token])

    def read(self, slot: int, shard: Shard = (0, 1), extra: Sequence[str] = ()) -> HotState:
        """One round-trip: the slot's marker, the ``extra`` keys' raw values and
        the shard's latest readings (an empty table when lost)."""
        keys = [names.tick_done_key(slot, *shard), *extra, names.latest_key(*shard)]
        values = self.client.mget(keys)
        latest = _decode(keys[-1], values[-1]) or Latest.empty([], self.period)
        return HotState(slot_done=values[0] is not None, latest=latest, extra=values[1:-1])

    def read_all(self) -> Latest:
        """Every shard's latest readings as one table (one MGET)."""
        keys = [names.latest_key(i, self.shards) for i in range(self.shards)]
        return Latest.merged([_decode(k, v) for k, v in zip(keys, self.client.mget(keys), strict=True)],
                             self.period)

    def prepare_write(
        self,
        slot: int,
        token: str,
        summary: dict[str, Any],
        latest: Latest,
        restores: Sequence[Restore],
        pushes: Sequence[tuple[str, float]],
        shard: Shard = (0, 1),
        scan: ScanWrite = NO_SCAN,
        stored: bool = True,
    ) -> tuple[list[str], list[Any]]:
        """Keys and arguments of the write script (no I/O; see :meth:`write`).

        ``stored``: the slot's rows are in Postgres (not spooled), so the
        shard's stored-slot mark moves to it with the rest of the write.
        """
        keys: list[str] = [names.tick_done_key(slot, *shard), names.LAST_TICK_KEY,
                           names.tick_lock_key(*shard), names.shards_finished_key(slot),
                           names.latest_key(*shard)]
        restored = "".join(f"{r.ticker} {' '.join(map(format_price, r.window))}\n" for r in restores)
        pushed = "".join([f"{ticker} {format_price(price)}\n" for ticker, price in pushes])
        args: list[Any] = [
            self.ttl, self.period, self.done_ttl, orjson.dumps(summary), token,
            1 if slot % REFRESH_EVERY == 0 else 0, names.window_key(""), shard[1],
            len(scan.sets), len(scan.first_sets), len(scan.lists), scan.depth,
            latest.pack(), restored, pushed,
        ]
        keys += [key for key, _ in scan.sets]
        args += [value for _, value in scan.sets]
        keys += [key for key, _ in scan.first_sets]
        args += [value for _, value in scan.first_sets]
        for lw in scan.lists:
            keys.append(lw.key)
            args += (1 if lw.replace else 0, len(lw.remove), *lw.remove, len(lw.add))
            for score, member in lw.add:
                args += (score, member)
        if stored:
            keys.append(names.stored_slot_key(*shard))
            args.append(slot)
        return keys, args

    def write(self, prepared: tuple[list[str], list[Any]]) -> tuple[bool, int]:
        """One round-trip: latest readings, windows, scanner, record, unlock.

        Returns whether this run was the first to finish its slot (or shard of
        it), and then how many of the slot's shards are finished (0 unsharded).
        """
        keys, args = prepared
        first, finished = self._write(keys=keys, args=args)
        return bool(first), int(finished)

    def forget_stored_marks(self) -> None:
        """Drop every shard's stored-slot mark (after a spool drained: none of them is behind)."""
        self.client.delete(*[names.stored_slot_key(i, self.shards) for i in range(self.shards)])

    def window(self, ticker: str) -> list[float]:
        return [float(p) for p in self.client.lrange(names.window_key(ticker), 0, -1)]

    def last_tick(self) -> dict[str, Any] | None:
        raw = self.client.get(names.LAST_TICK_KEY)
        return orjson.loads(raw) if raw else None
