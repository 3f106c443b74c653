"""A seeded simulated trade stream: no network, no key, believable prints.

Prices walk from an anchor (the minute ``sim``'s last price, so the chart and
the stream agree) in small log-normal steps; sizes are mostly round lots
with some odd lots (condition ``I``, which count toward volume only).  Each
trade is a pure function of (seed, ticker, millisecond), so a replay of the
same span produces the same prints.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from webapp.core.trades import Trade


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
        """The trades in [start_ms, end_ms) in time order, and each ticker's price after them.

        ``last`` is where each walk stands (tickers missing from it are not streamed).
        """
        out: list[Trade] = []
        now = dict(last)
        for ticker in symbols:
            if ticker not in now:
                continue
            price = now[ticker]
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
                        price = round(price * step, 2 if price >= 1 else 4)
                    out.append(Trade(ticker, price, float(size), t, ("I",) if is_odd else ()))
            now[ticker] = price
        out.sort(key=lambda tr: (tr.time_ms, tr.ticker))
        return out, now
