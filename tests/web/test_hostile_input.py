"""Bad input is a 400 that names what is wrong, never a 500: the probes users met, and a fuzz over every
endpoint's path, query and body (hypothesis), asserting no 500 anywhere and JSON that is JSON."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import token_for
from webapp.web.apispec import ENDPOINTS

HOSTILE_IDS = ["²", "①", "١٢", "𝟙", "1_000", " 1", "-1", "9" * 19, "abc", "1.5"]
PROBES = [  # method, path, body: each one a 500 before
    ("GET", "/api/rules/²", None), ("GET", "/api/webhooks/①", None), ("GET", "/api/alert-events/²", None),
    ("POST", "/api/deliveries/²/redeliver", None), ("PATCH", "/api/watchlists/abc", {"name": "x"}),
    ("GET", "/api/stocks/AAPL/history?cursor=aA", None), ("GET", "/api/alerts?cursor=YQ", None),
    ("POST", "/api/rules", {"name": "bad\x00name", "scope": {"tickers": ["AAPL"]},
                            "condition": {"op": "greater_than", "a": {"price": True}, "b": {"const": 1}}}),
    ("POST", "/api/webhooks", {"url": "https://example.com/\x00", "description": "x"}),
    ("POST", "/api/webhooks", {"url": "https://example.com/", "description": "a\x00b"}),
    ("POST", "/api/watchlists", {"name": "a\x00b"}),
    ("POST", "/api/rules", {"name": "x", "expires_at": 1e12, "scope": {"tickers": ["AAPL"]},
                            "condition": {"op": "greater_than", "a": {"price": True}, "b": {"const": 1}}}),
    ("POST", "/api/rules", {"name": "x", "expires_at": -1e12, "scope": {"tickers": ["AAPL"]},
                            "condition": {"op": "greater_than", "a": {"price": True}, "b": {"const": 1}}}),
    ("GET", "/api/alert-events?after=99999999999999999999", None),
    ("PATCH", "/api/watchlists/1", {"position": 10 ** 20}),
    ("GET", "/api/search?q=%00", None), ("GET", "/api/scanner?min_price=inf", None),
    ("GET", "/api/scanner?min_price=nan", None), ("GET", "/api/stocks/AAPL/history?limit=1e400", None),
]


@pytest.fixture
def session_client(app):
    """An admin signed in by session (its CSRF token on every request) and by token: both doors."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for('fuzz', admin=True)}"
    return c


@pytest.mark.parametrize(("method", "path", "body"), PROBES)
def test_each_probe_is_a_400_that_says_why(session_client, method, path, body) -> None:
    resp = session_client.open(path, method=method, json=body)
    assert resp.status_code == 400, (path, resp.get_json())
    message = resp.get_json()["error"]["message"]
    assert ":" in message and "internal" not in message  # "<field>: <what is wrong>"


def test_a_cursor_is_checked_part_by_part(session_client) -> None:
    import base64

    for raw in ("h|not-a-time", "a|2026-01-01T00:00:00+00:00|²", "a|2026-01-01T00:00:00|1", "a", "x|1"):
        cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        for url in (f"/api/alerts?cursor={cursor}", f"/api/stocks/AAPL/history?cursor={cursor}"):
            resp = session_client.get(url)
            assert resp.status_code == 400 and "cursor" in resp.get_json()["error"]["message"], url


GOOD_BODIES = {  # one acceptable body per path; a field of it then gets half a surrogate pair
    "/api/watchlists": {"name": "ok"},
    "/api/webhooks": {"url": "https://example.com/", "description": ""},
    "/api/rules": {"name": "ok", "scope": {"tickers": ["AAPL"]},
                   "condition": {"op": "greater_than", "a": {"price": True}, "b": {"const": 1}}},
}


@pytest.mark.parametrize(("path", "field"), [("/api/watchlists", "name"), ("/api/webhooks", "description"),
                                             ("/api/rules", "name")])
def test_a_lone_surrogate_is_not_text(session_client, path, field) -> None:
    """JSON may escape half a UTF-16 pair ("\\ud800"), which no UTF-8 column can store."""
    raw = json.dumps({**GOOD_BODIES[path], field: "a\ud800b"})  # json.dumps writes it as the escape
    resp = session_client.post(path, data=raw, content_type="application/json")
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"]["message"] == f"{field}: a lone UTF-16 surrogate is not text"


def test_deep_json_nan_and_huge_bodies_are_refused(session_client) -> None:
    deep = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for raw, needle in ((deep, "nested deeper"), ('{"name": NaN}', "not JSON"),
                        ('{"name": Infinity}', "not JSON"), ('{"a": ' + "9" * 5000 + "}", "not JSON")):
        resp = session_client.post("/api/watchlists", data=raw, content_type="application/json")
        assert resp.status_code == 400 and needle in resp.get_json()["error"]["message"], raw[:40]
    big = session_client.post("/api/watchlists", data=b"{" + b" " * 20_000_000 + b"}",
                              content_type="application/json")
    assert big.status_code == 413 and big.is_json


def test_answers_never_hold_non_finite_numbers(app) -> None:
    from flask import jsonify

    with app.test_request_context():
        value = {"a": float("inf"), "b": [float("nan"), 1.5], "c": {"d": float("-inf")}}
        body = jsonify(value).get_data(as_text=True)
    assert json.loads(body) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    assert "Infinity" not in body and "NaN" not in body


def _paths() -> list[tuple[str, str]]:
    """Every declared endpoint (importing the views declares them, as create_app does)."""
    import importlib
    import pkgutil

    import webapp.web

    for mod in pkgutil.iter_modules(webapp.web.__path__):
        importlib.import_module(f"webapp.web.{mod.name}")
    return sorted({(e.method.upper(), e.path) for e in ENDPOINTS})


HOSTILE_TEXT = st.one_of(
    st.sampled_from(["", " ", "\x00", "inf", "-inf", "nan", "1e400", "9" * 30, "-1", "²", "①", "%", "'",
                     "' OR 1=1 --", "<script>", "../..", "AAPL", "1", "0", "true", "null", "[]", "{}"]),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
              st.floats(allow_nan=False, allow_infinity=False), HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)),
    max_leaves=12,
)


@pytest.mark.parametrize(("method", "path"), _paths())
def test_fuzz_every_endpoint_never_answers_500(session_client, method, path) -> None:
    endpoint = next(e for e in ENDPOINTS if e.path == path and e.method.upper() == method)
    fields = list(endpoint.body.model_fields) if endpoint.body else []
    params = list(endpoint.query.model_fields) if endpoint.query else []

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(segment=st.one_of(st.sampled_from(HOSTILE_IDS), HOSTILE_TEXT.filter(lambda t: "/" not in t)),
           query=st.dictionaries(st.sampled_from(params or ["x"]), HOSTILE_TEXT, max_size=3),
           body=st.dictionaries(st.sampled_from(fields or ["x"]), JSON_VALUES, max_size=4))
    def run(segment: str, query: dict[str, str], body: dict) -> None:
        from urllib.parse import quote

        url = re.sub(r"<[^>]+>", quote(segment, safe="") or "1", path)
        resp = session_client.open(url, method=method, query_string=query,
                                   json=body if endpoint.body else None)
        assert resp.status_code < 500 or (path == "/api/health" and resp.status_code == 503), \
            (url, query, body, resp.get_data(as_text=True)[:300])
        if resp.is_json:
            text = resp.get_data(as_text=True)
            assert "Infinity" not in text and "NaN" not in text.replace('"NaN"', "")

    run()
