"""Indicator series over bars: SMA, EMA, session VWAP, Bollinger bands, RSI and MACD.

One pure module serves the chart (its API computes the lines the page
draws; the browser computes none) and the alert rules' indicator operands
(``sma``, ``ema``, ``rsi``, the Bollinger bands and MACD's three lines), so a
line on the chart and a rule's operand are the same numbers: every value at a
bar depends only on that bar's last :func:`reads` bars, which the live tick
keeps and a chart or a replay reads before its first bar.  Every function
takes arrays whose last axis is time (any leading axes are tickers) and
returns NaN where the indicator is not yet defined.  The definitions are
TradingView's, with TA-Lib as the reference in the tests (``tests/core/test_market_math.py``):

* ``sma(n)``: the mean of the last n prices, exact (:mod:`webapp.core.averages`: integer
  window totals, one correctly rounded division), so a price and its SMA compare as the
  quote's precision decides, at any price and any length;
* ``ema(n)``: alpha = 2 / (n + 1), seeded with the SMA of the first n values, stepped as
  TA-Lib does (``e += alpha * (x - e)``: a flat series stays exactly flat).  At each bar it is
  the EMA over that bar's last :func:`ema_depth` (10n + 1) bars, seeded at their start: what is
  left of the seed there is (1 - alpha)^(9n + 1), about 1.5e-8, so it matches an EMA run from
  the series' start to well within a tick, while a bar's value depends on its own window only,
  and the live tick (which keeps that many bars) and a replay over the whole stored series
  compute the same number;
* ``wilder(n)`` (RSI's average): alpha = 1 / n, seeded the same way and windowed the same way,
  over :func:`wilder_depth` (30n + 1) values, where the seed's weight left is below 1e-13;
* ``rsi(n)``: 100 - 100 / (1 + wilder(gains) / wilder(losses)) over the bar-to-bar changes; 100
  when nothing fell, 50 when nothing moved (TA-Lib says 0 there);
* ``bollinger(n, k)``: SMA(n) ± k population standard deviations of the last n prices, the
  deviation two-pass on exact integers (:func:`webapp.core.averages.deviation`);
* ``macd(fast, slow, signal)``: EMA(fast) - EMA(slow), its EMA(signal) (windowed as an EMA,
  seeded from the line's first ``signal`` values in a window), and their difference (TA-Lib
  seeds the fast EMA at the slow one's start instead; the two meet once that seed has faded);
* ``vwap``: the session's cumulative sum of typical price (high + low + close) / 3 times
  volume over its cumulative volume, starting again at each session.

A missing value (NaN: a minute without a fresh reading) leaves an SMA or a
deviation over it undefined, as TradingView's ``na`` does; an EMA skips it
and seeds from the first n values in a row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from webapp.core import averages

EMA_SETTLE = 10  # an EMA at a bar is computed over its last EMA_SETTLE * n + 1 bars
WILDER_SETTLE = 30  # Wilder's smoothing (RSI) over its last WILDER_SETTLE * n + 1 values
_HOLE_CHUNK = 1 << 20  # values of windows with a hole recomputed at once


def ema_depth(n: int) -> int:
    """Bars an EMA of ``n`` reads to give its value at one bar (the live tick keeps as many)."""
    return EMA_SETTLE * n + 1


def wilder_depth(n: int) -> int:
    """Values Wilder's smoothing of ``n`` reads at one bar: its alpha is smaller than an EMA's, so it
    takes more for the seed to fade ((1 - 1/n)^(29n+1), about 1e-13 of the values' range)."""
    return WILDER_SETTLE * n + 1


def reads(kind: str, args: tuple[float, ...]) -> int:
    """Bars an indicator reads to give its value at one bar: what a chart reads before its first
    bar, and what the live tick keeps for a rule over it."""
    a = [int(v) for v in args]
    if kind == "ema":
        return ema_depth(a[0])
    if kind == "rsi":
        return wilder_depth(a[0]) + 1  # over the bar-to-bar changes
    if kind == "macd":
        return ema_depth(a[1]) + ema_depth(a[2]) - 1
    if kind == "vwap":
        return 0  # the session's own bars
    return a[0]  # sma, bb


def _float_mean(x: np.ndarray, n: int) -> np.ndarray:
    """The mean of the last n values of a series that is not prices (NaN while fewer, or over a hole)."""
    out = np.full(x.shape, np.nan)
    if x.shape[-1] < n:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(x, n, axis=-1)
    out[..., n - 1:] = windows.mean(axis=-1)
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """The exact mean of the last n prices (see :mod:`webapp.core.averages`)."""
    return averages.sma(x, n)


def _seed(x: np.ndarray, n: int, prices: bool) -> np.ndarray:
    return averages.sma(x, n) if prices else _float_mean(x, n)


def _smoothed(x: np.ndarray, n: int, alpha: float, prices: bool) -> np.ndarray:
    """From the series' start: seeded with the mean of the first n values in a row; a missing value
    is undefined at its bar and skipped (the average carries on from the bar before it)."""
    x = np.asarray(x, float)
    out = np.full(x.shape, np.nan)
    if x.shape[-1] < n:
        return out
    rows, flat = x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1])
    gaps = np.isnan(rows).any(axis=-1)
    clean = rows[~gaps]
    if len(clean):
        prev = _seed(clean[:, :n], n, prices)[:, n - 1]
        done = np.full(clean.shape, np.nan)
        done[:, n - 1] = prev
        for t in range(n, clean.shape[-1]):
            prev = prev + alpha * (clean[:, t] - prev)
            done[:, t] = prev
        flat[~gaps] = done
    if gaps.any():  # the few series with a hole, bar by bar
        flat[gaps] = _smoothed_with_holes(rows[gaps], n, alpha, prices)
    return out


