"""The judged seconds stored off the judging loop: what a replay of a rule on the print reads.

The evaluate process judges hand-offs every 100 ms, and storing the seconds
it judged (:mod:`webapp.store.intrabar_tape`, thousands of rows a second at
10,000 symbols) took a quarter to half a second of its loop once a second,
which every alert waited behind.  So a thread stores them: the loop hands
over each ticker's newest state per second (:meth:`TapeWriter.held`) and
says which seconds are over (:meth:`TapeWriter.over`); the thread writes
those in one upsert (a second stored again after a crash or a retry is
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
from collections.abc import Container, Iterable, MutableMapping

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.reconnect import Backoff
from webapp.core.rules.intrabar import Provisional, merged
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
        self._held: dict[tuple[str, int], intrabar_tape.Second] = {}  # (ticker, second): not stored yet
        self._until = 0  # the seconds before this one are over
        self._stored_until = 0  # and these are stored
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def held(self, bars: Iterable[Provisional], halted: Container[str]) -> None:
        """The bars as judged (``halted``: the tickers halted now): the newest state of each second is
        what is stored, with the extremes of every hand-off judged in that second (what a replay judges
        it at, as live did).  One lock for the batch: thousands of bars a second come through here."""
        with self._lock:
            store = self._held
            for bar in bars:
                key = (bar.ticker, bar.last_ms // 1000)
                had = store.get(key)
                if had is not None and had.bar.bar_time == bar.bar_time:
                    newer = (bar.trades, bar.last_ms) >= (had.bar.trades, had.bar.last_ms)
                    store[key] = intrabar_tape.Second(merged(had.bar, bar),
                                                      (bar.ticker in halted) if newer else had.halted)
                elif had is None or bar.bar_time > had.bar.bar_time:
                    store[key] = intrabar_tape.Second(bar, bar.ticker in halted)

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
                if self._stored_until >= self._until and not any(k[1] < self._until for k in self._held):
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
            until = self._until
            if len(self._held) > TAPE_MAX:
                for k in sorted(self._held, key=lambda k: k[1])[:len(self._held) - TAPE_MAX]:
                    del self._held[k]
                    self.counts["tape_dropped"] += 1
            done = {k: v for k, v in self._held.items() if k[1] < until}
        if done:
            with Session(self.engine) as session:
                self.counts["tape_seconds"] += intrabar_tape.write(session, list(done.values()))
                session.commit()
            with self._lock:
                for k, v in done.items():
                    if self._held.get(k) is v:  # not replaced by a newer state meanwhile
                        del self._held[k]
        with self._lock:
            self._stored_until = max(self._stored_until, until)
