"""JSON endpoints.  Thin: each calls a service and shapes the answer."""
from __future__ import annotations

from flask import Blueprint, jsonify

from webapp import services

bp = Blueprint("api", __name__)


@bp.get("/stocks")
def stocks():
    return jsonify(services.snapshot())


@bp.get("/health")
def health():
    ok, body = services.health()
    return jsonify(body), 200 if ok else 503
