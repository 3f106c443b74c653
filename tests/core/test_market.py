"""Market state from the XNYS calendar: weekends, holidays, early closes, DST."""
from __future__ import annotations

import pytest

from tests.conftest import utc
from webapp.core.market import exchange_date, market_state


@pytest.mark.parametrize(
    "at, is_open",
    [
        ("2026-11-20T15:00:00", True),   # Friday 10:00 ET
        ("2026-11-21T15:00:00", False),  # Saturday
        ("2026-11-26T15:00:00", False),  # Thanksgiving
        ("2026-11-27T17:59:00", True),   # day after Thanksgiving, before the 13:00 ET close
        ("2026-11-27T18:00:00", False),  # ... closed early
        ("2026-11-20T14:29:00", False),  # 09:29 ET, pre-open
        ("2026-11-20T20:59:00", True),   # 15:59 ET
        ("2026-11-20T21:00:00", False),  # 16:00 ET close
        ("2026-03-09T13:30:00", True),   # first Monday after DST: opens 13:30 UTC
        ("2026-03-06T13:30:00", False),  # the Friday before DST: 08:30 ET
    ],
)
def test_open_or_closed(at: str, is_open: bool) -> None:
    assert market_state(utc(at)).is_open is is_open


def test_next_open_skips_the_holiday_weekend() -> None:
    state = market_state(utc("2026-11-26T15:00:00"))
    assert state.state == "closed"
    assert state.next_open == utc("2026-11-27T14:30:00")
    assert state.early_close  # the next session closes at 13:00 ET
    assert state.next_close == utc("2026-11-27T18:00:00")


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        market_state(utc("2026-11-20T15:00:00").replace(tzinfo=None))


def test_exchange_date_uses_new_york() -> None:
    assert exchange_date(utc("2026-11-21T03:00:00")) == "2026-11-20"


def test_range_start_uses_sessions_in_new_york() -> None:
    from webapp.core.market import range_start

    saturday = utc("2026-11-21T15:00:00")
    assert range_start(saturday, "today") == utc("2026-11-20T05:00:00")  # Friday 00:00 EST
    # five sessions back from Friday skips the weekend before: Mon..Fri of that week
    assert range_start(saturday, "5d") == utc("2026-11-16T05:00:00")
    # across Thanksgiving: the Monday after counts back over the holiday
    assert range_start(utc("2026-11-30T16:00:00"), "5d") == utc("2026-11-23T05:00:00")
    assert range_start(saturday, "all").year == 1970
    assert range_start(saturday, "1d") == range_start(saturday, "today")
    assert range_start(saturday, "1m") == utc("2026-10-21T04:00:00")  # Oct 21 (a Wednesday), EDT
    assert range_start(saturday, "6m") == utc("2026-05-21T04:00:00")
    assert range_start(saturday, "1y") == utc("2025-11-21T05:00:00")
    assert range_start(saturday, "ytd") == utc("2026-01-02T05:00:00")  # Jan 1 is a holiday
    assert range_start(utc("2026-08-16T16:00:00"), "1m") == utc("2026-07-16T04:00:00")
    with pytest.raises(ValueError):
        range_start(saturday, "week")


def test_gap_slots_runs_the_newest_it_may_and_records_the_rest() -> None:
    from webapp.core.market import gap_slots

    always = lambda s: True  # noqa: E731
    assert gap_slots(None, 10, True, 60, always) == ([], [])  # nothing ran before: no gap to speak of
    assert gap_slots(9, 10, True, 60, always) == ([], [])
    assert gap_slots(12, 10, True, 60, always) == ([], [])  # a late retry of an older slot
    assert gap_slots(3, 10, True, 60, always) == ([4, 5, 6, 7, 8, 9], [])
    assert gap_slots(3, 10, True, 2, always) == ([8, 9], [4, 5, 6, 7])
    assert gap_slots(3, 10, False, 60, always) == ([], [4, 5, 6, 7, 8, 9])  # a live feed cannot go back
    assert gap_slots(3, 10, False, 60, lambda s: s % 2 == 0) == ([], [4, 6, 8])  # closed slots are no loss


def test_a_one_day_chart_before_the_open_shows_the_last_session_too() -> None:
    from webapp.core.market import range_start

    before_open = utc("2026-11-24T12:00:00")  # Tuesday 07:00 in New York
    assert range_start(before_open, "1d") == utc("2026-11-23T05:00:00")  # from Monday's midnight
    assert range_start(utc("2026-11-24T15:00:00"), "1d") == utc("2026-11-24T05:00:00")  # open: today
