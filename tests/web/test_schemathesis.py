"""Schemathesis against the live web process (gunicorn, real Redis and Postgres):
generated requests, valid and invalid, must never get a 5xx or an answer that
contradicts the OpenAPI document.

Driven by hand (operation strategies + hypothesis) because schemathesis's own
pytest plugin does not load under pytest 9.
"""
from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.helpers import minutes, pretend_processes_run, run_via_rq, token_for
from tests.processes import WebProcess
from webapp.core.rules.model import MOVING_OPS, SIGNAL_OPS
from webapp.services import ticks

pytestmark = pytest.mark.slow


def _live_or_either(rule: object) -> bool:
    """A rule whose acceptance OpenAPI cannot state: a signal needs an intra-bar frequency and a scope
    of tickers or all, and a move takes exactly one of bars and seconds (seconds only for a percent
    move of the price)."""
    condition = rule.get("condition") if isinstance(rule, dict) else None
    if not isinstance(condition, dict):
        return False
    leaves = condition.get("of") if condition.get("op") == "all" else [condition]
    return any(isinstance(c, dict) and (c.get("op") in SIGNAL_OPS or (
        c.get("op") in MOVING_OPS and ("seconds" in c or "bars" not in c))) for c in leaves or [])


def test_api_conforms_to_its_openapi_document(service_urls, clean, app) -> None:
    run_via_rq(app, minutes(8))  # history and alerts to page through
    # a healthy pipeline, so /api/health answers 200 (a 503 there is a finding)
    ticks.run_tick_now()
    pretend_processes_run(app)
    headers = {"Authorization": f"Bearer {token_for('schemathesis', admin=True)}"}
    proc = WebProcess(*service_urls, API_RATE_LIMIT="100000/minute").start()
    try:
        schema = schemathesis.openapi.from_url(proc.url + "/api/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 42
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=30, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case) -> None:
                # Rules OpenAPI cannot state are allowed to refuse schema-valid
                # input with a 400: a cursor must be one this endpoint issued, start
                # must come before end (and a replay's span, whose end defaults to now,
                # last at most 31 days), min_price must not exceed max_price, a rule's
                # webhook channel must name an endpoint that exists, and a webhook URL
                # must resolve to an address the SSRF check allows, a MACD operand's fast
                # period must be shorter than its slow one, and a signal or a move over seconds
                # has its own terms (_live_or_either)
                # (tests/delivery/test_webhooks.py).  Every other check stays on: an
                # alert rule's body is typed in the document (one branch per operator,
                # operands with their ranges), so every rule schemathesis makes must be
                # accepted.
                query = case.query or {}
                cross_field = "cursor" in query or any(
                    low in query and high in query for low, high in (("start", "end"),
                                                                     ("min_price", "max_price")))
                body = case.body if isinstance(case.body, dict) else {}
                rule = body.get("rule", body) if case.operation.path.startswith("/api/rules") else {}
                channels = rule.get("channels") if isinstance(rule, dict) else None
                semantic = ((case.operation.path.startswith("/api/webhooks") and case.body is not None)
                            or (isinstance(channels, list)
                                and any(str(c).startswith("webhook:") for c in channels))
                            or (case.operation.path.endswith("/replay")
                                and ("start" in body or "end" in body))
                            or '"macd' in json.dumps(body) or _live_or_either(rule))
                cross_field = cross_field or semantic
                case.call_and_validate(
                    headers=headers,
                    excluded_checks=[schemathesis.checks.positive_data_acceptance] if cross_field else [],
                )

            check()
    finally:
        proc.stop()
