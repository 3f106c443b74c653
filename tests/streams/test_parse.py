"""Each source's parser on the providers' documented frames (no socket: the wire tests are in test_feeds)."""
from __future__ import annotations

import pytest

from webapp.streams.alpaca import AlpacaStream, epoch_ms
from webapp.streams.base import StreamRefused
from webapp.streams.finnhub import FinnhubStream
from webapp.streams.polygon import PolygonStream


def test_alpaca_trades_bars_statuses_and_errors() -> None:
    src = AlpacaStream("k", "s")
    got = src.parse('[{"T":"t","i":96921,"S":"AAPL","x":"D","p":126.55,"s":1,'
                    '"t":"2021-02-22T15:51:44.208123456Z","c":["@","I"],"z":"C"},'
                    '{"T":"b","S":"SPY","o":388.985,"h":389.13,"l":388.975,"c":389.12,'
                    '"v":49378,"t":"2021-02-22T19:15:00Z","n":120,"vw":389.0},{"T":"s","S":"AAPL","sc":"H",'
                    '"sm":"Trading Halt","rc":"T12","rm":"Halt News Pending","t":"2021-02-22T19:15:01Z",'
                    '"z":"C"}]')
    (trade,) = got.trades
    assert trade.time_ms == 1614009104208 and trade.conditions == ("@", "I")
    assert trade.id == ("AAPL", "2021-02-22", "D", 96921)
    assert got.bars[0].start == 1614021300 and got.bars[0].trades == 120
    assert got.halts[0].halted and got.halts[0].reason == "Halt News Pending"
    assert not src.parse('[{"T":"s","S":"AAPL","sc":"T","t":"2021-02-22T19:20:00Z"}]').halts[0].halted
    assert src.parse('[{"T":"error","code":405,"msg":"symbol limit exceeded"}]').too_many
    with pytest.raises(StreamRefused) as refused:
        src.parse('[{"T":"error","code":409,"msg":"insufficient subscription"}]')
    assert refused.value.kind == "fatal"
    assert epoch_ms("2021-02-22T15:51:44Z") == 1614009104000


def test_polygon_trades_aggregates_and_statuses() -> None:
    src = PolygonStream("k")
    got = src.parse('[{"ev":"T","sym":"MSFT","x":4,"i":"12345","z":3,"p":114.125,"s":100,"c":[0,12],'
                    '"t":1536036818784,"q":3681328},{"ev":"AM","sym":"GTE","v":4110,"av":9470157,"op":0.4372,'
                    '"vw":0.4488,"o":0.4488,"c":0.4486,"h":0.4489,"l":0.4486,"a":0.4352,"z":685,'
                    '"s":1610144640000,"e":1610144700000}]')
    assert got.trades[0].id == ("MSFT", 4, None, "12345") and got.trades[0].conditions == (0, 12)
    assert got.bars[0].start == 1610144640 and got.bars[0].close == 0.4486
    # limit-up/limit-down: a band update is not kept; indicator 17 is a halt, 18 its resume
    got = src.parse('[{"ev":"LULD","T":"MSFT","h":218.96,"l":198.11,"i":[21],"z":3,"t":1601316752683,'
                    '"q":290317},'
                    '{"ev":"LULD","T":"ZZZ","h":5.5,"l":4.5,"i":[17],"z":3,"t":1601316800000,"q":7},'
                    '{"ev":"LULD","T":"ZZZ","h":5.5,"l":4.5,"i":[18],"z":3,"t":1601317100000,"q":8}]')
    assert [(h.ticker, h.halted, h.code, h.time_ms) for h in got.halts] == [
        ("ZZZ", True, "17", 1601316800000), ("ZZZ", False, "18", 1601317100000)]
    assert "LULD.AAPL" in src.subscribe(["AAPL"])[0]
    with pytest.raises(ValueError, match="without a valid"):
        src.parse('[{"ev":"LULD","i":[17],"t":1}]')
    with pytest.raises(StreamRefused) as refused:
        src.parse('[{"ev":"status","status":"max_connections","message":"Maximum number of connections"}]')
    assert refused.value.kind == "busy"
    with pytest.raises(ValueError, match="expected an array"):
        src.parse('{"ev":"T"}')


def test_finnhub_trades_pings_and_the_symbol_cap() -> None:
    src = FinnhubStream("secret-token")
    got = src.parse('{"data":[{"c":["1","8"],"p":122.1,"s":"TSLA","t":1672348887195,"v":1},'
                    '{"c":["1","8"],"p":122.1,"s":"TSLA","t":1672348887195,"v":1}],"type":"trade"}')
    assert len(got.trades) == 2 and got.trades[0] == got.trades[1]  # identical prints are real trades
    assert got.trades[0].id is None and got.trades[0].size == 1.0
    assert not src.parse('{"type":"ping"}').market_data
    assert src.parse('{"msg":"Subscribing to too many symbols","type":"error"}').too_many
    assert "secret-token" in src.url() and "secret-token" not in src.where
    with pytest.raises(ValueError, match="not JSON"):
        src.parse("{oops")
