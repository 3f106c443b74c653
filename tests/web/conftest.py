"""Fixtures of the API's tests."""
from __future__ import annotations

import pytest

from tests.helpers import minutes
from webapp.services import ticks


@pytest.fixture
def seeded(app):
    for at in minutes(12):
        ticks.run_tick_now(at)
    return app.test_client()
