"""Replaying recorded minute bars through the real pipeline (CLI with a progress bar)."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.conftest import utc
from tests.helpers import reference, stored_alerts, stored_quotes
from webapp.providers.replay import ReplayFileError, ReplayProvider, load_bars

START = utc("2026-11-19T20:55:00")  # Thursday 15:55 ET: the file crosses into Friday's session
CLOSES = {"AAPL": [10, 10, 10, 10, 8, 9.5, 11, 12, 9, 8], "KO": [50, 51, 52, 53, 54, 55, 54, 53, 52, 51]}


def bars_frame() -> pd.DataFrame:
    rows = []
    for i in range(10):
        # five minutes on Thursday, then Friday from the open
        at = START + timedelta(minutes=i) if i < 5 else utc("2026-11-20T14:30:00") + timedelta(minutes=i - 5)
        for ticker, closes in CLOSES.items():
            c = closes[i]
            rows.append({"time": at.isoformat(), "ticker": ticker.lower(), "open": c - 0.5, "high": c + 1,
                         "low": c - 1, "close": c, "volume": 1000 + i})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_replay_cli_plays_every_minute(app, pg, tmp_path, suffix) -> None:
    path = tmp_path / f"bars{suffix}"
    frame = bars_frame()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    result = app.test_cli_runner().invoke(args=["replay", str(path), "--speed", "0"])
    assert result.exit_code == 0, result.output
    assert "replayed 10 minutes, 20 quotes" in result.output
    quotes = stored_quotes(pg)
    assert [r[1] for r in quotes["AAPL"]] == [float(c) for c in CLOSES["AAPL"]]
    expected = [(t, rows[i][0], kind) for t, rows in quotes.items()
                for i, kind in enumerate(reference([r[1] for r in rows], 5)) if kind]
    assert [(a[0], a[1], a[2]) for a in stored_alerts(pg)] == sorted(expected)
    # the day's open/high/low and the previous close are derived as the file plays
    with pg.cursor() as cur:
        cur.execute("SELECT prev_close::float8, open::float8, high::float8 FROM quotes "
                    "WHERE ticker = 'KO' ORDER BY time")
        rows = cur.fetchall()
    assert rows[0] == (None, 49.5, 51.0) and rows[4][2] == 55.0
    assert rows[5] == (54.0, 54.5, 56.0)  # Friday opens; Thursday's last close is prev_close
    # replaying the same file again adds nothing
    again = app.test_cli_runner().invoke(args=["replay", str(path), "--speed", "0"])
    assert again.exit_code == 0 and stored_quotes(pg) == quotes


def test_bad_files_are_refused_with_a_reason(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,ticker,close\n2026-11-20T15:00:00Z,AAPL,1\n")
    with pytest.raises(ReplayFileError, match="missing column"):
        load_bars(path)
    path.write_text("time,ticker,open,high,low,close,volume\nsoon,AAPL,1,1,1,1,1\n")
    with pytest.raises(ReplayFileError, match="row 2 has a bad time"):
        load_bars(path)
    path.write_text("time,ticker,open,high,low,close,volume\n1795186800,$$$,1,1,1,1,1\n")
    with pytest.raises(ReplayFileError, match="bad ticker"):
        load_bars(path)
    with pytest.raises(ReplayFileError, match="no such file"):
        load_bars(tmp_path / "none.csv")


def test_unix_second_times_and_the_provider_clock(tmp_path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("time,ticker,open,high,low,close,volume\n"
                    "1795186800,AAPL,1,2,0.5,1.5,10\n1795186860,AAPL,1.5,2,1,1.75,20\n")
    provider = ReplayProvider(load_bars(path))
    assert provider.minutes == [utc("2026-11-20T15:00:00"), utc("2026-11-20T15:01:00")]
    got = provider.fetch(["AAPL"], utc("2026-11-20T15:01:30"), {})
    assert [(q.price, q.volume) for q in got.quotes] == [(1.75, 20)]


def test_replay_beside_a_live_feed_says_what_it_dropped_and_why(app, pg, tmp_path) -> None:
    from webapp.services import ticks

    path = tmp_path / "bars.csv"
    bars_frame().to_csv(path, index=False)
    last = utc("2026-11-20T14:34:00")  # the file's last minute: the live tick runs it, then one more
    ticks.run_tick_now(last)
    ticks.run_tick_now(last + timedelta(minutes=1))
    result = app.test_cli_runner().invoke(args=["replay", str(path), "--speed", "0"])
    assert result.exit_code == 0, result.output
    assert "1 minute(s) not replayed: slot already done" in result.output
    assert "18 bar(s) dropped: older than the latest reading" in result.output  # 9 minutes x 2 tickers
    assert "unchanged" not in result.output
    assert "replayed 10 minutes, 0 quotes" in result.output


def test_zoneless_times_are_exchange_time(tmp_path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("time,ticker,open,high,low,close,volume\n"
                    "2026-11-20T10:00:00,AAPL,1,2,0.5,1.5,10\n"  # New York time (EST): 15:00 UTC
                    "2026-07-01 09:30,AAPL,1,2,0.5,1.5,10\n"  # EDT: 13:30 UTC
                    "2026-11-20T15:01:00Z,AAPL,1.5,2,1,1.75,20\n")  # an explicit zone is kept
    provider = ReplayProvider(load_bars(path))
    assert provider.minutes == [utc("2026-07-01T13:30:00"), utc("2026-11-20T15:00:00"),
                                utc("2026-11-20T15:01:00")]
    path.write_text("time,ticker,open,high,low,close,volume\n2026-11-01T01:30:00,AAPL,1,1,1,1,1\n")
    with pytest.raises(ReplayFileError, match="row 2 has a bad time .*needs its offset"):
        load_bars(path)  # 01:30 happens twice in New York that night


def test_a_replayed_ticker_is_not_overwritten_by_the_sim(app, pg, tmp_path) -> None:
    from webapp.services import stocks, ticks

    path = tmp_path / "bars.csv"
    path.write_text("time,ticker,open,high,low,close,volume\n2026-11-20T15:00:00Z,ZZRP,7,7,7,7.25,10\n")
    assert app.test_cli_runner().invoke(args=["replay", str(path), "--speed", "0"]).exit_code == 0
    report = ticks.run_tick_now(utc("2026-11-20T15:05:00"))  # the live sim tick afterwards
    assert report.stale["ZZRP"] == "no sim feed: its readings come from replay"
    assert [r[1] for r in stored_quotes(pg)["ZZRP"]] == [7.25]
    latest = stocks.stock_detail("ZZRP")["latest"]
    assert latest["price"] == 7.25 and latest["source"] == "replay"
