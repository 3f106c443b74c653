"""The scanner core against hand-computed values, and deltas by property."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.core import scanner as sc

nan = math.nan
SET = sc.Settings(gap_min_pct=2.0, unusual_k=2.0, unusual_bars=4, unusual_min_bars=2)


def readings(price, volume, prev_close, day_open, day, expected=None, sessions=None, t=0.0):
    n = len(price)
    return sc.Readings(
        price=np.array(price, float), volume=np.array(volume, float),
        prev_close=np.array(prev_close, float), open=np.array(day_open, float),
        time=np.full(n, t), day=np.array(day, np.int64),
        expected=np.array(expected if expected is not None else [nan] * n, float),
        sessions=np.array(sessions if sessions is not None else [0] * n, np.int64),
    )


def close(a, b) -> bool:
    return np.allclose(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


def test_a_session_accumulates_vwap_volume_extremes_and_recent_volumes() -> None:
    table = sc.empty(1, SET.unusual_bars)
    # day 700: (10 x 100), (11 x 300), (9 x 100), then (12 x 1000)
    for price, vol in [(10.0, 100), (11.0, 300), (9.0, 100)]:
        table = sc.advance(table, readings([price], [vol], [10.0], [10.0], [700]), SET)
    assert close(table["vwap"], [(1000 + 3300 + 900) / 500])
    assert close(table["day_volume"], [500]) and close(table["hi"], [11.0]) and close(table["lo"], [9.0])
    assert table["new_low"][0] and not table["new_high"][0]
    # recent average (100 + 300 + 100) / 3 = 166.7; 1000 / 166.7 = 6.0 >= 2 -> unusual
    table = sc.advance(table, readings([12.0], [1000], [10.0], [10.0], [700]), SET)
    assert close(table["vol_ratio"], [6.0]) and table["unusual"][0]
    assert table["new_high"][0]
    assert close(table["change_pct"], [20.0]) and close(table["gap_pct"], [0.0])
    assert close(table["vols"], [[100, 300, 100, 1000]])
    # a new day resets everything that belongs to the session
    table = sc.advance(table, readings([13.0], [50], [12.0], [12.9], [701]), SET)
    assert close(table["vwap"], [13.0]) and close(table["day_volume"], [50])
    assert close(table["vols"], [[nan, nan, nan, 50]]) and math.isnan(table["vol_ratio"][0])
    assert not table["new_high"][0] and close(table["gap_pct"], [7.5])


def test_rvol_is_cumulative_volume_over_the_expected_and_unknown_without_history() -> None:
    table = sc.empty(2, 4)
    # expected cumulative by now: 400 for ticker 0; nothing known for ticker 1
    table = sc.advance(table, readings([5, 6], [600, 600], [5, 6], [5, 6], [9, 9], [400, nan], [3, 0]), SET)
    assert close(table["rvol"], [1.5, nan]) and list(table["rvol_sessions"]) == [3, 0]


def test_rvol_on_a_thin_base_is_not_meaningful_rather_than_huge() -> None:
    """One thin earlier session (3 shares by now) would make 600 shares an RVOL of 200."""
    table = sc.advance(sc.empty(2, 4), readings([5, 6], [600, 600], [5, 6], [5, 6], [9, 9], [3, 400], [1, 1]),
                       SET)
    assert close(table["rvol"], [nan, 1.5])
    thin, fine = sc.row(table, 0, "AAA"), sc.row(table, 1, "BBB")
    assert thin["rvol"] is None and thin["rvol_note"].startswith("not meaningful: the 1 earlier session")
    assert fine["rvol"] == 1.5 and fine["rvol_note"] is None
    none = sc.row(sc.advance(sc.empty(1, 4), readings([5], [600], [5], [5], [9], [nan], [0]), SET), 0, "CCC")
    assert none["rvol_note"] == "no earlier session at this time of day yet"


def test_a_feed_without_volume_gives_unknown_volume_metrics_not_errors() -> None:
    table = sc.advance(sc.empty(1, 4), readings([5.0], [nan], [4.0], [4.5], [3]), SET)
    assert math.isnan(table["vwap"][0]) and math.isnan(table["day_volume"][0])
    assert not table["unusual"][0] and close(table["change_pct"], [25.0])


def _table(**cols) -> sc.Table:
    n = len(next(iter(cols.values())))
    table = sc.empty(n, 2)
    for k, v in cols.items():
        table[k] = np.array(v, dtype=table[k].dtype)
    return table


def test_lists_rank_by_value_then_ticker_and_apply_filters_and_freshness() -> None:
    tickers = np.array(["AAA", "BBB", "CCC", "DDD", "EEE"])
    t = _table(price=[10.0, 0.5, 20.0, 30.0, 40.0], change_pct=[3.0, 9.0, 3.0, -4.0, 5.0],
               gap_pct=[2.5, 0.0, -6.0, 1.0, -2.0], day_volume=[1e6, 1e6, 5e4, 1e6, 1e6],
               rvol=[2.0, 3.0, nan, 0.5, 1.0])
    fresh = np.array([True, True, True, True, False])  # EEE is stale: never listed
    flt = sc.Filters(min_price=1.0)

    def names(name, f=flt):
        return [(str(tickers[i]), v) for i, v in sc.rank(t, tickers, name, SET, f, fresh, 10)]

    # BBB (+9 %) is under the $1 minimum; ties (AAA, CCC at +3 %) go by ticker
    assert names("gainers") == [("AAA", 3.0), ("CCC", 3.0)]
    assert names("losers") == [("DDD", 4.0)]
    assert names("gappers") == [("CCC", 6.0), ("AAA", 2.5)]
    assert names("gainers", sc.Filters(min_price=1.0, min_volume=1e5)) == [("AAA", 3.0)]
    # an unknown RVOL never passes a minimum RVOL
    assert names("gainers", sc.Filters(min_rvol=1.5)) == [("BBB", 9.0), ("AAA", 3.0)]
    assert names("gainers", sc.Filters(max_price=15)) == [("BBB", 9.0), ("AAA", 3.0)]


def test_request_filters_only_narrow_the_configured_ones() -> None:
    base = sc.Filters(min_price=1.0, max_price=None, min_volume=None, min_rvol=None)
    got = base.tightened(sc.Filters(min_price=0.5, max_price=50.0, min_rvol=2.0))
    assert got == sc.Filters(min_price=1.0, max_price=50.0, min_volume=None, min_rvol=2.0)


def test_delta_sends_only_what_changed() -> None:
    a = {"ticker": "A", "price": 1.0, "change_pct": 5.0}
    b = {"ticker": "B", "price": 2.0, "change_pct": 4.0}
    c = {"ticker": "C", "price": 3.0, "change_pct": 4.5}
    d = sc.delta([a, b], [a, {**b, "price": 2.5}])
    assert d == {"full": False, "add": [], "remove": [], "update": [{"ticker": "B", "price": 2.5}]}
    d = sc.delta([a, b], [a, b, c])
    assert d == {"full": False, "order": ["A", "B", "C"], "add": [c], "remove": [], "update": []}
    d = sc.delta([a, b], [c, a])
    assert d["order"] == ["C", "A"] and d["remove"] == ["B"] and d["update"] == []
    assert sc.delta(None, [a]) == {"full": True, "rows": [a]}
    # mostly new: a full list is smaller than the changes
    assert sc.delta([a], [b, c])["full"] is True


_rows = st.lists(
    st.fixed_dictionaries({"ticker": st.sampled_from("ABCDEFGH"),
                           "price": st.sampled_from([1.0, 2.0, 3.0]), "rvol": st.none() | st.just(1.5)}),
    max_size=8,
).map(lambda rows: list({r["ticker"]: r for r in rows}.values()))


@settings(max_examples=300, deadline=None)
@given(_rows, _rows)
def test_applying_a_delta_gives_the_new_list(before, after) -> None:
    assert sc.apply_delta(before, sc.delta(before, after)) == after
