from __future__ import annotations

import json


def test_fetch_once_prints_what_it_did(app) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["fetch-once", "--at", "2026-11-20T15:00:00"])
    assert result.exit_code == 0, result.output
    assert "tick 2026-11-20T15:00:00+00:00" in result.output
    assert "fetched 15, accepted 15, rebuilt from Postgres 0" in result.output
    again = runner.invoke(args=["fetch-once", "--at", "2026-11-20T15:00:30", "--json"])
    assert json.loads(again.output)["skipped"] == "slot already done"


def test_bench_tick_prints_its_json_line_with_and_without_the_scanner(app) -> None:
    runner = app.test_cli_runner()
    plain = json.loads(runner.invoke(args=["bench-tick", "--symbols", "40", "--ticks", "2"]).output)
    result = runner.invoke(args=["bench-tick", "--symbols", "40", "--ticks", "2", "--scanner"])
    assert result.exit_code == 0, result.output
    scan = json.loads(result.output)
    assert plain["bench"] == "tick" and scan["bench"] == "scanner-tick"
    for line in (plain, scan):
        assert line["symbols"] == 40 and line["median_ms"] > 0 and line["redis_roundtrips_per_tick"] == [5]
    assert "scan" in scan["median_phase_ms"] and "scan" not in plain["median_phase_ms"]
    # the list's room gets a few rows; room `all` gets all 40
    assert 0 < scan["emitted_bytes_per_tick"]["scan:gainers"] < scan["emitted_bytes_per_tick"]["all"]


def test_storage_bench_measures_a_day_partition(app) -> None:
    from bench import storage

    line = storage.run(50, 3)
    assert line["rows"] == 150 and line["bytes_per_quote_row"] > 40
    assert line["quotes_mb_per_trading_day"] > 0
