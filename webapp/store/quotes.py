"""Cold data in Postgres: batched inserts per tick and the reads that rebuild Redis.

Each tick writes its quotes and its alerts with one COPY each, inside one
transaction.  The natural keys are unique, so a retried minute adds nothing:
in the rare retry where a COPY meets rows already there, the rows are merged
through a staging table with ON CONFLICT DO NOTHING instead.
Postgres is written before Redis, so a failure between the two is repaired by
the retry rather than lost.
"""
from __future__ import annotations

import io
import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.core.market import EXCHANGE_TZ
from webapp.core.quotes import Quote
from webapp.store import retention

log = logging.getLogger(__name__)

_QUOTE_COLUMNS = "ticker, time, price, volume, prev_close, open, high, low, sma, source"
_ALERT_COLUMNS = "ticker, time, kind, price, sma"

_RECENT = sa.text(
    """
    SELECT t.ticker, q.time, q.price, q.volume, q.prev_close, q.open, q.high, q.low, q.source
    FROM unnest(CAST(:tickers AS varchar[])) AS t(ticker)
    CROSS JOIN LATERAL (
        SELECT time, price, volume, prev_close, open, high, low, source FROM quotes
        WHERE quotes.ticker = t.ticker ORDER BY time DESC LIMIT :n
    ) AS q
    ORDER BY t.ticker, q.time
    """
)

_LAST_ALERTS = sa.text(
    """
    SELECT DISTINCT ON (ticker) ticker, kind, time, price, sma FROM alerts
    WHERE ticker = ANY(CAST(:tickers AS varchar[]))
    ORDER BY ticker, time DESC
    """
)


_STORED_BETWEEN = sa.text(
    """
    SELECT DISTINCT ticker FROM quotes
    WHERE ticker = ANY(CAST(:tickers AS varchar[])) AND time >= :start AND time < :end
    """
)

_ALERTS_BETWEEN = sa.text(
    """
    SELECT ticker, time, kind, price, sma FROM alerts
    WHERE ticker = ANY(CAST(:tickers AS varchar[])) AND time >= :start AND time < :end
    ORDER BY time, ticker
    """
)


# What a Postgres outage raises, through SQLAlchemy and on the COPY's raw cursor.
DB_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, psycopg2.OperationalError, psycopg2.InterfaceError)


class QuoteRow(NamedTuple):
    """A validated quote as stored, with the SMA it had (None while the window filled)."""

    quote: Quote
    sma: float | None


class AlertRow(NamedTuple):
    ticker: str
    time: datetime
    kind: str
    price: float
    sma: float


_NULL = "\\N"


def _quote_lines(rows: Sequence[QuoteRow]) -> io.StringIO:
    """COPY text format.  Tickers and sources are validated [A-Z0-9.-] / plain
    names and the rest are numbers or ISO times, so nothing needs escaping."""
    null = _NULL
    times: dict[datetime, str] = {}
    lines = []
    for r in rows:
        q = r.quote
        when = times.get(q.time) or times.setdefault(q.time, q.time.isoformat())
        lines.append(
            f"{q.ticker}\t{when}\t{q.price}\t{null if q.volume is None else q.volume}"
            f"\t{null if q.prev_close is None else q.prev_close}\t{null if q.open is None else q.open}"
            f"\t{null if q.high is None else q.high}\t{null if q.low is None else q.low}"
            f"\t{null if r.sma is None else r.sma}\t{q.source}\n"
        )
    return io.StringIO("".join(lines))


def _alert_lines(rows: Sequence[AlertRow]) -> io.StringIO:
    return io.StringIO("".join(
        f"{a.ticker}\t{a.time.isoformat()}\t{a.kind}\t{a.price}\t{a.sma}\n" for a in rows
    ))


