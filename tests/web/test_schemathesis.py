"""Schemathesis against the live web process (gunicorn, real Redis and Postgres):
generated requests, valid and invalid, must never get a 5xx or an answer that
contradicts the OpenAPI document.

Driven by hand (operation strategies + hypothesis) because schemathesis's own
pytest plugin does not load under pytest 9.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.helpers import minutes, pretend_processes_run, run_via_rq
from tests.processes import WebProcess
from webapp.extensions import db
from webapp.services import ticks
from webapp.store import symbols

pytestmark = pytest.mark.slow


def test_api_conforms_to_its_openapi_document(service_urls, clean, app) -> None:
    run_via_rq(app, minutes(8))  # history and alerts to page through
    # a healthy pipeline, so /api/health answers 200 (a 503 there is a finding)
    ticks.run_tick_now()
    pretend_processes_run(app)
    headers = {"Authorization": f"Bearer {symbols.create_token(db.session, 'schemathesis')}"}
    proc = WebProcess(*service_urls, API_RATE_LIMIT="100000/minute").start()
    try:
        schema = schemathesis.openapi.from_url(proc.url + "/api/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 39
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=30, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case) -> None:
                # Rules OpenAPI cannot state are allowed to refuse schema-valid
                # input with a 400: a cursor must be one this endpoint issued, start
                # must come before end, min_price must not exceed max_price.  Every
                # other check stays on.
                # So is an alert rule's condition and scope: what operands an operator
                # takes, and which tickers and lists exist, is checked by the rule
                # parser (tests/core/test_rules.py, tests/web/test_rules_api.py), and a
                # webhook URL's address by the SSRF check (tests/delivery/test_webhooks.py).
                query = case.query or {}
                cross_field = "cursor" in query or any(
                    low in query and high in query for low, high in (("start", "end"),
                                                                     ("min_price", "max_price")))
                semantic = (case.operation.path.startswith(("/api/rules", "/api/webhooks"))
                            and case.body is not None)
                cross_field = cross_field or semantic
                case.call_and_validate(
                    headers=headers,
                    excluded_checks=[schemathesis.checks.positive_data_acceptance] if cross_field else [],
                )

            check()
    finally:
        proc.stop()
