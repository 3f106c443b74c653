"""Indicator series over bars: SMA, EMA, session VWAP, Bollinger bands, RSI and MACD.

One pure module serves the chart (its API computes the lines the page
draws; the browser computes none) and the alert rules' ``sma(n)`` and
``ema(n)`` operands, so a line on the chart and a rule's operand are the
same numbers.  Every function takes arrays whose last axis is time (any
leading axes are tickers) and returns NaN where the indicator is not yet
defined.  The definitions are TradingView's:

* ``sma(n)``: the mean of the last n values;
* ``ema(n)``: alpha = 2 / (n + 1), seeded with the SMA of the first n values;
* ``rma(n)`` (Wilder's smoothing, RSI's average): alpha = 1 / n, seeded the same way;
* ``rsi(n)``: 100 - 100 / (1 + RMA(gains) / RMA(losses)) over the bar-to-bar changes; 100 when
  nothing fell, 50 when nothing moved;
* ``bollinger(n, k)``: SMA(n) ± k population standard deviations of the last n values;
* ``macd(fast, slow, signal)``: EMA(fast) - EMA(slow), its EMA(signal), and their difference;
* ``vwap``: the session's cumulative sum of typical price (high + low + close) / 3 times
  volume over its cumulative volume, starting again at each session.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_DECIMALS = 9  # prices have at most 4 decimals: no float noise decides a touch


def _window_sums(c: np.ndarray, n: int) -> np.ndarray:
    """Sums of every n consecutive values, from their running sums ``c``."""
    sums = c[..., n - 1:].copy()
    sums[..., 1:] -= c[..., :-n]
    return sums


def _window_mean(x: np.ndarray, n: int) -> np.ndarray:
    """The mean of the last n values at every bar; NaN while fewer than n, or where one is missing."""
    out = np.full(x.shape, np.nan)
    if x.shape[-1] < n:
        return out
    hole = np.isnan(x)
    holes = hole.any()
    out[..., n - 1:] = _window_sums(np.cumsum(np.where(hole, 0.0, x) if holes else x, axis=-1), n) / n
    if holes:  # only the series with a hole: count the holes in each window
        flat, hole2 = out.reshape(-1, x.shape[-1]), hole.reshape(-1, x.shape[-1])
        rows = np.flatnonzero(hole2.any(axis=-1))
        part = flat[rows, n - 1:]
        part[_window_sums(np.cumsum(hole2[rows], axis=-1), n) > 0] = np.nan
        flat[rows, n - 1:] = part
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """A missing value (NaN: a minute without a fresh reading) leaves the n bars it is part of undefined,
    as TradingView's ``ta.sma`` does with ``na``: never a mean with a hole counted as zero."""
    return np.round(_window_mean(np.asarray(x, float), n), _DECIMALS)


