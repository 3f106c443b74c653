"""Alert rules: checking one as sent, pausing and resuming, the built-in SMA rule, and replay.

Replay runs the same pure evaluator as the live tick over the stored
readings, so "would have fired" and "fired" are one definition; a rule
judged on the print is judged again on the seconds the evaluate process
stored, where it stored some (:mod:`webapp.evaluate.replay`).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from webapp.core import scanner as scan_core
from webapp.core.market import range_start
from webapp.core.rules.evaluate import evaluate as rule_evaluate
from webapp.core.rules.model import CURRENT_METRICS, Rule, RuleError, judged_on_print
from webapp.core.rules.operands import reading_series
from webapp.core.rules.parse import RuleSpec, parse_rule
from webapp.evaluate.replay import replay as replay_on_print
from webapp.extensions import db
from webapp.services.context import config, tracked_symbols
from webapp.services.evaluation import judged_where
from webapp.services.scanner import scanner_list
from webapp.store import intrabar_tape, rule_states, webhooks
from webapp.store import rules as rules_store
from webapp.tick.rules import LiveRule

REPLAY_MAX_ROWS = 2_000_000


REPLAY_MAX_DAYS = 31


class ReplayError(ValueError):
    """A replay that cannot be run as asked (the message says why)."""


# signals a replay judges from the stored seconds (a new high or low of the day is in the bars); the
# rest read the live tape, which is not stored
REPLAYED_SIGNALS = ("new_high_of_day", "new_low_of_day")
LIVE_ONLY = {"seconds": "a move over seconds"}

def rule_spec(raw: dict[str, Any], owner: int) -> RuleSpec:
    """A rule as sent, validated (raises :class:`~webapp.core.rules.model.RuleError` with the reason).

    A ``webhook:<id>`` channel must name an endpoint of the rule's owner.
    """
    spec = parse_rule(raw, scan_core.LISTS)
    wanted = {int(c.split(":", 1)[1]) for c in spec.channels if c.startswith("webhook:")}
    unknown = wanted - webhooks.existing_endpoints(db.session, list(wanted), owner) if wanted else set()
    if unknown:
        raise RuleError(f"channels: no webhook endpoint {', '.join(map(str, sorted(unknown)))} "
                        "(create one with POST /api/webhooks)")
    return spec


def set_rule_status(rule_id: int, status: str, owner: int | None) -> dict[str, Any] | None:
    """Pause (mute) or resume ``owner``'s rule (None: the built-in one, an admin's call); resuming
    also re-enables tickers the storm breaker stopped."""
    changed = rules_store.set_status(db.session, rule_id, status, owner)
    if changed is not None and status == "active":
        rule_states.rearm_stopped(db.session, rule_id)
    return changed


def builtin_rule() -> dict[str, Any]:
    """The built-in SMA crossover as a rule (made on first read): its id and whether it is muted."""
    return rules_store.ensure_builtin(db.session, config().SMA_PERIOD)


def rules_with_state(owner: int) -> list[dict[str, Any]]:
    """``owner``'s rules, the built-in SMA crossover first, with the tickers the storm breaker stopped
    (``stopped_too_often``)."""
    builtin_rule()
    rules = rules_store.all_rules(db.session, owner)
    stopped = rule_states.stopped_tickers(db.session, [r["id"] for r in rules])
    return judged_where([{**r, "stopped_too_often": stopped.get(r["id"], [])} for r in rules])


def rule_tickers(scope: dict[str, Any]) -> list[str]:
    """The tickers a scope names now: its list, every tracked symbol, or a scanner list's members."""
    if "tickers" in scope:
        return list(scope["tickers"])
    if scope.get("all"):
        return list(tracked_symbols())
    members = scanner_list(scope["scan"], config().SCAN_DEPTH)["rows"]
    return [r["ticker"] for r in members]




