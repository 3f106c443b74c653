"""Server-rendered pages.  Times are shown in exchange time (America/New_York).

Each page arrives with its data already in the HTML (rows, sparklines, the
chart's history) so it draws before any script runs; the scripts then keep
it live over Socket.IO.
"""
from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from webapp.core.indicator_series import StudyError
from webapp.core.market import EXCHANGE_TZ, RANGE_ALIASES, RANGES
from webapp.core.rules import model as rule_model
from webapp.core.scanner import LISTS, Filters
from webapp.core.scanner_live import LIVE_LISTS
from webapp.core.validation import normalise_ticker
from webapp.extensions import db
from webapp.services import alert_events, charts, context, rules, stocks
from webapp.services import scanner as scanner_service
from webapp.services import symbols as symbols_service
from webapp.store.pg import DB_DOWN

bp = Blueprint("pages", __name__)


@bp.app_template_filter("exchange_time")
def exchange_time(value: str | datetime | None) -> str:
    """ISO text or datetime -> "Nov 20, 10:01:00 EST" at the exchange."""
    if not value:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(EXCHANGE_TZ).strftime("%b %d, %H:%M:%S %Z")


@bp.app_template_filter("short_time")
def short_time(value: str | datetime | None) -> str:
    """A table cell's time at the exchange, as the pages' script writes it: "10:01:00" on today's
    New York date, else "Nov 20 10:01" (the full time is the cell's title)."""
    if not value:
        return ""
    when = (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(EXCHANGE_TZ)
    today = datetime.now(EXCHANGE_TZ).date()
    return when.strftime("%H:%M:%S") if when.date() == today else when.strftime("%b %d %H:%M")


@bp.app_template_filter("compact")
def compact(value: float | None) -> str:
    """A count as the scanner shows it, as the script's Intl compact notation does: 950, 12.3K, 3M."""
    if value is None:
        return "–"
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            scaled = value / size
            return (f"{scaled:.1f}".removesuffix(".0") if abs(scaled) < 100 else f"{scaled:.0f}") + unit
    return f"{value:.0f}"


@bp.app_template_filter("price")
def price(value: float | None) -> str:
    """A price at the quote's precision: cents from $1 up, four decimals below."""
    if value is None:
        return "–"
    return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"


@bp.app_template_filter("sparkline")
def sparkline(prices: list[float] | None, width: int = 120, height: int = 28) -> str:
    """SVG polyline points for a small sparkline ('' when there is nothing to draw)."""
    if not prices or len(prices) < 2:
        return ""
    low, high = min(prices), max(prices)
    span = (high - low) or 1.0
    step = width / (len(prices) - 1)
    return " ".join(
        f"{i * step:.1f},{height - 2 - (p - low) / span * (height - 4):.1f}" for i, p in enumerate(prices)
    )


@bp.app_template_global("range_bar")
def range_bar(low: float, high: float, price: float) -> str:
    """The day's range as a small bar with the last price on it (dashboard.js draws the same)."""
    pos = 0.5 if high <= low else min(1.0, max(0.0, (price - low) / (high - low)))
    title = f"low {low:.2f} · high {high:.2f}"
    return (f'<svg class="range-bar" viewBox="0 0 64 10" width="64" height="10" role="img" '
            f'aria-label="{title}"><title>{title}</title><line x1="2" y1="5" x2="62" y2="5"/>'
            f'<circle cx="{2 + pos * 60:.1f}" cy="5" r="3"/></svg>')


@bp.app_context_processor
def _simulated() -> dict[str, bool]:
    """Every page says plainly when its prices come from the simulated market (issue 26, item 10)."""
    return {"simulated": symbols_service.simulated(),
            "simulated_hours": context.config().SIM_FOLLOWS_MARKET_HOURS}


@bp.app_context_processor
def _builtin_rule() -> dict[str, int | None]:
    """The built-in rule's id: a signed-in page toasts the user's own rules' fires, not its crossovers."""
    from webapp.web.auth import signed_in

    if signed_in() is None:
        return {}
    try:
        return {"builtin_rule_id": rules.builtin_rule()["id"]}
    except DB_DOWN:
        db.session.rollback()
        return {"builtin_rule_id": None}


@bp.get("/")
def dashboard():
    from webapp.store import watchlists
    from webapp.web.auth import signed_in
    from webapp.web.watchlists import COLUMNS

    snap = stocks.snapshot()
    symbols = list(context.tracked_symbols())
    user = signed_in()
    saved = user.settings.get("dashboard_columns") if user else None
    return render_template("dashboard.html", snap=snap, symbols=symbols, names=symbols_service.names(),
                           sparks=stocks.sparklines(symbols),
                           max_subscribe=context.config().MAX_SUBSCRIBE_TICKERS,
                           watchlists=watchlists.lists(db.session, user.id) if user else [],
                           columns_all=COLUMNS, columns=saved or list(COLUMNS),
                           columns_saved=saved is not None)


@bp.get("/stocks/<ticker>")
def chart(ticker: str):
    try:
        ticker = stocks.known_ticker(ticker)
    except stocks.UnknownTicker as exc:
        abort(404, description=str(exc))
    asked = request.args.get("range", "1d")
    range_name = RANGE_ALIASES.get(asked, asked)
    if range_name not in RANGES:
        abort(404, description=f"range must be one of {', '.join(RANGES)}")
    interval = request.args.get("interval") or None
    if interval is not None and interval not in charts.CHART_INTERVALS:
        abort(400, description=f"interval must be one of {', '.join(charts.CHART_INTERVALS)}")
    try:
        data = charts.chart_data(ticker, range_name, interval, request.args.get("indicators"))
    except StudyError as exc:  # said beside the box, which keeps what was typed; the chart still draws
        data = charts.chart_data(ticker, range_name, interval, None)
        return render_template("chart.html", data=data, ranges=RANGES, focus=request.args.get("at", ""),
                               study_error=f"indicators: {exc}",
                               typed=request.args.get("indicators", "")), 400
    return render_template("chart.html", data=data, ranges=RANGES, focus=request.args.get("at", ""))


@bp.get("/search")
def search():
    """The header's search box: a tracked ticker opens its chart; else the matches, and "Track"."""
    q = "".join(c for c in request.args.get("q", "")[:40] if c.isprintable())
    got = symbols_service.search_symbols(q)
    tracked = [h for h in got["results"] if h["tracked"]]
    exact = [h for h in tracked if h["ticker"] == q.strip().upper()]
    if exact:
        return redirect(url_for("pages.chart", ticker=exact[0]["ticker"]))
    by_name = [h for h in tracked if h["match"] == "name"]
    if len(got["results"]) == 1 and tracked and (by_name or not got["track"]):  # "apple": the one it names
        return redirect(url_for("pages.chart", ticker=tracked[0]["ticker"]))
    return render_template("search.html", got=got)


@bp.post("/symbols/track")
def track():
    """"Track" from the search page (CSRF-checked like every form): a signed-in user only."""
    from webapp.web.auth import signed_in

    raw = request.form.get("ticker", "")[:40]
    if signed_in() is None:
        return redirect(url_for("auth.login", next=url_for("pages.search", q=raw)))
    ticker = normalise_ticker(raw)
    if ticker is None:
        abort(400, description=f"{raw!r} is not a ticker (1-10 characters of A-Z 0-9 . -)")
    user = signed_in()
    try:
        symbols_service.track_symbol(ticker, user.id, limited=not user.is_admin)
    except (symbols_service.SymbolLimit, symbols_service.NotListed) as exc:
        flash(f"Not tracked: {exc}")
        return redirect(url_for("pages.search", q=raw))
    flash(f"Tracking {ticker}: its history is loading.")
    return redirect(url_for("pages.chart", ticker=ticker))


@bp.get("/scanner")
def scanner():
    from pydantic import ValidationError

    from webapp.web.apispec import validation_message
    from webapp.web.scanner import ScanQuery

    try:
        q = ScanQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        abort(400, description=validation_message(exc))
    extra = Filters(q.min_price, q.max_price, q.min_volume, q.min_rvol)
    asked = {k: v for k, v in extra._asdict().items() if v is not None}
    problem = q.problem()  # said beside the form, which keeps what was typed; the lists stay unfiltered
    cfg = context.config()
    lists = scanner_service.scanner_lists(scanner_service.ALL_LISTS, cfg.SCAN_TOP,
                                          Filters() if problem else extra)
    return render_template("scanner.html", lists=lists, asked=asked, top=cfg.SCAN_TOP, problem=problem,
                           max_age=3 * cfg.TICK_SECONDS,
                           live=any(v["live"] for v in lists.values()), live_lists=LIVE_LISTS,
                           market=next(iter(lists.values()))["market"]), 400 if problem else 200


@bp.get("/alerts")
def alerts():
    raw = request.args.get("ticker", "").strip()
    ticker = normalise_ticker(raw) if raw else None
    if raw and ticker is None:  # said beside the form, which keeps what was typed
        return render_template("alerts.html", alerts=[], ticker=raw, symbols=context.tracked_symbols(),
                               error=f"{raw!r} is not a ticker (1-10 characters of A-Z 0-9 . -)"), 400
    return render_template("alerts.html", alerts=stocks.alert_feed(ticker), ticker=ticker or "",
                           symbols=context.tracked_symbols(), builtin=rules.builtin_rule())


@bp.get("/alerts/rules")
def alert_rules():
    """Rules, their live events with explanations, webhooks and their delivery logs.

    Reads render here, each user's own (anonymous: the built-in rule's events only); changes go
    through ``/api/rules`` and ``/api/webhooks`` with the signed-in page's session, or a token the
    user pastes (kept in the browser's session storage).
    """
    from webapp.web.auth import signed_in

    user = signed_in()
    return render_template("rules.html", events=alert_events.recent_events(user.id if user else None, 50),
                           operators=rule_model.BAR_OPS, signals=rule_model.SIGNAL_OPS,
                           pair_ops=rule_model.PAIR_OPS,
                           channel_ops=rule_model.CHANNEL_OPS, fields=rule_model.FIELDS,
                           metrics=rule_model.METRICS, frequencies=rule_model.FREQUENCIES,
                           frequency_lines=rule_model.FREQUENCY_LINES, lists=LISTS,
                           symbols=context.tracked_symbols())
