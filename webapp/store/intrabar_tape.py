"""What the evaluate process judged on the print, kept for replays (table ``intrabar_seconds``).

A row per ticker and second: the provisional bar as the last hand-off of
that second left it, and the highest and lowest trade of the hand-offs
judged in that second (``seg_*``; NULL in rows stored before they were
kept).  The evaluate process writes a second's rows once it is over, in
the transaction of the batch that follows it (an upsert: a retried batch
or the shard's next holder writes the same row again, or a later state of
it).  Replays read them back in order
(:mod:`webapp.evaluate.replay`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.handoff import Handoffs
from webapp.core.rules.intrabar import Provisional
from webapp.store.pg import array_text

_WRITE = sa.text("""
    INSERT INTO intrabar_seconds (ticker, second, bar_time, open, high, low, close, volume, trades,
                                  last_ms, high_ms, low_ms, halted, seg_high, seg_high_ms, seg_low,
                                  seg_low_ms)
    SELECT * FROM unnest(CAST(:ticker AS text[]), CAST(:second AS bigint[]), CAST(:bar_time AS bigint[]),
        CAST(:open AS float8[]), CAST(:high AS float8[]), CAST(:low AS float8[]), CAST(:close AS float8[]),
        CAST(:volume AS float8[]), CAST(:trades AS int[]), CAST(:last_ms AS bigint[]),
        CAST(:high_ms AS bigint[]), CAST(:low_ms AS bigint[]), CAST(:halted AS bool[]),
        CAST(:seg_high AS float8[]), CAST(:seg_high_ms AS bigint[]), CAST(:seg_low AS float8[]),
        CAST(:seg_low_ms AS bigint[]))
    ON CONFLICT (ticker, second) DO UPDATE SET bar_time = EXCLUDED.bar_time, open = EXCLUDED.open,
      high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume,
      trades = EXCLUDED.trades, last_ms = EXCLUDED.last_ms, high_ms = EXCLUDED.high_ms,
      low_ms = EXCLUDED.low_ms, halted = EXCLUDED.halted, seg_high = EXCLUDED.seg_high,
      seg_high_ms = EXCLUDED.seg_high_ms, seg_low = EXCLUDED.seg_low, seg_low_ms = EXCLUDED.seg_low_ms
    WHERE (EXCLUDED.bar_time, EXCLUDED.trades) >= (intrabar_seconds.bar_time, intrabar_seconds.trades)""")


class Second(NamedTuple):
    bar: Provisional
    halted: bool


def write(session: Session, seconds: Handoffs, halted: np.ndarray) -> int:
    """In the caller's transaction: these seconds (one row per ticker and second, as
    :func:`webapp.core.handoff.per_second` leaves them; ``halted`` beside them), one statement."""
    if not len(seconds):
        return 0
    ints = {k: array_text(seconds.col(k).astype(np.int64).tolist())
            for k in ("bar_time", "trades", "last_ms", "high_ms", "low_ms")}
    kept = ~np.isnan(seconds.col("seg_high"))
    segments = {}  # NULL where none was kept
    for k, kind in (("seg_high", float), ("seg_high_ms", np.int64), ("seg_low", float),
                    ("seg_low_ms", np.int64)):
        values = seconds.col(k).astype(kind).astype(object)
        values[~kept] = None
        segments[k] = array_text(values.tolist())
    session.execute(_WRITE, {  # each column one array literal (pg.array_text): a list costs 30x more
        "ticker": array_text(seconds.tickers.tolist(), text=True),
        "second": array_text((seconds.col("last_ms").astype(np.int64) // 1000).tolist()), **ints,
        **{k: array_text(seconds.col(k).tolist()) for k in ("open", "high", "low", "close", "volume")},
        "halted": array_text(np.asarray(halted, bool).tolist()), **segments})
    return len(seconds)


def read(session: Session, tickers: Sequence[str], start_s: int, end_s: int, limit: int) -> list[Second]:
    """The stored seconds of ``tickers`` in [start_s, end_s), oldest first (at most ``limit``)."""
    got = session.execute(sa.text(
        "SELECT ticker, bar_time, open, high, low, close, volume, trades, last_ms, high_ms, low_ms, halted, "
        "seg_high, seg_high_ms, seg_low, seg_low_ms "
        "FROM intrabar_seconds WHERE ticker = ANY(:tickers) AND second >= :start AND second < :end "
        "ORDER BY second, ticker LIMIT :limit"),
        {"tickers": list(tickers), "start": start_s, "end": end_s, "limit": limit})
    # a row with no segment (stored before they were kept): its bar's extremes stand in
    return [Second(Provisional(r.ticker, r.bar_time, r.open, r.high, r.low, r.close, r.volume, r.trades,
                               r.last_ms, r.high_ms, r.low_ms, *(() if r.seg_high is None else (
                                   r.seg_high, r.seg_high_ms, r.seg_low, r.seg_low_ms))), r.halted)
            for r in got]


def prune(session: Session, before_s: int) -> int:
    """Delete the seconds before ``before_s``, in the caller's transaction; how many went."""
    return session.execute(sa.text("DELETE FROM intrabar_seconds WHERE second < :cut"),
                           {"cut": before_s}).rowcount or 0
