"""What every stream source hands the stream process, and the small interface it implements.

A WebSocket source knows its provider's wire format and nothing else: the
URL and headers, the handshake, the subscribe messages, and how to turn one
message into :class:`Parsed` events.  Connecting, backoff, the stall
watchdog and the bounded reader queue are the same for every provider
(:mod:`webapp.streams.connection`); aggregation and pushing are the stream
process's (:mod:`webapp.core.tape`, :mod:`webapp.live`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from webapp.core.trades import Trade


@dataclass(slots=True)
class ProviderBar:
    """A minute bar the provider built itself (alpaca ``b``/``u``, polygon ``AM``): it replaces ours."""

    ticker: str
    start: int  # epoch seconds
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None = None
    trades: int | None = None


@dataclass(slots=True)
class Halt:
    """A trading status change (alpaca ``statuses``)."""

    ticker: str
    halted: bool
    code: str
    reason: str
    time_ms: int


@dataclass(slots=True)
class Parsed:
    """What one message carried."""

    trades: list[Trade] = field(default_factory=list)
    bars: list[ProviderBar] = field(default_factory=list)
    halts: list[Halt] = field(default_factory=list)
    subscribed: list[str] | None = None  # the full set the server says it streams now (alpaca)
    too_many: bool = False  # the server refused part of the subscription for the plan's symbol cap
    notices: list[str] = field(default_factory=list)  # other answers worth a log line

    @property
    def market_data(self) -> bool:
        return bool(self.trades or self.bars or self.halts)


def frame(message: str | bytes, shape: type[list] | type[dict]) -> Any:
    """One message's JSON, which must be an array or an object; ``ValueError`` says what it was instead."""
    try:
        doc = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, shape):
        raise ValueError(f"expected {'an array' if shape is list else 'an object'}, got {type(doc).__name__}")
    return doc


class StreamRefused(Exception):
    """The provider refused the connection, and how to take it.

    ``fatal``: a bad key or a plan without this feed; retrying cannot help,
    so the process stops dialling and health says why.  ``busy``: the one
    connection slot is still held (alpaca 406, an HTTP 429 on the upgrade,
    polygon ``max_connections``); wait at least 90 s.  ``retry``: anything
    else, with the normal backoff.
    """

    def __init__(self, kind: Literal["fatal", "busy", "retry"], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class WebSocketSource(Protocol):
    #: the name used in STREAM_PROVIDER; also picks the condition-code table
    name: str
    #: the plan's symbol cap where the provider publishes one (None: no cap)
    plan_cap: int | None
    #: True when a symbol-cap answer comes once per refused symbol (finnhub), not once per request
    refuses_each: bool

    def url(self) -> str:
        """Where to connect.  May hold a secret (finnhub's token): never log it; log ``where``."""
        ...

    @property
    def where(self) -> str:
        """The URL with any secret removed, for logs and health."""
        ...

    def headers(self) -> dict[str, str]: ...

    async def handshake(self, ws: Any) -> None:
        """Welcome and auth; raises :class:`StreamRefused` when refused."""
        ...

    def subscribe(self, symbols: Sequence[str]) -> list[str]:
        """The messages that add ``symbols`` to the subscription."""
        ...

    def unsubscribe(self, symbols: Sequence[str]) -> list[str]: ...

    def shrink(self, kept: Sequence[str], dropped: Sequence[str]) -> list[str]:
        """The messages that leave only ``kept`` subscribed after a symbol-cap answer."""
        ...

    def parse(self, message: str | bytes) -> Parsed:
        """One message's events; ``ValueError`` when malformed, :class:`StreamRefused` for an error answer."""
        ...