def _merge(session: Session, table: str, columns: str, data: io.StringIO, staging: str = "in") -> None:
    """COPY into a staging table (one per column set: ``staging`` names it), then insert what is
    not stored yet."""
    cursor = session.connection().connection.dbapi_connection.cursor()
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {table}_{staging} ON COMMIT DELETE ROWS "
        f"AS SELECT {columns} FROM {table} WITH NO DATA"
    )
    cursor.copy_expert(f"COPY {table}_{staging} ({columns}) FROM STDIN", data)
    cursor.execute(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_{staging} ON CONFLICT DO NOTHING"
    )


def _copy(cursor: Any, table: str, columns: str, data: io.StringIO) -> None:
    # one read of the whole text: psycopg2 reads ``size`` characters at a time
    # (8 KB by default) and each read needs the GIL, which the tick's thread holds
    cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", data, size=max(8192, len(data.getvalue())))


class PendingInsert:
    """A tick's COPYs and the writes that join their transaction, started now and committed by :meth:`finish`.

    The COPY text is built here and sent on a helper thread (on the session's
    own connection, which nothing else touches meanwhile), so Postgres stores
    the rows while the tick evaluates its rules and prepares its Redis write.
    Writes handed to :meth:`then` run on the same thread after the COPYs, in
    the same transaction.  Nothing is committed until ``finish``, which the
    tick calls before it writes Redis.
    """

    def __init__(self, session: Session, quotes: Sequence[QuoteRow], alerts: Sequence[AlertRow]) -> None:
        self.session = session
        self._also: list[Callable[[sa.Connection], object]] = []  # more writes for the same transaction
        self._more: queue.SimpleQueue[Callable[[sa.Connection], object] | None] = queue.SimpleQueue()
        self._batches: list[tuple[str, str, io.StringIO]] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if quotes:
            # the day partition must exist before COPY (cached: one lookup a day)
            times = {r.quote.time for r in quotes}  # a tick's quotes share a few times
            retention.ensure_partitions(session, {t.astimezone(timezone.utc).date() for t in times})
        if quotes or alerts:
            # the transaction's connection, taken here: the session needs the app context to find it
            self._conn = session.connection()
            cursor = self._conn.connection.dbapi_connection.cursor()
            # The text is built here, not on the thread: two threads running Python take turns with the
            # GIL, and each of the tick's numpy calls that lets it go would wait out the switch interval.
            if quotes:
                self._batches.append(("quotes", _QUOTE_COLUMNS, _quote_lines(quotes)))
            if alerts:
                self._batches.append(("alerts", _ALERT_COLUMNS, _alert_lines(alerts)))
            self._thread = threading.Thread(target=self._run, args=(cursor,), daemon=True)
            self._thread.start()

    def then(self, write: Callable[[sa.Connection], object]) -> None:
        """Run ``write(connection)`` inside this transaction, after the COPYs, while the caller goes on."""
        self._also.append(write)
        if self._thread is not None:
            self._more.put(write)

    def _run(self, cursor: Any) -> None:
        try:
            for table, columns, data in self._batches:
                _copy(cursor, table, columns, data)
            while (write := self._more.get()) is not None:
                write(self._conn)
        except BaseException as exc:  # handed to the tick's thread in finish()
            self._error = exc

    def finish(self) -> None:
        """Wait for the COPYs and the writes, and commit.

        If some rows are stored already (the retry of a tick that died after
        committing), a COPY fails as a whole; the transaction is then redone
        through staging tables that skip what exists, and the writes again.
        """
        if self._thread is None:
            self._write_all()
            return
        self._more.put(None)
        self._thread.join()
        if self._error is None:
            self.session.commit()
            return
        self.session.rollback()
        if not isinstance(self._error, psycopg2.errors.UniqueViolation):
            raise self._error
        log.info("this tick's rows were partly stored already; merging instead")
        for table, columns, data in self._batches:
            data.seek(0)
            _merge(self.session, table, columns, data)
        self._write_all()

    def _write_all(self) -> None:
        conn = self.session.connection()
        for write in self._also:
            write(conn)
        self.session.commit()


