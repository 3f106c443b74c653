"""Benchmarks: each prints JSON lines with the work size, the median and what was counted."""


def bench_user() -> int:
    """The id of the benchmarks' own user (made on first use): rules and endpoints have an owner."""
    import secrets

    from webapp.extensions import db
    from webapp.store import users

    got = users.by_name(db.session, "bench") or users.create(db.session, "bench", secrets.token_urlsafe(16))
    return got.id
