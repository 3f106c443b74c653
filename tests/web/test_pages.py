from __future__ import annotations

from webapp.services import stocks, ticks


def test_dashboard_renders_server_side_rows(app) -> None:
    ticks.run_tick_now()
    html = app.test_client().get("/").get_data(as_text=True)
    assert 'tr data-ticker="BRK.B"' in html
    snap = stocks.snapshot()
    aapl = next(s for s in snap["stocks"] if s["ticker"] == "AAPL")
    assert f"{aapl['price']:.2f}" in html
    assert "vendor/socket.io-client/socket.io.min.js" in html
    assert "https://" not in html  # nothing from a CDN


def test_unknown_page_is_a_proper_404(app) -> None:
    resp = app.test_client().get("/no/such/page")
    assert resp.status_code == 404 and "404" in resp.get_data(as_text=True)


def test_the_alerts_page_says_whose_alerts_they_are_and_when_they_are_muted(app) -> None:
    from webapp.services import rules

    client = app.test_client()
    page = client.get("/alerts").get_data(as_text=True)
    assert "built-in rule “Price crossing its 5-period SMA”, which is\n  active" in page
    rules.set_rule_status(rules.builtin_rule()["id"], "paused", None)
    page = client.get("/alerts").get_data(as_text=True)
    assert "<strong>muted</strong>: no new ones are sent live" in page and 'href="/alerts/rules"' in page


def test_every_page_says_plainly_that_prices_are_simulated(app, make_app) -> None:
    """With sim, every page says so; with a real provider, none does (issue 26, item 10)."""
    c = app.test_client()
    for path in ("/", "/stocks/AAPL", "/scanner", "/alerts", "/alerts/rules", "/login", "/search?q=zz"):
        body = c.get(path).get_data(as_text=True)
        assert 'id="simulated"' in body and "Simulated market" in body, path
    real = make_app(MARKET_DATA_PROVIDER="finnhub", FINNHUB_API_KEY="k" * 20)
    with real.app_context():
        assert 'id="simulated"' not in real.test_client().get("/login").get_data(as_text=True)


def test_a_minimum_price_above_the_maximum_is_said_beside_the_scanner_form(app) -> None:
    """It was accepted and showed blank tables (issue 26, item 16): now a 400 that says why, with
    what was typed kept and the lists unfiltered; the API says the same."""
    c = app.test_client()
    resp = c.get("/scanner?min_price=50&max_price=10")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="filter-error"' in body and "above the maximum" in body
    assert 'name="min_price" type="number" step="any" min="0" value="50.0"' in body
    assert c.get("/scanner?min_price=5&max_price=10").status_code == 200
    api = c.get("/api/scanner/gainers?min_price=50&max_price=10")
    assert api.status_code == 400
    assert api.get_json()["error"]["message"] == "min_price: must not exceed max_price"