def insert_tick(session: Session, quotes: Sequence[QuoteRow], alerts: Sequence[AlertRow]) -> None:
    """Store one tick's accepted quotes and fired alerts: a COPY each, one commit."""
    PendingInsert(session, quotes, alerts).finish()


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def recent_quotes(session: Session, tickers: Sequence[str], n: int) -> dict[str, list[Quote]]:
    """The last ``n`` stored quotes per ticker, oldest first (one statement)."""
    out: dict[str, list[Quote]] = {}
    if not tickers:
        return out
    for row in session.execute(_RECENT, {"tickers": list(tickers), "n": n}):
        out.setdefault(row.ticker, []).append(
            Quote(
                row.ticker, float(row.price), row.time, row.volume, _float(row.prev_close),
                _float(row.open), _float(row.high), _float(row.low), row.source,
            )
        )
    return out


def stored_between(session: Session, tickers: Sequence[str], start: datetime, end: datetime) -> list[str]:
    """Which of ``tickers`` have a quote stored in [start, end) (one statement)."""
    if not tickers:
        return []
    return list(session.execute(_STORED_BETWEEN, {"tickers": list(tickers), "start": start, "end": end})
                .scalars())


def alerts_between(session: Session, tickers: Sequence[str], start: datetime, end: datetime
                   ) -> list[AlertRow]:
    """The alerts of ``tickers`` stored in [start, end), oldest first (one statement)."""
    if not tickers:
        return []
    rows = session.execute(_ALERTS_BETWEEN, {"tickers": list(tickers), "start": start, "end": end})
    return [AlertRow(r.ticker, r.time, r.kind, float(r.price), float(r.sma)) for r in rows]


def last_alerts(session: Session, tickers: Sequence[str]) -> dict[str, AlertRow]:
    """The most recent alert per ticker (one statement)."""
    if not tickers:
        return {}
    return {
        r.ticker: AlertRow(r.ticker, r.time, r.kind, float(r.price), float(r.sma))
        for r in session.execute(_LAST_ALERTS, {"tickers": list(tickers)})
    }



class Span(NamedTuple):
    first_minute: datetime | None  # the oldest kept reading
    first_day: datetime | None  # the oldest daily bar (New York midnight)
    last: datetime | None  # the newest reading


def data_span(session: Session, ticker: str) -> Span:
    """What history ``ticker`` has: a chart picks its timeframe from it."""
    r = session.execute(sa.text(
        "SELECT (SELECT min(time) FROM quotes WHERE ticker = :t) AS first_minute, "
        "(SELECT min(day)::timestamp AT TIME ZONE 'America/New_York' FROM daily_bars WHERE ticker = :t) "
        "AS first_day, (SELECT max(time) FROM quotes WHERE ticker = :t) AS last"), {"t": ticker}).one()
    return Span(r.first_minute, r.first_day, r.last)


def has_history(session: Session, ticker: str) -> bool:
    return session.execute(
        sa.text("SELECT EXISTS (SELECT 1 FROM quotes WHERE ticker = :t)"), {"t": ticker}
    ).scalar_one()


# Bar buckets: fixed-width intraday bins on the UTC clock (New York's offset is
# whole hours, so they are also NY-aligned), and New York calendar days for 1d.
_BUCKETS = {
    "1m": "date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "5m": "date_bin(INTERVAL '5 minutes', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "15m": "date_bin(INTERVAL '15 minutes', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "1h": "date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')",
    "1d": "(date_trunc('day', time AT TIME ZONE 'America/New_York') AT TIME ZONE 'America/New_York')",
}
INTERVALS = tuple(_BUCKETS)
INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}


class Point(NamedTuple):
    time: datetime
    price: float
    volume: int | None
    sma: float | None


class Bar(NamedTuple):
    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int | None
    count: int


