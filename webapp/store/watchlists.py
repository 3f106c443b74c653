"""Named watchlists per user, their tickers kept in the user's order.

Every statement is scoped to the user, so a list id from someone else reads
as absent (404), never as theirs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

MAX_LISTS = 50
MAX_TICKERS = 500


class WatchlistError(ValueError):
    """A change that cannot be made (a name in use, too many); the message says why."""


def lists(session: Session, user_id: int) -> list[dict[str, Any]]:
    rows = session.execute(sa.text("""
        SELECT w.id, w.name, w.position,
               coalesce(array_agg(i.ticker ORDER BY i.position) FILTER (WHERE i.ticker IS NOT NULL), '{}')
                 AS tickers
        FROM watchlists w LEFT JOIN watchlist_items i ON i.watchlist_id = w.id
        WHERE w.user_id = :u GROUP BY w.id ORDER BY w.position, w.id"""), {"u": user_id})
    return [{"id": r.id, "name": r.name, "position": r.position, "tickers": list(r.tickers)} for r in rows]


def get(session: Session, user_id: int, list_id: int) -> dict[str, Any] | None:
    return next((w for w in lists(session, user_id) if w["id"] == list_id), None)


def create(session: Session, user_id: int, name: str, tickers: Sequence[str] = ()) -> dict[str, Any]:
    count = session.execute(sa.text("SELECT count(*) FROM watchlists WHERE user_id = :u"),
                            {"u": user_id}).scalar()
    if count >= MAX_LISTS:
        raise WatchlistError(f"at most {MAX_LISTS} watchlists per user")
    row = session.execute(sa.text(
        "INSERT INTO watchlists (user_id, name, position) VALUES (:u, :n, :p) "
        "ON CONFLICT (user_id, name) DO NOTHING RETURNING id"), {"u": user_id, "n": name, "p": count}).first()
    if row is None:
        session.rollback()
        raise WatchlistError(f"you have a watchlist named {name!r} already")
    _set_tickers(session, row.id, tickers)
    session.commit()
    got = get(session, user_id, row.id)
    assert got is not None
    return got


def _owned(session: Session, user_id: int, list_id: int) -> bool:
    return session.execute(sa.text("SELECT 1 FROM watchlists WHERE id = :id AND user_id = :u"),
                           {"id": list_id, "u": user_id}).first() is not None


def _set_tickers(session: Session, list_id: int, tickers: Sequence[str]) -> None:
    wanted = list(dict.fromkeys(tickers))
    if len(wanted) > MAX_TICKERS:
        raise WatchlistError(f"at most {MAX_TICKERS} tickers in a watchlist")
    session.execute(sa.text("DELETE FROM watchlist_items WHERE watchlist_id = :id"), {"id": list_id})
    if wanted:
        session.execute(sa.text(
            "INSERT INTO watchlist_items (watchlist_id, ticker, position) "
            "SELECT :id, t, n FROM unnest(CAST(:t AS varchar[])) WITH ORDINALITY AS x(t, n)"),
            {"id": list_id, "t": wanted})


def update(session: Session, user_id: int, list_id: int, name: str | None = None,
           tickers: Sequence[str] | None = None, position: int | None = None) -> dict[str, Any] | None:
    """Rename, replace the tickers (their order is the new order) or move the list; None if not theirs."""
    if not _owned(session, user_id, list_id):
        return None
    if name is not None:
        clash = session.execute(sa.text(
            "SELECT 1 FROM watchlists WHERE user_id = :u AND name = :n AND id <> :id"),
            {"u": user_id, "n": name, "id": list_id}).first()
        if clash:
            raise WatchlistError(f"you have a watchlist named {name!r} already")
        session.execute(sa.text("UPDATE watchlists SET name = :n WHERE id = :id"), {"n": name, "id": list_id})
    if tickers is not None:
        _set_tickers(session, list_id, tickers)
    if position is not None:
        order = [w["id"] for w in lists(session, user_id) if w["id"] != list_id]
        order.insert(max(0, min(position, len(order))), list_id)
        for n, wid in enumerate(order):
            session.execute(sa.text("UPDATE watchlists SET position = :p WHERE id = :id"),
                            {"p": n, "id": wid})
    session.commit()
    return get(session, user_id, list_id)


def add(session: Session, user_id: int, list_id: int, ticker: str) -> dict[str, Any] | None:
    got = get(session, user_id, list_id)
    if got is None:
        return None
    if ticker not in got["tickers"]:
        return update(session, user_id, list_id, tickers=[*got["tickers"], ticker])
    return got


def remove(session: Session, user_id: int, list_id: int, ticker: str) -> dict[str, Any] | None:
    got = get(session, user_id, list_id)
    if got is None:
        return None
    return update(session, user_id, list_id, tickers=[t for t in got["tickers"] if t != ticker])


def delete(session: Session, user_id: int, list_id: int) -> bool:
    done = session.execute(sa.text("DELETE FROM watchlists WHERE id = :id AND user_id = :u RETURNING id"),
                           {"id": list_id, "u": user_id}).first()
    session.commit()
    return done is not None
