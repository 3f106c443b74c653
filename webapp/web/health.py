"""``/api/health`` and ``/api/stream``: whether every part runs, and the stream's state.

``/api/health`` answers 503 with the problems named when anything is wrong,
so a load balancer or an uptime check needs no other logic.
"""
from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field

from webapp.services import health as health_service
from webapp.web.apispec import endpoint

bp = Blueprint("health", __name__)


class Health(BaseModel):
    status: Literal["ok", "unhealthy"]
    problems: list[str]
    checks: dict[str, Any]


class StreamState(BaseModel):
    running: bool = Field(description="a stream process reported in the last 15 s")
    state: str = Field(description="connected, connecting, reconnecting, down (a fatal answer: not "
                                   "retried), standby, not running, or off (STREAM_PROVIDER=none)")
    provider: str
    reason: str = Field(description="why it is not connected")
    detail: dict[str, Any] = Field(description="the leader's own report: message and data ages, trades/s, "
                                               "reconnects, dropped and malformed frames, symbols streamed "
                                               "vs requested, and the gaps it marked")


@endpoint(bp, "/health", response=Health, summary="Health", errors=(503,), bodies={503: Health})
def health():
    ok, body = health_service.health()
    return jsonify(body), 200 if ok else 503


@endpoint(bp, "/stream", response=StreamState, summary="Stream state")
def stream():
    return jsonify(health_service.stream_state())
