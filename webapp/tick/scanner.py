"""The scanner's part of a tick, and the volume profiles RVOL compares against.

Per tick (see :func:`scan`): the shard's scan table from the first MGET is
carried forward, rows for this tick's accepted readings are advanced with the
pure core (:mod:`webapp.core.scanner`), and each list's candidates go into
its sorted set through the tick's one write script.  Symbols missing from
the table (Redis was emptied, a symbol was added) get their session so far
rebuilt from Postgres first, with one statement.

The lists are announced to the ``scan:<list>`` rooms as deltas against what
was announced last (``SCAN_ANNOUNCED_KEY``), unless an evaluate process
announces them every second (``SCAN_LIVE_KEY``, see
:mod:`webapp.evaluate.scanner`): the tick still stores its table and lists,
the record, and leaves the rooms to it.  Unsharded, the tick knows the
final lists itself; with shards the last shard to finish reads them back.

Volume profiles (:func:`build_profile`) are built from Postgres once per
exchange day by a scheduled job: for each symbol and minute of the day, the
average cumulative volume at that minute over the last ``RVOL_SESSIONS``
sessions.  RVOL is unknown (null) for a symbol with no earlier session;
with fewer sessions than asked for it averages those it has and says how
many (``rvol_sessions``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pandas as pd
import redis
from sqlalchemy.orm import Session

from webapp import names
from webapp.config import Config
from webapp.core import scanner as core
from webapp.core.market import EXCHANGE_TZ, calendar_for, exchange_day_start
from webapp.core.quotes import Quote
from webapp.core.tables import Table, Unreadable, pack, unpack
from webapp.store import intraday
from webapp.store.hot import ListWrite, ScanWrite
from webapp.store.scanstore import ScanStore, decode_profile, merge_tables

log = logging.getLogger(__name__)


def settings(cfg: Config) -> core.Settings:
    return core.Settings(cfg.SCAN_GAP_MIN_PCT, cfg.UNUSUAL_VOLUME_K, cfg.UNUSUAL_VOLUME_BARS,
                         min(cfg.UNUSUAL_VOLUME_MIN_BARS, cfg.UNUSUAL_VOLUME_BARS),
                         cfg.RVOL_MIN_EXPECTED_VOLUME)


def filters(cfg: Config) -> core.Filters:
    return core.Filters(cfg.SCAN_MIN_PRICE, cfg.SCAN_MAX_PRICE, cfg.SCAN_MIN_VOLUME, cfg.SCAN_MIN_RVOL)


def minute_of_day(at: datetime) -> tuple[str, int]:
    """(exchange date, minute since New York midnight by the wall clock)."""
    local = at.astimezone(EXCHANGE_TZ)
    return local.date().isoformat(), local.hour * 60 + local.minute


def fresh_mask(table: core.Table, now: datetime, max_age: float | None) -> np.ndarray:
    """Rows fit to rank: not marked stale, and recent (any age while the market is closed)."""
    has = ~np.isnan(table["price"]) & ~table["stale"]
    if max_age is None:
        return has
    with np.errstate(invalid="ignore"):
        return has & (table["time"] >= now.timestamp() - max_age)


@dataclass
class ScanInputs:
    """The scanner's values from the tick's first MGET."""

    table: bytes | None
    profile_tickers: bytes | None
    profile_minute: bytes | None
    announced: bytes | None
    live: bytes | None  # an evaluate process announces the lists each second: the tick leaves the rooms

    @staticmethod
    def keys(cfg: Config, shard: tuple[int, int], at: datetime) -> list[str]:
        day, minute = minute_of_day(at)
        return [names.scan_table_key(*shard), names.rvol_tickers_key(day),
                names.rvol_minute_key(day, minute), names.SCAN_ANNOUNCED_KEY, names.SCAN_LIVE_KEY]

    @classmethod
    def of(cls, values: Sequence[bytes | None]) -> ScanInputs:
        return cls(*values)


@dataclass
class ScanResult:
    write: ScanWrite
    updates: dict[str, dict[str, Any]] | None = None  # unsharded: scan_update per changed list
    entered: dict[str, list[str]] = field(default_factory=dict)  # ticker -> lists it entered
    table: core.Table | None = None
    position: dict[str, int] = field(default_factory=dict)  # ticker -> row of ``table``

    def row(self, ticker: str) -> dict[str, Any] | None:
        """A symbol's scanner row after this tick (built on demand: few are asked for)."""
        i = self.position.get(ticker)
        return None if i is None or self.table is None else core.row(self.table, i, ticker)


