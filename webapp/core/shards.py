"""Splitting the symbol list into shards that separate workers tick in parallel.

A ticker's shard depends only on the ticker and the shard count (CRC-32), so
every process agrees on it and a symbol never sits in two shards.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence


def shard_of(ticker: str, shards: int) -> int:
    return zlib.crc32(ticker.encode()) % shards


def split(symbols: Sequence[str], shards: int) -> list[list[str]]:
    """``shards`` disjoint lists covering ``symbols``, each in the original order."""
    out: list[list[str]] = [[] for _ in range(shards)]
    for s in symbols:
        out[shard_of(s, shards)].append(s)
    return out
