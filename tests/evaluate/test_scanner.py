"""The scanner every second, on real Redis and Postgres: hand-offs in, scan_update deltas out to a
real message-queue listener, only where a page listens; the tick leaves the rooms to it; and at the
minute its lists equal the tick's."""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone

import numpy as np
import orjson

from tests.helpers import START, EmitCapture, minutes, run_via_rq
from webapp import names
from webapp.core import scanner as core
from webapp.core.handoff import Handoffs
from webapp.core.quotes import Quote
from webapp.core.rules.intrabar import Provisional
from webapp.core.tables import unpack
from webapp.evaluate.scanner import LiveScanner
from webapp.extensions import db, get_redis
from webapp.services import context
from webapp.services import scanner as scanner_service
from webapp.store.subscriptions import ListenerRegistry
from webapp.tick import scanner as tick_scanner
from webapp.tick.publisher import Publisher


def _scanner(app, **changes) -> LiveScanner:
    cfg = dataclasses.replace(app.config["TRACKER"], **changes)
    client = get_redis()
    scanner = LiveScanner(cfg, client, Publisher(client))
    scanner.take(0, context.tracked_symbols())
    return scanner


def _bar(ticker: str, bar_time: int, o: float, h: float, lo: float, c: float, v: float, n: int, last_ms: int,
         high_ms: int | None = None, low_ms: int | None = None) -> Provisional:
    return Provisional(ticker, bar_time, o, h, lo, c, v, n, last_ms, high_ms or last_ms, low_ms or last_ms)