def _readings(quotes: Sequence[Quote], profile_expected: dict[str, float],
              profile_sessions: dict[str, int]) -> core.Readings:
    days: dict[datetime, int] = {}
    epochs: dict[datetime, float] = {}
    for q in quotes:
        if q.time not in days:
            days[q.time] = q.time.astimezone(EXCHANGE_TZ).date().toordinal()
            epochs[q.time] = q.time.timestamp()
    nan = float("nan")
    return core.Readings(
        price=np.array([q.price for q in quotes], float),
        volume=np.array([nan if q.volume is None else q.volume for q in quotes], float),
        prev_close=np.array([nan if q.prev_close is None else q.prev_close for q in quotes], float),
        open=np.array([nan if q.open is None else q.open for q in quotes], float),
        time=np.array([epochs[q.time] for q in quotes], float),
        day=np.array([days[q.time] for q in quotes], np.int64),
        expected=np.array([profile_expected.get(q.ticker, nan) for q in quotes], float),
        sessions=np.array([profile_sessions.get(q.ticker, 0) for q in quotes], np.int64),
    )


def _restore(session: Session, table: core.Table, symbols: Sequence[str], rows: np.ndarray,
             previous: dict[str, Quote], bars: int) -> int:
    """Rebuild the session so far for ``rows`` of ``table`` from Postgres (in place)."""
    upto = {}
    for i in rows.tolist():
        q = previous.get(symbols[i])
        if q is not None:
            upto[symbols[i]] = (exchange_day_start(q.time), q.time)
    found = intraday.day_so_far(session, upto, bars)
    position = {s: i for s, i in zip((symbols[i] for i in rows.tolist()), rows.tolist(), strict=True)}
    for ticker, agg in found.items():
        i = position[ticker]
        q = previous[ticker]
        table["day"][i] = q.time.astimezone(EXCHANGE_TZ).date().toordinal()
        table["pv"][i] = agg.price_volume if agg.price_volume is not None else np.nan
        table["cv"][i] = agg.volume if agg.volume is not None else np.nan
        table["hi"][i], table["lo"][i] = agg.high, agg.low
        vols = agg.recent_volumes[-bars:]
        if vols:
            table["vols"][i, bars - len(vols):] = vols
        table["price"][i], table["time"][i] = q.price, q.time.timestamp()
    return len(found)


def _previous_table(blob: bytes | None, shard: tuple[int, int]
                    ) -> tuple[list[str], Table | None, dict[str, Any]]:
    """The shard's scan table as the last tick left it; none if lost or unreadable (rebuilt)."""
    if blob is not None:
        try:
            return unpack(blob)
        except Unreadable as exc:
            log.error("Redis key %s does not hold a scan table (%s); rebuilding it from Postgres",
                      names.scan_table_key(*shard), exc)
    return [], None, {}


