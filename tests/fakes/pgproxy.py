"""A TCP proxy in front of the test Postgres that a test can cut and restore.

It stands in for the network (or a Postgres restart) between our processes
and the database: cutting it closes every open connection and refuses new
ones, exactly what a client sees while Postgres is down; restoring it lets
connections through again.  The database itself is the real one.
"""
from __future__ import annotations

import socket
import threading
from pathlib import Path

from sqlalchemy.engine import make_url


class PgProxy:
    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        host = url.query.get("host") or url.host or "127.0.0.1"
        port = url.port or 5432
        if isinstance(host, tuple):
            host = host[0]
        if str(host).startswith("/"):
            self.upstream: tuple = (socket.AF_UNIX, str(Path(host) / f".s.PGSQL.{port}"))
        else:
            self.upstream = (socket.AF_INET, (host, port))
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.port = self._listen(0)
        self.url = url.set(host="127.0.0.1", port=self.port, query={}).render_as_string(hide_password=False)

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener.getsockname()[1]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            family, address = self.upstream
            server = socket.socket(family)
            try:
                server.connect(address)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Postgres goes away: open connections drop, new ones are refused."""
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone does not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        """Postgres is back on the same address."""
        self._listen(self.port)

    def close(self) -> None:
        self.cut()
