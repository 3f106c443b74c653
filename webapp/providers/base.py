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