def points(session: Session, ticker: str, start: datetime, end: datetime,
           after: datetime | None, limit: int) -> list[Point]:
    """Stored quotes in [start, end), oldest first, strictly after ``after``."""
    rows = session.execute(sa.text(
        "SELECT time, price, volume, sma FROM quotes WHERE ticker = :t AND time >= :start AND time < :end"
        " AND (CAST(:after AS timestamptz) IS NULL OR time > :after) ORDER BY time LIMIT :limit"),
        {"t": ticker, "start": start, "end": end, "after": after, "limit": limit})
    return [Point(r.time, float(r.price), r.volume, _float(r.sma)) for r in rows]


_DAILY_BARS = """
    SELECT (day::timestamp AT TIME ZONE 'America/New_York') AS bucket, open, high, low, close, volume,
           quotes AS n
    FROM daily_bars
    WHERE ticker = :t AND (day::timestamp AT TIME ZONE 'America/New_York') >= date_trunc('day', :start)
      AND (day::timestamp AT TIME ZONE 'America/New_York') < :end
    UNION ALL"""
# minute quotes not yet rolled up into daily_bars (today, and any day retention has not reached)
_UNROLLED = """ AND time >= coalesce((SELECT (max(day) + 1)::timestamp AT TIME ZONE 'America/New_York'
                                    FROM daily_bars WHERE ticker = :t), '-infinity')"""


def bars(session: Session, ticker: str, interval: str, start: datetime, end: datetime,
         after: datetime | None, limit: int) -> list[Bar]:
    """OHLCV bars aggregated in SQL, oldest first, buckets strictly after ``after``.

    A snapshot reading is one price, so its minute runs from the previous reading of that day
    (the bar's open) to it (the close); a reading that knows its own minute bar (backfilled,
    ``bar_open``/``bar_high``/``bar_low``) uses that.  ``1d`` bars come from ``daily_bars``
    (kept forever) for the days retention rolled up, and from the minute quotes for the rest
    (today).
    """
    bucket = _BUCKETS[interval]  # a fixed expression chosen by key, never user text
    daily = interval == "1d"
    rows = session.execute(sa.text(f"""
        SELECT * FROM ({_DAILY_BARS if daily else ""}
            SELECT {bucket} AS bucket,
                   (array_agg(coalesce(bar_open, prev, price) ORDER BY time))[1] AS open,
                   max(greatest(coalesce(bar_high, price), coalesce(bar_open, prev, price))) AS high,
                   min(least(coalesce(bar_low, price), coalesce(bar_open, prev, price))) AS low,
                   (array_agg(price ORDER BY time DESC))[1] AS close,
                   sum(volume) AS volume, count(*) AS n
            FROM (SELECT time, price, volume, bar_open, bar_high, bar_low,
                         lag(price) OVER (PARTITION BY (time AT TIME ZONE 'America/New_York')::date
                                          ORDER BY time) AS prev
                  FROM quotes WHERE ticker = :t AND time >= :start AND time < :end{_UNROLLED if daily else ""}
                 ) AS q
            GROUP BY 1
        ) AS b
        WHERE CAST(:after AS timestamptz) IS NULL OR bucket > :after
        ORDER BY bucket LIMIT :limit"""),
        {"t": ticker, "start": start, "end": end, "after": after, "limit": limit})
    return [Bar(r.bucket, float(r.open), float(r.high), float(r.low), float(r.close),
                None if r.volume is None else int(r.volume), r.n) for r in rows]


def bars_before(session: Session, ticker: str, interval: str, start: datetime, n: int) -> list[Bar]:
    """The ``n`` bars before ``start`` (oldest first): an indicator's warm-up, so a chart's lines
    are defined from its first bar.  Reads back over nights, weekends and holidays (a session is
    6.5 of 24 hours), never more than a year."""
    if n <= 0:
        return []
    spread = 2 if interval == "1d" else 4
    back = timedelta(seconds=n * INTERVAL_SECONDS[interval] * spread) + timedelta(days=5)
    got = bars(session, ticker, interval, start - min(back, timedelta(days=366)), start, None, 100_000)
    return got[-n:]


class AlertPageRow(NamedTuple):
    id: int
    alert: AlertRow


