"""A seeded simulated trade stream: no network, no key, believable prints.

Prices walk from an anchor (the minute ``sim``'s last price, so the chart and
the stream agree) in small log-normal steps; sizes are mostly round lots
with some odd lots (condition ``I``, which count toward volume only).  Now
and then a ticker runs up or down for a minute on five times its usual
size (a breakout, a flush: what the live scanner's lists are for), and
about once in ten half-hours it is halted for two minutes (no trades, a
status message at each end, as alpaca's ``statuses`` say it).  Each trade
is a pure function of (seed, ticker, millisecond), so a replay of the same
span produces the same prints.  :func:`run_sim` paces it at the wall
clock into the same queue a WebSocket reader fills, so it takes the same
aggregation and push path as a real feed.
"""
from __future__ import annotations

import asyncio
import functools
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence

import numpy as np

from webapp.core.trades import Trade
from webapp.streams.base import Halt, Parsed
from webapp.streams.connection import Link

RUN_CHANCE = 0.01  # per ticker and minute, each way: a minute's run up (or down) on heavy volume
RUN_MOVE = 0.02  # how far a run goes in its minute
HALT_CHANCE = 0.1  # per ticker and half-hour: a two-minute halt
MEAN_SIZE = 0.85 * 500 + 0.15 * 50  # a drawn trade's mean size: round lots of 100-900, odd lots of 1-99


