"""The launcher's guard: when ``make run`` dies without cleaning up, clean up for it.

A SIGKILLed launcher runs no ``finally``.  Its Procfile processes and its
redis-server die with it (``PR_SET_PDEATHSIG``), but the embedded Postgres is
a daemon started by ``pg_ctl`` and would keep running, with the launcher's
pid left in its handle list.  This small process, in its own session so the
terminal's signals pass it by, waits for the launcher's pid to go and then
stops what is left: the redis-server, Postgres (if no other live process
holds a handle on it) and the ``running.json`` the CLI reads.  When the
launcher stops cleanly it terminates the guard, which then does nothing.

    python -m webapp.launch.guard LAUNCHER_PID RUNNING_FILE [--redis-pid N --redis-dir D] [--pgdata P]
"""
from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil

log = logging.getLogger("webapp.launch.guard")


def clean_up(redis_pid: int | None, redis_dir: str | None, pgdata: str | None, running: Path) -> None:
    from webapp.launch.embedded import EmbeddedPostgres, postgres_running, prune_handles

    running.unlink(missing_ok=True)
    if redis_pid:
        try:  # usually gone already (it dies with its parent); a zombie or a reused pid is left alone
            proc = psutil.Process(redis_pid)
            if "redis" in " ".join(proc.cmdline()):
                proc.terminate()
                proc.wait(5)
        except psutil.TimeoutExpired:
            proc.kill()
        except psutil.Error:
            pass
    if redis_dir:
        shutil.rmtree(redis_dir, ignore_errors=True)
    if pgdata and postgres_running(Path(pgdata)) and not prune_handles(Path(pgdata)):
        EmbeddedPostgres(Path(pgdata)).stop()  # a handle of our own, the last one: it stops the server
        log.info("guard: stopped the embedded Postgres the launcher left running")


def launcher_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m webapp.launch.guard")
    parser.add_argument("launcher", type=int)
    parser.add_argument("running", type=Path)
    parser.add_argument("--redis-pid", type=int)
    parser.add_argument("--redis-dir")
    parser.add_argument("--pgdata")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the launcher stopped cleanly: nothing to do
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while launcher_alive(args.launcher):
        time.sleep(0.5)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # from here on, finish the clean-up
    clean_up(args.redis_pid, args.redis_dir, args.pgdata, args.running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
