"""Count Redis round-trips and SQL statements made by real clients.

A round-trip is one request the client writes and waits on: a single
command, or a whole pipeline / script call.  We count them where redis-py
sends them, on every connection in the process (the hot store's client and
the Socket.IO publisher's alike), so nothing can hide in a side client.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from redis.connection import AbstractConnection

from webapp.store import pg


@dataclass
class Counts:
    redis_roundtrips: int = 0
    sql_statements: int = 0  # through SQLAlchemy, plus COPYs
    sql_inserts: int = 0  # INSERT statements and COPYs


@contextlib.contextmanager
def count_io(engine: sa.Engine | None = None) -> Iterator[Counts]:
    counts = Counts()
    lock = threading.Lock()
    original = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        with lock:
            counts.redis_roundtrips += 1
        return original(self, command, check_health)

    def on_sql(conn, cursor, statement, *args):
        counts.sql_statements += 1
        if statement.lstrip().upper().startswith("INSERT"):
            counts.sql_inserts += 1

    copy = pg.copy_rows

    def counted_copy(*args, **kwargs):
        counts.sql_statements += 1
        counts.sql_inserts += 1
        return copy(*args, **kwargs)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    pg.copy_rows = counted_copy  # COPY goes to the driver directly, past SQLAlchemy
    if engine is not None:
        sa.event.listen(engine, "before_cursor_execute", on_sql)
    try:
        yield counts
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        pg.copy_rows = copy
        if engine is not None:
            sa.event.remove(engine, "before_cursor_execute", on_sql)