def _smoothed_with_holes(x: np.ndarray, n: int, alpha: float, prices: bool) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    seed = _seed(x, n, prices)
    prev = seed[..., n - 1]
    out[..., n - 1] = prev
    for t in range(n, x.shape[-1]):
        xt = x[..., t]
        missing = np.isnan(xt)
        moved = np.where(np.isnan(prev), seed[..., t], prev + alpha * (xt - prev))
        prev = np.where(missing, prev, moved)
        out[..., t] = np.where(missing, np.nan, prev)
    return out


def ema(x: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """The EMA of prices at every bar from ``start`` (NaN before it), each over its last
    :func:`ema_depth` bars: the same number whether the series holds those bars or many more."""
    return _windowed(x, n, 2.0 / (n + 1), ema_depth(n), start, True)


def wilder(x: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Wilder's smoothing (RSI's average, alpha = 1 / n) at every bar from ``start``, each over its
    last :func:`wilder_depth` values, as :func:`ema` is windowed."""
    return _windowed(x, n, 1.0 / n, wilder_depth(n), start, False)


def _windowed(x: np.ndarray, n: int, alpha: float, depth: int, start: int, prices: bool) -> np.ndarray:
    """Exponential smoothing at every bar from ``start``, each over its last ``depth`` values,
    seeded at their start (with the first n in a row where the window has a hole)."""
    x = np.asarray(x, float)
    out = np.full(x.shape, np.nan)
    size = x.shape[-1]
    start = max(start, n - 1)
    if size < n or start >= size:
        return out
    whole = depth - 1  # the first bar with a whole window behind it
    if start < whole:  # a shorter window: the series from its start
        stop = min(size, whole)
        out[..., start:stop] = _smoothed(x[..., :stop], n, alpha, prices)[..., start:stop]
    a = max(start, whole)
    if a >= size:
        return out
    b = size
    # every window [t - depth + 1, t] for t in a..b-1 at once: column j of them is a slice of x
    first = a - depth + 1
    e = _seed(x[..., first:b - depth + n], n, prices)[..., n - 1:]
    for j in range(n, depth):
        e = e + alpha * (x[..., first + j:b - depth + 1 + j] - e)
    out[..., a:b] = e
    hole = np.isnan(x[..., first:b])
    if hole.any():  # windows with a hole: each again, hole-aware (seeded from the first n in a row)
        counts = np.cumsum(hole, axis=-1, dtype=np.int64)
        inside = counts[..., depth - 1:].copy()
        inside[..., 1:] -= counts[..., :-depth]
        flat_x, flat_out = x.reshape(-1, size), out.reshape(-1, size)
        rows, cols = np.nonzero(inside.reshape(-1, inside.shape[-1]) > 0)
        ends = cols + a
        per = max(1, _HOLE_CHUNK // depth)
        for i in range(0, len(rows), per):
            r, t = rows[i:i + per], ends[i:i + per]
            windows = flat_x[r[:, None], t[:, None] + np.arange(1 - depth, 1)]
            flat_out[r, t] = _smoothed_with_holes(windows, n, alpha, prices)[:, -1]
    return out


def rsi(close: np.ndarray, n: int = 14, start: int = 0) -> np.ndarray:
    """RSI at every bar from ``start``, over its last :func:`rsi_depth` bars."""
    close = np.asarray(close, float)
    out = np.full(close.shape, np.nan)
    if close.shape[-1] <= n:
        return out
    change = np.diff(close, axis=-1)  # change[j]: bar j + 1's
    first = max(0, start - 1)
    up, down = wilder(np.maximum(change, 0.0), n, first), wilder(np.maximum(-change, 0.0), n, first)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + up / down)
    value = np.where(down == 0, np.where(up == 0, 50.0, 100.0), value)
    out[..., 1:] = np.where(np.isnan(up), np.nan, value)
    return out


def bollinger(close: np.ndarray, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(middle, upper, lower)."""
    mid = sma(close, n)
    sd = averages.deviation(close, n)
    return mid, mid + k * sd, mid - k * sd


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9, start: int = 0
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macd, signal, histogram) at every bar from ``start``; the signal is the EMA of the MACD
    line over its last :func:`ema_depth` values (seeded once ``signal`` of them exist)."""
    lines_from = max(0, start - ema_depth(signal) + 1)
    line = ema(close, fast, lines_from) - ema(close, slow, lines_from)
    sig = _windowed(line, signal, 2.0 / (signal + 1), ema_depth(signal), start, False)
    return line, sig, line - sig


def vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
         session: np.ndarray) -> np.ndarray:
    """Session VWAP (1-D arrays; ``session`` labels each bar's session, e.g. its New York date)."""
    typical = (np.asarray(high, float) + np.asarray(low, float) + np.asarray(close, float)) / 3.0
    vol = np.nan_to_num(np.asarray(volume, float))
    out = np.full(typical.shape, np.nan)
    session = np.asarray(session)
    if not len(session):
        return out
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]]).tolist()
    for a, b in zip(starts, [*starts[1:], len(session)], strict=True):
        pv, v = np.cumsum(typical[a:b] * vol[a:b]), np.cumsum(vol[a:b])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[a:b] = np.where(v > 0, pv / v, np.nan)
    return out