def scan(
    cfg: Config,
    session: Session,
    symbols: Sequence[str],
    accepted: Sequence[Quote],
    previous: dict[str, Quote],
    inputs: ScanInputs,
    now: datetime,
    slot: int,
    slot_time: datetime,
    shard: tuple[int, int],
    max_age: float | None,
    stale: set[str],
    rebuild: Sequence[str] = (),
) -> ScanResult:
    """Advance the shard's scan table by this tick's readings and rank its lists.

    ``stale`` holds the shard's symbols marked stale after this tick;
    ``rebuild`` those whose windows this tick rebuilt from Postgres (a slot
    that reached one store and not the other), whose session sums are then
    rebuilt from Postgres too, so the repaired minute counts once.
    """
    bars = cfg.UNUSUAL_VOLUME_BARS
    rules = settings(cfg)
    old_tickers, old_table, old_meta = _previous_table(inputs.table, shard)
    if old_table is None:
        table = core.empty(len(symbols), bars)
        missing = np.arange(len(symbols))
    else:
        where = {t: i for i, t in enumerate(old_tickers)}
        again = set(rebuild)  # an empty row, filled from Postgres below
        index = np.array([-1 if s in again else where.get(s, -1) for s in symbols], np.int64)
        table = core.take(old_table, index, bars)
        missing = np.flatnonzero(index < 0)
    if len(missing):
        restored = _restore(session, table, symbols, missing, previous, bars)
        if restored:
            log.info("scanner: rebuilt the session so far of %d symbol(s) from Postgres", restored)

    position = {s: i for i, s in enumerate(symbols)}
    if accepted:
        profile = decode_profile(inputs.profile_tickers, inputs.profile_minute)
        at = np.array([position[q.ticker] for q in accepted], np.int64)
        rows = core.advance(core.take(table, at, bars),
                            _readings(accepted, profile.expected, profile.sessions), rules)
        core.put(table, at, rows)

    table["stale"] = np.array([s in stale for s in symbols], bool)
    tickers = np.array(symbols, dtype=str) if symbols else np.array([], dtype=str)
    fresh = fresh_mask(table, now, max_age)
    flt = filters(cfg)
    lists: list[ListWrite] = []
    added: dict[str, list[str]] = {}
    ranked: dict[str, list[tuple[int, float]]] = {}
    for name in core.LISTS:
        top = core.rank(table, tickers, name, rules, flt, fresh, cfg.SCAN_DEPTH)
        ranked[name] = top
        added[name] = [symbols[i] for i, _ in top]
        lists.append(ListWrite(names.scan_list_key(name), replace=shard[1] == 1,
                               remove=list(old_meta.get("lists", {}).get(name, [])) if shard[1] > 1 else [],
                               add=[(repr(-v), symbols[i]) for i, v in top]))
    blob = pack(symbols, table, {"lists": added})
    result = ScanResult(ScanWrite(sets=[(names.scan_table_key(*shard), blob)], first_sets=[],
                                  lists=lists, depth=cfg.SCAN_DEPTH))
    result.table = table
    result.position = position
    if shard[1] == 1 and inputs.live:
        result.updates = {}  # the scanner every second announces them (webapp/evaluate/scanner.py)
    elif shard[1] == 1:
        last_announced = orjson.loads(inputs.announced) if inputs.announced else {}
        announced = {
            name: {"seq": slot, "time": slot_time.isoformat(),
                   "rows": [core.row(table, i, symbols[i], v) for i, v in top[:cfg.SCAN_TOP]]}
            for name, top in ranked.items()
        }
        result.updates, result.entered, kept = changes(last_announced, announced)
        result.write.first_sets.append((names.SCAN_ANNOUNCED_KEY, orjson.dumps(kept)))
    return result


def announce_sharded(client: redis.Redis, cfg: Config, slot: int, slot_time: datetime
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """With shards: the lists' changes, from what every shard wrote (see :func:`changes`).

    Two round-trips, only for the last shard of a slot: read the lists, the
    tables and the last announcement; then store the new announcement.
    """
    pipe = client.pipeline(transaction=False)
    for name in core.LISTS:
        pipe.zrange(names.scan_list_key(name), 0, cfg.SCAN_TOP - 1, withscores=True)
    pipe.mget([names.scan_table_key(i, cfg.TICK_SHARDS) for i in range(cfg.TICK_SHARDS)])
    pipe.get(names.SCAN_ANNOUNCED_KEY)
    pipe.get(names.SCAN_LIVE_KEY)
    *tops, blobs, raw, live = pipe.execute()
    if live:  # the scanner every second announces them (webapp/evaluate/scanner.py)
        return {}, {}
    tickers, table = merge_tables(blobs)
    where = {t: i for i, t in enumerate(tickers)}
    announced = {}
    for name, top in zip(core.LISTS, tops, strict=True):
        rows = []
        for member, score in top:
            ticker = member.decode()
            if ticker in where:
                rows.append(core.row(table, where[ticker], ticker, -score))
        announced[name] = {"seq": slot, "time": slot_time.isoformat(), "rows": rows}
    updates, entered, kept = changes(orjson.loads(raw) if raw else {}, announced)
    client.set(names.SCAN_ANNOUNCED_KEY, orjson.dumps(kept), ex=cfg.HOT_TTL_SECONDS)
    return updates, entered


def changes(previous: dict[str, Any], announced: dict[str, Any]
            ) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]], dict[str, Any]]:
    """Per changed list, the ``scan_update`` payload; per ticker, the lists it entered;
    and the announcement to keep.

    A list that did not change is not sent and keeps its previous ``seq``, so a
    client's next delta still follows on from what it holds (a re-run of a
    slot therefore sends nothing new).
    """
    updates: dict[str, dict[str, Any]] = {}
    entered: dict[str, list[str]] = {}
    kept: dict[str, Any] = {}
    for name, now in announced.items():
        before = previous.get(name)
        prev_rows = before["rows"] if before else None
        change = core.delta(prev_rows, now["rows"])
        if before is not None and not change["full"] and not (
                change.get("order") or change["add"] or change["remove"] or change["update"]):
            kept[name] = before
            continue
        kept[name] = now
        updates[name] = {"list": name, "seq": now["seq"], "time": now["time"],
                         "prev_seq": before["seq"] if before else None, **change}
        old = {r["ticker"] for r in prev_rows or ()}
        for rank, r in enumerate(now["rows"], 1):
            if r["ticker"] not in old:
                entered.setdefault(r["ticker"], []).append(f"{name}#{rank}")
    return updates, entered, kept


