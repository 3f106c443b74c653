"""A seeded simulated trade stream: no network, no key, believable prints.

Prices walk from an anchor (the minute ``sim``'s last price, so the chart and
the stream agree) in small log-normal steps; sizes are mostly round lots
with some odd lots (condition ``I``, which count toward volume only).  Each
trade is a pure function of (seed, ticker, millisecond), so a replay of the
same span produces the same prints.  :func:`run_sim` paces it at the wall
clock into the same queue a WebSocket reader fills, so it takes the same
aggregation and push path as a real feed.
"""
from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence

import numpy as np

from webapp.core.trades import Trade
from webapp.streams.base import Parsed
from webapp.streams.connection import Link


class SimTrades:
    name = "sim"

    def __init__(self, seed: int = 42, trades_per_second: float = 2.0, volatility_per_minute: float = 0.0012
                 ) -> None:
        self.seed = seed
        self.rate = trades_per_second
        self.sigma = volatility_per_minute / math.sqrt(60.0 * max(trades_per_second, 1e-9))

    def _rng(self, ticker: str, second: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(ticker.encode()), second])

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
                rng = self._rng(ticker, second)
                n = rng.poisson(self.rate)
                times = np.sort(rng.integers(second * 1000, second * 1000 + 1000, n))
                steps = np.exp(self.sigma * rng.standard_normal(n))
                odd = rng.random(n) < 0.15
                sizes = np.where(odd, rng.integers(1, 100, n), 100 * rng.integers(1, 10, n))
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
        last_ms = now_ms
        link.saw(bool(trades))
        try:
            queue.put_nowait(Parsed(trades=trades))
        except asyncio.QueueFull:
            link.dropped()
