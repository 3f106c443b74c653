"""Tracked symbols, kept in Postgres: shared by every user, added by members, removed by admins.

``SYMBOLS`` from the configuration seeds the table; after that the table is
the truth: symbols added or removed through the API take effect at the next
tick with no restart, and removing a configured symbol sticks.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.store.pg import DB_DOWN

log = logging.getLogger(__name__)



def seed(session: Session, tickers: Sequence[str]) -> None:
    """Add configured symbols the table has never seen (keeps their order)."""
    session.execute(sa.text(
        "INSERT INTO symbols (ticker, added_at) "
        "SELECT t, now() + n * INTERVAL '1 microsecond' "
        "FROM unnest(CAST(:t AS varchar[])) WITH ORDINALITY AS u(t, n) "
        "ON CONFLICT (ticker) DO NOTHING"), {"t": list(tickers)})
    session.commit()


_ACTIVE = "FROM symbols WHERE active ORDER BY added_at, ticker"


def active(session: Session) -> list[tuple[str, datetime]]:
    rows = session.execute(sa.text(f"SELECT ticker, added_at {_ACTIVE}"))
    return [(r.ticker, r.added_at) for r in rows]


def active_tickers(session: Session) -> tuple[str, ...]:
    """The tracked tickers in order (what every tick asks for: no times to parse)."""
    return tuple(session.execute(sa.text(f"SELECT ticker {_ACTIVE}")).scalars())


def add(session: Session, ticker: str, added_by: int | None = None) -> bool:
    """Track ``ticker`` (recording who asked); False when it already was."""
    changed = session.execute(sa.text(
        "INSERT INTO symbols (ticker, active, added_by) VALUES (:t, true, :by) "
        "ON CONFLICT (ticker) DO UPDATE SET active = true, added_at = now(), added_by = EXCLUDED.added_by "
        "WHERE NOT symbols.active RETURNING ticker"), {"t": ticker, "by": added_by}).first()
    session.commit()
    return changed is not None


def remove(session: Session, ticker: str) -> bool:
    """Stop tracking ``ticker``; False when it was not tracked."""
    changed = session.execute(sa.text(
        "UPDATE symbols SET active = false WHERE ticker = :t AND active RETURNING ticker"),
        {"t": ticker}).first()
    session.commit()
    return changed is not None


class TrackedCache:
    """The tracked list for the web process, re-read at most every few seconds.

    The configured symbols are seeded once per process (the configuration
    does not change while it runs): at 10,000 symbols seeding on every read
    cost the tick ~40 ms.
    """

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self._value: tuple[str, ...] | None = None
        self._at = 0.0
        self._seeded: tuple[str, ...] | None = None

    def get(self, session: Session, configured: Sequence[str]) -> tuple[str, ...]:
        """The tracked list; while Postgres is down, the last one read (or the configured one)."""
        if self._value is None or time.monotonic() - self._at > self.seconds:
            try:
                if self._seeded != tuple(configured):
                    seed(session, configured)
                    self._seeded = tuple(configured)
                self._value = active_tickers(session)
            except DB_DOWN as exc:
                session.rollback()
                if self._value is None:
                    self._value = tuple(configured)
                log.warning("Postgres unavailable (%s): using the last known %d tracked symbols",
                            type(exc).__name__, len(self._value))
            self._at = time.monotonic()
        return self._value

    def clear(self) -> None:
        """Read again at the next get (the last list stays as the fallback while Postgres is down)."""
        self._at = float("-inf")


def added_by_count(session: Session, user_id: int) -> int:
    """How many tracked symbols this user added (a member's limit counts these)."""
    return session.execute(sa.text("SELECT count(*) FROM symbols WHERE active AND added_by = :u"),
                           {"u": user_id}).scalar_one()
