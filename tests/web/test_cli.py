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
