"""The evaluate process's loop: lease shards, read their provisional streams, judge, store, push, ack.

One batch per shard at a time, in this order, so nothing is lost or done
twice through a crash at any point:

1. read the shard's entries (its own pending ones first after a failure or
   a takeover, else new ones), coalesced per ticker and bar;
2. judge them (:class:`~webapp.evaluate.engine.ShardEngine`);
3. store the fires, their deliveries, the changed states and the batch's
   record (:mod:`webapp.store.evaluate_progress`) in one transaction: a
   replayed entry or a second writer stores nothing twice (the events'
   dedupe keys, the states' last fire);
4. push each new ``alert_event`` (the script that publishes them also
   sets the shard's "pushed" marker in Redis to the batch's last entry),
   then mark the record pushed; whoever takes the shard after a crash
   between 3 and 4 pushes that record's events, unless the marker says they
   went out (only a Redis that lost its data in that same moment could
   make it push them twice);
5. acknowledge the entries: only now does the shard's position move, so a
   process killed before this has its entries claimed and judged again by
   the next holder, storing nothing new.

Once a second, the provisional bars judged in the seconds that are over are
stored (:mod:`webapp.store.intrabar_tape`, by a thread:
:mod:`webapp.evaluate.tape_writer`), what a replay judges.

Postgres down: the entries stay pending and the batch is retried with
backoff (fires wait, and are stored once it is back).  Redis down: the
leases lapse; the process waits it out, takes shards again and rejoins the
groups (made anew if Redis lost its data).  Nothing here exits for either.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
import redis
import sqlalchemy as sa
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from webapp import names
from webapp.config import Config
from webapp.core import handoff
from webapp.core.handoff import Handoffs
from webapp.core.reconnect import Backoff
from webapp.evaluate.engine import ShardEngine, StatusChange
from webapp.evaluate.scanner import LiveScanner
from webapp.evaluate.tape_writer import TapeWriter
from webapp.store import alert_events, evaluate_progress, evaluation
from webapp.store.pg import DB_DOWN
from webapp.store.streamstate import closed_bars, stream_halts, stream_status
from webapp.tick.publisher import Publisher

log = logging.getLogger(__name__)

STATUS_SECONDS = 2.0
LEASE_EVERY_SECONDS = 1.0
BATCH = 500  # entries read at once (each one flush of one shard: ~100 ms of trades)
PREVIOUS_BAR_WAIT_SECONDS = 10.0  # a shard waits this long at most for the bar before the one judged
PREVIOUS_BAR_RETRY_SECONDS = 0.2


class PreviousBarPending(Exception):
    """A batch waits for the bar before the one it judges (:meth:`ShardEngine.missing_previous`)."""


class EvaluateProcess:
    def __init__(self, cfg: Config, engine: sa.Engine, client: redis.Redis,
                 symbols: Callable[[], Sequence[str]], host_id: str | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.client = client
        self.symbols_of = symbols
        self.shards = max(1, cfg.TICK_SHARDS)
        self.leases = evaluation.ShardLeases(client, self.shards, int(cfg.EVALUATE_LEASE_SECONDS * 1000),
                                             host_id)
        self.host_id = self.leases.host_id
        self.reader = evaluation.ProvisionalReader(client, self.shards, self.host_id)
        self.publisher = Publisher(client)
        self.engines: dict[int, ShardEngine] = {}
        self.retry: set[int] = set()  # shards whose pending entries are judged again (after a failure)
        self.unrepaired: set[int] = set()  # shards taken whose last batch's push is not checked yet
        self.rejoin: set[int] = set()  # shards held when Redis went away: their groups joined again
        self.symbols: Sequence[str] = ()
        self.symbols_at = 0.0
        self.judged_ms: dict[int, int] = {}
        self.waiting: dict[int, list[Any]] = {}  # shard -> [bar, since when, given up] its batches wait
        self.paused: dict[int, float] = {}  # shard -> when its waiting batch is tried again (monotonic)
        self.counts = {"entries": 0, "bars": 0, "fires": 0, "malformed": 0, "batches": 0, "retries": 0,
                       "tape_seconds": 0, "tape_dropped": 0, "previous_bar_waits": 0}
        self.judged_seconds = TapeWriter(engine, self.counts, cfg.REDIS_RETRY_MAX_SECONDS)  # for replays
        self.last_error: str | None = None
        self._lease_at = 0.0
        self.lease_every = min(LEASE_EVERY_SECONDS, cfg.EVALUATE_LEASE_SECONDS / 4)  # renewed well before
        self._status_at = 0.0
        self.hooks: dict[str, Callable[[], None]] = {}  # fault tests: "after_commit", "after_push"
        # the live tape over the same hand-offs (while the stream feeds the prices): the rules' signals,
        # and the scanner every second when it is on
        streamed = cfg.MARKET_DATA_PROVIDER == "stream"
        self.scanner = LiveScanner(cfg, client, self.publisher) if streamed else None

    # ---- the loop
    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(0.5, self.cfg.REDIS_RETRY_MAX_SECONDS)
        log.info("evaluate %s: %d shard(s), rules on the print", self.host_id, self.shards)
        while not stop.is_set():
            try:
                self.step(block_ms=200)
                if not self.leases.held:  # every shard is another's: look again at the next renewal
                    stop.wait(self.lease_every)
                if self.last_error:
                    log.warning("evaluate: %s is back; judging again", self.last_error.split(" ")[0])
                self.last_error = None
                backoff.attempts = 0
            except (RedisError, OSError) as exc:
                self.last_error = f"Redis unavailable ({type(exc).__name__})"
                self._lost_redis()
                wait = backoff.next_delay(random.random())
                log.warning("evaluate: %s; leases lapse, retrying in %.1f s", self.last_error, wait)
                stop.wait(wait)
            except DB_DOWN as exc:
                self.last_error = f"Postgres unavailable ({type(exc).__name__})"
                wait = backoff.next_delay(random.random())
                log.warning("evaluate: %s; fires wait in the streams, retrying in %.1f s", self.last_error,
                            wait)
                stop.wait(wait)
        try:
            self.leases.release_all()
        except (RedisError, OSError):
            pass
        self.judged_seconds.stop()
        log.info("evaluate %s: stopped", self.host_id)

    def step(self, block_ms: int | None = 0) -> int:
        """One round: leases, one batch per held shard; the entries handled."""
        now = time.time()
        if now - self.symbols_at > 30 or not self.symbols:
            self.symbols, self.symbols_at = tuple(self.symbols_of()), now
            if self.scanner is not None:
                self.scanner.symbols(self.symbols)
        if now - self._lease_at >= self.lease_every or not self.leases.held:
            self._lease_at = now
            gained, lost = self.leases.maintain(int(now * 1000))
            for s in lost:
                self.engines.pop(s, None)
                self.unrepaired.discard(s)
                if self.scanner is not None:
                    self.scanner.drop(s)
                log.warning("evaluate: lost the lease of shard %d", s)
            for s in sorted(gained | (self.rejoin & self.leases.held)):
                self._take(s, int(now * 1000))
            self.rejoin.clear()
        for s in sorted(self.unrepaired & self.leases.held):  # before any new batch of the shard
            self._repair(s)
            self.unrepaired.discard(s)
        handled = 0
        ready = self.leases.held - self.unrepaired
        for s in sorted(self.retry & ready):
            if self.paused.get(s, 0.0) <= time.monotonic():
                handled += self._batch(s, self.reader.read({s}, pending=True, count=100_000, block_ms=None))
        fresh = ready - self.retry
        if block_ms and not fresh and self.paused:  # every shard waits: not a busy loop meanwhile
            time.sleep(max(0.0, min(min(self.paused.values()) - time.monotonic(), block_ms / 1000)))
        if block_ms and self.scanner is not None and self.scanner.lists:
            # wait no longer than the scanner's next second (or, when its lists wait for the other
            # shards' rows, than a moment)
            at = time.time()
            until = 0.05 if self.scanner.announce_for is not None else int(at) + 1 - at
            block_ms = max(1, min(block_ms, int(until * 1000) + 1))
        got = self.reader.read(fresh, pending=False, count=BATCH, block_ms=block_ms)
        by_shard: dict[int, list[tuple[int, str, Any]]] = {}
        for entry in got:
            by_shard.setdefault(entry[0], []).append(entry)
        for s, entries in by_shard.items():
            handled += self._batch(s, entries)
        now = time.time()  # the read may have waited: the second may have ended meanwhile
        if self.scanner is not None and self.scanner.due(now):
            self._scan(now)
        elif self.scanner is not None and self.scanner.announce_for is not None:
            self.scanner.announce_when_ready(now)
        self.judged_seconds.over(int(now))
        if now - self._status_at >= STATUS_SECONDS:
            self._status_at = now
            self._status(now)
        return handled

    def _take(self, shard: int, now_ms: int) -> None:
        """A shard newly held (or held again after Redis went away): join its group (made anew if
        Redis lost it), claim what a dead holder left, read the states afresh (the tick judged these
        rules while nobody held it), and push what was stored and never pushed before anything new."""
        self.reader.take(shard, now_ms)
        self.engines[shard] = self._engine(shard)
        self.waiting.pop(shard, None)  # (a wait of an earlier holding is not this one's)
        self.paused.pop(shard, None)
        self.retry.add(shard)  # its pending entries (claimed, or ours) first
        self.unrepaired.add(shard)
        if self.scanner is not None and shard not in self.scanner.scans:
            self.scanner.take(shard, self.symbols)
        log.info("evaluate %s: took shard %d", self.host_id, shard)

    def _repair(self, shard: int) -> None:
        """The shard's last batch was stored and maybe not pushed (its holder died between): push it,
        unless the push's own marker says it went out.  Postgres down: raised, tried again next step,
        and no new batch of the shard is judged meanwhile (it would overwrite the record)."""
        with Session(self.engine) as session:
            got = evaluate_progress.read(session, (shard, self.shards))
            marker = self.client.get(names.evaluate_pushed_key(shard, self.shards))
            if got is not None and not got.pushed and marker == got.entry_id.encode():
                evaluate_progress.mark_pushed(session, (shard, self.shards), got.event_ids)  # it went out
            elif got is not None and not got.pushed:
                events = alert_events.events_by_id(session, got.event_ids, alert_events.ALL_OWNERS)
                owners = alert_events.owners_of(session, got.event_ids)
                batch = self.publisher.batch()
                batch.listening = self.publisher.listening()
                for e in events:
                    batch.alert_event(e, owners.get(e["id"]))
                batch.send(mark=(names.evaluate_pushed_key(shard, self.shards), got.entry_id, 86400))
                evaluate_progress.mark_pushed(session, (shard, self.shards), got.event_ids)
                log.warning("evaluate: shard %d's last batch was stored and not pushed (its holder died); "
                            "pushed its %d event(s) now", shard, len(events))

    def _batch(self, shard: int, entries: Sequence[tuple[int, str, Any]]) -> int:
        if not entries:
            self.retry.discard(shard)
            return 0
        engine = self.engines[shard]
        parts: list[Handoffs] = []
        changes: list[StatusChange] = []
        for _, entry_id, fields in entries:
            if fields is None:
                continue  # trimmed away (MAXLEN) while pending: newer entries carry the bars' state
            if b"status" in fields:
                changes += self._status_rows(shard, entry_id, fields[b"status"])
            try:
                got, refused = handoff.decode(fields, self.cfg.TICK_SECONDS)
            except ValueError as exc:
                self.counts["malformed"] += 1
                log.warning("evaluate: shard %d entry %s skipped: %s", shard, entry_id, exc)
                continue
            for why in refused:  # one bad row: the rest of the entry counts
                self.counts["malformed"] += 1
                log.warning("evaluate: shard %d entry %s: a row skipped: %s", shard, entry_id, why)
            parts.append(got)
        ids = [e[1] for e in entries]
        halted = set(stream_halts(self.client))
        now_ms = int(time.time() * 1000)
        handed = handoff.coalesced(handoff.concat(parts))
        watched = engine.watched  # the rest is not judged: no rule names it
        mine = handed if watched is None else handed.take(np.fromiter(
            map(watched.__contains__, handed.tickers.tolist()), bool, len(handed)))
        # the live tape, for the lists or for the rules' signals (only what they read is kept then)
        listing = self.scanner is not None and self.scanner.lists
        taping = self.scanner is not None and (listing or engine.signals)
        if taping:
            self.scanner.add(shard, handed if listing else mine)  # type: ignore[union-attr]
        bar_times = mine.col("bar_time")
        groups = {int(t): mine.take(bar_times == t) for t in np.unique(bar_times).tolist()}
        self.judged_seconds.held(mine, halted)
        live = self.scanner.columns(shard) if taping else None  # type: ignore[union-attr]
        said: dict[int, dict[str, StatusChange]] = {}  # bar time -> ticker -> its last status change
        for ch in changes:
            said.setdefault(engine.bar_of(ch.time_ms), {})[ch.ticker] = ch
        try:
            with Session(self.engine) as session:
                fires: list[alert_events.FireRow] = []
                states: dict[tuple[int, str], tuple] = {}
                for bar_time in sorted(groups.keys() | said.keys()):
                    engine.refresh(session, self.symbols, bar_time, time.monotonic())
                    traded, status = groups.get(bar_time, Handoffs.empty()), said.get(bar_time)
                    judged = traded.tickers.tolist() + list(status or ())
                    if engine.missing_previous(bar_time, judged) and self._waits(shard, bar_time):
                        raise PreviousBarPending(bar_time)
                    # the bar's trades, then its status messages (judged for halt and resume rules only)
                    for told in ((None, status) if status else (None,)):
                        on = engine.status_bars(list(told.values())) if told else traded
                        judged = engine.judge(on, halted, now_ms, live, told)
                        engine.committed(judged, traded)  # undone below if the commit fails
                        fires += judged.fires
                        states.update({(st[0], st[2]): st for st in judged.states})
                stored_ms = int(time.time() * 1000)  # latency_ms: the print → stored, not → judged
                fires = [replace(f, latency_ms=float(max(0, stored_ms - f.fire.inputs["trade_time_ms"])))
                         for f in fires]
                written = alert_events.write_fires(session, fires, list(states.values()))
                made = [written.made[f.fire.dedupe_key] for f in fires if f.fire.dedupe_key in written.made]
                evaluate_progress.write(session, (shard, self.shards), ids[-1], made)
                session.commit()
                self._hook("after_commit")
                if made:
                    fired_at = datetime.now(timezone.utc)
                    batch = self.publisher.batch()
                    batch.listening = self.publisher.listening()
                    for f in fires:
                        event_id = written.made.get(f.fire.dedupe_key)
                        if event_id is not None:
                            batch.alert_event(alert_events.fire_json(f, event_id, fired_at),
                                              written.owners.get(f.fire.dedupe_key))
                    batch.wake_deliverers = written.queued > 0
                    batch.send(mark=(names.evaluate_pushed_key(shard, self.shards), ids[-1], 86400))
                    self._hook("after_push")
                    evaluate_progress.mark_pushed(session, (shard, self.shards), made)
        except DB_DOWN:
            # the entries stay pending and are judged again once Postgres is back, from its states
            self.engines[shard] = self._engine(shard)
            self.retry.add(shard)
            self.counts["retries"] += 1
            raise
        except PreviousBarPending:
            # nothing stored: the entries stay pending and are judged again shortly, by a fresh engine
            # (what this one judged of the batch was never stored)
            self.engines[shard] = self._engine(shard)
            self.retry.add(shard)
            self.paused[shard] = time.monotonic() + PREVIOUS_BAR_RETRY_SECONDS
            self.counts["previous_bar_waits"] += 1
            return 0
        self.paused.pop(shard, None)
        self.reader.ack(shard, ids)
        self.retry.discard(shard)
        self.counts["entries"] += len(ids)
        self.counts["bars"] += sum(map(len, parts))
        self.counts["fires"] += len(made)
        self.counts["batches"] += 1
        self.judged_ms[shard] = int(ids[-1].split("-")[0])
        return len(ids)

    def _engine(self, shard: int) -> ShardEngine:
        return ShardEngine((shard, self.shards), self.cfg.TICK_SECONDS, self.cfg.SCAN_RESUMED_MINUTES * 60,
                           lambda end, tickers: closed_bars(self.client, end, tickers))

    def _waits(self, shard: int, bar_time: int) -> bool:
        """Whether the shard's batch still waits for the bar before ``bar_time`` (at most
        :data:`PREVIOUS_BAR_WAIT_SECONDS`: then it is judged without it, and says so)."""
        held = self.waiting.get(shard)
        if held is None or held[0] != bar_time:
            self.waiting[shard] = [bar_time, time.monotonic(), False]
            return True
        if held[2] or time.monotonic() - held[1] < PREVIOUS_BAR_WAIT_SECONDS:
            return not held[2]
        held[2] = True
        log.warning("evaluate: shard %d judges the bar to %d without the bar before it for some tickers "
                    "(neither stored by the tick nor closed by the stream in %.0f s)", shard, bar_time,
                    PREVIOUS_BAR_WAIT_SECONDS)
        return False

    def _status_rows(self, shard: int, entry_id: Any, raw: bytes) -> list[StatusChange]:
        """A hand-off's halts and resumes; a malformed one is skipped and counted."""
        try:
            rows = orjson.loads(raw)
            if type(rows) is not list:
                raise ValueError("status is not a list")
            return [StatusChange.of(r) for r in rows]
        except ValueError as exc:
            self.counts["malformed"] += 1
            log.warning("evaluate: shard %d entry %s: its status skipped: %s", shard, entry_id, exc)
            return []

    def _scan(self, now: float) -> None:
        """The scanner's second: only while the stream that feeds the prices is connected (else the
        minute tick's lists stand, and say so)."""
        status = stream_status(self.client)
        if not status or status.get("state") != "connected":
            self.scanner.second = int(now)  # type: ignore[union-attr]
            return
        self.scanner.run(now, stream_halts(self.client))  # type: ignore[union-attr]

    def _hook(self, name: str) -> None:
        hook = self.hooks.get(name)
        if hook is not None:
            hook()

    def _lost_redis(self) -> None:
        """Redis went away: once it is back, the leases still held (renewed) are joined again (their
        groups made anew if Redis lost its data, what was pending claimed), and those that lapsed are
        taken as any free shard."""
        self.rejoin |= self.leases.held
        self._lease_at = 0.0

    def _status(self, now: float) -> None:
        lags = {}
        for s in sorted(self.leases.held):
            lag = self.reader.lag_ms(s, self.judged_ms.get(s))
            lags[str(s)] = None if lag is None else round(lag / 1000, 3)
        evaluation.write_status(self.client, self.host_id, {
            "host": self.host_id, "pid": os.getpid(), "shards": self.shards, "held": sorted(self.leases.held),
            "lag_s": lags, "at": now, "error": self.last_error or self.judged_seconds.error, **self.counts,
            "rules": sum(len(e.rules) for e in self.engines.values()),
            **(self.scanner.status() if self.scanner is not None else {})},
            ttl_seconds=int(STATUS_SECONDS * 5))
