"""Server-rendered pages."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp import services

bp = Blueprint("pages", __name__)


@bp.get("/")
def dashboard():
    snap = services.snapshot()
    return render_template("dashboard.html", snap=snap, symbols=services.tracked_symbols())
