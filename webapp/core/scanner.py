"""The scanner, as pure functions over columns: state per symbol, lists, deltas.

One tick's scan works on *columns* (numpy arrays with one entry per
symbol) because at 10,000 symbols a dict per symbol costs more than the
arithmetic.  A scan table holds, per symbol:

* state the next reading needs: the exchange day (``day``, a date ordinal),
  Σ price·volume (``pv``), cumulative volume (``cv``), the day's high and
  low of our readings (``hi``, ``lo``) and the last ``bars`` minute volumes
  (``vols``, NaN-padded, newest last);
* what users see: ``price``, ``change_pct``, ``gap_pct``, ``volume`` (the
  reading's minute volume), ``day_volume``, ``vwap``, ``rvol``,
  ``rvol_sessions``, ``vol_ratio`` (minute volume ÷ the recent average),
  ``unusual``, ``new_high``, ``new_low``, ``time`` (epoch seconds) and
  ``stale`` (the symbol's latest fetch was refused, so it must not rank).

A session is an exchange day (New York date): VWAP, cumulative volume, the
high/low and the recent volumes restart with its first reading.  Real feeds
are only polled while the exchange is open, so for them this is the regular
session; the simulated market trades around the clock.

The lists (``LISTS``) rank the symbols with a fresh reading that pass the
filters.  Order: by the list's value, highest first, then by ticker - the
same order a Redis sorted set gives for score = -value, so a list read
back from Redis and one ranked here agree.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np

from webapp.core import metrics
from webapp.core.tables import Table

LISTS = ("gainers", "losers", "gappers", "unusual_volume", "new_highs", "new_lows")
LIST_TITLES = {
    "gainers": "Top gainers", "losers": "Top losers", "gappers": "Gappers",
    "unusual_volume": "Unusual volume", "new_highs": "New intraday highs",
    "new_lows": "New intraday lows",
}
LIST_RULES = {
    "gainers": "% change vs previous close > 0, highest first",
    "losers": "% change vs previous close < 0, lowest first",
    "gappers": "|gap %| vs previous close ≥ the gap threshold, largest first",
    "unusual_volume": "minute volume ≥ k × the average of the recent minutes, highest ratio first",
    "new_highs": "the reading set a new intraday high, by % change",
    "new_lows": "the reading set a new intraday low, by % change (lowest first)",
}

STATE_FLOATS = ("pv", "cv", "hi", "lo")
PUBLIC_FLOATS = ("price", "prev_close", "open", "change_pct", "gap_pct", "volume", "day_volume",
                 "vwap", "rvol", "vol_ratio", "time")
FLAGS = ("unusual", "new_high", "new_low", "stale")  # stale: the last fetch was refused
NO_DAY = -1


class Settings(NamedTuple):
    gap_min_pct: float = 2.0
    unusual_k: float = 2.0
    unusual_bars: int = 20
    unusual_min_bars: int = 10
    # RVOL needs a base: below this average volume by this minute (one thin
    # session, a few minutes recorded) the ratio is noise like 194,160 ×
    rvol_min_expected: float = 100.0


class Filters(NamedTuple):
    """Server-side filters; ``None`` means no bound."""

    min_price: float | None = None
    max_price: float | None = None
    min_volume: float | None = None  # cumulative volume today
    min_rvol: float | None = None

    def tightened(self, other: Filters) -> Filters:
        """Both sets of bounds at once (a request can narrow the configured ones)."""
        def pick(a: float | None, b: float | None, lower: bool) -> float | None:
            if a is None or b is None:
                return a if b is None else b
            return max(a, b) if lower else min(a, b)

        return Filters(pick(self.min_price, other.min_price, True),
                       pick(self.max_price, other.max_price, False),
                       pick(self.min_volume, other.min_volume, True),
                       pick(self.min_rvol, other.min_rvol, True))




def empty(n: int, bars: int) -> Table:
    """A table of ``n`` symbols with nothing known yet."""
    table: Table = {"day": np.full(n, NO_DAY, np.int64), "rvol_sessions": np.zeros(n, np.int64),
                    "vols": np.full((n, bars), np.nan, np.float32)}
    for name in STATE_FLOATS + PUBLIC_FLOATS:
        table[name] = np.full(n, np.nan)
    for name in FLAGS:
        table[name] = np.zeros(n, bool)
    return table


def take(table: Table, index: np.ndarray, bars: int) -> Table:
    """Rows ``index`` of ``table``; an index of -1 gives an empty row.

    Also adapts the recent-volume columns when ``bars`` changed.
    """
    index = np.asarray(index, np.int64)
    out = empty(len(index), bars)
    have = index >= 0
    src = index[have]
    for name, column in table.items():
        if name == "vols":
            width = min(bars, column.shape[1])
            if width:
                out["vols"][have, bars - width:] = column[src, column.shape[1] - width:]
        elif name in out:
            out[name][have] = column[src]
    return out


def put(table: Table, index: np.ndarray, rows: Table) -> None:
    """Write ``rows`` into ``table`` at ``index`` (in place)."""
    for name, column in rows.items():
        table[name][index] = column


class Readings(NamedTuple):
    """This tick's accepted readings, as columns (NaN where a feed lacks a field)."""

    price: np.ndarray
    volume: np.ndarray  # the reading's own (minute) volume
    prev_close: np.ndarray
    open: np.ndarray
    time: np.ndarray  # epoch seconds
    day: np.ndarray  # exchange date ordinal of the reading
    expected: np.ndarray  # average cumulative volume at this time of day (RVOL's denominator)
    sessions: np.ndarray  # how many earlier sessions ``expected`` averages


