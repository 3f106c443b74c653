"""The benchmarks run, print their JSON line and count what they claim to count."""
from __future__ import annotations

import json

from bench import storage, tick


def test_tick_bench_line_with_and_without_the_scanner(app) -> None:
    plain = tick.run(40, 2)
    scan = tick.run(40, 2, scanner=True)
    json.dumps([plain, scan])  # the lines are JSON
    assert plain["bench"] == "tick" and scan["bench"] == "scanner-tick"
    for line in (plain, scan):
        assert line["symbols"] == 40 and line["median_ms"] > 0 and line["redis_roundtrips_per_tick"] == [5]
    assert "scan" in scan["median_phase_ms"] and "scan" not in plain["median_phase_ms"]
    # the list's room gets a few rows; room `all` gets all 40
    assert 0 < scan["emitted_bytes_per_tick"]["scan:gainers"] < scan["emitted_bytes_per_tick"]["all"]


def test_tick_bench_arguments() -> None:
    assert tick.parse_args([]).sizes == [15, 1000, 10000]
    args = tick.parse_args(["--symbols", "10000", "--ticks", "10", "--scanner"])
    assert (args.sizes, args.ticks, args.scanner) == ([10000], 10, True)
    assert tick.parse_args(["15", "1000"]).sizes == [15, 1000]


def test_storage_bench_measures_a_day_partition(app) -> None:
    line = storage.run(50, 3)
    assert line["rows"] == 150 and line["bytes_per_quote_row"] > 40
    assert line["quotes_mb_per_trading_day"] > 0


def test_sockets_bench_counts_connections_refusals_and_updates(base_config, clean) -> None:
    from bench import sockets

    line = sockets.run(base_config, 12, ticks=2, max_clients=10)
    assert (line["clients"], line["connected"], line["refused"], line["failed"]) == (12, 10, 2, 0)
    assert "server full" in line["refusal"]
    assert line["updates_per_client_min"] == line["updates_per_client_max"] == 2
    assert 0 < line["slot_to_receipt_p50_ms"] <= line["slot_to_receipt_p99_ms"]
    assert line["web_rss_mb_after"] > 0
    assert sockets.parse_args([]).clients == [1000, 2500]


def test_stream_bench_counts_what_was_sent_applied_and_received(base_config, clean) -> None:
    from bench import stream

    line = stream.run(base_config, [2000], seconds=3, burst=5000, n_symbols=200)
    assert line["sustained_trades_per_s"] == 2000 and line["phases"][0]["applied"] == 6000
    assert (line["burst_trades"], line["burst_lost"]) == (5000, 0) and line["burst_drain_s"] > 0
    assert line["cpu_pct"] > 0 and line["rss_mb"] > 20
    assert stream.parse_args([]).rates[-1] == 100_000


def test_tick_bench_with_rules_reports_what_they_added(app) -> None:
    line = tick.run(60, 2, rules=30)
    assert line["bench"] == "tick-rules" and line["rules"] == 30
    assert line["redis_roundtrips_per_tick"] == line["redis_roundtrips_per_tick_without_rules"] == [5]
    assert "rules" in line["median_phase_ms"] and line["rule_fires_per_tick"] >= 0
    assert line["median_ms"] > 0 and "rules_added_ms" in line


def test_webhooks_bench_delivers_and_times_every_fire(make_app, service_urls) -> None:
    from bench import webhooks

    application = make_app(WEBHOOK_ALLOWED_CIDRS=("127.0.0.1/32",))
    with application.app_context():
        line = webhooks.run(40, 2, 5)
    assert line["deliveries"] == 40 and line["unverified"] == 0 and line["received"] == 5
    assert line["deliver_cpu_ms_per_delivery"] > 0
    assert line["deliveries_per_s"] > 0 and 0 < line["delivery_ms_p50"] <= line["delivery_ms_p99"]


def test_chart_bench_times_the_page_and_sizes_each_timeframe(make_app) -> None:
    from bench import chart

    app = make_app(BACKFILL_MINUTE_SESSIONS=2, BACKFILL_DAILY_DAYS=60)
    with app.app_context():
        line = chart.run(app, 3)
    assert line["daily_bars"] > 30 and line["minute_readings"] >= 390
    assert line["chart_page_ms"] > 0 and line["chart_page_kb"] > 1
    assert set(line["per_interval_kb_gzip"]) == {"1m/5d", "5m/5d", "15m/5d", "1h/5d", "1d/1y"}
    assert line["timeframe_switch_kb_gzip"] == max(line["per_interval_kb_gzip"].values())


def test_realtime_bench_counts_fires_against_a_replay(app, base_config, clean) -> None:
    """A small run of ``python -m bench.realtime``: real feed, stream, two evaluate processes, web,
    deliver, a Socket.IO client and a webhook receiver; its line has the issue's keys, and nothing is
    lost or twice against the replay of the same hand-offs."""
    from bench import realtime

    line = realtime.run(base_config.with_overrides(TICK_SHARDS=2), 300, 3000, 40, 2, 8, n_endpoints=3)
    json.dumps(line)
    for key in ("print_to_browser_ms_p50", "print_to_browser_ms_p99", "print_to_webhook_ms_p99",
                "fires_per_s", "lost", "duplicates", "evaluate_lag_ms_p99", "stream_trades_per_s",
                "evaluate_cpu_pct"):
        assert key in line, key
    assert line["fires"] > 0 and line["lost"] == 0 and line["duplicates"] == 0
    assert "minute_boundary_at_s" not in line  # called directly, the load starts at once
    assert line["extra_vs_replay"] == 0 and line["stream_dropped_frames"] == 0
    assert len(line["evaluate_cpu_pct"]) == 2 and set(line["evaluate_lag_ms_p99"]) == {"0", "1"}


def test_scanner_live_bench_has_the_issues_keys(app, base_config, clean) -> None:
    """A small run of ``python -m bench.scanner_live``: real feed, stream, two evaluate processes,
    web and a Socket.IO client in the scan rooms; its line has the issue's keys and deltas arrived."""
    from bench import scanner_live

    line = scanner_live.run(base_config.with_overrides(TICK_SHARDS=2), 300, 3000, 2, 8)
    json.dumps(line)
    for key in ("print_to_list_row_ms_p99", "scan_second_ms_p50", "scan_second_ms_p99", "delta_bytes_per_s",
                "stream_trades_per_s", "stream_dropped_frames"):
        assert key in line, key
    assert line["stream_dropped_frames"] == 0 and line["list_deltas_seen"] > 0
    assert sum(line["delta_bytes_per_s"].values()) > 0 and line["scan_second_ms_p50"] is not None


def test_handoffs_bench_reads_the_same_rows_both_ways() -> None:
    from bench import handoffs

    lines = handoffs.run(200, 2_000, 0.5, batch=2, repeat=1)
    json.dumps(lines)
    assert [line["way"] for line in lines] == ["json", "columns"]
    assert lines[0]["rows"] == lines[1]["rows"] > 0
    for line in lines:
        assert line["bytes_per_row"] > 0 and line["read_us_per_row"] > 0 and line["named_us_per_row"] > 0
