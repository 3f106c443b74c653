"""When to dial a provider's stream again: the reconnect policy, as plain arithmetic.

Why not the reconnect loop built into ``websockets.connect``: it resets its
backoff after any successful handshake, so a server that accepts and then
answers 406 or ``auth_failed`` is re-dialled at once (the 429 storms users
report), and it knows nothing of "slot busy" answers that hold the slot for
about 90 s.  The rules here are the ones the best clients converged on
(``../shared/research/streaming.md`` section 6):

* exponential backoff with equal jitter, 1 s doubling to a 60 s cap;
* it resets only after a connection stayed up ``stable_after`` seconds
  **and** delivered market data (a socket that connects and goes quiet, or
  dies after 5 s, keeps the delay growing);
* a "slot busy" answer waits at least ``busy_floor`` seconds, plus jitter;
* a fatal answer (bad key, insufficient subscription) is not retried at all:
  the caller stops and reports it.

The caller passes the random draw, so the policy is a pure function of its inputs.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    initial: float = 1.0
    cap: float = 60.0
    busy_floor: float = 90.0
    stable_after: float = 60.0
    attempts: int = 0  # failures since the last stable connection

    def next_delay(self, draw: float, busy: bool = False) -> float:
        """Seconds to wait before the next dial; ``draw`` is uniform in [0, 1)."""
        base = min(self.cap, self.initial * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        delay = base / 2.0 + draw * base / 2.0  # equal jitter: never less than half the step
        if busy:
            delay = self.busy_floor + draw * min(self.busy_floor / 3.0, 30.0)
        return delay

    def connection_ended(self, up_seconds: float, had_market_data: bool) -> None:
        """Reset only after a connection that was both long-lived and useful."""
        if up_seconds >= self.stable_after and had_market_data:
            self.attempts = 0