def _smoothed(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """Seeded with the SMA of the first n values in a row; a missing value is undefined at its bar and
    skipped (the average carries on from the bar before it)."""
    x = np.asarray(x, float)
    out = np.full(x.shape, np.nan)
    if x.shape[-1] < n:
        return out
    prev = x[..., :n].mean(axis=-1)
    out[..., n - 1] = prev
    for t in range(n, x.shape[-1]):
        prev = alpha * x[..., t] + (1 - alpha) * prev
        out[..., t] = prev
    gaps = np.isnan(x).any(axis=-1)
    if gaps.any():  # the few series with a hole, again, bar by bar
        out[gaps] = _smoothed_with_holes(x[gaps], n, alpha)
    return out


def _smoothed_with_holes(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    seed = _window_mean(x, n)
    prev = seed[..., n - 1]
    out[..., n - 1] = prev
    for t in range(n, x.shape[-1]):
        xt = x[..., t]
        missing = np.isnan(xt)
        moved = np.where(np.isnan(prev), seed[..., t], alpha * xt + (1 - alpha) * prev)
        prev = np.where(missing, prev, moved)
        out[..., t] = np.where(missing, np.nan, prev)
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    return np.round(_smoothed(x, n, 2.0 / (n + 1)), _DECIMALS)


def rma(x: np.ndarray, n: int) -> np.ndarray:
    return _smoothed(x, n, 1.0 / n)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    close = np.asarray(close, float)
    out = np.full(close.shape, np.nan)
    if close.shape[-1] <= n:
        return out
    change = np.diff(close, axis=-1)
    up, down = rma(np.maximum(change, 0.0), n), rma(np.maximum(-change, 0.0), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + up / down)
    value = np.where(down == 0, np.where(up == 0, 50.0, 100.0), value)
    out[..., 1:] = np.where(np.isnan(up), np.nan, value)
    return np.round(out, _DECIMALS)


def bollinger(close: np.ndarray, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(middle, upper, lower)."""
    mid = sma(close, n)
    mean_sq = sma(np.square(np.asarray(close, float)), n)
    sd = np.sqrt(np.maximum(mean_sq - np.square(mid), 0.0))
    return mid, np.round(mid + k * sd, _DECIMALS), np.round(mid - k * sd, _DECIMALS)


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macd, signal, histogram); the signal starts once ``signal`` MACD values exist."""
    line = ema(close, fast) - ema(close, slow)
    sig = np.full(line.shape, np.nan)
    first = slow - 1
    if line.shape[-1] > first:
        sig[..., first:] = ema(line[..., first:], signal)
    return np.round(line, _DECIMALS), np.round(sig, _DECIMALS), np.round(line - sig, _DECIMALS)


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
    return np.round(out, _DECIMALS)


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
        args: list[float] = []
        for i, default in enumerate(_DEFAULTS[kind]):
            raw = given[i] if i < len(given) and given[i] != "" else None
            if raw is not None and not re.fullmatch(r"\d+(\.\d+)?", raw):
                raise StudyError(f"{part.strip()!r}: {raw!r} is not a positive number")
            value = float(raw) if raw is not None else float(default)
            if kind == "bb" and i == 1:
                if not 0 < value <= 10:
                    raise StudyError(f"{part.strip()!r}: the band width must be above 0 and at most 10")
            elif value != int(value) or not 1 <= value <= MAX_PERIOD:
                raise StudyError(f"{part.strip()!r}: periods are whole numbers from 1 to {MAX_PERIOD}")
            args.append(value)
        if kind == "macd" and args[0] >= args[1]:
            raise StudyError(f"{part.strip()!r}: the fast period must be shorter than the slow one")
        study = Study(kind, tuple(args))
        if study not in out:
            out.append(study)
    if len(out) > MAX_STUDIES:
        raise StudyError(f"at most {MAX_STUDIES} indicators per chart")
    return out


def compute(study: Study, bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A study's lines over ``bars`` (1-D ``open``/``high``/``low``/``close``/``volume``/``session``)."""
    close = bars["close"]
    a = [int(x) for x in study.args]
    if study.kind == "sma":
        return {"value": sma(close, a[0])}
    if study.kind == "ema":
        return {"value": ema(close, a[0])}
    if study.kind == "vwap":
        return {"value": vwap(bars["high"], bars["low"], close, bars["volume"], bars["session"])}
    if study.kind == "bb":
        mid, upper, lower = bollinger(close, a[0], study.args[1])
        return {"middle": mid, "upper": upper, "lower": lower}
    if study.kind == "rsi":
        return {"value": rsi(close, a[0])}
    line, sig, hist = macd(close, *a)
    return {"macd": line, "signal": sig, "histogram": hist}


def lookback(studies: list[Study]) -> int:
    """Bars a study needs before its first value: how far back a chart reads to draw from its start."""
    need = 0
    for s in studies:
        if s.kind == "macd":
            need = max(need, int(s.args[1]) + int(s.args[2]) * 4)
        elif s.kind in ("ema", "rsi"):
            need = max(need, int(s.args[0]) * 4)  # an EMA's seed fades within ~4 periods
        elif s.kind != "vwap":
            need = max(need, int(s.args[0]))
    return need