# ---- what a chart asks for: "sma:20,ema:9,vwap,bb:20:2,rsi:14,macd:12:26:9" ----------

MAX_PERIOD = 500
MAX_STUDIES = 10
_DEFAULTS = {"sma": (20,), "ema": (20,), "vwap": (), "bb": (20, 2), "rsi": (14,), "macd": (12, 26, 9)}
PANE = {"rsi": "rsi", "macd": "macd"}  # studies drawn in their own pane; the rest overlay the price


class StudyError(ValueError):
    """A study the chart cannot draw, with what was wrong."""


@dataclass(frozen=True)
class Study:
    kind: str
    args: tuple[float, ...]

    @property
    def key(self) -> str:
        """Its name in the URL and the API: ``sma:20``, ``bb:20:2``, ``vwap``."""
        return ":".join([self.kind, *(f"{a:g}" for a in self.args)])


def example(kind: str) -> str:
    """A study's default numbers as JSON: ``14``, ``[20, 2]``."""
    d = _DEFAULTS[kind]
    return str(d[0]) if len(d) == 1 else "[" + ", ".join(map(str, d)) + "]"


def make(kind: str, values: list[float | None], label: str) -> Study:
    """A study of ``kind`` with these numbers (None or left out: the default), checked; ``label``
    names it in the error (the chart's text, or a rule's operand)."""
    args: list[float] = []
    for i, default in enumerate(_DEFAULTS[kind]):
        value = float(values[i]) if i < len(values) and values[i] is not None else float(default)
        if kind == "bb" and i == 1:
            if not 0 < value <= 10:
                raise StudyError(f"{label}: the band width must be above 0 and at most 10")
        elif value != int(value) or not 1 <= value <= MAX_PERIOD:
            raise StudyError(f"{label}: periods are whole numbers from 1 to {MAX_PERIOD}")
        args.append(value)
    if kind == "macd" and args[0] >= args[1]:
        raise StudyError(f"{label}: the fast period must be shorter than the slow one")
    return Study(kind, tuple(args))


def parse(text: str | None) -> list[Study]:
    """The studies of a chart's ``indicators`` parameter, in order, without repeats (``none``: none)."""
    if not text or text.strip().lower() == "none":
        return []
    out: list[Study] = []
    for part in text.split(","):
        bits = part.strip().lower().split(":")
        kind = bits[0]
        if kind not in _DEFAULTS:
            raise StudyError(f"unknown indicator {part.strip()!r}: use {', '.join(_DEFAULTS)}")
        given = bits[1:]
        if len(given) > len(_DEFAULTS[kind]):
            raise StudyError(f"{kind} takes at most {len(_DEFAULTS[kind])} number(s), got {part.strip()!r}")
        values: list[float | None] = []
        for raw in given:
            if raw != "" and not re.fullmatch(r"\d+(\.\d+)?", raw):
                raise StudyError(f"{part.strip()!r}: {raw!r} is not a positive number")
            values.append(float(raw) if raw != "" else None)
        study = make(kind, values, repr(part.strip()))
        if study not in out:
            out.append(study)
    if len(out) > MAX_STUDIES:
        raise StudyError(f"at most {MAX_STUDIES} indicators per chart")
    return out


def compute(study: Study, bars: dict[str, np.ndarray], start: int = 0) -> dict[str, np.ndarray]:
    """A study's lines over ``bars`` (``open``/``high``/``low``/``close``/``volume``/``session``;
    VWAP's 1-D), exact from bar ``start`` on."""
    close = bars["close"]
    a = [int(x) for x in study.args]
    if study.kind == "sma":
        return {"value": sma(close, a[0])}
    if study.kind == "ema":
        return {"value": ema(close, a[0], start)}
    if study.kind == "vwap":
        return {"value": vwap(bars["high"], bars["low"], close, bars["volume"], bars["session"])}
    if study.kind == "bb":
        mid, upper, lower = bollinger(close, a[0], study.args[1])
        return {"middle": mid, "upper": upper, "lower": lower}
    if study.kind == "rsi":
        return {"value": rsi(close, a[0], start)}
    line, sig, hist = macd(close, *a, start=start)
    return {"macd": line, "signal": sig, "histogram": hist}


def lookback(studies: list[Study]) -> int:
    """Bars a study needs before its first value: how far back a chart reads to draw from its start."""
    return max((reads(s.kind, s.args) for s in studies), default=0)
