"""The scanner's ranked lists as users see them, with how fresh they are, and the RVOL profile."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from webapp.core import scanner as scan_core
from webapp.core.market import market_state
from webapp.core.scanner import Filters
from webapp.extensions import db, get_redis
from webapp.services.context import config, tick_services
from webapp.store.scanstore import ScanStore
from webapp.tick import scanner as tick_scanner
from webapp.tick.context import max_age


def scan_store() -> ScanStore:
    cfg = config()
    return ScanStore(get_redis(), cfg.TICK_SHARDS, cfg.HOT_TTL_SECONDS)


def build_volume_profile(now: datetime, force: bool = False) -> dict[str, Any]:
    """Today's RVOL profile from the earlier sessions in Postgres (skipped when built)."""
    return tick_scanner.build_profile(db.session, scan_store(), config(), now, force)


def scanner_lists(wanted: Sequence[str], limit: int, extra: Filters | None = None,
                  now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Ranked lists as users see them, with how fresh they are (one read of the scan).

    A list is the last tick's: only symbols that had a fresh reading then are
    in it (a stale one never ranks, whatever its last values were); ``as_of``
    is that tick and ``stale`` says when it is too old to act on.
    """
    unknown = [name for name in wanted if name not in scan_core.LISTS]
    if unknown:
        raise UnknownList(unknown[0])
    now = now or datetime.now(timezone.utc)
    svc = tick_services()
    cfg = svc.config
    market = market_state(now)
    limit_age = max_age(cfg, svc.provider, market)
    last = svc.hot.last_tick()
    ran_at = datetime.fromisoformat(last["ran_at"]) if last else now
    rows = (tick_scanner.ranked_lists(scan_store(), cfg, wanted, ran_at, limit_age, limit, extra) if last
            else {name: [] for name in wanted})
    stale = last is None or (limit_age is not None and now.timestamp() - ran_at.timestamp() > limit_age)
    applied = (tick_scanner.filters(cfg).tightened(extra) if extra else tick_scanner.filters(cfg))._asdict()
    market_json = market.as_json()
    return {
        name: {"list": name, "title": scan_core.LIST_TITLES[name], "rule": scan_core.LIST_RULES[name],
               "as_of": last["at"] if last else None, "stale": stale, "market": market_json,
               "filters": applied, "rows": rows[name]}
        for name in wanted
    }


def scanner_list(name: str, limit: int, extra: Filters | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """One ranked list (see :func:`scanner_lists`)."""
    return scanner_lists([name], limit, extra, now)[name]


class UnknownList(LookupError):
    """A scanner list name that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown scanner list {name!r}: one of {', '.join(scan_core.LISTS)}")
