from __future__ import annotations

from webapp import services


def test_dashboard_renders_server_side_rows(app) -> None:
    services.run_tick_now()
    html = app.test_client().get("/").get_data(as_text=True)
    assert 'tr data-ticker="BRK.B"' in html
    snap = services.snapshot()
    aapl = next(s for s in snap["stocks"] if s["ticker"] == "AAPL")
    assert f"{aapl['price']:.2f}" in html
    assert "vendor/socket.io-client/socket.io.min.js" in html
    assert "https://" not in html  # nothing from a CDN


def test_unknown_page_is_a_proper_404(app) -> None:
    resp = app.test_client().get("/no/such/page")
    assert resp.status_code == 404 and "404" in resp.get_data(as_text=True)
