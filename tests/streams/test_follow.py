"""Following the tracked symbols on a live connection: what is subscribed and unsubscribed."""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from webapp.streams.connection import Link, _follow
from webapp.streams.polygon import PolygonStream


class _Sent:
    """The connection's sending side: records each frame (the provider's answers are not needed)."""

    def __init__(self) -> None:
        self.frames: list[dict] = []

    async def send(self, message: str) -> None:
        self.frames.append(orjson.loads(message))


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """On a loop of its own, in a thread: earlier tests may leave this thread's loop running."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result(60)


def _symbols(frames: list[dict], action: str) -> set[str]:
    return {p[2:] for f in frames if f["action"] == action
            for p in f["params"].split(",") if p.startswith("T.")}


def test_ten_thousand_symbols_changed_subscribes_the_new_and_drops_the_gone() -> None:
    """10,000 streamed, 2,000 of them gone and 3,000 new: exactly those frames, and the link says so
    (each set made once: rebuilt per symbol this took 7 s of the event loop, past the leader's lock)."""
    before = [f"A{i:05d}" for i in range(10_000)]
    after = before[2_000:] + [f"B{i:05d}" for i in range(3_000)]
    source = PolygonStream("key", "ws://127.0.0.1:1")
    link = Link("polygon", source=source, requested=list(before), streamed=list(before))
    ws = _Sent()
    _run(_follow(ws, link, after))
    assert _symbols(ws.frames, "unsubscribe") == set(before[:2_000])
    assert _symbols(ws.frames, "subscribe") == {f"B{i:05d}" for i in range(3_000)}
    assert link.requested == after and link.streamed == after


def test_a_plan_cap_subscribes_only_what_fits() -> None:
    source = PolygonStream("key", "ws://127.0.0.1:1")
    source.plan_cap = 5
    link = Link("polygon", source=source, requested=["A", "B", "C"], streamed=["A", "B", "C"])
    ws = _Sent()
    _run(_follow(ws, link, ["B", "C", "D", "E", "F", "G"]))
    assert _symbols(ws.frames, "unsubscribe") == {"A"}
    assert _symbols(ws.frames, "subscribe") == {"D", "E", "F"}
    assert link.streamed == ["B", "C", "D", "E", "F"]