def alerts_page(session: Session, ticker: str | None, kind: str | None, since: datetime,
                before: tuple[datetime, int] | None, limit: int) -> list[AlertPageRow]:
    """Alerts newest first, older than the ``before`` (time, id) cursor."""
    rows = session.execute(sa.text(
        "SELECT id, ticker, time, kind, price, sma FROM alerts"
        " WHERE (CAST(:ticker AS varchar) IS NULL OR ticker = :ticker)"
        " AND (CAST(:kind AS varchar) IS NULL OR kind = :kind) AND time >= :since"
        " AND (CAST(:bt AS timestamptz) IS NULL OR (time, id) < (:bt, :bid))"
        " ORDER BY time DESC, id DESC LIMIT :limit"),
        {"ticker": ticker, "kind": kind, "since": since, "bt": before[0] if before else None,
         "bid": before[1] if before else 0, "limit": limit})
    return [AlertPageRow(r.id, AlertRow(r.ticker, r.time, r.kind, float(r.price), float(r.sma)))
            for r in rows]


# --- the scanner's reads -------------------------------------------------

_DAY_SO_FAR = sa.text(
    """
    SELECT t.ticker, agg.pv, agg.cv, agg.hi, agg.lo, agg.vols
    FROM unnest(CAST(:tickers AS varchar[]), CAST(:starts AS timestamptz[]),
                CAST(:ends AS timestamptz[])) AS t(ticker, day_start, upto)
    CROSS JOIN LATERAL (
        SELECT sum(price * volume) FILTER (WHERE volume IS NOT NULL) AS pv,
               sum(volume) AS cv, max(price) AS hi, min(price) AS lo,
               (array_agg(volume ORDER BY time DESC) FILTER (WHERE volume IS NOT NULL))[1:CAST(:bars AS int)]
                   AS vols
        FROM quotes WHERE quotes.ticker = t.ticker AND time >= t.day_start AND time <= t.upto
    ) AS agg
    WHERE agg.hi IS NOT NULL
    """
)


class DaySoFar(NamedTuple):
    """A ticker's session up to a reading: what the scanner keeps hot, rebuilt."""

    price_volume: float | None
    volume: float | None
    high: float
    low: float
    recent_volumes: list[int]  # oldest first


def day_so_far(
    session: Session, upto: dict[str, tuple[datetime, datetime]], bars: int
) -> dict[str, DaySoFar]:
    """Per ticker, its readings from ``(day start, last reading time)``, aggregated (one statement)."""
    if not upto:
        return {}
    tickers = list(upto)
    rows = session.execute(_DAY_SO_FAR, {
        "tickers": tickers, "starts": [upto[t][0] for t in tickers],
        "ends": [upto[t][1] for t in tickers], "bars": bars,
    })
    return {
        r.ticker: DaySoFar(_float(r.pv), _float(r.cv), float(r.hi), float(r.lo),
                           list(reversed(r.vols or [])))
        for r in rows
    }


_MINUTE_SUMS = sa.text(
    """
    SELECT ticker,
           CAST(extract(hour FROM time AT TIME ZONE :tz) * 60
                + extract(minute FROM time AT TIME ZONE :tz) AS int) AS minute,
           CAST(sum(volume) AS float8) AS volume
    FROM quotes
    WHERE time >= :start AND time < :end AND volume IS NOT NULL
      AND CAST(time AT TIME ZONE :tz AS date) = ANY(CAST(:days AS date[]))
    GROUP BY 1, 2
    """
)

_SESSIONS_PER_TICKER = sa.text(
    """
    SELECT ticker, count(DISTINCT CAST(time AT TIME ZONE :tz AS date)) AS sessions
    FROM quotes
    WHERE time >= :start AND time < :end AND volume IS NOT NULL
      AND CAST(time AT TIME ZONE :tz AS date) = ANY(CAST(:days AS date[]))
    GROUP BY 1
    """
)


