"""The judged seconds stored off the judging loop: what a replay of a rule on the print reads.

The evaluate process judges hand-offs every 100 ms, and storing the seconds
it judged (:mod:`webapp.store.intrabar_tape`, thousands of rows a second at
10,000 symbols) took a quarter to half a second of its loop once a second,
which every alert waited behind.  So a thread stores them: the loop hands
over the bars it judged, as columns (:meth:`TapeWriter.held`: a list append,
thousands of rows a batch), and says which seconds are over
(:meth:`TapeWriter.over`); the thread keeps each ticker's newest state per
second (:func:`webapp.core.handoff.per_second`) and writes those that are
over in one upsert (a second stored again after a crash or a retry is
written again, never twice).

Postgres down: the seconds wait here and are written once it is back (the
thread backs off between tries); past :data:`TAPE_MAX` the oldest are
dropped and counted, so an outage costs memory within a bound.  The alert
path does not wait for any of it.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Collection, MutableMapping

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.handoff import Handoffs, concat, per_second
from webapp.core.reconnect import Backoff
from webapp.store import intrabar_tape
from webapp.store.pg import DB_DOWN

log = logging.getLogger(__name__)

TAPE_MAX = 500_000  # seconds of provisional bars held while Postgres is away (the oldest go)


class TapeWriter:
    def __init__(self, engine: sa.Engine, counts: MutableMapping[str, int], retry_max_seconds: float = 30.0
                 ) -> None:
        self.engine = engine
        self.counts = counts  # the process's: "tape_seconds" stored, "tape_dropped"
        self.backoff = Backoff(0.5, retry_max_seconds)
        self._held: list[tuple[Handoffs, np.ndarray]] = []  # bars judged and whether halted: not stored yet
        self._until = 0  # the seconds before this one are over
        self._stored_until = 0  # and these are stored
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def held(self, bars: Handoffs, halted: Collection[str]) -> None:
        """The bars as judged (``halted``: the tickers halted now): the newest state of each second is
        what is stored, with the extremes of every hand-off judged in that second (what a replay judges
        it at, as live did)."""
        if not len(bars):
            return
        flags = (np.fromiter(map(halted.__contains__, bars.tickers.tolist()), bool, len(bars)) if halted
                 else np.zeros(len(bars), bool))
        with self._lock:
            self._held.append((bars, flags))

    def over(self, second: int) -> None:
        """The seconds before ``second`` are over: store them (the thread starts on first use)."""
        if second <= self._until:
            return
        self._until = second
        if self._thread is None and not self._held:
            return  # nothing judged yet: no thread
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tape-writer", daemon=True)
            self._thread.start()
        self._wake.set()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every second that is over is stored (tests, and a clean stop)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._stored_until >= self._until and not any(
                        len(b) and b.col("last_ms").min() // 1000 < self._until for b, _ in self._held):
                    return True
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """Store what is over, then end the thread."""
        if self._thread is None:
            return
        self.drain(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            try:
                self._write()
                if self.error:
                    log.warning("evaluate: the judged seconds are stored again (%s is over)", self.error)
                self.error = None
                self.backoff.attempts = 0
            except DB_DOWN as exc:
                self.error = f"Postgres unavailable ({type(exc).__name__})"
                wait = self.backoff.next_delay(random.random())
                log.warning("evaluate: the judged seconds wait in memory: %s; retrying in %.1f s",
                            self.error, wait)
                self._stop.wait(wait)
                self._wake.set()
            except Exception:
                log.exception("evaluate: storing the judged seconds failed; trying again")
                self._stop.wait(1.0)

    def _write(self) -> None:
        with self._lock:
            until, held, self._held = self._until, self._held, []
        seconds, rows = per_second(concat([b for b, _ in held]))
        halted = np.concatenate([f for _, f in held] or [np.zeros(0, bool)])[rows]
        if len(seconds) > TAPE_MAX:  # the oldest go (by their second; the newest states are kept)
            keep = np.argsort(seconds.col("last_ms"), kind="stable")[len(seconds) - TAPE_MAX:]
            self.counts["tape_dropped"] += len(seconds) - TAPE_MAX
            seconds, halted = seconds.take(np.sort(keep)), halted[np.sort(keep)]
        done = seconds.col("last_ms") // 1000 < until
        later = (seconds.take(~done), halted[~done])
        try:
            if done.any():
                with Session(self.engine) as session:
                    self.counts["tape_seconds"] += intrabar_tape.write(session, seconds.take(done),
                                                                       halted[done])
                    session.commit()
        except BaseException:
            with self._lock:  # kept for the next try, before what came meanwhile (older states first)
                self._held[:0] = [(seconds, halted)]
            raise
        with self._lock:
            if len(later[0]):
                self._held.insert(0, later)
            self._stored_until = max(self._stored_until, until)