class SimTrades:
    name = "sim"

    def __init__(self, seed: int = 42, trades_per_second: float = 2.0, volatility_per_minute: float = 0.0012,
                 halts: bool = True) -> None:
        self.seed = seed
        self.halts = halts
        # a minute's expected volume by (ticker, epoch minute): the sizes are scaled to it, so the
        # stream's volume matches the history the RVOL profile is built from (None: sizes as drawn)
        self.volume_of: Callable[[str, int], float] | None = None
        self.rate = trades_per_second
        self.sigma = volatility_per_minute / math.sqrt(60.0 * max(trades_per_second, 1e-9))

    def _rng(self, ticker: str, second: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(ticker.encode()), second])

    @functools.lru_cache(maxsize=65_536)  # noqa: B019 (a few per ticker and minute; the object lives on)
    def run_of(self, ticker: str, minute: int) -> int:
        """+1 (a run up), -1 (down) or 0 for this ticker's minute."""
        u = float(np.random.default_rng([self.seed, zlib.crc32(ticker.encode()), minute, 7]).random())
        return 1 if u < RUN_CHANCE else -1 if u < 2 * RUN_CHANCE else 0

    def _scale(self, ticker: str, minute: int) -> float:
        """What the drawn sizes are multiplied by so a minute adds up to its expected volume."""
        if self.volume_of is None:
            return 1.0
        return self._scales(ticker, minute)

    @functools.lru_cache(maxsize=65_536)  # noqa: B019 (a few per ticker and minute)
    def _scales(self, ticker: str, minute: int) -> float:
        drawn = self.rate * 60.0 * MEAN_SIZE
        return self.volume_of(ticker, minute) / drawn if drawn > 0 else 1.0  # type: ignore[misc]

    @functools.lru_cache(maxsize=65_536)  # noqa: B019
    def halt_of(self, ticker: str, block: int) -> int | None:
        """The minute a halt of this half-hour (``block``) begins, or None; it lasts two minutes."""
        if not self.halts:
            return None
        rng = np.random.default_rng([self.seed, zlib.crc32(ticker.encode()), block, 11])
        return block * 30 + int(rng.integers(5, 25)) if rng.random() < HALT_CHANCE else None

    def halted_at(self, ticker: str, minute: int) -> bool:
        start = self.halt_of(ticker, minute // 30)
        return start is not None and start <= minute < start + 2

    def halts_between(self, symbols: Sequence[str], start_ms: int, end_ms: int) -> list[Halt]:
        """The status changes in [start_ms, end_ms): a halt's start and its resume."""
        out = []
        for ticker in symbols:
            for block in range(start_ms // 1_800_000, (end_ms - 1) // 1_800_000 + 1):
                begin = self.halt_of(ticker, block)
                if begin is None:
                    continue
                for at, halted in ((begin * 60_000, True), ((begin + 2) * 60_000, False)):
                    if start_ms <= at < end_ms:
                        out.append(Halt(ticker, halted, "T12" if halted else "", "simulated halt" if halted
                                        else "simulated resume", at))
        return sorted(out, key=lambda h: h.time_ms)

    def between(self, symbols: Sequence[str], start_ms: int, end_ms: int,
                last: Mapping[str, float]) -> tuple[list[Trade], dict[str, float]]:
        """The trades in [start_ms, end_ms) in time order, and where each ticker's walk stands after
        them (unrounded; a print is the walk rounded to the cent, or to 0.0001 under $1).

        ``last`` is where each walk stands (tickers missing from it are not streamed).
        """
        out: list[Trade] = []
        now = dict(last)
        for ticker in symbols:
            if ticker not in now:
                continue
            walk = now[ticker]  # unrounded: a $6 stock's steps are smaller than its cent, and add up
            for second in range(start_ms // 1000, (end_ms - 1) // 1000 + 1):
                if self.halted_at(ticker, second // 60):
                    continue  # halted: nothing prints
                run = self.run_of(ticker, second // 60)
                rng = self._rng(ticker, second)
                n = rng.poisson(self.rate)
                times = np.sort(rng.integers(second * 1000, second * 1000 + 1000, n))
                drift = run * RUN_MOVE / (60.0 * max(self.rate, 1e-9))
                steps = np.exp(self.sigma * rng.standard_normal(n) + drift)
                odd = rng.random(n) < 0.15
                sizes = np.where(odd, rng.integers(1, 100, n), 100 * rng.integers(1, 10, n))
                sizes = sizes * (5 if run else 1) * self._scale(ticker, second // 60)
                lots = ~odd & (sizes >= 100)  # round lots stay round where the scale leaves them one
                sizes = np.where(lots, np.round(sizes / 100) * 100, np.maximum(1, np.round(sizes)))
                for t, step, size, is_odd in zip(times.tolist(), steps.tolist(), sizes.tolist(),
                                                 odd.tolist(), strict=True):
                    if not start_ms <= t < end_ms:
                        continue
                    if not is_odd:
                        walk *= step
                    price = round(walk, 2 if walk >= 1 else 4)
                    out.append(Trade(ticker, price, float(size), t, ("I",) if is_odd else ()))
            now[ticker] = walk
        out.sort(key=lambda tr: (tr.time_ms, tr.ticker))
        return out, now


async def run_sim(sim: SimTrades, link: Link, queue: asyncio.Queue, wanted: Callable[[], Sequence[str]],
                  anchors: Callable[[Sequence[str]], Awaitable[Mapping[str, float]]],
                  interval: float = 0.1) -> None:
    """Stream simulated trades at the wall clock into ``queue``, as a feed would, until cancelled."""
    link.where, link.state = "simulated (no network)", "connected"
    link.connected_at = time.time()
    prices: dict[str, float] = {}
    last_ms = int(time.time() * 1000)
    while True:
        await asyncio.sleep(interval)
        symbols = list(wanted())
        link.requested = link.streamed = symbols
        new = [s for s in symbols if s not in prices]
        if new:
            prices.update(await anchors(new))
        now_ms = int(time.time() * 1000)
        trades, prices = sim.between(symbols, last_ms, now_ms, prices)
        halts = sim.halts_between(symbols, last_ms, now_ms)
        last_ms = now_ms
        link.saw(bool(trades))
        try:
            queue.put_nowait(Parsed(trades=trades, halts=halts))
        except asyncio.QueueFull:
            link.dropped()
