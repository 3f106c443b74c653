"""The stream's hand-offs to the evaluation as columns: each flush of a shard is two fields of one entry.

The evaluate process reads every provisional bar of its shard, 20,000 to
25,000 rows a second at 10,000 symbols and 50,000 trades/s.  Handed off as
JSON rows, each cost about a microsecond to parse (its floats from text),
two more to check and make into a Python object, and one more to coalesce:
a third of the process's time, spent before any rule was judged.  So a
hand-off is ``tickers`` (the tickers, one per line) and ``cols`` (a
little-endian float64 matrix, a row per ticker, the numeric
:data:`webapp.core.tape.PROVISIONAL_FIELDS` in that order): read in one
``numpy.frombuffer``, checked, coalesced, ranked and judged as arrays
(:class:`~webapp.core.rules.intrabar.Provisional` objects are for tests,
replays and the plain references the columns are checked against).
(Written, the matrix costs the stream what ``orjson.dumps`` of the rows
did.)  Every number the matrix carries (epoch milliseconds,
trade counts) is an integer well below 2**53, exact in a float64.

Entries written as JSON rows (``bars``: a stream leader of the previous
version, still in the stream after a deploy) are read too.

Pure: data in, values out.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from itertools import count
from typing import Any

import numpy as np
import orjson

from webapp.core.rules.intrabar import AT as _AT
from webapp.core.rules.intrabar import COLUMNS, NO_SEGMENT, Provisional

WIDE = len(COLUMNS)  # 14: bar_time (the bar's end, as judged) ... seg_low_ms
_INTS = [_AT[k] for k in ("bar_time", "trades", "last_ms", "high_ms", "low_ms")]
_SEG_INTS = [_AT["seg_high_ms"], _AT["seg_low_ms"]]
_tuple_new = tuple.__new__
_PROVISIONAL = partial(_tuple_new, Provisional)  # a tuple of the fields -> a Provisional
_MISSING = [math.nan] * WIDE


class Handoffs:
    """Provisional bars as columns: ``tickers`` (an object array of str) and ``cols`` (n × 14 float64,
    :data:`COLUMNS`; ``bar_time`` the bar's end, a segment not kept NaN with times 0)."""

    __slots__ = ("tickers", "cols")

    def __init__(self, tickers: np.ndarray, cols: np.ndarray) -> None:
        self.tickers = tickers
        self.cols = cols

    def __len__(self) -> int:
        return len(self.tickers)

    def col(self, name: str) -> np.ndarray:
        return self.cols[:, _AT[name]]

    def take(self, rows: np.ndarray) -> Handoffs:
        """These rows (indexes or a mask)."""
        return Handoffs(self.tickers[rows], self.cols[rows])

    @classmethod
    def empty(cls) -> Handoffs:
        return cls(np.empty(0, object), np.empty((0, WIDE)))

    @classmethod
    def of(cls, bars: Sequence[Provisional]) -> Handoffs:
        """From bars (tests, and the plain reference the columns are checked against)."""
        if not bars:
            return cls.empty()
        return cls(_names([b.ticker for b in bars]), np.array([b[1:] for b in bars], float).reshape(-1, WIDE))

    def bars(self) -> list[Provisional]:
        """As :class:`Provisional` objects (replays, tests), a column at a time (a row at a time cost
        seven times more)."""
        if not len(self):
            return []
        c = self.cols
        ints = c[:, _INTS].astype(np.int64)  # bar_time, trades, last_ms, high_ms, low_ms
        kept = ~np.isnan(c[:, _AT["seg_high"]])
        seg_ms = np.where(kept[:, None], c[:, _SEG_INTS], 0).astype(np.int64)
        columns = (self.tickers.tolist(), ints[:, 0].tolist(), *(c[:, j].tolist() for j in range(1, 6)),
                   *(ints[:, j].tolist() for j in range(1, 5)), c[:, _AT["seg_high"]].tolist(),
                   seg_ms[:, 0].tolist(), c[:, _AT["seg_low"]].tolist(), seg_ms[:, 1].tolist())
        out = list(map(_PROVISIONAL, zip(*columns, strict=True)))
        for i in np.flatnonzero(~kept).tolist():  # none kept: the one NO_SEGMENT (as the plain objects)
            out[i] = _tuple_new(Provisional, (*out[i][:11], *NO_SEGMENT))
        return out


def _names(tickers: Sequence[str]) -> np.ndarray:
    out = np.empty(len(tickers), object)
    out[:] = tickers
    return out


def concat(parts: Sequence[Handoffs]) -> Handoffs:
    parts = [p for p in parts if len(p)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return Handoffs.empty()
    return Handoffs(np.concatenate([p.tickers for p in parts]), np.concatenate([p.cols for p in parts]))


# ---- the wire: written by the stream leader, read by the evaluate process

def encode(rows: Sequence[Sequence[Any]]) -> dict[bytes, bytes]:
    """One shard's flush (:data:`webapp.core.tape.PROVISIONAL_FIELDS` rows, ``start`` the bar's start;
    or their first 11, without the segment) as an entry's fields."""
    flat: list[Any] = []
    for r in rows:
        if len(r) == WIDE + 1:
            flat += r[1:]
        else:  # the 11 fields without a segment (as before they were kept), else refused by the reader
            flat += [*r[1:], *NO_SEGMENT] if len(r) == WIDE - 3 else _MISSING
    try:
        cols = np.array(flat, "<f8")
    except (TypeError, ValueError):  # a missing number (None): NaN, refused by the reader with its row
        cols = np.array([math.nan if type(v) not in (int, float) else v for v in flat], "<f8")
    return {b"tickers": "\n".join([r[0] for r in rows]).encode(), b"cols": cols.tobytes()}


def decode(fields: Mapping[bytes, Any], width: int) -> tuple[Handoffs, list[str]]:
    """An entry's hand-offs (``bar_time`` the bar's end: its start + ``width``) and what was wrong with
    each row refused.  ValueError when the entry as a whole cannot be read."""
    if b"cols" in fields:
        raw, names = fields[b"cols"], fields.get(b"tickers")
        if not isinstance(raw, bytes) or not isinstance(names, bytes):
            raise ValueError("a hand-off's cols and tickers are bytes")
        try:
            tickers = names.decode().split("\n") if names else []
        except UnicodeDecodeError:
            raise ValueError("a hand-off's tickers are not UTF-8") from None
        if len(raw) != len(tickers) * WIDE * 8:
            raise ValueError(f"a hand-off of {len(tickers)} tickers has {len(raw)} bytes of columns, "
                             f"not {len(tickers) * WIDE * 8}")
        cols = np.frombuffer(raw, "<f8").reshape(len(tickers), WIDE).astype(float)  # (writable)
        errors: list[str] = []
    elif b"bars" in fields:
        tickers, cols, errors = _rows(fields[b"bars"])
    else:
        raise ValueError("a hand-off has neither cols nor bars")
    cols[:, 0] += width
    got = Handoffs(_names(tickers), cols)
    bad = _refused(got)
    if not len(bad):
        return got, errors
    for i in bad[:3]:
        errors.append(_why(got, int(i)))
    if len(bad) > 3:
        errors.append(f"and {len(bad) - 3} more rows refused as above")
    keep = np.ones(len(got), bool)
    keep[bad] = False
    return got.take(keep), errors


def _rows(raw: Any) -> tuple[list[str], np.ndarray, list[str]]:
    """JSON rows (the previous format), each checked for its shape and its numbers."""
    try:
        rows = orjson.loads(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a hand-off's bars are not JSON: {exc}") from None
    if type(rows) is not list:
        raise ValueError("a hand-off's bars are not a list")
    tickers, flat, errors = [], [], []
    for row in rows:
        if type(row) is not list or len(row) not in (11, 15) or type(row[0]) is not str or not row[0]:
            errors.append(f"a provisional bar is 15 fields, got {str(row)[:80]}")
        elif any(type(v) not in (int, float) for v in row[1:]):
            errors.append(f"a provisional bar of {row[0]} has a missing or non-numeric field")
        else:
            tickers.append(row[0])
            flat += row[1:] if len(row) == 15 else [*row[1:], *NO_SEGMENT]
    return tickers, np.array(flat, float).reshape(-1, WIDE), errors


def _refused(h: Handoffs) -> np.ndarray:
    """The rows that are not bars: a time or count missing, the prices out of order (a NaN fails every
    comparison), a segment outside its bar, or no ticker."""
    c = h.cols
    o, hi, lo, cl, vol = (c[:, k] for k in range(1, 6))
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(c[:, _INTS]).all(axis=1) & (0 < lo) & (lo <= cl) & (cl <= hi) & (lo <= o) & (o <= hi)
        ok &= vol >= 0
        sh, sl = c[:, _AT["seg_high"]], c[:, _AT["seg_low"]]
        seg = ~np.isnan(sh)
        ok &= ~seg | ((lo <= sl) & (sl <= sh) & (sh <= hi) & np.isfinite(c[:, _SEG_INTS]).all(axis=1))
    ok &= h.tickers.astype(bool)
    return np.flatnonzero(~ok)


def _why(h: Handoffs, i: int) -> str:
    t, c = h.tickers[i] or "(no ticker)", h.cols[i]
    o, hi, lo, cl = c[1:5]
    if not h.tickers[i]:
        return "a provisional bar has no ticker"
    if not np.isfinite(c[_INTS]).all() or (c[_AT["seg_high"]] == c[_AT["seg_high"]]
                                            and not np.isfinite(c[_SEG_INTS]).all()):
        return f"a provisional bar of {t} has a missing or non-numeric field"
    if not (0 < lo <= cl <= hi and lo <= o <= hi and c[5] >= 0):
        return f"a provisional bar of {t} is not a bar: o {o:g} h {hi:g} l {lo:g} c {cl:g} v {c[5]:g}"
    return f"a provisional bar of {t}: its segment {c[_AT['seg_low']]:g}-{c[_AT['seg_high']]:g} is not " \
           f"inside its bar {lo:g}-{hi:g}"


# ---- coalescing

def coalesced(h: Handoffs) -> Handoffs:
    """The newest hand-off of each ticker's bar, its segment the highest and lowest of the hand-offs
    it stands for, by bar: :func:`webapp.core.rules.intrabar.coalesce` on columns (tested against
    it).  One flush hands each ticker off once, so a batch of one entry (the evaluator keeping up)
    is returned as it is."""
    if len(set(h.tickers.tolist())) == len(h):
        return h
    return _newest(h, h.col("bar_time"))[0]


def per_second(h: Handoffs) -> tuple[Handoffs, np.ndarray]:
    """The newest state of each ticker's second (the second of its last trade), of the newest bar
    handed off in it, with the extremes of that bar's hand-offs in the second; and the row of ``h``
    each comes from (for what travels beside it).  What a replay judges the second at."""
    if len(h) < 2:
        return h, np.arange(len(h))
    second = h.col("last_ms") // 1000
    code = _codes(h)
    order = np.lexsort((h.col("bar_time"), second, code))
    first = np.r_[True, (code[order][1:] != code[order][:-1]) | (second[order][1:] != second[order][:-1])]
    starts = np.flatnonzero(first)
    newest_bar = np.maximum.reduceat(h.col("bar_time")[order], starts)[np.cumsum(first) - 1]
    rows = order[h.col("bar_time")[order] == newest_bar]  # an older bar's late hand-off: not this second's
    got, source = _newest(h.take(rows), second[rows], code[rows])
    return got, rows[source]


def _codes(h: Handoffs) -> np.ndarray:
    """Each row's ticker as a number, in the order they first come (a dict over the distinct ones)."""
    tickers = h.tickers.tolist()
    code_of = dict(zip(dict.fromkeys(tickers), count()))
    return np.fromiter(map(code_of.__getitem__, tickers), np.int64, len(tickers))


def _newest(h: Handoffs, key: np.ndarray, code: np.ndarray | None = None) -> tuple[Handoffs, np.ndarray]:
    """The newest row (by trade count, then last trade) of each (ticker, ``key``), by key, its
    segment the extremes of its group's; and which row of ``h`` each is."""
    n = len(h)
    if n < 2:
        return h, np.arange(n)
    code = _codes(h) if code is None else code
    c = h.cols
    order = np.lexsort((c[:, _AT["last_ms"]], c[:, _AT["trades"]], code, key))
    c, code, key = c[order], code[order], key[order]
    first = np.r_[True, (code[1:] != code[:-1]) | (key[1:] != key[:-1])]
    if first.all():
        return Handoffs(h.tickers[order], c), order
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], n] - 1
    group = np.cumsum(first) - 1
    out = c[ends].copy()
    many = np.flatnonzero(np.diff(np.r_[starts, n]) > 1)  # groups of one keep their row as it is
    kept = ~np.isnan(c[:, _AT["seg_high"]])
    for value, when, bar_value, bar_when, pick in (
            ("seg_high", "seg_high_ms", "high", "high_ms", np.maximum),
            ("seg_low", "seg_low_ms", "low", "low_ms", np.minimum)):
        v = np.where(kept, c[:, _AT[value]], c[:, _AT[bar_value]])
        ms = np.where(kept, c[:, _AT[when]], c[:, _AT[bar_when]])
        best = pick.reduceat(v, starts)
        # of the rows at the extreme, the newest's time (as a pairwise merge keeps the later's on a tie)
        at = np.flatnonzero(v == best[group])
        last_at = at[np.r_[group[at][1:] != group[at][:-1], True]]
        out[many, _AT[value]] = best[many]
        out[many, _AT[when]] = ms[last_at][many]
    return Handoffs(h.tickers[order][ends], out), order[ends]