def replay_rule(spec: RuleSpec, start: datetime | None, end: datetime | None, rule_id: int = 0,
                version: int = 0, now: datetime | None = None) -> dict[str, Any]:
    """The fires ``spec`` would have made over the stored minute readings, with their inputs.

    The same evaluator as the live tick (:func:`webapp.core.rules.evaluate.evaluate`),
    from a fresh (armed) state; nothing is stored or delivered.  Readings
    before ``start`` warm up SMAs, EMAs and N-bar references.  The default
    span is the last 5 XNYS sessions, what the rule form shows as you edit.
    """
    import numpy as np

    now = now or datetime.now(timezone.utc)
    start = start or range_start(now, "5d")
    end = end or now
    if start >= end:
        raise ReplayError("start must be before end")
    if end - start > timedelta(days=REPLAY_MAX_DAYS):
        raise ReplayError(f"a replay covers at most {REPLAY_MAX_DAYS} days")
    cfg = config()
    tickers = rule_tickers(spec.scope)
    warm = timedelta(seconds=max(3 * 86400, 4 * spec.condition.lookback * cfg.TICK_SECONDS))
    rows = rules_store.readings(db.session, tickers, start - warm, end, REPLAY_MAX_ROWS + 1)
    if len(rows) > REPLAY_MAX_ROWS:
        raise ReplayError(f"more than {REPLAY_MAX_ROWS:,} stored readings in that span: narrow it")
    times = np.array(sorted({int(r.time.timestamp()) for r in rows}), np.int64)
    at = {t: i for i, t in enumerate(times.tolist())}
    row_of = {t: i for i, t in enumerate(tickers)}
    shape = (len(tickers), len(times))
    cols = {k: np.full(shape, np.nan) for k in ("close", "volume", "prev_close", "day_high", "day_low")}
    for r in rows:
        i, j = row_of[r.ticker], at[int(r.time.timestamp())]
        cols["close"][i, j] = r.price
        cols["volume"][i, j] = r.volume if r.volume is not None else np.nan
        cols["prev_close"][i, j] = r.prev_close if r.prev_close is not None else np.nan
        cols["day_high"][i, j] = r.high if r.high is not None else np.nan
        cols["day_low"][i, j] = r.low if r.low is not None else np.nan
    series = reading_series(cols, times)
    first = int(np.searchsorted(times, int(start.timestamp())))
    rule = Rule(rule_id, version, spec.condition, spec.frequency, spec.cooldown_seconds, spec.expires_at)
    on_print = 0
    if judged_on_print(spec.frequency, spec.scope):
        seconds = intrabar_tape.read(db.session, tickers, int(start.timestamp()), int(end.timestamp()),
                                     REPLAY_MAX_ROWS + 1)
        if len(seconds) > REPLAY_MAX_ROWS:
            raise ReplayError(f"more than {REPLAY_MAX_ROWS:,} stored seconds in that span: narrow it")
        live = LiveRule(rule, "replay", dict(spec.scope), (), spec.condition.depth)
        found, stopped, on_print = replay_on_print(live, tickers, cols, series, times, first, seconds,
                                                   cfg.TICK_SECONDS)
    else:
        out = (rule_evaluate(rule, tickers, series, times, {}, np.isnan(cols["close"]), first)
               if len(times) else None)
        found, stopped = ([], []) if out is None else (out.fires, out.stopped)
    fires = [{"ticker": f.ticker, "bar_time": datetime.fromtimestamp(f.bar_time, timezone.utc).isoformat(),
              "bucket": f.bucket, "inputs": f.inputs, "explanation": f.explanation,
              "on_print": "trade_time_ms" in f.inputs} for f in found]
    live_only = {LIVE_ONLY.get(s, s) for s in spec.condition.signals if s not in REPLAYED_SIGNALS}
    unreplayable = sorted({o.name for o in spec.condition.operands
                           if o.kind == "metric" and o.arg in CURRENT_METRICS} | live_only)
    return {"start": start.isoformat(), "end": end.isoformat(), "tickers": len(tickers),
            "unreplayable": unreplayable,
            "bars": max(0, len(times) - first), "count": len(fires), "fires": fires,
            "judged_on_print": on_print, "stopped_too_often": stopped,
            "note": "minute readings as stored: a bar's open, high and low are its price; vwap, rvol, "
                    "gap_pct and day_volume are not stored per minute, nor the live tape's volume spikes, "
                    "moves over seconds, halts and resumes, so conditions on them do not hold "
                    "in a replay; a rule judged on the print is judged on the seconds the evaluate process "
                    "stored for a ticker's bar (judged_on_print counts them), at its close elsewhere"}
