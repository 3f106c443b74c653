"""The scanner every second, in the evaluate process: each held shard's lists from its hand-offs.

The evaluate process already reads every provisional bar of the shards it
holds; this adds, once a second, for each of them:

1. the second's hand-offs (coalesced) into the shard's
   :class:`~webapp.core.scanner_live.LiveTape`, and the stream's halts;
2. the shard's lists: the minute tick's six (``gainers`` … ``new_lows``)
   with each ticker's provisional bar as its reading, advanced from the
   tick's own scan table by the tick's own :func:`webapp.core.scanner.advance`
   (so at the minute the live lists and the tick's agree), and the day
   trader's six (:data:`~webapp.core.scanner_live.LIVE_LISTS`);
3. those rows into Redis (:data:`~webapp.names.SCAN_LIVE_ROWS_KEY`, a field
   per list and shard).

The holder of shard 0 then merges every shard's rows and announces what
changed to the ``scan:<list>`` rooms where someone listens (``scan_update``,
the tick's delta format, ``seq`` = the second), in one round-trip, and sets
:data:`~webapp.names.SCAN_LIVE_KEY` so the minute tick leaves the rooms to
it.  A process's first announcement is of full lists (a takeover never
sends a delta against a base it did not make), and a list whose shards are
not all reporting, or whose tape is younger than its window, says
``warming_up`` rather than pass for the market.  When no process announces
(the stream down, no ``evaluate`` process), the key lapses within seconds
and the tick announces its minute lists again.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np
import orjson
import redis

from webapp import names
from webapp.config import Config
from webapp.core import scanner as core
from webapp.core.handoff import Handoffs, concat
from webapp.core.market import EXCHANGE_TZ
from webapp.core.rules.model import MAX_SIGNAL_SECONDS
from webapp.core.scanner_live import (
    CONTEXT,
    LIVE_LISTS,
    LiveSettings,
    LiveTape,
    live_lists,
    merge,
    session_of,
    within,
)
from webapp.core.shards import shard_of
from webapp.core.tables import Table, Unreadable, unpack
from webapp.core.trades import day_opens, per_distinct
from webapp.store.scanstore import decode_profile
from webapp.tick.publisher import Publisher
from webapp.tick.scanner import changes, filters, fresh_mask, minute_of_day, settings

log = logging.getLogger(__name__)

ALL_LISTS = (*core.LISTS, *LIVE_LISTS)
LIVE_KEY_SECONDS = 3  # the tick announces again this soon after the last live announcement
ROWS_TTL_SECONDS = 10
REPORTING_SECONDS = 5.0  # a shard whose rows are older than this is not reporting
ANNOUNCE_WAIT_SECONDS = 0.5  # the longest the announcer waits for the other shards' rows of a second


def live_settings(cfg: Config) -> LiveSettings:
    return LiveSettings(cfg.SCAN_WINDOW_SECONDS, cfg.SCAN_RUNNING_MIN_VOLUME, cfg.SCAN_BREAKS_MINUTES,
                        cfg.SCAN_SPIKE_K, cfg.SCAN_RESUMED_MINUTES)


class ShardScan:
    """One held shard: its tape, the hand-offs of the current second, and the tick's last table."""

    def __init__(self, shard: tuple[int, int], tickers: Sequence[str], window: int) -> None:
        self.shard = shard
        self.tape = LiveTape(tickers, window, MAX_SIGNAL_SECONDS)
        self.pending: list[Handoffs] = []  # the second's batches of hand-offs
        self.table: tuple[list[str], Table] | None = None
        self.where: dict[str, int] = {}  # ticker -> its row of the table
        self.rows = np.full(len(tickers), -1, np.int64)  # each tape ticker's row of the table (-1: none)
        self.live: Table | None = None  # the table with each ticker's newest hand-off as its reading
        self.table_minute = -1
        self.profile_minute = -1
        n = len(tickers)
        self.expected = np.full(n, np.nan)  # per tape ticker: cumulative expected volume (RVOL)
        self.sessions = np.zeros(n, np.int64)
        self.window_expected = np.full(n, np.nan)

    def add(self, bars: Handoffs) -> None:
        self.pending.append(bars)


