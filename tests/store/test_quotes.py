"""Minute quotes: the reads that rebuild Redis."""
from __future__ import annotations

from datetime import timedelta

from tests.store.test_tick_write import T, rows
from webapp.extensions import db
from webapp.store import quotes, tick_write


def test_recent_quotes_are_oldest_first_per_ticker(app) -> None:
    for i in range(7):
        tick_write.insert_tick(db.session, rows(["AAPL", "KO"], at=T + timedelta(minutes=i), price=10 + i),
                               [])
    got = quotes.recent_quotes(db.session, ["AAPL", "KO", "NONE"], 5)
    assert sorted(got) == ["AAPL", "KO"]
    assert [q.price for q in got["AAPL"]] == [12.0, 13.0, 14.0, 15.0, 16.0]
    assert got["KO"][-1].time == T + timedelta(minutes=6) and got["KO"][-1].high == 10.9
