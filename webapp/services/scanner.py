"""The scanner's ranked lists as users see them, with how fresh they are, and the RVOL profile."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import orjson

from webapp import names
from webapp.core import scanner as scan_core
from webapp.core import scanner_live
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
    unknown = [name for name in wanted if name not in ALL_LISTS]
    if unknown:
        raise UnknownList(unknown[0])
    now = now or datetime.now(timezone.utc)
    live = [name for name in wanted if name in scanner_live.LIVE_LISTS]
    wanted = [name for name in wanted if name not in live]
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
    out = {
        name: {"list": name, "title": scan_core.LIST_TITLES[name], "rule": scan_core.LIST_RULES[name],
               "as_of": last["at"] if last else None, "stale": stale, "market": market_json,
               "filters": applied, "rows": rows[name], "live": False}
        for name in wanted
    }
    if live:
        out.update(live_lists(live, limit, extra, market_json, applied))
    return out


def live_lists(wanted: Sequence[str], limit: int, extra: Filters | None, market_json: dict[str, Any],
               applied: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The lists only the scanner every second makes (``running_up`` …), as last announced; empty,
    and ``live`` false, while no evaluate process announces them (the stream is down, or none runs).
    The filters (price, volume today, RVOL) apply to each row as to a minute list's: the evaluate
    process applied the configured ones, the query's narrow what it announced (``halted`` is
    every halt, whatever its price)."""
    client = get_redis()
    raw, on = client.mget([names.SCAN_ANNOUNCED_KEY, names.SCAN_LIVE_KEY])
    announced = orjson.loads(raw) if raw else {}
    out = {}
    for name in wanted:
        held = announced.get(name) if on else None
        rows = list(held["rows"]) if held else []
        if extra is not None and name != "halted":
            rows = [r for r in rows if scanner_live.within(r, *extra)]
        out[name] = {"list": name, "title": scanner_live.LIVE_TITLES[name],
                     "rule": scanner_live.LIVE_RULES[name], "as_of": held["time"] if held else None,
                     "stale": not on, "market": market_json, "filters": applied, "rows": rows[:limit],
                     "live": bool(on), "warming_up": bool(held and held.get("warming_up")),
                     "session": held.get("session") if held else None}
    return out


def scanner_list(name: str, limit: int, extra: Filters | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """One ranked list (see :func:`scanner_lists`)."""
    return scanner_lists([name], limit, extra, now)[name]


ALL_LISTS = (*scan_core.LISTS, *scanner_live.LIVE_LISTS)


class UnknownList(LookupError):
    """A scanner list name that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown scanner list {name!r}: one of {', '.join(ALL_LISTS)}")