def advance(before: Table, now: Readings, settings: Settings) -> Table:
    """The rows after one reading each: state carried on, metrics computed."""
    new_session = before["day"] != now.day
    vw = metrics.vwap_step(np.nan_to_num(before["pv"]), np.nan_to_num(before["cv"]), now.price,
                           now.volume, new_session)
    ext = metrics.intraday_extremes(before["hi"], before["lo"], now.price, new_session)
    recent = np.where(new_session[:, None], np.nan, before["vols"]).astype(np.float64)
    ratio = metrics.volume_ratio(now.volume, recent, settings.unusual_min_bars)
    with np.errstate(invalid="ignore"):
        unusual = ratio >= settings.unusual_k
    vols = np.concatenate([recent[:, 1:], now.volume[:, None]], axis=1).astype(np.float32)
    day_volume = np.where(np.isnan(now.volume) & (vw.volume == 0), np.nan, vw.volume)
    return {
        "day": np.asarray(now.day, np.int64), "pv": vw.price_volume, "cv": vw.volume,
        "hi": ext.high, "lo": ext.low, "vols": vols,
        "price": now.price, "prev_close": now.prev_close, "open": now.open,
        "change_pct": metrics.pct_change(now.price, now.prev_close),
        "gap_pct": metrics.gap_pct(now.open, now.prev_close),
        "volume": now.volume, "day_volume": day_volume, "vwap": vw.vwap,
        "rvol": np.where(np.asarray(now.expected, float) >= settings.rvol_min_expected,
                         metrics.relative_volume(day_volume, now.expected[:, None], 1), np.nan),
        "rvol_sessions": np.asarray(now.sessions, np.int64),
        "vol_ratio": ratio, "unusual": unusual, "new_high": ext.new_high, "new_low": ext.new_low,
        "time": now.time,
    }