def volume_by_minute(session: Session, days: Sequence[Any], start: datetime, end: datetime,
                     tz: str) -> tuple[list[tuple[str, int, float]], dict[str, int]]:
    """Σ volume per (ticker, minute of the day) over ``days``, and sessions per ticker."""
    params = {"days": list(days), "start": start, "end": end, "tz": tz}
    sums = [(r.ticker, r.minute, r.volume) for r in session.execute(_MINUTE_SUMS, params)]
    sessions = {r.ticker: int(r.sessions) for r in session.execute(_SESSIONS_PER_TICKER, params)}
    return sums, sessions


# --- the backfill's reads and writes ---------------------------------------

_BACKFILL_COLUMNS = f"{_QUOTE_COLUMNS}, bar_open, bar_high, bar_low"


def first_reading(session: Session, ticker: str) -> tuple[datetime, float] | None:
    """The oldest stored reading's time and price (a backfill never goes past it)."""
    r = session.execute(sa.text("SELECT time, price FROM quotes WHERE ticker = :t ORDER BY time LIMIT 1"),
                        {"t": ticker}).first()
    return (r.time, float(r.price)) if r else None


def before(session: Session, ticker: str, when: datetime, n: int) -> tuple[list[float], float | None]:
    """The last ``n`` prices before ``when`` (oldest first), and the last close of an earlier
    New York day (a daily bar's or a reading's): a backfilled session's SMA and previous close."""
    prices = [float(r.price) for r in session.execute(sa.text(
        "SELECT price FROM quotes WHERE ticker = :t AND time < :w ORDER BY time DESC LIMIT :n"),
        {"t": ticker, "w": when, "n": n})][::-1]
    close = session.execute(sa.text("""
        SELECT close FROM (
          (SELECT price AS close, time FROM quotes WHERE ticker = :t
             AND time < date_trunc('day', :w AT TIME ZONE 'America/New_York') AT TIME ZONE 'America/New_York'
           ORDER BY time DESC LIMIT 1)
          UNION ALL
          (SELECT close, day::timestamp AT TIME ZONE 'America/New_York' FROM daily_bars WHERE ticker = :t
             AND day < (:w AT TIME ZONE 'America/New_York')::date ORDER BY day DESC LIMIT 1)
        ) AS c ORDER BY time DESC LIMIT 1"""), {"t": ticker, "w": when}).scalar()
    return prices, None if close is None else float(close)


def store_readings(session: Session, rows: Sequence[Any]) -> None:
    """Backfilled readings (``core.backfill.BarReading``), skipping any stored already; commits."""
    if not rows:
        return
    retention.ensure_partitions(session, {r.quote.time.astimezone(timezone.utc).date() for r in rows})
    base = _quote_lines([QuoteRow(r.quote, r.sma) for r in rows]).getvalue().splitlines()
    lines = "".join(f"{line}\t{r.bar_open}\t{r.bar_high}\t{r.bar_low}\n"
                    for line, r in zip(base, rows, strict=True))
    _merge(session, "quotes", _BACKFILL_COLUMNS, io.StringIO(lines), staging="backfill")
    session.commit()


def store_daily_bars(session: Session, ticker: str, bars: Sequence[Any]) -> int:
    """Daily bars (``core.backfill.HistoryBar``, at New York midnights); a day kept already (rolled up
    from our own readings) is left as it is.  Commits; returns how many were added."""
    if not bars:
        return 0
    added = session.execute(sa.text("""
        INSERT INTO daily_bars (ticker, day, open, high, low, close, volume, quotes)
        SELECT :t, d.day, d.open, d.high, d.low, d.close, d.volume, 0
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(day date, open numeric, high numeric,
                                                            low numeric, close numeric, volume bigint)
        ON CONFLICT DO NOTHING"""), {"t": ticker, "rows": json.dumps([
            {"day": b.time.astimezone(EXCHANGE_TZ).date().isoformat(), "open": b.open, "high": b.high,
             "low": b.low, "close": b.close, "volume": b.volume} for b in bars])}).rowcount
    session.commit()
    return added or 0
