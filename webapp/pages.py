"""Server-rendered pages.  Times are shown in exchange time (America/New_York)."""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, render_template

from webapp import services
from webapp.core.market import EXCHANGE_TZ

bp = Blueprint("pages", __name__)


@bp.app_template_filter("exchange_time")
def exchange_time(value: str | datetime | None) -> str:
    """ISO text or datetime -> 'Nov 20 10:01:00 EST' at the exchange."""
    if not value:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(EXCHANGE_TZ).strftime("%b %d %H:%M:%S %Z")


@bp.get("/")
def dashboard():
    snap = services.snapshot()
    return render_template("dashboard.html", snap=snap, symbols=services.tracked_symbols())
