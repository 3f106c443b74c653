"""The small interface every stream source implements.

A source yields batches of :class:`~webapp.core.trades.Trade` as they
arrive; it does not aggregate, store or push: the stream process does that
the same way for every source (:mod:`webapp.core.trades`).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from webapp.core.trades import Trade


class StreamSource(Protocol):
    #: the name used in STREAM_PROVIDER; also picks the condition-code table
    name: str

    def trades(self, symbols: Sequence[str]) -> AsyncIterator[list[Trade]]:
        """Batches of trades for ``symbols``, as the feed frames them, until cancelled."""
        ...