# --- reads for the API and pages ---------------------------------------------

def _rows(tickers: list[str], table: core.Table, picked: Sequence[tuple[int, float]]
                ) -> list[dict[str, Any]]:
    return [core.row(table, i, tickers[i], v) for i, v in picked]


def ranked_lists(
    store: ScanStore, cfg: Config, wanted: Sequence[str], at: datetime, max_age: float | None,
    limit: int, extra: core.Filters | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Lists as of the last tick (``at``): their sorted sets, or ranked afresh with filters.

    The scan table is read once for all of them.  Freshness is judged at the
    tick, as the tick judged it, so the API, the page and the scan rooms agree;
    how old the tick itself is, the caller says.
    """
    tickers, table = store.table()
    if not tickers:
        return {name: [] for name in wanted}
    fresh = fresh_mask(table, at, max_age)
    out = {}
    if extra is None or extra == core.Filters():
        where = {t: i for i, t in enumerate(tickers)}
        for name in wanted:
            picked = [(where[t], v) for t, v in store.ranked(name, limit)
                      if t in where and fresh[where[t]]]
            out[name] = [core.row(table, i, tickers[i], v) for i, v in picked]
    else:
        labels = np.array(tickers, dtype=str)
        bounds = filters(cfg).tightened(extra)
        for name in wanted:
            picked = core.rank(table, labels, name, settings(cfg), bounds, fresh, limit)
            out[name] = [core.row(table, i, tickers[i], v) for i, v in picked]
    return out


# --- volume profiles -------------------------------------------------------

def earlier_sessions(day: date, count: int) -> list[date]:
    """The ``count`` XNYS sessions before ``day``, oldest first."""
    at = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)
    cal = calendar_for(at)
    ts = pd.Timestamp(day)
    first = cal.date_to_session(ts, direction="previous")
    if first == ts:
        first = cal.previous_session(first)
    out = [first]
    while len(out) < count:
        try:
            out.append(cal.previous_session(out[-1]))
        except ValueError:  # before the calendar's first session
            break
    return [s.date() for s in reversed(out)]


def build_profile(session: Session, store: ScanStore, cfg: Config, now: datetime,
                  force: bool = False) -> dict[str, Any]:
    """Build today's volume profile from the last ``RVOL_SESSIONS`` sessions.  Idempotent."""
    day = now.astimezone(EXCHANGE_TZ).date()
    if not force and store.has_profile(day.isoformat()):
        return {"day": day.isoformat(), "skipped": "already built"}
    days = earlier_sessions(day, cfg.RVOL_SESSIONS)
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=EXCHANGE_TZ)
    end = datetime.combine(day, datetime.min.time(), tzinfo=EXCHANGE_TZ)
    sums, sessions = intraday.volume_by_minute(session, days, start.astimezone(timezone.utc),
                                              end.astimezone(timezone.utc), str(EXCHANGE_TZ))
    session.rollback()  # read-only; end the transaction
    tickers = sorted(sessions)
    where = {t: i for i, t in enumerate(tickers)}
    grid = np.zeros((len(tickers), 24 * 60))
    for ticker, minute, volume in sums:
        grid[where[ticker], minute] += volume
    count = np.array([sessions[t] for t in tickers], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        average = np.cumsum(grid, axis=1) / count[:, None]
    active = np.flatnonzero(grid.any(axis=0))
    minutes: dict[int, np.ndarray] = {}
    if len(active):
        for m in range(int(active[0]), 24 * 60):
            minutes[m] = average[:, m]
    ttl = int(timedelta(days=2).total_seconds())
    store.save_profile(day.isoformat(), tickers, [sessions[t] for t in tickers], minutes, ttl)
    log.info("volume profile for %s: %d symbols over %d sessions, %d minutes",
             day, len(tickers), len(days), len(minutes))
    return {"day": day.isoformat(), "symbols": len(tickers), "sessions": [d.isoformat() for d in days],
            "minutes": len(minutes)}