class LiveScanner:
    def __init__(self, cfg: Config, client: redis.Redis, publisher: Publisher) -> None:
        self.cfg = cfg
        self.client = client
        self.publisher = publisher
        self.shards = max(1, cfg.TICK_SHARDS)
        self.settings = live_settings(cfg)
        self.lists = bool(cfg.SCANNER and cfg.SCAN_LIVE)  # else only the tape, for the rules' signals
        self.scans: dict[int, ShardScan] = {}
        self.announced_once = False
        self.second = 0
        self.timings: list[float] = []  # CPU ms per shard-second (of one core), for the status and the bench
        self.walls: list[float] = []  # the same, by the clock on the wall (waits for the CPU included)
        self.announce_for: float | None = None  # the second whose lists wait for every shard's rows
        self.lags: list[float] = []  # ms from the second's end to its announcement going out
        self.starts: list[float] = []  # ms from the second's end to its ranking beginning

    # ---- fed by the evaluate process
    def take(self, shard: int, symbols: Sequence[str]) -> None:
        mine = [t for t in symbols if shard_of(t, self.shards) == shard]
        self.scans[shard] = ShardScan((shard, self.shards), mine, self.settings.window_seconds)

    def symbols(self, symbols: Sequence[str]) -> None:
        """The tracked symbols changed: a held shard whose tickers changed starts its tape again."""
        for shard, scan in list(self.scans.items()):
            if [t for t in symbols if shard_of(t, self.shards) == shard] != scan.tape.tickers:
                self.take(shard, symbols)

    def drop(self, shard: int) -> None:
        self.scans.pop(shard, None)

    def add(self, shard: int, bars: Handoffs) -> None:
        scan = self.scans.get(shard)
        if scan is not None:
            scan.add(bars)

    def columns(self, shard: int) -> Callable[[Sequence[str], Sequence[int]], dict[str, np.ndarray]] | None:
        """What a rule's signals read of the shard's tape (as of the last second recorded)."""
        scan = self.scans.get(shard)
        if scan is None:
            return None
        return lambda tickers, seconds: scan.tape.columns(tickers, seconds, scan.window_expected)

    def status(self) -> dict[str, Any]:
        """The second, per shard: its computation's median and 99th percentile, in CPU ms of one core
        and by the wall clock (which counts the waits for a busy machine's CPU), and its lags."""
        out = {}
        for name, got in (("scan_second_ms", self.timings), ("scan_second_wall_ms", self.walls),
                          ("scan_announce_lag_ms", self.lags), ("scan_start_lag_ms", self.starts)):
            t = sorted(got)
            if t:
                out[f"{name}_p50"] = round(t[len(t) // 2], 2)
                out[f"{name}_p99"] = round(t[min(len(t) - 1, int(len(t) * 0.99))], 2)
        return out

    # ---- once a second
    def due(self, now: float) -> bool:
        return int(now) > self.second

    def run(self, now: float, halts: dict[str, dict[str, Any]]) -> int:
        """Rank every held shard's lists for the second that ended, write them, and (holding shard 0)
        announce the merged lists; the number of scan_update messages sent."""
        self.second = int(now)
        now_ms = int(now * 1000)
        self.starts.append((time.time() - int(now)) * 1000)
        del self.starts[:-600]
        if not self.lists:
            for scan in self.scans.values():
                self._record(scan, now, now_ms, halts)
            return 0
        pipe = self.client.pipeline(transaction=False)
        for shard, scan in self.scans.items():
            began, cpu = time.perf_counter(), time.thread_time()
            rows, meta = self._shard(scan, now, now_ms, halts)
            self.timings.append((time.thread_time() - cpu) * 1000)
            self.walls.append((time.perf_counter() - began) * 1000)
            for name, r in rows.items():
                pipe.hset(names.SCAN_LIVE_ROWS_KEY, f"{name}:{shard}:{self.shards}", orjson.dumps(r))
            pipe.hset(names.SCAN_LIVE_ROWS_KEY, f"meta:{shard}:{self.shards}", orjson.dumps(meta))
        pipe.expire(names.SCAN_LIVE_ROWS_KEY, ROWS_TTL_SECONDS)
        pipe.execute()
        del self.timings[:-600], self.walls[:-600]
        if 0 not in self.scans:
            return 0
        self.announce_for = now
        return self.announce_when_ready(now)

    def announce_when_ready(self, now: float) -> int:
        """Announce the second's lists once every shard wrote its rows for it (each process ranks
        its shards when its own loop comes round to it), or :data:`ANNOUNCE_WAIT_SECONDS` after:
        a list is then never a second behind for want of a shard that was a moment late."""
        second = self.announce_for
        if second is None:
            return 0
        if now - second < ANNOUNCE_WAIT_SECONDS:
            metas = self.client.hmget(names.SCAN_LIVE_ROWS_KEY,
                                      [f"meta:{s}:{self.shards}" for s in range(self.shards)])
            if not all(m and int(orjson.loads(m).get("second", 0)) >= int(second) for m in metas):
                return 0
        self.announce_for = None
        sent = self._announce(second)
        self.lags.append((time.time() - int(second)) * 1000)
        del self.lags[:-600]
        return sent

    def _refresh_inputs(self, scan: ShardScan, now: float) -> None:
        """The tick's table, for the lists only (read again each minute, and each second while it is
        missing), and the volume profile's expected volumes for this minute (the rules' spikes too)."""
        at = datetime.fromtimestamp(now, timezone.utc)
        day, minute = minute_of_day(at)
        if self.lists and (scan.table is None or minute != scan.table_minute):
            blob = self.client.get(names.scan_table_key(*scan.shard))
            try:
                got = unpack(blob) if blob else None
            except Unreadable:
                got = None
            scan.table = None if got is None else (got[0], got[1])
            scan.where = where = {} if got is None else {t: i for i, t in enumerate(got[0])}
            scan.rows = np.array([where.get(t, -1) for t in scan.tape.tickers], np.int64)
            scan.live = None  # advanced afresh from the new table
            scan.table_minute = minute if got is not None else -1
            if got is not None:  # the day's high and low so far, where the tick's table has today's
                today = at.astimezone(EXCHANGE_TZ).date().toordinal()
                here = np.flatnonzero(scan.rows >= 0)
                there = scan.rows[here]
                same = got[1]["day"][there] == today
                scan.tape.seed(here[same], today, got[1]["hi"][there][same], got[1]["lo"][there][same])
        if minute != scan.profile_minute:
            scan.profile_minute = minute
            scan.live = None  # its RVOL is against the new minute's expectation
            tickers_json, now_blob, before_blob = self.client.mget(
                [names.rvol_tickers_key(day), names.rvol_minute_key(day, minute),
                 names.rvol_minute_key(day, max(0, minute - 1))])
            now_p = decode_profile(tickers_json, now_blob)
            before_p = decode_profile(tickers_json, before_blob)
            scan.expected = np.array([now_p.expected.get(t, np.nan) for t in scan.tape.tickers], float)
            scan.sessions = np.array([now_p.sessions.get(t, 0) for t in scan.tape.tickers], np.int64)
            per_minute = self.settings.window_seconds / 60.0
            scan.window_expected = np.array(
                [(now_p.expected.get(t, np.nan) - before_p.expected.get(t, np.nan)) * per_minute
                 for t in scan.tape.tickers], float)

    def _record(self, scan: ShardScan, now: float, now_ms: int, halts: dict[str, dict[str, Any]]) -> None:
        """The second that ended onto the shard's tape."""
        self._refresh_inputs(scan, now)
        scan.tape.observe(concat(scan.pending), self.cfg.TICK_SECONDS)
        scan.pending = []
        scan.tape.halted({t: h for t, h in halts.items() if t in scan.tape.index}, now_ms)
        scan.tape.tick(int(now) - 1)

    def _shard(self, scan: ShardScan, now: float, now_ms: int, halts: dict[str, dict[str, Any]]
               ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
        self._record(scan, now, now_ms, halts)
        rows = live_lists(scan.tape, now_ms, self.settings, scan.window_expected, self.cfg.SCAN_TOP)
        minute, context = self._minute_lists(scan, now, set(halts))
        flt = filters(self.cfg)
        for name in LIVE_LISTS:
            for r in rows[name]:
                r.update(context.of(r["ticker"]))
            if name != "halted":
                rows[name] = [r for r in rows[name] if within(r, *flt)]
        rows.update(minute)
        meta = {"at": now, "second": int(now), "warm": scan.tape.warm(), "table": scan.table is not None}
        return rows, meta

    def _minute_lists(self, scan: ShardScan, now: float, halted: set[str]
                      ) -> tuple[dict[str, list[dict[str, Any]]], _Context]:
        """The tick's six lists with each ticker's provisional bar as its reading (empty without the
        tick's table: the shard is warming up), and those readings, for the live rows' context."""
        if scan.table is None:
            return {name: [] for name in core.LISTS}, _Context({}, {})
        tickers, table = scan.table
        tape = scan.tape
        if scan.live is None:  # a copy: the blob's columns are read-only; every ticker handed off again
            scan.live, todo = {k: np.array(v) for k, v in table.items()}, np.flatnonzero(tape.bar > 0)
        else:  # only the rows handed off since: the rest are as they were a second ago
            todo = np.flatnonzero(tape.touched)
        tape.touched[:] = False
        live = scan.live
        todo = todo[scan.rows[todo] >= 0]
        at = scan.rows[todo]
        newer = ~(table["time"][at] >= tape.bar[todo])  # than the tick's reading (or it has none)
        c, rows = todo[newer], at[newer]
        if len(c):
            bar_time = tape.bar[c]
            day = per_distinct(bar_time, lambda t: datetime.fromtimestamp(t, EXCHANGE_TZ).date().toordinal())
            before = core.take(table, rows, self.cfg.UNUSUAL_VOLUME_BARS)  # the tick's reading before
            same = before["day"] == day
            readings = core.Readings(
                price=tape.last[c], volume=tape.bar_volume[c],
                prev_close=np.where(same, before["prev_close"], before["price"]),
                open=day_opens(bar_time, tape.bar_open[c], tape.last[c], same, before["open"],
                               before["time"]),
                time=bar_time.astype(float), day=day.astype(np.int64),
                expected=scan.expected[c], sessions=scan.sessions[c])
            core.put(live, rows, core.advance(before, readings, settings(self.cfg)))
        where = scan.where
        if halted:
            stopped = np.zeros(len(tickers), bool)
            stopped[[where[t] for t in halted if t in where]] = True
            live = {**live, "stale": live["stale"] | stopped}  # halted now: not kept past this second
        fresh = fresh_mask(live, datetime.fromtimestamp(now, timezone.utc), 3.0 * self.cfg.TICK_SECONDS)
        labels = np.array(tickers, dtype=str) if tickers else np.array([], dtype=str)
        out = {}
        rules, flt = settings(self.cfg), filters(self.cfg)
        for name in core.LISTS:
            top = core.rank(live, labels, name, rules, flt, fresh, self.cfg.SCAN_TOP)
            out[name] = [core.row(live, i, tickers[i], v) for i, v in top]
        return out, _Context(live, where)

    # ---- the holder of shard 0
    def _announce(self, now: float) -> int:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(names.SCAN_LIVE_ROWS_KEY)
        pipe.get(names.SCAN_ANNOUNCED_KEY)
        stored, raw = pipe.execute()
        parts: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in ALL_LISTS}
        metas: dict[int, dict[str, Any]] = {}
        held: dict[tuple[str, int], bytes] = {}  # (list, shard) -> its rows, for this many shards
        for field, value in stored.items():
            name, shard, shards = field.decode().split(":")
            if shards != str(self.shards):
                continue
            if name == "meta":
                metas[int(shard)] = orjson.loads(value)
            elif name in parts:
                held[(name, int(shard))] = value
        reporting = {s for s, m in metas.items() if now - float(m.get("at", 0)) <= REPORTING_SECONDS}
        for (name, shard), value in held.items():
            if shard in reporting:
                parts[name].append(orjson.loads(value))
        whole = len(reporting) == self.shards
        warm = whole and all(metas[s].get("warm") for s in reporting)
        tables = whole and all(metas[s].get("table") for s in reporting)
        when = datetime.fromtimestamp(int(now), timezone.utc)
        session = session_of(int(now * 1000))
        announced = {}
        for name in ALL_LISTS:
            warming = not (tables if name in core.LISTS else warm) and name != "halted"
            rows = merge(parts[name], name, self.cfg.SCAN_TOP)
            announced[name] = {"seq": int(now), "time": when.isoformat(), "rows": rows, "live": True,
                               "warming_up": warming, "session": session}
        previous = orjson.loads(raw) if raw and self.announced_once else {}
        updates, entered, kept = _with_flags(previous, announced)
        listening = self.publisher.listening()
        batch = self.publisher.batch()
        for name, payload in updates.items():
            if names.scan_room(name) in listening:
                batch.scan_update(payload)
        for ticker, lists in entered.items():
            if ticker in listening:
                batch.in_play({"ticker": ticker, "lists": lists, "time": when.isoformat()})
        pipe = self.client.pipeline(transaction=False)
        pipe.set(names.SCAN_ANNOUNCED_KEY, orjson.dumps(kept), ex=self.cfg.HOT_TTL_SECONDS)
        pipe.set(names.SCAN_LIVE_KEY, int(now), ex=LIVE_KEY_SECONDS)
        pipe.execute()
        self.announced_once = True
        return batch.send()


FLAGS = ("live", "warming_up", "session")  # what an announced list says of itself


def _with_flags(previous: dict[str, Any], announced: dict[str, Any]
                ) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]], dict[str, Any]]:
    """:func:`~webapp.tick.scanner.changes`, each update carrying :data:`FLAGS`; a list whose rows
    stayed and whose flags changed gets an empty delta that carries them."""
    updates, entered, kept = changes(previous, announced)
    for name, now in announced.items():
        before = previous.get(name)
        if name not in updates and before is not None and any(before.get(k) != now[k] for k in FLAGS):
            kept[name] = now
            updates[name] = {"list": name, "seq": now["seq"], "time": now["time"], "prev_seq": before["seq"],
                             "full": False, "add": [], "remove": [], "update": []}
    for name, payload in updates.items():
        payload.update({k: announced[name][k] for k in FLAGS})
    return updates, entered, kept


class _Context(NamedTuple):
    """The minute lists' readings (advanced to the last hand-offs): a live row's volume today, RVOL,
    change and gap (:data:`~webapp.core.scanner_live.CONTEXT`), what the filters judge."""

    table: dict[str, np.ndarray]
    where: dict[str, int]

    def of(self, ticker: str) -> dict[str, float | None]:
        i = self.where.get(ticker)
        if i is None:
            return {}
        return {k: None if (v := float(self.table[k][i])) != v else round(v, 3) for k in CONTEXT}
