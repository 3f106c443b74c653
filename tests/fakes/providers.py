"""A scripted market-data source behind the provider interface.

It stands in for the outside world (a feed), not for any of our services:
tests hand it exact prices to drive the real pipeline through edge cases.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from webapp.core.quotes import Quote
from webapp.providers.base import FetchResult


class ScriptedProvider:
    name = "script"

    def __init__(self, follows_market_hours: bool = False) -> None:
        self.follows_market_hours = follows_market_hours
        self.next: list[Quote] = []
        self.problems: dict[str, str] = {}
        self.calls = 0
        self.fail_next: Exception | None = None

    def fetch(self, symbols: Sequence[str], now: datetime, previous: Mapping[str, Quote]) -> FetchResult:
        self.calls += 1
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        quotes, self.next = self.next, []
        problems, self.problems = self.problems, {}
        return FetchResult(quotes, problems)
