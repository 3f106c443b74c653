"""The header's search ranking."""
from __future__ import annotations

from webapp.core.symbol_search import search

NAMES = {"AAPL": "Apple Inc.", "AMZN": "Amazon.com, Inc.", "PG": "The Procter & Gamble Company"}


def test_exact_then_ticker_start_then_name_start_then_name_contains() -> None:
    got = search("am", ["AAPL", "AMZN", "AMD", "PG"], NAMES, 10)
    assert [h["ticker"] for h in got["results"]] == ["AMD", "AMZN", "PG"]  # PG's name contains "am"
    assert [h["match"] for h in got["results"]] == ["ticker", "ticker", "name"]
    assert got["track"] == "AM"  # a valid ticker nobody tracks
    assert [h["ticker"] for h in search("apple", ["AAPL", "AMZN"], NAMES, 10)["results"]] == ["AAPL"]
    exact = search(" amd ", ["AMD", "AMDX"], {}, 10)
    assert exact["results"][0]["ticker"] == "AMD" and exact["track"] is None
    assert search("!!", ["AAPL"], NAMES, 10) == {"query": "!!", "results": [], "track": None}
    assert len(search("a", [f"A{i}" for i in range(30)], {}, 5)["results"]) == 5