def test_a_run_and_a_break_reach_the_listened_rooms_each_second_and_the_tick_leaves_them(
        app, service_urls) -> None:
    run_via_rq(app, minutes(6))
    symbols = context.tracked_symbols()
    scanner = _scanner(app, SCAN_WINDOW_SECONDS=5, SCAN_RUNNING_MIN_VOLUME=100.0)
    ListenerRegistry(get_redis()).publish({names.scan_room("running_up"), names.scan_room("hod_breaks"),
                                           names.scan_room("gainers")})
    capture = EmitCapture(service_urls[0])
    tickers, table, _ = unpack(get_redis().get(names.scan_table_key(0, 1)))
    last = {t: float(table["price"][i]) for i, t in enumerate(tickers)}  # the tick's last prices
    base = int(time.time()) - 20
    bar_time = (base // 60 + 1) * 60
    try:
        for k in range(8):  # AAPL climbs each second on growing volume; the others barely move
            s = base + k
            p0, price = last["AAPL"], last["AAPL"] * (1.01 ** k)
            bars = [_bar("AAPL", bar_time, p0, price, p0, price, 500.0 * (k + 1), 5 * (k + 1),
                         s * 1000 + 500)]
            bars += [_bar(t, bar_time, last[t], last[t], last[t], last[t], 100.0 * (k + 1), k + 1,
                          s * 1000 + 200) for t in symbols if t != "AAPL"]
            scanner.add(0, Handoffs.of(bars))
            scanner.run(s + 1.0, {})
        got = capture.events(names.EVENT_SCAN_UPDATE)
    finally:
        capture.close()
    updates = [d for _, d in got]
    rooms = {room for room, _ in got}
    assert rooms <= {names.scan_room(n) for n in ("running_up", "hod_breaks", "gainers")}  # only heard
    running = [u for u in updates if u["list"] == "running_up"]
    assert running[0]["full"] and running[0]["live"] is True  # the process's first: whole lists
    assert all(u["prev_seq"] is not None for u in running[1:])  # then deltas, each after the last
    held: list[dict] = []
    for u in running:
        held = core.apply_delta(held, u)
    assert held[0]["ticker"] == "AAPL" and held[0]["why"].endswith("in 5 s") and held[0]["value"] > 4
    breaks = core.apply_delta([], [u for u in updates if u["list"] == "hod_breaks"][0])
    assert breaks == [] or breaks[0]["ticker"] == "AAPL"
    last_breaks: list[dict] = []
    for u in [u for u in updates if u["list"] == "hod_breaks"]:
        last_breaks = core.apply_delta(last_breaks, u)
    assert last_breaks[0]["ticker"] == "AAPL" and last_breaks[0]["breaks"] >= 5
    announced = orjson.loads(get_redis().get(names.SCAN_ANNOUNCED_KEY))
    assert announced["gainers"]["rows"][0]["ticker"] == "AAPL"  # the minute lists move live too
    assert len(announced) == len(core.LISTS) + 6
    # a live row carries its volume today and RVOL (its reading advanced to the hand-off), and the
    # filters judge them as they judge a minute list's rows
    row = announced["running_up"]["rows"][0]
    day_volume = row["day_volume"]
    assert day_volume >= 500.0 * 8 and "rvol" in row and "gap_pct" in row
    kept = scanner_service.scanner_list("running_up", 10, core.Filters(min_volume=day_volume))
    assert kept["rows"][0]["ticker"] == "AAPL" and kept["filters"]["min_volume"] == day_volume
    more = core.Filters(min_volume=day_volume + 1)
    assert scanner_service.scanner_list("running_up", 10, more)["rows"] == []
    if row["rvol"] is None:  # no profile for these minutes: an unknown RVOL never passes a minimum
        assert scanner_service.scanner_list("running_up", 10, core.Filters(min_rvol=0.1))["rows"] == []
    # the tick stores its lists but leaves the rooms to the scanner every second while it announces
    capture = EmitCapture(service_urls[0])
    try:
        run_via_rq(app, minutes(1, START + (minutes(7)[-1] - START)))
        from_tick = capture.events(names.EVENT_SCAN_UPDATE)
    finally:
        capture.close()
    assert from_tick == []
    assert get_redis().zrange(names.scan_list_key("gainers"), 0, 0)  # the record is still kept


def test_at_the_minute_the_live_lists_equal_the_ticks_on_the_same_readings(app, service_urls) -> None:
    run_via_rq(app, minutes(6))
    symbols = context.tracked_symbols()
    scanner = _scanner(app)
    client = get_redis()
    tickers, table, _ = unpack(client.get(names.scan_table_key(0, 1)))
    slot = int(np.nanmax(table["time"])) + 60
    rng = np.random.default_rng(5)
    bars = []
    for t in symbols:
        i = tickers.index(t)
        close = float(table["price"][i]) * float(np.exp(rng.normal(0, 0.02)))
        bars.append(_bar(t, slot, close, close, close, close, float(rng.integers(100, 50_000)), 3,
                         (slot - 5) * 1000))
    scanner.add(0, Handoffs.of(bars))
    now = float(slot + 1)
    scan = scanner.scans[0]
    scanner._record(scan, now, int(now * 1000), {})
    live, _ = scanner._minute_lists(scan, now, set())
    # the tick's own scan over quotes carrying the same prices and volumes
    at = datetime.fromtimestamp(slot, timezone.utc)
    quotes = [Quote(b.ticker, b.close, at, int(b.volume), float(table["prev_close"][tickers.index(b.ticker)]),
                    float(table["open"][tickers.index(b.ticker)])) for b in bars]
    cfg = app.config["TRACKER"]
    inputs = tick_scanner.ScanInputs.of(client.mget(tick_scanner.ScanInputs.keys(cfg, (0, 1), at)))
    result = tick_scanner.scan(cfg, db.session, symbols, quotes, {}, inputs, at, slot, at, (0, 1),
                               3.0 * cfg.TICK_SECONDS, set())
    ranked = {w.key: [t for _, t in w.add] for w in result.write.lists}  # the tick's lists, in order
    for name in core.LISTS:
        want = ranked[names.scan_list_key(name)][:cfg.SCAN_TOP]
        assert [r["ticker"] for r in live[name]] == want, name
    assert any(live[name] for name in ("gainers", "losers"))  # not a comparison of empty lists


def test_redis_emptied_the_lists_are_whole_again_and_say_warming_up_until_the_ticks_table_is_back(
        app, service_urls) -> None:
    """Redis restarted empty: the next announcement is of whole lists (its base is gone); the day
    trader's lists go on from the evaluate process's tape, and the tick's six say ``warming_up``
    with no rows, never a half-empty list passed off as the market, until the tick has rebuilt
    its table from Postgres."""
    run_via_rq(app, minutes(6))
    scanner = _scanner(app, SCAN_WINDOW_SECONDS=5, SCAN_RUNNING_MIN_VOLUME=100.0)
    rooms = {names.scan_room("running_up"), names.scan_room("gainers")}
    registry = ListenerRegistry(get_redis())
    registry.publish(rooms)
    tickers, table, _ = unpack(get_redis().get(names.scan_table_key(0, 1)))
    p0 = float(table["price"][tickers.index("AAPL")])
    minute0 = (int(time.time()) // 60 - 4) * 60  # whole minutes a little in the past

    def second(s: int, k: int) -> None:  # AAPL climbs on growing volume, second by second
        price = p0 * (1.01 ** k)
        scanner.add(0, Handoffs.of([_bar("AAPL", (s // 60 + 1) * 60, p0, price, p0, price, 500.0 * (k + 1),
                                         5 * (k + 1), s * 1000 + 500)]))
        scanner.run(s + 1.0, {})

    for k in range(8):
        second(minute0 + 10 + k, k)
    get_redis().flushdb()  # Redis restarted empty
    registry.publish(rooms)  # each web process announces its listeners again within seconds
    capture = EmitCapture(service_urls[0])
    try:
        for k in range(8, 11):  # the next minute: the scanner reads the tick's table again
            second(minute0 + 60 + k, k)
        empty = capture.events(names.EVENT_SCAN_UPDATE)
        run_via_rq(app, minutes(1, START + (minutes(7)[-1] - START)))  # the tick rebuilds its table
        second(minute0 + 120 + 11, 11)
        back = capture.events(names.EVENT_SCAN_UPDATE)[len(empty):]
    finally:
        capture.close()
    gainers = [d for _, d in empty if d["list"] == "gainers"][0]
    assert gainers["full"] and gainers["warming_up"] and gainers["rows"] == []
    running = [d for _, d in empty if d["list"] == "running_up"][0]
    assert running["full"] and not running["warming_up"]
    assert core.apply_delta([], running)[0]["ticker"] == "AAPL"
    held = core.apply_delta([], gainers)
    for _, d in back:
        if d["list"] == "gainers":
            held = core.apply_delta(held, d)
    assert not d["warming_up"] and held and held[0]["ticker"] == "AAPL"  # the tick's table is back
