"""One ticker's backfill: daily bars for a year, then its minute sessions.

Each provider gives history its own way (``webapp/providers``: ``sim``
walks back from the first reading, ``alpaca`` and ``polygon`` page through
their bars endpoints, ``finnhub`` has none on its free plans and says so).
Runs as an RQ job (``jobs/backfill.py``).  It is safe to repeat and to
interrupt: rows go in with ``ON CONFLICT DO NOTHING`` on the unique keys,
sessions are stored newest first, each committed on its own, and a run
fetches only what lies before the oldest stored reading.  A 429 is waited
out (its ``Retry-After``, up to a bound) and the run resumes where it was;
progress is in Redis for the page.  Postgres going away mid-run fails the
run with the reason (the sessions committed so far stay; the next run
fetches the rest), and the worker goes on.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from webapp.core import backfill as plan_core
from webapp.providers.base import HistorySource, HistoryThrottled, MalformedHistory, NoHistory
from webapp.store import bars as bars_store
from webapp.store import pg, quotes
from webapp.store.backfillstate import BackfillProgress

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_WAIT_SECONDS = 120.0  # one Retry-After longer than this fails the run; the next one resumes
MAX_WAITS = 20


@dataclass
class Outcome:
    ticker: str
    state: str
    sessions: int = 0  # minute sessions stored by this run
    readings: int = 0
    daily_bars: int = 0
    message: str = ""


def run(session: Session, source: HistorySource, progress: BackfillProgress, ticker: str, now: datetime,
        first_stored: datetime | None, minute_sessions: int, daily_days: int, sma_period: int,
        sleep: Callable[[float], None] = time.sleep) -> Outcome:
    """``first_stored``: the ticker's oldest stored reading (the history ends there), or None."""
    plan = plan_core.plan(now, minute_sessions, daily_days, first_stored)
    todo = list(plan.sessions)  # all before the first stored reading: what a cut-short run left
    out = Outcome(ticker, "running")
    total = 1 + 2 * len(todo)  # the daily bars; then fetching, and storing, each minute session
    step = [0]
    waits = [0]

    def advance(state: str = "running", message: str = "") -> None:
        progress.set(state, message, done=step[0], total=total, readings=out.readings,
                     daily_bars=out.daily_bars)

    def patiently(call: Callable[[], T]) -> T:
        while True:
            try:
                return call()
            except HistoryThrottled as exc:
                waits[0] += 1
                if exc.wait > MAX_WAIT_SECONDS or waits[0] > MAX_WAITS:
                    raise
                advance("waiting", f"{exc}; resuming after it")
                log.info("backfill %s: %s", ticker, exc)
                sleep(exc.wait)
                advance()

    keep = max(sma_period - 1, 1)
    advance()
    try:
        if plan.daily_end > plan.daily_start:
            bars = patiently(lambda: source.daily_bars(ticker, plan.daily_start, plan.daily_end))
            out.daily_bars = bars_store.store_daily_bars(session, ticker, bars)
        step[0] += 1
        advance()
        fetched = []  # newest first: a run cut short has stored the sessions next to the live ones
        for day in reversed(todo):
            end = min(day + timedelta(days=1), plan.minute_end)
            fetched.append(patiently(lambda d=day, e=end: source.minute_bars(ticker, d, e)))
            step[0] += 1
            advance()
        # computed oldest first (the SMA and previous close run forward), stored newest first
        prior, prev_close = quotes.before(session, ticker, todo[0], keep) if todo else ([], None)
        by_day = []
        for bars in reversed(fetched):
            rows = plan_core.readings_of(ticker, bars, source.name, sma_period, prev_close, prior)
            if rows:
                prior = [*prior, *(r.quote.price for r in rows)][-keep:]
                prev_close = rows[-1].quote.price
            by_day.append(rows)
        for rows in reversed(by_day):
            quotes.store_readings(session, rows)
            out.sessions += 1
            out.readings += len(rows)
            step[0] += 1
            advance()
    except NoHistory as exc:
        session.rollback()
        out.state, out.message = "unavailable", str(exc)
        advance("unavailable", out.message)
        return out
    except (HistoryThrottled, MalformedHistory, *pg.DB_DOWN) as exc:
        try:
            session.rollback()
        except pg.DB_DOWN:
            pass  # the connection is gone; the pool replaces it
        down = isinstance(exc, pg.DB_DOWN)
        reason = f"Postgres unavailable ({type(exc).__name__})" if down else str(exc)
        out.state, out.message = "failed", f"{reason}; a later run resumes from here"
        advance("failed", out.message)
        log.warning("backfill %s stopped: %s", ticker, out.message)
        return out
    out.state = "done"
    out.message = (f"{out.sessions} minute session(s), {out.readings} readings and {out.daily_bars} "
                   f"daily bar(s) stored" if out.readings or out.daily_bars else "history was complete")
    step[0] = total
    advance("done", out.message)
    return out