def list_values(table: Table, name: str, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """(value to rank by, whether a row qualifies) for list ``name``."""
    chg = table["change_pct"]
    with np.errstate(invalid="ignore"):
        if name == "gainers":
            return chg, chg > 0
        if name == "losers":
            return -chg, chg < 0
        if name == "gappers":
            gap = np.abs(table["gap_pct"])
            return gap, gap >= settings.gap_min_pct
        if name == "unusual_volume":
            return table["vol_ratio"], table["unusual"]
        if name == "new_highs":
            return chg, table["new_high"].copy()
        if name == "new_lows":
            return -chg, table["new_low"].copy()
    raise ValueError(f"unknown list {name!r}: one of {', '.join(LISTS)}")


def passes(table: Table, filters: Filters) -> np.ndarray:
    """Rows within the price range, minimum volume and minimum RVOL."""
    price = table["price"]
    ok = ~np.isnan(price)
    with np.errstate(invalid="ignore"):
        if filters.min_price is not None:
            ok &= price >= filters.min_price
        if filters.max_price is not None:
            ok &= price <= filters.max_price
        if filters.min_volume is not None:
            ok &= np.nan_to_num(table["day_volume"]) >= filters.min_volume
        if filters.min_rvol is not None:
            ok &= table["rvol"] >= filters.min_rvol  # unknown RVOL never passes
    return ok


def rank(
    table: Table,
    tickers: np.ndarray,
    name: str,
    settings: Settings,
    filters: Filters,
    fresh: np.ndarray,
    limit: int,
) -> list[tuple[int, float]]:
    """The top ``limit`` rows of list ``name``: (row index, value), best first.

    ``fresh`` marks rows whose reading is recent enough to act on; a stale
    symbol never ranks, whatever its last values were.
    """
    value, qualifies = list_values(table, name, settings)
    index = np.flatnonzero(qualifies & fresh & np.isfinite(value) & passes(table, filters))
    if not len(index):
        return []
    order = np.lexsort((tickers[index], -value[index]))[:limit]
    chosen = index[order]
    return list(zip(chosen.tolist(), value[chosen].tolist(), strict=True))


def _num(value: float, digits: int) -> float | None:
    return None if value != value else round(value, digits)  # NaN -> None


def _iso(epoch: float) -> str | None:
    return None if epoch != epoch else datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def rvol_note(rvol: float, sessions: int) -> str | None:
    """Why a symbol has no RVOL (``None`` when it has one)."""
    if not math.isnan(rvol):
        return None
    if sessions == 0:
        return "no earlier session at this time of day yet"
    return (f"not meaningful: the {sessions} earlier session(s) traded too little by this time "
            "to compare against")


def row(table: Table, i: int, ticker: str, value: float | None = None) -> dict[str, Any]:
    """What users see of one symbol in a list (JSON-ready, rounded)."""
    out = {
        "ticker": ticker,
        "price": _num(float(table["price"][i]), 4),
        "change_pct": _num(float(table["change_pct"][i]), 3),
        "gap_pct": _num(float(table["gap_pct"][i]), 3),
        "volume": _num(float(table["volume"][i]), 0),
        "day_volume": _num(float(table["day_volume"][i]), 0),
        "vwap": _num(float(table["vwap"][i]), 4),
        "rvol": _num(float(table["rvol"][i]), 2),
        "rvol_sessions": int(table["rvol_sessions"][i]),
        "rvol_note": rvol_note(float(table["rvol"][i]), int(table["rvol_sessions"][i])),
        "vol_ratio": _num(float(table["vol_ratio"][i]), 2),
        "unusual": bool(table["unusual"][i]),
        "new_high": bool(table["new_high"][i]),
        "new_low": bool(table["new_low"][i]),
        "time": _iso(float(table["time"][i])),
    }
    if value is not None:
        out["value"] = _num(value, 4)
    return out


def delta(previous: Sequence[Mapping[str, Any]] | None, rows: Sequence[Mapping[str, Any]],
          full_above: float = 0.5) -> dict[str, Any]:
    """What changed in a list since the last announcement.

    ``{"full": true, "rows": [...]}`` when there was no previous list or more
    than ``full_above`` of the rows are new; otherwise the new ``order`` (only
    if it changed), rows that were ``add``-ed, tickers that were ``remove``-d
    and, for rows that stayed, only the fields that changed (``update``).
    """
    if previous is None or (rows and sum(r["ticker"] not in {p["ticker"] for p in previous}
                                         for r in rows) > full_above * len(rows)):
        return {"full": True, "rows": list(rows)}
    before = {p["ticker"]: p for p in previous}
    now = [r["ticker"] for r in rows]
    kept = set(now)
    out: dict[str, Any] = {"full": False}
    if now != [p["ticker"] for p in previous]:
        out["order"] = now
    out["add"] = [r for r in rows if r["ticker"] not in before]
    out["remove"] = [t for t in before if t not in kept]
    updates = []
    for r in rows:
        old = before.get(r["ticker"])
        if old is None:
            continue
        changed = {k: v for k, v in r.items() if old.get(k) != v}
        if changed:
            updates.append({"ticker": r["ticker"], **changed})
    out["update"] = updates
    return out


def apply_delta(previous: Sequence[Mapping[str, Any]], change: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The list a client holds after applying ``change`` (the inverse of :func:`delta`)."""
    if change["full"]:
        return [dict(r) for r in change["rows"]]
    rows = {p["ticker"]: dict(p) for p in previous}
    for t in change["remove"]:
        rows.pop(t, None)
    for r in change["add"]:
        rows[r["ticker"]] = dict(r)
    for u in change["update"]:
        rows[u["ticker"]].update(u)
    order = change.get("order") or [p["ticker"] for p in previous if p["ticker"] in rows]
    return [rows[t] for t in order]
