"""The delivery loop: claim due webhook deliveries from Postgres, send them, record what happened.

Postgres holds the truth (:mod:`webapp.store.alerts`): a claim leases rows
and commits *before* any HTTP call, so a worker killed mid-call leaves a
row whose lease runs out and which the next claim takes again; the
receiver sees the same ``webhook-id`` twice and dedupes it.  A live worker
whose answer cannot be recorded (Postgres went away mid-request) never
lets that happen: it holds the outcome, notes it in Redis
(:mod:`webapp.store.delivery_notes`) and records it before it claims
again; a claimer that finds a dead worker's note records it instead of
sending.  The tick's
publish on :data:`webapp.names.DELIVERY_WAKE_CHANNEL` only wakes the loop
early; without Redis it polls every ``DELIVERY_POLL_SECONDS``.  A Postgres
outage is logged and waited out; nothing here exits for it.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone

import redis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from webapp import names
from webapp.core import delivery as policy
from webapp.core.reconnect import Backoff
from webapp.delivery import sender
from webapp.store import deliveries, delivery_notes
from webapp.store.pg import DB_DOWN

log = logging.getLogger(__name__)

# how long one thread goes on to its endpoint's next due delivery, leased as it records the last (a
# burst to one receiver: a transaction a delivery, no claim); then its slot goes back to the claims,
# oldest first, so a burst to one endpoint delays another's by at most this when every thread is busy
FOLLOW_SECONDS = 1.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class DeliveryWorker:
    """Claims and sends deliveries with ``concurrency`` threads until ``stop`` is set."""

    def __init__(self, engine: Engine, client: redis.Redis | None, allowed: Sequence[policy.Network],
                 concurrency: int = 8, poll_seconds: float = 1.0,
                 clock: Callable[[], datetime] = _now, timeout: float = policy.TIMEOUT_SECONDS,
                 lease_seconds: float = policy.LEASE_SECONDS) -> None:
        self._engine, self._client, self._allowed = engine, client, tuple(allowed)
        self._concurrency, self._poll, self._clock, self._timeout = concurrency, poll_seconds, clock, timeout
        self._lease = max(lease_seconds, timeout + 1.0)  # a live worker always finishes inside its lease
        self._wake = threading.Event()
        self._busy: set[Future[None]] = set()
        self._held: list[tuple[deliveries.Claimed, deliveries.Attempt, int, bool]] = []  # sent, not recorded
        self._held_lock = threading.Lock()
        self._connections = sender.Connections(per_host=concurrency)
        self.sent = 0
        self.last_error: str | None = None

    def run(self, stop: threading.Event) -> None:
        if self._client is not None:
            threading.Thread(target=self._listen, args=(stop,), daemon=True, name="delivery-wake").start()
        backoff = Backoff(1.0, 30.0)
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="deliver") as pool:
            while not stop.is_set():
                self._busy = {f for f in self._busy if not f.done()}
                free = self._concurrency - len(self._busy)
                claimed: list[deliveries.Claimed] = []
                if free > 0:
                    try:
                        self._record_held()  # first, or our own expired leases are claimed and resent
                        with Session(self._engine) as session:
                            claimed = deliveries.claim(session, self._clock(), free, self._lease)
                        if self.last_error:
                            log.warning("delivery: Postgres is back; delivering again")
                        self.last_error = None
                        backoff.attempts = 0
                    except DB_DOWN as exc:
                        self.last_error = f"Postgres unavailable ({type(exc).__name__})"
                        wait = backoff.next_delay(random.random())
                        log.warning("delivery: %s; deliveries wait in Postgres, retrying in %.1f s",
                                    self.last_error, wait)
                        stop.wait(wait)
                        continue
                noted = self._notes_of(claimed)
                for c in claimed:
                    self._busy.add(pool.submit(self._deliver, c, noted.get(c.id)))
                if not claimed or free <= len(claimed):
                    self._wake.wait(self._poll if not claimed else 0.05)
                    self._wake.clear()
        self._connections.close()
        if self._held:
            log.warning("delivery: stopping with %d answered attempts not yet recorded; their notes in Redis "
                        "let the next deliverer record them rather than send them again", len(self._held))

    def run_once(self) -> int:
        """Claim what is due now and send it (and what each endpoint has due after), waiting for the
        answers; how many were sent or recorded (tests, benchmarks)."""
        self._record_held()
        with Session(self._engine) as session:
            claimed = deliveries.claim(session, self._clock(), self._concurrency, self._lease)
        noted = self._notes_of(claimed)
        with ThreadPoolExecutor(max(1, len(claimed))) as pool:
            done = sum(pool.map(self._deliver, claimed, [noted.get(c.id) for c in claimed]))
        self._connections.close()
        return done

    @property
    def held(self) -> int:
        """Attempts sent whose outcome waits for Postgres to be recorded."""
        return len(self._held)

    def _deliver(self, c: deliveries.Claimed, noted: tuple[int, deliveries.Attempt] | None) -> int:
        """Send ``c`` (or record its noted answer), then, while its endpoint has more due and for at
        most :data:`FOLLOW_SECONDS`, the next one it leased as it recorded this one; how many."""
        try:
            if noted is not None:  # an earlier holder sent it, had its answer and died before recording it
                self._record(c, noted[1], noted[0])
                return 1
            until, done = time.monotonic() + FOLLOW_SECONDS, 0
            following: deliveries.Claimed | None = c
            while following is not None:
                following = self._send(following, follow=time.monotonic() < until)
                done += 1
            return done
        finally:
            self._wake.set()  # a slot is free (and its endpoint may take the next): claim again now

    def _send(self, c: deliveries.Claimed, follow: bool = False) -> deliveries.Claimed | None:
        # signed with the wall clock (receivers check it within 5 minutes); scheduled by ``clock``
        body = sender.body_of(c.event)
        headers = sender.headers_for(sender.webhook_id(c.event["id"]), body, c.secrets, _now())
        attempt = sender.post(c.url, body, headers, self._allowed, self._timeout, self._connections)
        return self._record(c, attempt, c.attempt, follow)

    def _record(self, c: deliveries.Claimed, attempt: deliveries.Attempt, sent_as: int,
                follow: bool = False) -> deliveries.Claimed | None:
        try:
            return self._finish(c, attempt, sent_as, follow)
        except DB_DOWN as exc:
            log.warning("delivery %s: attempt %d was answered (%s) but Postgres is unavailable (%s); "
                        "the outcome is held until it is back, and the delivery is not sent again",
                        c.id, sent_as, attempt.status_code or attempt.error_class, type(exc).__name__)
            self._hold(c, attempt, sent_as)
            return None

    def _finish(self, c: deliveries.Claimed, attempt: deliveries.Attempt, sent_as: int,
                follow: bool = False) -> deliveries.Claimed | None:
        with Session(self._engine) as session:
            status, following = deliveries.finish(session, c, attempt, self._clock(),
                                                  random.uniform(-1.0, 1.0), sent_as,
                                                  self._lease if follow else None)
        self.sent += 1
        level = logging.INFO if status in ("delivered", "superseded") else logging.WARNING
        log.log(level, "delivery %s (%s, attempt %d, %s): %s%s", c.id, sender.webhook_id(c.event["id"]),
                sent_as, c.trigger, attempt.status_code or attempt.error_class,
                f" -> {status}" if status != "delivered" else "")
        return following

    def _hold(self, c: deliveries.Claimed, attempt: deliveries.Attempt, sent_as: int) -> None:
        noted = False
        if self._client is not None:
            try:
                delivery_notes.put(self._client, c.id, sent_as, attempt)
                noted = True
            except redis.RedisError as exc:
                log.warning("delivery %s: Redis unavailable too (%s); only this process holds its outcome",
                            c.id, type(exc).__name__)
        with self._held_lock:
            self._held.append((c, attempt, sent_as, noted))

    def _record_held(self) -> None:
        """Record the held outcomes (raises ``DB_DOWN``, holding what is left, while Postgres is down)."""
        with self._held_lock:
            held, self._held = self._held, []
        if not held:
            return
        try:
            notes: dict[int, tuple[int, deliveries.Attempt]] | None = delivery_notes.take(
                self._client, [c.id for c, *_ in held]) if self._client is not None else None
        except redis.RedisError:
            notes = None  # record what we hold; the note, if another took it too, only adds a log line
        mine = [h for h in held if not h[3] or notes is None or h[0].id in notes]
        for c, _, sent_as, _ in (h for h in held if h not in mine):
            log.info("delivery %s: another deliverer recorded attempt %d", c.id, sent_as)
        for n, (c, attempt, sent_as, _) in enumerate(mine):
            try:
                self._finish(c, attempt, sent_as)
            except DB_DOWN:
                for c2, attempt2, sent2, _ in mine[n:]:
                    self._hold(c2, attempt2, sent2)
                raise

    def _notes_of(self, claimed: list[deliveries.Claimed]) -> dict[int, tuple[int, deliveries.Attempt]]:
        if self._client is None or not claimed:
            return {}
        try:
            return delivery_notes.take(self._client, [c.id for c in claimed])
        except redis.RedisError:
            return {}  # a dead deliverer's note, if any, is out of reach: the receiver dedupes the resend

    def _listen(self, stop: threading.Event) -> None:
        """Wake the loop when the tick queues deliveries; Redis trouble only slows it to polling."""
        assert self._client is not None
        backoff = Backoff(1.0, 30.0)
        while not stop.is_set():
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(names.DELIVERY_WAKE_CHANNEL)
                backoff.attempts = 0
                while not stop.is_set():
                    if pubsub.get_message(timeout=1.0) is not None:
                        self._wake.set()
            except redis.RedisError as exc:
                log.info("delivery: wake-ups unavailable (%s); polling every %.1f s", type(exc).__name__,
                         self._poll)
                stop.wait(backoff.next_delay(random.random()))

