"""The shape of a stored reading and of what users see, as pure functions.

The worker stores a *document* per ticker in Redis (the latest reading, with
the exact SMA it needs for the next crossover) and turns it into the public
view for ``stock_update``, ``quote`` and ``GET /api/stocks``.  One function
builds each, so the three can never drift apart.
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

    It keeps what the next reading needs: the window (integer ticks) and the
    exact SMA.  ``when`` is ``quote.time.isoformat()``, passed in when the
    caller formats one time for many quotes.
    """
    chg, pct = change(quote.price, quote.prev_close)
    when = when or quote.time.isoformat()
    if alert is not None:
        last_alert = {"kind": alert, "time": when, "price": quote.price,
                      "sma": average.value if average else None}
    return {
        "t": int(quote.time.timestamp()),
        "ticker": quote.ticker,
        "time": when,
        "price": quote.price,
        "sma": average.value if average else None,
        "sma_total": average.total if average else None,
        "sma_count": average.count if average else None,
        "window": window,
        "alert": alert,
        "last_alert": last_alert,
        "change": chg,
        "change_pct": pct,
        "prev_close": quote.prev_close,
        "open": quote.open,
        "high": quote.high,
        "low": quote.low,
        "volume": quote.volume,
        "source": quote.source,
    }


def doc_sma(doc: dict[str, Any]) -> Sma | None:
    """The exact SMA kept in a document (``None`` while the window was short)."""
    if doc.get("sma_total") is None or not doc.get("sma_count"):
        return None
    return Sma(int(doc["sma_total"]), int(doc["sma_count"]))


def doc_quote(doc: dict[str, Any], times: dict[str, datetime] | None = None) -> Quote:
    """The quote a document was built from (what providers get as ``previous``).

    ``times`` caches parsed times across calls: a tick's documents share a
    handful of provider times.
    """
    text = doc["time"]
    when = times.get(text) if times is not None else None
    if when is None:
        when = datetime.fromisoformat(text)
        if times is not None:
            times[text] = when
    return Quote(
        doc["ticker"], doc["price"], when, doc.get("volume"),
        doc.get("prev_close"), doc.get("open"), doc.get("high"), doc.get("low"),
        doc.get("source") or "",
    )


_PUBLIC = ("ticker", "price", "sma", "alert", "time", "change", "change_pct",
           "prev_close", "volume", "last_alert")


def public_view(
    doc: dict[str, Any],
    stale_reason: str | None,
    now: datetime,
    max_age_seconds: float | None,
) -> dict[str, Any]:
    """What users see for one ticker: BRIEF's keys plus staleness, never internals.

    ``max_age_seconds`` is how old a reading may get before it counts as
    stale; ``None`` while the market is closed (yesterday's close is not stale).
    """
    out = {k: doc.get(k) for k in _PUBLIC}
    age = now.timestamp() - float(doc["t"])
    out["age_seconds"] = max(0, round(age))
    if stale_reason is None and max_age_seconds is not None and age > max_age_seconds:
        stale_reason = f"no new reading for {int(age)} s"
    out["stale"] = stale_reason is not None
    out["stale_reason"] = stale_reason
    return out
