"""Benchmarks: each prints JSON lines with the work size, the median and what was counted."""
from __future__ import annotations

from typing import Any


def bench_config() -> Any:
    """The benchmarks' settings: the environment's (a DATABASE_URL or REDIS_URL set is used), but
    never a running ``make run``'s servers, and embedded ones kept in ``.data/bench``: a benchmark
    empties tables and seeds thousands of symbols, which must not become the next ``make run``'s."""
    from webapp.config import Config

    return Config.from_env(discover=False).with_overrides(DATA_DIR=".data/bench")


def bench_user() -> int:
    """The id of the benchmarks' own user (made on first use): rules and endpoints have an owner."""
    import secrets

    from webapp.extensions import db
    from webapp.store import users

    got = users.by_name(db.session, "bench") or users.create(db.session, "bench", secrets.token_urlsafe(16))
    return got.id
