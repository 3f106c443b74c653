"""The small interface every market-data provider implements.

A provider turns a list of symbols into :class:`~webapp.core.quotes.Quote`
records.  It does not validate, store or emit: the pipeline does that the
same way for every source.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from webapp.core.backfill import HistoryBar
from webapp.core.quotes import Quote


@dataclass
class FetchResult:
    """Quotes received, and symbols the provider could not get (with why)."""

    quotes: list[Quote] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


class Provider(Protocol):
    #: the name used in MARKET_DATA_PROVIDER and stored as the quote source
    name: str
    #: True for real feeds: not called while the exchange is closed
    follows_market_hours: bool
    #: True when ``fetch`` can answer for a past minute (sim, replay): a tick
    #: job that runs late then still runs for the slot it was queued for
    serves_past: bool

    def fetch(
        self,
        symbols: Sequence[str],
        now: datetime,
        previous: Mapping[str, Quote],
    ) -> FetchResult:
        """Quotes for ``symbols`` as of ``now``.

        ``previous`` holds the last accepted quote per symbol; a simulated
        source continues from it, a real one may use it to fetch the longest
        -waiting symbols first when its call budget is short.
        """
        ...


# ---- history: what a provider gives for a backfill (webapp/backfill) ------------------
# (its bars are webapp.core.backfill.HistoryBar)

class NoHistory(Exception):
    """This provider gives no history (a plan's limit); the message says so, for the page."""


class HistoryThrottled(Exception):
    """The provider said to wait (429); the backfill waits ``wait`` seconds and resumes."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited: the provider asked to wait {wait:.0f} s")
        self.wait = wait


class MalformedHistory(ValueError):
    """A history answer that is not in the provider's wire format."""


class HistorySource(Protocol):
    #: the provider's name: backfilled readings are stored with it as their source
    name: str

    def minute_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        """Minute bars starting in [start, end), oldest first (every page of them)."""
        ...

    def daily_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        """Daily bars (``time``: the session date's New York midnight) in [start, end), oldest first."""
        ...
