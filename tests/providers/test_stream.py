"""MARKET_DATA_PROVIDER=stream: the tick's readings are the stream's closed bars, or an honest reason."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis.asyncio as aredis

from tests.helpers import run_async
from webapp.core.quotes import Quote
from webapp.providers.sim import SimProvider
from webapp.providers.stream import StreamProvider
from webapp.store.streamstate import StreamWriter

pytestmark = pytest.mark.usefixtures("clean")
AT = datetime(2026, 12, 1, 15, 31, tzinfo=timezone.utc)
END = int(AT.timestamp())


def write(url: str, **kw) -> None:
    async def go() -> None:
        client = aredis.Redis.from_url(url)
        await StreamWriter(client, 3600).flush(**kw)
        await client.aclose()
    run_async(go)


def provider(rdb, fallback=None) -> StreamProvider:
    return StreamProvider(rdb, 60, "alpaca", follows_market_hours=True, wait_seconds=0.3, fallback=fallback)


def test_a_whole_bar_is_the_reading_and_the_day_carries_on(rdb, service_urls) -> None:
    status = {"state": "connected", "provider": "alpaca", "unstreamed": []}
    write(service_urls[0], closed_until=END, status=status, bars={END: {
        "AAPL": [10.0, 10.8, 9.7, 10.5, 1200.0, 10.3, 14, True, "trades"],
        "KO": [70.0, 70.0, 70.0, 70.0, 100.0, 70.0, 1, True, "provider"]}})
    previous = {"AAPL": Quote("AAPL", 10.1, AT - timedelta(minutes=1), 900, 9.0, 9.5, 10.6, 9.8, "alpaca"),
                "KO": Quote("KO", 69.0, AT - timedelta(days=1), 50, 68.0, 68.5, 69.5, 68.2, "alpaca")}
    got = provider(rdb).fetch(["AAPL", "KO"], AT, previous)
    assert got.problems == {}
    aapl, ko = got.quotes
    assert aapl == Quote("AAPL", 10.5, AT, 1200, 9.0, 9.5, 10.8, 9.7, "alpaca")
    assert ko == Quote("KO", 70.0, AT, 100, 69.0, 70.0, 70.0, 70.0, "alpaca")  # a new day starts over


def test_what_is_not_whole_is_stale_with_the_reason_or_refilled(rdb, service_urls) -> None:
    status = {"state": "connected", "provider": "alpaca", "unstreamed": ["NFLX"]}
    write(service_urls[0], closed_until=END, status=status, bars={END: {
        "AAPL": [10.0, 10.8, 9.7, 10.5, 1200.0, 10.3, 14, False, "trades"]}},
        halts={"TSLA": {"halted": True, "code": "H", "reason": "Halt News Pending", "time_ms": 1}})
    got = provider(rdb).fetch(["AAPL", "TSLA", "NFLX", "KO"], AT, {})
    assert got.quotes == []
    assert "incomplete" in got.problems["AAPL"] and "STREAM_GAP_PROVIDER" in got.problems["AAPL"]
    assert got.problems["TSLA"] == "halted (H): Halt News Pending"
    assert "plan caps" in got.problems["NFLX"]
    assert got.problems["KO"] == "stream: no trade in the 60 s to 15:31:00 UTC"
    refilled = provider(rdb, fallback=SimProvider(seed=1)).fetch(["AAPL", "TSLA"], AT, {})
    assert [q.ticker for q in refilled.quotes] == ["AAPL"] and refilled.quotes[0].source == "sim"
    assert list(refilled.problems) == ["TSLA"]


def test_a_stream_that_is_down_or_late_says_so(rdb, service_urls) -> None:
    got = provider(rdb).fetch(["AAPL"], AT, {})
    assert got.problems["AAPL"] == "stream: no stream process is running (no status in Redis)"
    write(service_urls[0], closed_until=END - 60,
          status={"state": "reconnecting", "provider": "alpaca", "reason": "alpaca 406 connection limit"})
    got = provider(rdb).fetch(["AAPL"], AT, {})
    assert got.problems["AAPL"] == "stream reconnecting: alpaca 406 connection limit"
    write(service_urls[0], status={"state": "connected", "provider": "alpaca"})
    got = provider(rdb).fetch(["AAPL"], AT, {})
    assert got.problems["AAPL"] == "stream: the bar to 15:31:00 UTC was not closed in time"


def test_provisional_bars_go_to_their_shards_stream_capped(rdb, service_urls) -> None:
    """Each flush adds one entry per symbol shard holding the provisional bars of that shard's tickers
    (the tick's CRC-32 shards), and the streams are capped (MAXLEN ~), so a reader that falls behind
    never grows Redis without bound."""
    from webapp import names
    from webapp.core import handoff
    from webapp.core.shards import shard_of

    rows = [[t, END, 1.0, 2.0, 0.5, 1.5, 100.0, 3, END * 1000 + 417, END * 1000 + 5, END * 1000 + 9,
             1.9, END * 1000 + 6, 0.6, END * 1000 + 8] for t in ("AAPL", "MSFT", "KO", "NVDA")]

    async def go(flushes: int) -> None:
        client = aredis.Redis.from_url(service_urls[0])
        writer = StreamWriter(client, 3600, shards=3, provisional_maxlen=10)
        for i in range(flushes):
            await writer.flush(provisional=rows, at_ms=END * 1000 + i)
        await client.aclose()

    run_async(lambda: go(1))
    seen = {}
    for shard in range(3):
        for _, fields in rdb.xrange(names.provisional_stream_key(shard, 3)):
            got, refused = handoff.decode(fields, 0)  # (width 0: each bar as its start)
            assert not refused
            for bar in got.bars():
                assert shard_of(bar.ticker, 3) == shard
                seen[bar.ticker] = list(bar)
    assert seen == {r[0]: r for r in rows}
    run_async(lambda: go(400))
    longest = max(rdb.xlen(names.provisional_stream_key(s, 3)) for s in range(3))
    assert longest <= 10 + 100  # approximate trimming: whole macro nodes of up to 100 entries
