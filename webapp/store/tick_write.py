"""A tick's Postgres write: its quotes and alerts by COPY, and the writes that join the same
transaction.

Each tick writes its quotes and its alerts with one COPY each, inside one
transaction.  The natural keys are unique, so a retried minute adds nothing:
in the rare retry where a COPY meets rows already there, the rows are merged
through a staging table with ON CONFLICT DO NOTHING instead.
Postgres is written before Redis, so a failure between the two is repaired by
the retry rather than lost.
"""
from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import timezone
from typing import Any

import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webapp.store import pg, retention
from webapp.store.quotes import QUOTE_COLUMNS, QuoteRow, quote_lines
from webapp.store.sma_alerts import ALERT_COLUMNS, AlertRow, alert_lines

log = logging.getLogger(__name__)


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
                self._batches.append(("quotes", QUOTE_COLUMNS, quote_lines(quotes)))
            if alerts:
                self._batches.append(("alerts", ALERT_COLUMNS, alert_lines(alerts)))
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
                pg.copy_rows(cursor, table, columns, data)  # by module: the bench counts COPYs
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
            pg.merge_copy(self.session, table, columns, data)
        self._write_all()

    def _write_all(self) -> None:
        conn = self.session.connection()
        for write in self._also:
            write(conn)
        self.session.commit()


def insert_tick(session: Session, quotes: Sequence[QuoteRow], alerts: Sequence[AlertRow]) -> None:
    """Store one tick's accepted quotes and fired alerts: a COPY each, one commit."""
    PendingInsert(session, quotes, alerts).finish()
