"""``/api/openapi.json`` and ``/api/docs``: the OpenAPI document built from the declared endpoints."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from webapp.web.apispec import openapi_document

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@bp.get("/docs")
def docs():
    return render_template("api_docs.html", spec=openapi_document())
