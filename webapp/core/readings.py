"""The shape of a stored reading and of what users see, as pure functions.

The worker keeps one *document* per ticker in Redis: ``{"v": view, "w":
window, "s": sma_total, "n": sma_count}``.  ``view`` is exactly what users
see for the reading (``quote`` events, ``stock_update`` rows, ``GET
/api/stocks``), built once per reading; ``w``, ``s`` and ``n`` are what the
next reading needs (the window in integer ticks and the exact SMA) and never
leave the server.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from webapp.core.indicators import Alert, Sma
from webapp.core.quotes import PRICE_DECIMALS, Quote


def change(price: float, prev_close: float | None) -> tuple[float | None, float | None]:
    """(change, % change) against the previous close; ``None`` without one."""
    if not prev_close:
        return None, None
    diff = price - prev_close
    return round(diff, PRICE_DECIMALS), round(diff / prev_close * 100.0, 4)


def reading_doc(
    quote: Quote,
    window: list[int],
    average: Sma | None,
    alert: Alert | None,
    last_alert: dict[str, Any] | None,
    when: str | None = None,
) -> dict[str, Any]:
    """The document stored as a ticker's latest reading.

    ``when`` is ``quote.time.isoformat()``, passed in when the caller formats
    one time for many quotes.
    """
    chg, pct = change(quote.price, quote.prev_close)
    when = when or quote.time.isoformat()
    sma = average.value if average else None
    if alert is not None:
        last_alert = {"kind": alert, "time": when, "price": quote.price, "sma": sma}
    view = {
        "ticker": quote.ticker, "price": quote.price, "sma": sma, "alert": alert, "time": when,
        "change": chg, "change_pct": pct, "prev_close": quote.prev_close, "open": quote.open,
        "high": quote.high, "low": quote.low, "volume": quote.volume, "last_alert": last_alert,
        "source": quote.source, "stale": False, "stale_reason": None,
    }
    return {
        "v": view,
        "w": window,
        "s": average.total if average else None,
        "n": average.count if average else None,
    }


def doc_sma(doc: dict[str, Any]) -> Sma | None:
    """The exact SMA kept in a document (``None`` while the window was short)."""
    total = doc["s"]
    return None if total is None else Sma(total, doc["n"])


def doc_quote(doc: dict[str, Any], times: dict[str, datetime] | None = None) -> Quote:
    """The quote a document was built from (what providers get as ``previous``).

    ``times`` caches parsed times across calls: a tick's documents share a
    handful of provider times.
    """
    v = doc["v"]
    text = v["time"]
    when = times.get(text) if times is not None else None
    if when is None:
        when = datetime.fromisoformat(text)
        if times is not None:
            times[text] = when
    return Quote(v["ticker"], v["price"], when, v["volume"], v["prev_close"],
                 v["open"], v["high"], v["low"], v["source"])


def public_view(
    doc: dict[str, Any],
    stale_reason: str | None,
    now: datetime,
    max_age_seconds: float | None,
) -> dict[str, Any]:
    """The view of a stored reading at ``now``, with its staleness.

    ``max_age_seconds`` is how old a reading may get before it counts as
    stale; ``None`` while the market is closed (yesterday's close is not stale).
    """
    out = dict(doc["v"])
    age = (now - datetime.fromisoformat(out["time"])).total_seconds()
    if stale_reason is None and max_age_seconds is not None and age > max_age_seconds:
        stale_reason = f"no new reading for {int(age)} s"
    out["stale"] = stale_reason is not None
    out["stale_reason"] = stale_reason
    return out
