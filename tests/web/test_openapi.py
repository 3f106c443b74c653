"""The API as a whole: every endpoint as its OpenAPI document says, JSON errors, unknown
parameters refused."""
from __future__ import annotations

from tests.helpers import check


def test_api_errors_are_json(app) -> None:
    client = app.test_client()
    resp = client.get("/api/nothing-here")
    assert resp.status_code == 404 and resp.is_json
    assert resp.get_json()["error"]["code"] == "not_found"
    resp = client.post("/api/stocks")
    assert resp.status_code == 405 and resp.get_json()["error"]["code"] == "method_not_allowed"


def test_every_endpoint_matches_the_openapi_document(seeded) -> None:
    client = seeded
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == {"/api/stocks", "/api/stocks/{ticker}", "/api/stocks/{ticker}/history",
                                  "/api/stocks/{ticker}/chart", "/api/backfill/{ticker}", "/api/search",
                                  "/api/watchlists", "/api/watchlists/{list_id}",
                                  "/api/watchlists/{list_id}/tickers",
                                  "/api/watchlists/{list_id}/tickers/{ticker}", "/api/me", "/api/me/settings",
                                  "/api/alerts", "/api/health", "/api/symbols", "/api/symbols/{ticker}",
                                  "/api/scanner", "/api/scanner/{list_name}", "/api/stream",
                                  "/api/rules", "/api/rules/{rule_id}", "/api/rules/replay",
                                  "/api/rules/{rule_id}/replay", "/api/alert-events",
                                  "/api/alert-events/{event_id}", "/api/deliveries/{delivery_id}/redeliver",
                                  "/api/tokens", "/api/tokens/{token_id}",
                                  "/api/webhooks", "/api/webhooks/{webhook_id}",
                                  "/api/webhooks/{webhook_id}/rotate"}
    assert spec["paths"]["/api/symbols"]["post"]["security"] == [{"bearerToken": []},
                                                              {"sessionCookie": [], "csrfHeader": []}]
    check(spec, "/api/stocks", client.get("/api/stocks"))
    detail = check(spec, "/api/stocks/{ticker}", client.get("/api/stocks/brk.b"))
    assert detail["ticker"] == "BRK.B" and len(detail["window"]) == 5
    check(spec, "/api/stocks/{ticker}/history", client.get("/api/stocks/AAPL/history"))
    check(spec, "/api/stocks/{ticker}/history", client.get("/api/stocks/AAPL/history?interval=5m"))
    check(spec, "/api/alerts", client.get("/api/alerts"))
    check(spec, "/api/health", client.get("/api/health"), 503)  # no scheduler in this test
    stream = check(spec, "/api/stream", client.get("/api/stream"))
    assert stream["state"] == "not running" and "jobs.stream" in stream["reason"]  # none runs here
    check(spec, "/api/stocks/{ticker}", client.get("/api/stocks/NOPE"), 404)
    check(spec, "/api/stocks/{ticker}/history", client.get("/api/stocks/AAPL/history?limit=0"), 400)
    html = client.get("/api/docs").get_data(as_text=True)
    assert "/api/stocks/{ticker}/history" in html and "https://cdn" not in html


def test_every_endpoint_refuses_unknown_parameters(seeded) -> None:
    for path in ("/api/stocks", "/api/stocks/AAPL", "/api/symbols", "/api/health", "/api/scanner",
                 "/api/alerts", "/api/stocks/AAPL/history", "/api/scanner/gainers"):
        resp = seeded.get(path + "?foo=1")
        assert resp.status_code == 400, path
        assert resp.get_json()["error"] == {"code": "bad_parameter", "message": "foo: unknown parameter"}
