"""Each ticker's latest reading as columns: what the next tick needs and what users see.

Why columns, kept as one table per shard (:mod:`webapp.core.tables`), and
not a JSON document per ticker: a tick reads, steps and writes every
ticker's reading each minute, and at 10,000 symbols parsing and building
10,000 documents cost more than everything else in the tick.  Here the
window, SMA and crossover of all tickers are a few numpy operations, and
the per-ticker dicts users see are built once, from columns, for emitting.

Per ticker (one row):

* ``win`` (``period`` integer ticks, right-aligned, newest last, zeros
  before the first price) and ``wlen`` (how many are prices): the rolling
  window, from which the SMA (exact: total / period) and the previous price
  follow;
* the reading: ``price``, ``time`` (the provider's time in epoch
  microseconds; 0 = no reading yet), ``volume``, ``prev_close``, ``open``,
  ``high``, ``low`` (NaN where the feed lacks them) and ``src`` (index into
  ``sources``);
* ``alert``, the alert the reading fired (index into ``ALERT_CODES``), and
  the last alert fired: ``la_kind``, ``la_time``, ``la_price``, ``la_sma``.

Stale marks (ticker -> why its last fetch was refused) travel in the
table's meta, with the period and the source names.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np

from webapp.core import tables
from webapp.core.indicators import ALERT_CODES, Steps, step_columns
from webapp.core.quotes import PRICE_DECIMALS, Quote, at_micros, from_ticks_array, micros, to_ticks_array

_OPTIONAL = ("volume", "prev_close", "open", "high", "low")


def _none_for_nan(column: np.ndarray) -> list[Any]:
    return [None if v != v else v for v in column.tolist()]


def _volumes(column: np.ndarray) -> list[int | None]:
    """Volumes as the feed gave them: integers, None where it had none (NaN)."""
    return [None if v != v else int(v) for v in column.tolist()]


class Latest:
    """The latest readings of a list of tickers (one shard's, or all of them)."""

    def __init__(self, tickers: Sequence[str], cols: tables.Table, period: int,
                 sources: Sequence[str] = (), stale: dict[str, str] | None = None) -> None:
        self.tickers = list(tickers)
        self.cols = cols
        self.period = period
        self.sources = list(sources)
        self.stale = dict(stale or {})

    @classmethod
    def empty(cls, tickers: Sequence[str], period: int) -> Latest:
        n = len(tickers)
        cols: tables.Table = {"win": np.zeros((n, period), np.int64), "wlen": np.zeros(n, np.int64),
                              "time": np.zeros(n, np.int64), "src": np.zeros(n, np.int64),
                              "alert": np.zeros(n, np.int8), "la_kind": np.zeros(n, np.int8),
                              "la_time": np.zeros(n, np.int64)}
        for name in ("price", *_OPTIONAL, "la_price", "la_sma"):
            cols[name] = np.full(n, np.nan)
        return cls(tickers, cols, period)

    # -- as one value ------------------------------------------------------

    def pack(self) -> bytes:
        return tables.pack(self.tickers, self.cols,
                           {"period": self.period, "sources": self.sources, "stale": self.stale})

    @classmethod
    def unpack(cls, blob: bytes) -> Latest:
        """The table in ``blob``; :class:`~webapp.core.tables.Unreadable` if it holds none."""
        tickers, cols, meta = tables.unpack(blob)
        try:
            return cls(tickers, cols, meta["period"], meta["sources"], meta["stale"])
        except (KeyError, TypeError) as exc:
            raise tables.Unreadable(f"not a latest table (no {exc})") from exc

    @classmethod
    def merged(cls, tables_: Sequence[Latest | None], period: int) -> Latest:
        """Several shards' tables as one (source codes re-mapped; a missing one, or
        one kept for another period, adds nothing)."""
        parts = [p for p in tables_ if p is not None and p.period == period]
        if not parts:
            return cls.empty([], period)
        sources = list(dict.fromkeys(s for p in parts for s in p.sources))
        cols = []
        for p in parts:
            remap = np.array([sources.index(s) for s in p.sources] or [0], np.int64)
            cols.append({**p.cols, "src": remap[p.cols["src"]]})
        stale = {t: r for p in parts for t, r in p.stale.items()}
        return cls([t for p in parts for t in p.tickers], tables.concat(cols), period, sources, stale)

    # -- rows ---------------------------------------------------------------

    @cached_property
    def index(self) -> dict[str, int]:
        """Ticker -> row (built once: the tickers of a table never change)."""
        return {t: i for i, t in enumerate(self.tickers)}

    def rows_of(self, symbols: Sequence[str]) -> np.ndarray:
        """Each symbol's row, -1 where it has none."""
        where = self.index
        return np.array([where.get(s, -1) for s in symbols], np.int64)

    def aligned(self, symbols: Sequence[str], period: int) -> tuple[Latest, list[str]]:
        """A table with one row per symbol, in order, and the symbols it lacks.

        Kept for another SMA period, every row counts as lacking: windows and
        SMAs are rebuilt for the new period rather than reinterpreted.
        """
        out = Latest.empty(symbols, period)
        if period != self.period:
            return out, list(symbols)
        index = self.rows_of(symbols)
        have = index >= 0
        for name, column in self.cols.items():
            out.cols[name][have] = column[index[have]]
        out.sources = list(self.sources)
        kept = {symbols[i] for i in np.flatnonzero(have)}
        out.stale = {t: r for t, r in self.stale.items() if t in kept}
        return out, [symbols[i] for i in np.flatnonzero(~have)]

    def with_reading(self) -> np.ndarray:
        return np.flatnonzero(self.cols["time"] > 0)

    def previous(self) -> dict[str, Quote]:
        """The last accepted quote per ticker (what providers get as ``previous``)."""
        c = self.cols
        rows = self.with_reading()
        times: dict[int, datetime] = {}
        when = [times.get(u) or times.setdefault(u, at_micros(u)) for u in c["time"][rows].tolist()]
        volume = _volumes(c["volume"][rows])
        source = [self.sources[i] for i in c["src"][rows].tolist()]
        ticker = [self.tickers[i] for i in rows.tolist()]
        optional = (_none_for_nan(c[n][rows]) for n in _OPTIONAL[1:])
        return {q.ticker: q for q in map(Quote._make, zip(
            ticker, c["price"][rows].tolist(), when, volume, *optional, source, strict=True))}

    # -- updates ------------------------------------------------------------

    def _source_codes(self, names: Sequence[str]) -> list[int]:
        codes = {s: i for i, s in enumerate(self.sources)}
        for name in set(names) - set(codes):
            codes[name] = len(self.sources)
            self.sources.append(name)
        return [codes[n] for n in names]

    def _put(self, rows: np.ndarray, quotes: Sequence[Quote]) -> None:
        tickers, price, when, volume, prev_close, day_open, high, low, source = zip(*quotes, strict=True)
        c = self.cols
        times: dict[datetime, int] = {}
        c["time"][rows] = [times.get(t) or times.setdefault(t, micros(t)) for t in when]
        for name, values in (("price", price), ("volume", volume), ("prev_close", prev_close),
                             ("open", day_open), ("high", high), ("low", low)):
            c[name][rows] = np.array(values, float)  # None -> NaN
        c["src"][rows] = self._source_codes(source)

    def apply(self, rows: np.ndarray, quotes: Sequence[Quote]) -> Steps:
        """Take one accepted quote per row: roll windows, compute SMA and crossover.

        Returns the steps (the alerts fired and the SMA totals); the rows now
        hold the readings, and the rows that fired their last alert.
        """
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return step_columns(np.zeros((0, self.period), np.int64), np.zeros(0), np.zeros(0), self.period)
        self._put(rows, quotes)
        c = self.cols
        steps = step_columns(c["win"][rows], c["wlen"][rows], to_ticks_array(c["price"][rows]), self.period)
        c["win"][rows], c["wlen"][rows], c["alert"][rows] = steps.window, steps.length, steps.alert
        fired = steps.alert > 0
        at = rows[fired]
        c["la_kind"][at] = steps.alert[fired]
        c["la_time"][at] = c["time"][at]
        c["la_price"][at] = c["price"][at]
        c["la_sma"][at] = from_ticks_array(steps.total[fired] / self.period)
        for i in rows.tolist():
            self.stale.pop(self.tickers[i], None)
        return steps

    def restore(self, row: int, quotes: Sequence[Quote], last_alert: tuple[str, datetime, float, float] | None
                ) -> None:
        """Rebuild a row from stored history: the last quotes (oldest first) and last alert."""
        prices = to_ticks_array([q.price for q in quotes[-self.period:]])
        c = self.cols
        c["win"][row] = 0
        c["win"][row, self.period - len(prices):] = prices
        c["wlen"][row] = len(prices)
        c["alert"][row] = 0
        self._put(np.array([row]), [quotes[-1]])
        if last_alert is not None:
            kind, when, price, sma = last_alert
            c["la_kind"][row] = ALERT_CODES.index(kind)  # type: ignore[arg-type]
            c["la_time"][row], c["la_price"][row], c["la_sma"][row] = micros(when), price, sma

    def mark_stale(self, reasons: dict[str, str]) -> None:
        self.stale.update(reasons)

    # -- what users see -----------------------------------------------------

    def views_of(self, symbols: Sequence[str], now: datetime, max_age_seconds: float | None,
                 fresh: np.ndarray | None = None) -> list[dict[str, Any]]:
        """:meth:`views` of ``symbols`` that have a row here, in their order."""
        rows = self.rows_of(symbols)
        return self.views(rows[rows >= 0], now, max_age_seconds, fresh)

    def sma_column(self, rows: np.ndarray) -> np.ndarray:
        """The SMA per row, as a price (NaN while the window fills)."""
        c = self.cols
        full = c["wlen"][rows] >= self.period
        return np.where(full, from_ticks_array(c["win"][rows].sum(axis=1) / self.period), np.nan)

    def sma_values(self, rows: np.ndarray) -> list[float | None]:
        return _none_for_nan(self.sma_column(rows))

    def views(self, rows: np.ndarray | None, now: datetime, max_age_seconds: float | None,
              fresh: np.ndarray | None = None) -> list[dict[str, Any]]:
        """BRIEF's reading per row that has one (all rows by default): price, SMA,
        alert, change, staleness...

        ``max_age_seconds`` is how old a reading may get before it counts as
        stale; ``None`` while the market is closed (yesterday's close is not
        stale).  Rows true in ``fresh`` (a mask over the table) were accepted
        just now: not stale by age.  Built column by column, then zipped into
        dicts: at 10,000 rows, per-row Python was most of the tick.
        """
        c = self.cols
        rows = np.arange(len(self.tickers)) if rows is None else np.asarray(rows, np.int64)
        rows = rows[c["time"][rows] > 0]
        if not len(rows):
            return []
        price, prev_close = c["price"][rows], c["prev_close"][rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            has_close = prev_close != 0  # NaN compares unequal: NaN stays NaN below
            change = np.where(has_close, np.round(price - prev_close, PRICE_DECIMALS), np.nan)
            change_pct = np.where(has_close, np.round((price - prev_close) / prev_close * 100.0, 4), np.nan)
        times = c["time"][rows]
        age = (micros(now) - times) / 1e6
        reason: list[str | None] = [None] * len(rows)
        if max_age_seconds is not None:
            old = age > max_age_seconds
            if fresh is not None:
                old &= ~fresh[rows]
            for i in np.flatnonzero(old).tolist():
                reason[i] = f"no new reading for {int(age[i])} s"
        tickers = [self.tickers[i] for i in rows.tolist()]
        if self.stale:
            for i, ticker in enumerate(tickers):
                if ticker in self.stale:
                    reason[i] = self.stale[ticker]
        stamps = _stamps(np.concatenate([times, c["la_time"][rows]]))
        la_time = stamps[len(rows):]
        last_alert = [
            {"kind": ALERT_CODES[k], "time": t, "price": p, "sma": s} if k else None
            for k, t, p, s in zip(c["la_kind"][rows].tolist(), la_time, c["la_price"][rows].tolist(),
                                  c["la_sma"][rows].tolist(), strict=True)
        ]
        alerts = np.array(ALERT_CODES, object)
        volume = _volumes(c["volume"][rows])
        columns = (
            tickers, price.tolist(), self.sma_values(rows), alerts[c["alert"][rows]].tolist(),
            stamps[:len(rows)], _none_for_nan(change), _none_for_nan(change_pct),
            _none_for_nan(prev_close), *(_none_for_nan(c[n][rows]) for n in ("open", "high", "low")),
            volume, last_alert, np.array(self.sources or [""], object)[c["src"][rows]].tolist(),
            [r is not None for r in reason], reason,
        )
        return [  # a dict display: about a third faster than dict(zip(names, values))
            {"ticker": t, "price": p, "sma": sma, "alert": a, "time": when, "change": ch,
             "change_pct": pct, "prev_close": pc, "open": o, "high": h, "low": lo, "volume": v,
             "last_alert": la, "source": src, "stale": st, "stale_reason": why}
            for t, p, sma, a, when, ch, pct, pc, o, h, lo, v, la, src, st, why in zip(*columns, strict=True)
        ]


def _stamps(micros_: np.ndarray) -> list[str]:
    """ISO times for epoch microseconds, formatting each distinct value once."""
    distinct, where = np.unique(micros_, return_inverse=True)
    text = np.array([at_micros(int(u)).isoformat() for u in distinct.tolist()], object)
    return text[where].tolist()
