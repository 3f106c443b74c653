"""``make run`` (``python -m webapp.launch``): the whole product on one machine.

Embedded Redis and Postgres when their URLs are unset, the migrations, then
the Procfile's processes (web, worker, scheduler, stream, deliver, evaluate) under
:class:`~webapp.launch.supervisor.Supervisor`.
The URLs go into ``DATA_DIR/running.json`` so that ``flask --app wsgi …`` in
another terminal finds the same servers.  Ctrl-C, SIGTERM and SIGHUP (a
closed terminal, a dropped SSH session) all stop everything; a guard process
(:mod:`webapp.launch.guard`) cleans up even when the launcher is SIGKILLed.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from types import FrameType

from webapp.config import (
    DEV_SECRET_KEY,
    Config,
    child_environment,
    exit_on_config_error,
    running_file,
    secret_key_file,
)
from webapp.launch.embedded import ROOT, EmbeddedPostgres, EmbeddedRedis, services_for
from webapp.launch.supervisor import Supervisor

log = logging.getLogger("webapp.launch")

PROCESSES = ("web", "worker", "scheduler", "stream", "deliver", "evaluate")


class Stop(Exception):
    """A stop signal arrived."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def tracked_count(cfg: Config) -> int:
    """How many symbols the tick will track: the table, seeded from SYMBOLS as the tick does."""
    from webapp import create_app
    from webapp.extensions import db
    from webapp.store import symbols

    app = create_app(cfg.with_overrides(LOG_LEVEL="WARNING"))
    with app.app_context():
        symbols.seed(db.session, cfg.SYMBOLS)
        count = len(symbols.active_tickers(db.session))
        db.session.remove()
        db.engine.dispose()
    return count


def start_guard(started: list[EmbeddedRedis | EmbeddedPostgres], running: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "webapp.launch.guard", str(os.getpid()), running]
    for server in started:
        if isinstance(server, EmbeddedRedis):
            args += ["--redis-pid", str(server.proc.pid), "--redis-dir", str(server.dir)]
        else:
            args += ["--pgdata", str(server.pgdata)]
    # its own session: the terminal's SIGHUP and Ctrl-C must not reach it
    return subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdin=subprocess.DEVNULL)


def session_key(cfg: Config) -> str:
    """SECRET_KEY as set; else one made once and kept in the data directory (0600), so sign-in
    sessions survive a restart and no two installs share the development key."""
    if cfg.SECRET_KEY != DEV_SECRET_KEY:
        return cfg.SECRET_KEY
    path = secret_key_file(cfg.DATA_DIR)
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_config_error():
        cfg = Config.from_env(discover=False)  # the launcher starts servers; it never borrows them
    host = cfg.WEB_HOST or "127.0.0.1"
    if port_in_use(host, cfg.PORT):
        print(f"make run: port {cfg.PORT} on {host} is in use (another `make run`?); "
              f"stop it or choose another with PORT=…", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: FrameType | None) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # one stop; a second signal must not cut it short
        raise Stop(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    running = running_file(cfg.DATA_DIR)
    started: list[EmbeddedRedis | EmbeddedPostgres] = []
    supervisor: Supervisor | None = None
    try:
        with services_for(cfg, started) as cfg:
            guard = start_guard(started, str(running))
            try:
                # on the defaults (both sim), the minute tick reads the simulated stream's bars, so a
                # newcomer sees prices move every second and the minute readings agree with them
                streamed = cfg.MARKET_DATA_PROVIDER == "sim" and cfg.STREAM_PROVIDER == "sim"
                env = child_environment(REDIS_URL=cfg.REDIS_URL or "", DATABASE_URL=cfg.DATABASE_URL or "",
                                        WEB_HOST=host, PORT=str(cfg.PORT), SECRET_KEY=session_key(cfg),
                                        **({"MARKET_DATA_PROVIDER": "stream"} if streamed else {}))
                subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
                               env=env, cwd=ROOT, check=True)
                running.parent.mkdir(parents=True, exist_ok=True)
                running.write_text(json.dumps({  # what a `flask` command in another terminal uses too
                    "pid": os.getpid(), "REDIS_URL": cfg.REDIS_URL, "DATABASE_URL": cfg.DATABASE_URL,
                    "MARKET_DATA_PROVIDER": "stream" if streamed else cfg.MARKET_DATA_PROVIDER}))
                running.chmod(0o600)
                log.info("\n  Stock tracker: http://%s:%s/   (provider %s, %d symbols, tick %d s)\n"
                         "  Ctrl-C stops everything. `flask --app wsgi …` in another terminal uses "
                         "these servers.\n", host, cfg.PORT,
                         "stream (sim)" if streamed else cfg.MARKET_DATA_PROVIDER,
                         tracked_count(cfg), cfg.TICK_SECONDS)
                supervisor = Supervisor(ROOT / "Procfile", PROCESSES, env, ROOT)
                supervisor.run()
            finally:
                if supervisor is not None:
                    supervisor.stop()
                running.unlink(missing_ok=True)
                guard.terminate()
    except Stop as why:
        log.info("stopped (%s)", why)
    except subprocess.CalledProcessError as exc:
        log.error("make run: %s failed with code %s", " ".join(exc.cmd[2:5]), exc.returncode)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
