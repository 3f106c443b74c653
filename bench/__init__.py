"""Benchmarks: each prints JSON lines with the work size, the median and what was counted."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


@contextmanager
def bench_app(**overrides: Any) -> Iterator[tuple[Any, Any]]:
    """The benchmarks' servers and the app on them, migrations applied: ``(config, app)``.

    The environment's settings (a DATABASE_URL or REDIS_URL set is used), but never a running
    ``make run``'s servers, and embedded ones kept in ``.data/bench``: a benchmark empties tables
    and seeds thousands of symbols, which must not become the next ``make run``'s."""
    from flask_migrate import upgrade

    from webapp import create_app
    from webapp.config import Config
    from webapp.launch.embedded import services_for

    with services_for(Config.from_env(discover=False).with_overrides(DATA_DIR=".data/bench")) as cfg:
        app = create_app(cfg.with_overrides(LOG_LEVEL="WARNING", **overrides))
        with app.app_context():
            upgrade()
        yield cfg, app


def bench_user() -> int:
    """The id of the benchmarks' own user (made on first use): rules and endpoints have an owner."""
    import secrets

    from webapp.extensions import db
    from webapp.store import users

    got = users.by_name(db.session, "bench") or users.create(db.session, "bench", secrets.token_urlsafe(16))
    return got.id


def process_log(name: str) -> IO[bytes]:
    """A bench process's stderr, kept in ``.data/bench/<name>.log`` (made here: a clean clone given
    REDIS_URL and DATABASE_URL has no such folder) to read after a run that went wrong."""
    from webapp.launch.embedded import ROOT

    logs = ROOT / ".data" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    return open(logs / f"{name}.log", "wb")  # the child process holds it open
