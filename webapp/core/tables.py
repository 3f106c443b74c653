"""Tables of numpy columns, and how one travels as a single Redis value.

Why: at 10,000 symbols a tick touches every symbol's state each minute.  One
value holding raw columns costs a few milliseconds to read, decode and write
where 10,000 small JSON values cost tens, so both the latest readings
(:mod:`webapp.core.latest`) and the scanner's state (:mod:`webapp.core.scanner`)
are kept this way, one table per shard.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

Table = dict[str, np.ndarray]

_SEP = b"\n"


def pack(tickers: Sequence[str], table: Table, meta: dict[str, Any] | None = None) -> bytes:
    """A table as bytes: a JSON header (tickers, column layout, ``meta``), then the columns."""
    columns = []
    parts = []
    for name, column in table.items():
        column = np.ascontiguousarray(column)
        columns.append([name, column.dtype.str, list(column.shape)])
        parts.append(column.tobytes())
    header = orjson.dumps({"tickers": list(tickers), "columns": columns, "meta": meta or {}})
    return header + _SEP + b"".join(parts)


class Unreadable(ValueError):
    """A value that does not hold a packed table (the caller treats it as lost)."""


def unpack(blob: bytes) -> tuple[list[str], Table, dict[str, Any]]:
    """The inverse of :func:`pack` (columns are read-only views of ``blob``)."""
    try:
        cut = blob.index(_SEP)
        header = orjson.loads(blob[:cut])
        table: Table = {}
        offset = cut + 1
        for name, dtype, shape in header["columns"]:
            dt = np.dtype(dtype)
            count = int(np.prod(shape)) if shape else 1
            table[name] = np.frombuffer(blob, dt, count, offset).reshape(shape)
            offset += count * dt.itemsize
        return header["tickers"], table, header.get("meta", {})
    except (ValueError, KeyError, TypeError) as exc:  # orjson's error is a ValueError
        raise Unreadable(f"not a packed table ({type(exc).__name__}: {exc})") from exc


def concat(parts: Sequence[Table]) -> Table:
    """Several tables with the same columns, one after the other."""
    names = parts[0].keys()
    return {n: np.concatenate([p[n] for p in parts if n in p]) for n in names}
