"""The reconnect policy: jittered doubling to a cap, reset only by a long and useful connection."""
from __future__ import annotations

from webapp.core.reconnect import Backoff


def test_doubles_with_equal_jitter_up_to_the_cap() -> None:
    b = Backoff()
    lows = [b.next_delay(0.0) for _ in range(9)]
    assert lows == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    b = Backoff()
    highs = [b.next_delay(0.999999) for _ in range(8)]
    assert [round(h) for h in highs] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_resets_only_after_sixty_seconds_up_with_market_data() -> None:
    b = Backoff()
    for _ in range(5):
        b.next_delay(0.5)
    b.connection_ended(up_seconds=600, had_market_data=False)  # up for long, but silent
    assert b.attempts == 5
    b.connection_ended(up_seconds=30, had_market_data=True)  # useful, but short
    assert b.attempts == 5
    b.connection_ended(up_seconds=60, had_market_data=True)
    assert b.attempts == 0 and b.next_delay(0.0) == 0.5


def test_a_busy_slot_waits_at_least_ninety_seconds() -> None:
    b = Backoff()
    assert all(90.0 <= b.next_delay(d, busy=True) <= 120.0 for d in (0.0, 0.3, 0.999))
