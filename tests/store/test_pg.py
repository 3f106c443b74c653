"""Arrays bound as one literal string: what Postgres reads back is what was sent."""
from __future__ import annotations

import math

import numpy as np
import sqlalchemy as sa

from webapp.core.handoff import Handoffs
from webapp.core.rules.intrabar import Provisional
from webapp.extensions import db
from webapp.store.intrabar_tape import Second, read, write
from webapp.store.pg import array_text


def test_array_text_round_trips_every_kind_of_element(app) -> None:
    tickers = ["AAPL", "BRK.B", 'A"B', "C\\D", "E,F", "{G}", "NULL", " H ", None]
    floats = [1.5, -0.0001, 1e-05, 123456789.125, float("inf"), None]
    got = db.session.execute(sa.text(
        "SELECT CAST(:t AS text[]), CAST(:f AS float8[]), CAST(:i AS bigint[]), CAST(:b AS bool[]), "
        "CAST(:n AS float8[])"),
        {"t": array_text(tickers, text=True), "f": array_text(floats), "i": array_text([0, -3, 2**62]),
         "b": array_text([True, False]), "n": array_text([float("nan")])}).one()
    assert got[0] == tickers
    assert got[1] == floats
    assert got[2] == [0, -3, 2**62]
    assert got[3] == [True, False]
    assert math.isnan(got[4][0])
    assert array_text([]) == "{}" and db.session.execute(
        sa.text("SELECT cardinality(CAST(:e AS int[]))"), {"e": array_text([])}).scalar() == 0


def test_the_judged_seconds_are_read_back_as_written(app) -> None:
    bars = [Provisional("AAPL", 120, 10.0, 10.5, 9.75, 10.25, 300.0, 3, 61_500, 61_200, 61_100,
                        10.4, 61_300, 9.8, 61_400),
            Provisional("KO", 120, 50.0, 50.0, 50.0, 50.0, 0.0, 1, 62_000, 62_000, 62_000)]  # no segment
    assert write(db.session, Handoffs.of(bars), np.array([False, True])) == 2
    assert read(db.session, ["AAPL", "KO"], 0, 100, 10) == [Second(bars[0], False), Second(bars[1], True)]
