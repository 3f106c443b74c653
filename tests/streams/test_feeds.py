"""Each provider's wire format and failure modes, against a fake server, through the real stream process.

Every case asserts what the process stored in Redis (bars, status) and put
on the Socket.IO channel, not only that it kept running.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakes.stream_servers import FakeFeed, polygon_trade
from tests.streams.harness import Run, alpaca_trade, run_stream
from webapp import names

pytestmark = pytest.mark.usefixtures("clean")


def test_alpaca_batched_duplicate_late_and_odd_lot_trades_build_the_bar_and_push(base_config, service_urls):
    async def body(run: Run) -> None:
        await run.until(lambda: _connected(run), what="connected")
        s = await run.next_bar()
        await run.feed.broadcast([
            alpaca_trade("AAPL", 100.00, 100, s + 0.10, 1),
            alpaca_trade("AAPL", 101.00, 100, s + 0.30, 2),
            alpaca_trade("AAPL", 150.00, 5, s + 0.50, 3, c=["@", "I"]),  # odd lot: volume only
            alpaca_trade("MSFT", 300.00, 200, s + 0.20, 1),
        ])
        await asyncio.sleep(0.1)
        await run.feed.broadcast([
            alpaca_trade("AAPL", 100.00, 100, s + 0.10, 1),  # the same trade again (same id): dropped
            alpaca_trade("AAPL", 99.50, 100, s + 0.20, 4),  # arrives after a later one: out of order
            alpaca_trade("AAPL", 100.00, 100, s + 0.10, 5),  # same time, price and size, new id: real
        ])
        end = s + 2
        bars = await run.until(lambda: run.bars(end), what="the closed bar")
        o, h, low, c, v, vwap, n, complete, src = bars["AAPL"]
        assert (o, h, low, c) == (100.0, 101.0, 99.5, 101.0)
        assert (v, n, complete, src) == (405.0, 5, True, "trades")
        assert bars["MSFT"][:5] == [300.0, 300.0, 300.0, 300.0, 200.0]
        # a print for the closed bar revises it, but the last price never moves back
        await run.feed.broadcast([alpaca_trade("AAPL", 102.0, 50, s + 0.05, 6)])
        revised = await run.until(lambda: _row_where(run, end, "AAPL", lambda r: r[4] == 455.0))
        assert revised[:4] == [102.0, 102.0, 99.5, 101.0]
        status = await run.until(lambda: _status_where(run, lambda st: st["late_trades"]), what="counted")
        assert status["duplicates"] == 1 and status["late_trades"] == 1 and status["state"] == "connected"
        pushed = [e["data"][0] for e in run.emits if e["event"] == names.EVENT_TRADE]
        assert pushed and {e["room"] for e in run.emits if e["event"] == "trade"} == {"ticker:AAPL"}
        assert pushed[-1]["price"] == 101.0 and 205.0 <= pushed[-1]["day_volume"] <= 405.0
        assert pushed[-1]["bar"]["close"] == 101.0 and pushed[-1]["bar"]["high"] == 101.0
        assert all(p["price"] != 102.0 for p in pushed)

    run_stream(base_config, service_urls[0], FakeFeed("alpaca"), body, listen=["AAPL"])


def test_behind_a_flood_the_bar_closes_whole_once_its_trades_are_applied(base_config, service_urls):
    """A flood the process takes longer to apply than the grace lasts: 100,000 polygon trades stamped
    in the bar's last second, sent 0.4 s before its grace ends.  By the clock the bar would close
    while most of them still queue, each then late (a revision of a bar first written short); closed
    by the trades applied, it closes once they are in: whole, none late."""
    tickers = [f"T{i:03d}" for i in range(500)]
    n = 100_000

    async def body(run: Run) -> None:
        await run.until(lambda: _connected(run), what="connected")
        s = await run.next_bar()
        t0 = (s + 1) * 1000
        frames = [[polygon_trade(tickers[i % 500], 10.0 + i % 7, 1, t0 + i % 900, str(i))
                   for i in range(k, k + 500)] for k in range(0, n, 500)]
        await asyncio.sleep(s + 1.9 - time.time())  # a 2 s bar, whose grace ends at 10:00:02.3
        for frame in frames:
            await run.feed.broadcast(frame)
        end = s + 2
        bars = await run.until(lambda: _closed_with(run, end, len(tickers)), timeout=30, what="closed")
        assert sum(row[4] for row in bars.values()) == n and all(row[7] for row in bars.values())
        status = await run.until(lambda: _status_where(run, lambda st: st["trades"] >= n), what="applied")
        assert status["late_trades"] == 0 and status["dropped_frames"] == 0

    run_stream(base_config, service_urls[0], FakeFeed("polygon"), body, symbols=tickers)


async def _closed_with(run: Run, end: int, n: int):
    bars = await run.bars(end)
    return bars if len(bars) >= n else None


def test_alpaca_updated_bar_replaces_the_minute(base_config, service_urls):
    async def body(run: Run) -> None:
        await run.until(lambda: _connected(run))
        import time

        start = int(time.time()) // 60 * 60 - 60  # the minute that just ended
        bar = {"T": "b", "S": "AAPL", "o": 10.0, "h": 11.0, "l": 9.5, "c": 10.5, "v": 1000, "n": 7,
               "vw": 10.2, "t": _iso(start)}
        await run.feed.broadcast([bar])
        first = await run.until(lambda: _row_where(run, start + 60, "AAPL", lambda r: True))
        assert first == [10.0, 11.0, 9.5, 10.5, 1000.0, 10.2, 7, True, "provider"]
        await run.feed.broadcast([{**bar, "T": "u", "h": 12.0, "v": 1300, "n": 9}])
        updated = await run.until(lambda: _row_where(run, start + 60, "AAPL", lambda r: r[4] == 1300.0))
        assert updated[1] == 12.0 and updated[6] == 9

    run_stream(base_config, service_urls[0], FakeFeed("alpaca"), body, TICK_SECONDS=60)


@pytest.mark.parametrize(("provider", "says"), [
    ("alpaca", "alpaca 402 auth failed"), ("polygon", "polygon auth_failed"),
    ("finnhub", "HTTP 401 on the upgrade")])
def test_an_auth_failure_stops_dialling_and_says_why_without_the_key(base_config, service_urls, caplog,
                                                                     provider, says):
    feed = FakeFeed(provider)
    feed.behaviours = ["auth_fail"]

    async def body(run: Run) -> None:
        status = await run.until(lambda: _state(run, "down"), what="down")
        assert says in status["reason"]
        await asyncio.sleep(2.5)
        assert run.feed.connections == 1  # fatal: not retried
        leaked = [t for t in ("test-key", "test-secret") if t in str(status) or t in caplog.text]
        assert leaked == []

    run_stream(base_config, service_urls[0], feed, body)


@pytest.mark.parametrize(("provider", "behaviour", "says"), [
    ("alpaca", "busy", "406"), ("polygon", "busy", "max_connections"), ("polygon", "http429", "429")])
def test_a_busy_slot_waits_at_least_90_seconds(base_config, service_urls, provider, behaviour, says):
    feed = FakeFeed(provider)
    feed.behaviours = [behaviour]

    async def body(run: Run) -> None:
        status = await run.until(lambda: _state(run, "reconnecting", with_retry=True), what="reconnecting")
        assert says in status["reason"] and status["retry_in_s"] >= 85
        assert run.feed.connections == 1

    run_stream(base_config, service_urls[0], feed, body)


def test_polygon_silent_socket_is_reconnected_by_the_watchdog(base_config, service_urls):
    feed = FakeFeed("polygon")
    feed.behaviours = ["silent", "ok"]

    async def body(run: Run) -> None:
        await run.until(lambda: _feed_connections(run, 2), timeout=15, what="a second connection")
        status = await run.until(lambda: _status_where(  # the status is written once a second
            run, lambda st: st["state"] == "connected" and st["reconnects"]), what="reconnected")
        assert status["reconnects"] >= 1 and status["gaps"] and "stalled" in status["last_disconnect"]
        assert any("T.AAPL" in r.get("params", "") for r in run.feed.received if r["connection"] == 1)

        async def trading() -> None:  # the new connection carries data: the watchdog leaves it alone
            n = 0
            while True:
                n += 1
                await run.feed.broadcast([polygon_trade("AAPL", 50.0 + n / 100, 100, int(time_ms()), str(n))])
                await asyncio.sleep(0.2)

        feeding = asyncio.create_task(trading())
        s = await run.next_bar()
        bars = await run.until(lambda: run.bars(s + 2))
        feeding.cancel()
        assert bars["AAPL"][6] >= 3  # the new connection delivers
        assert (await run.status())["reconnects"] >= 1

    run_stream(base_config, service_urls[0], feed, body, STREAM_STALL_SECONDS=1.5)


def test_finnhub_abrupt_close_reconnects_and_marks_the_bar_incomplete(base_config, service_urls):
    async def body(run: Run) -> None:
        await run.until(lambda: _connected(run))
        s = await run.next_bar()
        await run.feed.broadcast({"type": "trade", "data": [
            {"s": "AAPL", "p": 10.0, "t": int((s + 0.1) * 1000), "v": 5, "c": ["1"]}]})
        await asyncio.sleep(0.2)
        run.feed.abort()  # no close frame: 1006 on our side
        await run.until(lambda: _feed_connections(run, 2, subscribed=True), what="reconnected")
        await run.feed.broadcast({"type": "trade", "data": [
            {"s": "AAPL", "p": 10.2, "t": int((s + 0.1) * 1000), "v": 5, "c": ["1"]},  # identical print: real
            {"s": "AAPL", "p": 10.1, "t": int(time_ms()), "v": 5, "c": []}]})
        status = await run.until(lambda: _status_where(
            run, lambda st: st["reconnects"] and st["state"] == "connected"))
        assert status["reconnects"] == 1 and "1006" in status["last_disconnect"]
        bars = await run.until(lambda: run.bars(s + 2), what="bar")
        assert bars["AAPL"][7] is False  # overlaps the gap: never passed off as whole
        assert (await run.status())["gaps"][-1][1] > 0

    run_stream(base_config, service_urls[0], FakeFeed("finnhub"), body)


def test_malformed_frames_are_skipped_and_the_connection_stays_up(base_config, service_urls):
    async def body(run: Run) -> None:
        await run.until(lambda: _connected(run))
        s = await run.next_bar()
        await run.feed.broadcast("not json{")
        await run.feed.broadcast('[{"T":"t","S":"AAPL"}]')
        await run.feed.broadcast('[{"T":"t","S":"AAPL","i":1,"x":"V","p":"abc","s":1,'
                                 '"t":"2026-01-01T00:00:00Z"}]')
        await run.feed.broadcast([alpaca_trade("AAPL", 42.0, 100, s + 0.2, 9)])
        bars = await run.until(lambda: run.bars(s + 2))
        assert bars["AAPL"][3] == 42.0
        status = await run.until(lambda: _status_where(run, lambda st: st["malformed_frames"] == 3))
        assert status["state"] == "connected" and run.feed.connections == 1

    run_stream(base_config, service_urls[0], FakeFeed("alpaca"), body)


@pytest.mark.parametrize("provider", ["finnhub", "alpaca"])
def test_too_many_symbols_shrinks_the_set_and_names_the_rest(base_config, service_urls, provider):
    symbols = [f"S{i:02d}" for i in range(60)]
    feed = FakeFeed(provider, cap=40)

    async def body(run: Run) -> None:
        status = await run.until(lambda: _status_where(run, lambda st: st["symbols_streamed"] < 50),
                                 what="shrunk")
        assert status["symbols_requested"] == 60 and run.feed.connections == 1
        kept = status["symbols_streamed"]
        assert kept <= 40 and status["unstreamed"] == symbols[kept:]
        await asyncio.sleep(1.0)
        assert run.feed.subscribed[0] == symbols[:kept]  # the server streams exactly what we say

    run_stream(base_config, service_urls[0], feed, body, symbols=symbols, STREAM_MAX_SYMBOLS=50)


def test_postgres_down_when_the_leader_starts_streams_the_configured_symbols(base_config, service_urls):
    async def body(run: Run) -> None:
        await run.until(lambda: _connected(run), what="connected")
        assert run.feed.subscribed[0] == list(base_config.SYMBOLS)  # SYMBOLS, while Postgres is out

    run_stream(base_config, service_urls[0], FakeFeed("polygon"), body, symbols_fail=1)


# ---- helpers
def time_ms() -> float:
    import time

    return time.time() * 1000


def _iso(epoch: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _connected(run: Run) -> bool:
    status = await run.status()
    return status.get("state") == "connected" and bool(run.feed.clients)


async def _state(run: Run, state: str, with_retry: bool = False):
    status = await run.status()
    if status.get("state") == state and (not with_retry or status.get("retry_in_s")):
        return status
    return None


async def _status_where(run: Run, check):
    status = await run.status()
    return status if status and check(status) else None


async def _feed_connections(run: Run, n: int, subscribed: bool = False) -> bool:
    if run.feed.connections < n or not run.feed.clients:
        return False
    return not subscribed or bool(run.feed.subscribed.get(n - 1))


async def _row_where(run: Run, end: int, ticker: str, check):
    row = (await run.bars(end)).get(ticker)
    return row if row is not None and check(row) else None
