"""Replay a recorded file of minute bars through the same pipeline.

The file (CSV or Parquet) has one row per ticker and minute:
``time`` (the bar's start: ISO 8601 or unix seconds; an ISO time without a
zone or offset is **exchange time**, America/New_York, as most exported
minute bars are), ``ticker``, ``open``,
``high``, ``low``, ``close``, ``volume``.  The provider answers for the
minute it is asked about with each ticker's close at that minute; the day's
open/high/low and the previous session's close are derived from the file as
it plays, so %-change and gaps behave as they did live.  Recorded data is
played whatever the exchange calendar says.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from webapp.core.market import EXCHANGE_TZ, exchange_date
from webapp.core.quotes import PRICE_DECIMALS, Quote
from webapp.core.validation import normalise_ticker
from webapp.providers.base import FetchResult

log = logging.getLogger(__name__)

COLUMNS = ("time", "ticker", "open", "high", "low", "close", "volume")


class ReplayFileError(ValueError):
    """The file cannot be replayed; the message says what is wrong with it."""


def load_bars(path: Path) -> pd.DataFrame:
    """Read and check a CSV or Parquet file of minute bars, sorted by time."""
    if not path.exists():
        raise ReplayFileError(f"{path}: no such file")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:  # pandas raises many kinds for a bad file
        raise ReplayFileError(f"{path}: cannot read ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ReplayFileError(f"{path}: missing column(s) {', '.join(missing)}")
    frame = frame[list(COLUMNS)].copy()
    raw_time = frame["time"]
    numeric = pd.to_numeric(raw_time, errors="coerce")
    if numeric.notna().all():
        frame["time"] = pd.to_datetime(numeric, unit="s", utc=True)
    else:
        frame["time"] = _iso_times(raw_time)
    if frame["time"].isna().any():
        row = int(frame["time"].isna().idxmax())
        raise ReplayFileError(
            f"{path}: row {row + 2} has a bad time {raw_time.iloc[row]!r} (ISO 8601 or unix seconds; a time "
            "without an offset is New York time, so one inside a DST change needs its offset)")
    tickers = frame["ticker"].map(normalise_ticker)
    if tickers.isna().any():
        bad = frame.loc[tickers.isna(), "ticker"].iloc[0]
        raise ReplayFileError(f"{path}: bad ticker {bad!r} (1-10 characters of A-Z 0-9 . -)")
    frame["ticker"] = tickers
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame.sort_values(["time", "ticker"], kind="stable").reset_index(drop=True)


def _iso_times(raw: pd.Series) -> pd.Series:
    """ISO 8601 text to UTC: with a zone or offset as given, without one as exchange time."""
    text = raw.astype(str).str.strip()
    zoned = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if zoned.any():
        out[zoned] = pd.to_datetime(text[zoned], utc=True, errors="coerce", format="ISO8601")
    if (~zoned).any():
        naive = pd.to_datetime(text[~zoned], errors="coerce", format="ISO8601")
        out[~zoned] = naive.dt.tz_localize(str(EXCHANGE_TZ), ambiguous="NaT",
                                           nonexistent="NaT").dt.tz_convert("UTC")
    return out


@dataclass
class _Day:
    date: str
    open: float
    high: float
    low: float
    prev_close: float | None


class ReplayProvider:
    name = "replay"
    follows_market_hours = False
    serves_past = True

    def __init__(self, bars: pd.DataFrame) -> None:
        self._minutes: dict[datetime, list[tuple]] = {}
        for row in bars.itertuples(index=False):
            self._minutes.setdefault(row.time.to_pydatetime(), []).append(row)
        self._days: dict[str, _Day] = {}
        self._last_close: dict[str, float] = {}

    @property
    def minutes(self) -> list[datetime]:
        return sorted(self._minutes)

    @property
    def tickers(self) -> list[str]:
        return sorted({r.ticker for rows in self._minutes.values() for r in rows})

    def fetch(self, symbols: Sequence[str], now: datetime, previous: Mapping[str, Quote]) -> FetchResult:
        at = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
        result = FetchResult()
        wanted = set(symbols)
        for row in self._minutes.get(at, []):
            if row.ticker not in wanted:
                continue
            close = row.close
            if pd.isna(close):
                result.problems[row.ticker] = "recorded bar has no close"
                continue
            day = self._day(row.ticker, at, row)
            volume = None if pd.isna(row.volume) else int(row.volume)
            result.quotes.append(Quote(row.ticker, round(float(close), PRICE_DECIMALS), at, volume,
                                       day.prev_close, day.open, day.high, day.low, self.name))
            self._last_close[row.ticker] = float(close)
        return result

    def _day(self, ticker: str, at: datetime, row: tuple) -> _Day:
        date = exchange_date(at)
        day = self._days.get(ticker)
        high = float(row.high) if not pd.isna(row.high) else float(row.close)
        low = float(row.low) if not pd.isna(row.low) else float(row.close)
        if day is None or day.date != date:
            first = float(row.open) if not pd.isna(row.open) else float(row.close)
            day = _Day(date, first, high, low, self._last_close.get(ticker))
            self._days[ticker] = day
        else:
            day.high, day.low = max(day.high, high), min(day.low, low)
        return day
