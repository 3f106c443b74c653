from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import utc
from webapp.core.quotes import Quote, micros
from webapp.core.validation import (
    SubscriptionError,
    normalise_ticker,
    quote_problem,
    quote_problems,
    subscription,
)

NOW = utc("2026-11-20T15:00:30")
T = utc("2026-11-20T15:00:00")


def q(price, time=T, volume=None) -> Quote:
    return Quote("AAPL", price, time, volume)


@pytest.mark.parametrize(
    "price, needle",
    [
        (None, "missing price"),
        (0, "non-positive"),
        (-1.5, "non-positive"),
        (math.nan, "non-finite"),
        (math.inf, "non-finite"),
        (True, "non-numeric"),
        ("12.3", "non-numeric"),
    ],
)
def test_bad_prices_are_refused(price, needle) -> None:
    problem = quote_problem(q(price), None, NOW)
    assert problem is not None and needle in problem


def test_good_quote_passes() -> None:
    assert quote_problem(q(255.78, volume=100), None, NOW) is None
    assert quote_problem(q(255.78), T - timedelta(minutes=1), NOW) is None


def test_unchanged_or_older_provider_time_is_stale() -> None:
    assert "stale: provider timestamp unchanged" in quote_problem(q(255.78), T, NOW)
    # an older reading is refused too, and says so (a replay beside a live feed meets this)
    assert quote_problem(q(255.78), T + timedelta(seconds=1), NOW).startswith("older than the latest reading")


def test_naive_or_future_time_is_refused() -> None:
    assert "naive" in quote_problem(q(1.0, time=T.replace(tzinfo=None)), None, NOW)
    assert "future" in quote_problem(q(1.0, time=NOW + timedelta(hours=1)), None, NOW)


_times = st.sampled_from([T - timedelta(minutes=1), T, T + timedelta(seconds=1), NOW + timedelta(hours=1),
                          T.replace(tzinfo=None)])
_prices = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**7),
                    st.sampled_from([None, True, "12.3"]))
_volumes = st.one_of(st.none(), st.integers(-5, 10**12), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_prices, _times, _volumes,
                          st.sampled_from([None, T - timedelta(minutes=2), T])), max_size=8),
       st.booleans())
def test_quote_problems_agree_with_quote_problem(rows, usual_types_only) -> None:
    """The column checks refuse exactly what quote_problem refuses, with its reasons,
    both on the fast path (numbers and aware times only) and on the fallback."""
    if usual_types_only:
        rows = [(p, t, v, prev) for p, t, v, prev in rows
                if type(p) in (int, float) and t.tzinfo and type(v) in (int, float, type(None))]
    quotes = [Quote(f"T{i}", p, t, v) for i, (p, t, v, _) in enumerate(rows)]
    previous = np.array([micros(prev) if prev else 0 for *_, prev in rows], np.int64)
    want = {i: quote_problem(qt, row[3], NOW) for i, (qt, row) in enumerate(zip(quotes, rows, strict=True))}
    assert quote_problems(quotes, previous, NOW) == {i: p for i, p in want.items() if p}


def test_bad_volume_is_refused() -> None:
    assert "volume" in quote_problem(q(1.0, volume=-5), None, NOW)


@pytest.mark.parametrize("raw, expected", [("aapl", "AAPL"), ("BRK.B", "BRK.B"), (" v ", "V"),
                                           ("TOOLONGTICKER", None), ("A$", None), ("", None), (5, None)])
def test_normalise_ticker(raw, expected) -> None:
    assert normalise_ticker(raw) == expected


KNOWN = frozenset({"AAPL", "MSFT", "BRK.B"})


def test_subscription_accepts_known_and_star() -> None:
    assert subscription({"tickers": ["aapl", "BRK.B", "AAPL"]}, KNOWN, 5).tickers == ["AAPL", "BRK.B"]
    assert subscription({"tickers": ["*"]}, KNOWN, 5).tickers == ["*"]
    lists = ("gainers", "losers")
    assert subscription({"scans": ["losers"]}, KNOWN, 5, lists) == ([], ["losers"])
    assert subscription({"scans": ["*"], "tickers": ["AAPL"]}, KNOWN, 5, lists) == (["AAPL"], list(lists))


@pytest.mark.parametrize(
    "payload, needle",
    [
        (None, "payload must be an object"),
        ("AAPL", "payload must be an object"),
        ({}, "non-empty list"),
        ({"tickers": "AAPL"}, "non-empty list"),
        ({"tickers": []}, "non-empty list"),
        ({"tickers": ["AAPL"], "x": 1}, "unexpected field"),
        ({"tickers": ["ZZZZ"]}, "unknown ticker(s): ZZZZ"),
        ({"tickers": ["<script>"]}, "malformed ticker"),
        ({"tickers": [1]}, "malformed ticker"),
        ({"tickers": ["AAPL"] * 6}, "too many tickers: 6 (at most 5)"),
    ],
)
def test_subscription_refusals_say_what_was_wrong(payload, needle) -> None:
    with pytest.raises(SubscriptionError) as err:
        subscription(payload, KNOWN, 5)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    "payload, needle",
    [
        ({"scans": "gainers"}, '"scans" must be a non-empty list'),
        ({"scans": []}, "non-empty list"),
        ({"scans": [3]}, '"scans" must be a non-empty list'),
        ({"scans": ["winners"]}, "unknown scanner list(s): winners (one of gainers, losers)"),
        ({"scans": ["gainers"], "lists": 1}, "unexpected field(s): lists"),
    ],
)
def test_scan_subscription_refusals(payload, needle) -> None:
    with pytest.raises(SubscriptionError) as err:
        subscription(payload, KNOWN, 5, ("gainers", "losers"))
    assert needle in str(err.value)
