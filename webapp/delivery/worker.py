"""The delivery loop: claim due webhook deliveries from Postgres, send them, record what happened.

Postgres holds the truth (:mod:`webapp.store.alerts`): a claim leases rows
and commits *before* any HTTP call, so a worker killed mid-call leaves a
row whose lease runs out and which the next claim takes again; the
receiver sees the same ``webhook-id`` twice and dedupes it.  The tick's
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
from webapp.store import deliveries
from webapp.store.pg import DB_DOWN

log = logging.getLogger(__name__)


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
                for c in claimed:
                    self._busy.add(pool.submit(self._deliver, c))
                if not claimed or free <= len(claimed):
                    self._wake.wait(self._poll if not claimed else 0.05)
                    self._wake.clear()

    def run_once(self) -> int:
        """Claim what is due now and send it, waiting for the answers (tests, benchmarks)."""
        with Session(self._engine) as session:
            claimed = deliveries.claim(session, self._clock(), self._concurrency, self._lease)
        with ThreadPoolExecutor(max(1, len(claimed))) as pool:
            list(pool.map(self._deliver, claimed))
        return len(claimed)

    def _deliver(self, c: deliveries.Claimed) -> None:
        try:
            self._send(c)
        finally:
            self._wake.set()  # a slot is free (and its endpoint may take the next): claim again now

    def _send(self, c: deliveries.Claimed) -> None:
        # signed with the wall clock (receivers check it within 5 minutes); scheduled by ``clock``
        msg_id = sender.webhook_id(c.event["id"])
        body = sender.body_of(c.event)
        attempt = sender.post(c.url, body, sender.headers_for(msg_id, body, c.secrets, _now()),
                              self._allowed, self._timeout)
        for tries in range(10):  # the lease outlives these; past it the row is claimed and sent again
            try:
                with Session(self._engine) as session:
                    status = deliveries.finish(session, c, attempt, self._clock(), random.uniform(-1.0, 1.0))
                break
            except DB_DOWN as exc:
                log.warning("delivery %s: could not record attempt %d (%s); retrying", c.id, c.attempt,
                            type(exc).__name__)
                time.sleep(min(5.0, 0.5 * (tries + 1)))
        else:
            log.error("delivery %s: attempt %d's outcome was not recorded; its lease will send it again",
                      c.id, c.attempt)
            return
        self.sent += 1
        level = logging.INFO if status in ("delivered", "superseded") else logging.WARNING
        log.log(level, "delivery %s (%s, attempt %d, %s): %s%s", c.id, msg_id, c.attempt, c.trigger,
                attempt.status_code or attempt.error_class, f" -> {status}" if status != "delivered" else "")

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

