"""``/api/rules``: alert rules people choose, and replays of them over the stored history.

Thin: pydantic checks the body's shape, :func:`webapp.core.rules.parse.parse_rule`
its meaning (a 400 names the part that is wrong), the store keeps it.
A rule belongs to the user who made it: every read and write is scoped to the caller
(someone else's rule is a 404, never a 403, so ids confirm nothing).  The built-in rule is
readable by every signed-in user; only an admin pauses or resumes it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from webapp.core.rules.model import FREQUENCIES, MAX_EPOCH, RuleError
from webapp.extensions import db
from webapp.services import rules as rules_service
from webapp.services import scanner
from webapp.services.evaluation import judged_where
from webapp.store import rules as rules_store
from webapp.web import rule_schema
from webapp.web.access import PRIVATE, me, writer
from webapp.web.apispec import NAME_PATTERN, Timestamp, component_ref, endpoint
from webapp.web.errors import ApiError

bp = Blueprint("rules", __name__)
CHANNEL_PATTERN = r"^(browser|webhook:[1-9][0-9]{0,17})$"


class RuleBody(BaseModel):
    """A rule as sent.  ``condition`` and ``scope`` are checked by the rule parser, whose 400 names the
    part that is wrong; the document describes them as :mod:`webapp.web.rule_schema` does."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN,
                      description="1-100 characters, not all spaces, no control characters")
    condition: Annotated[dict[str, Any], WithJsonSchema(component_ref(rule_schema.Condition))] = Field(
        description='an operator over operands, e.g. {"op": "crossing_up", "a": {"field": "close"}, '
                    '"b": {"sma": 20}}')
    scope: Annotated[dict[str, Any], WithJsonSchema(component_ref(rule_schema.Scope))] = Field(
        description='{"tickers": ["AAPL"]}, {"all": true} or {"scan": "gainers"}')
    frequency: Literal[FREQUENCIES] = "once_per_bar_close"  # type: ignore[valid-type]
    cooldown_seconds: int = Field(300, ge=0, le=7 * 86400)
    expires_at: int | None = Field(None, ge=0, le=MAX_EPOCH, description="epoch seconds; null: open-ended")
    channels: list[Annotated[str, StringConstraints(pattern=CHANNEL_PATTERN)]] = Field(
        ["browser"], min_length=1, description='"browser" and/or "webhook:<endpoint id>" (see /api/webhooks)')


class RuleOut(BaseModel):
    id: int
    name: str
    version: int = Field(description="bumped by every change; events name the version they fired on")
    condition: dict[str, Any]
    scope: dict[str, Any]
    frequency: str
    cooldown_seconds: int
    expires_at: int | None
    channels: list[str]
    status: Literal["active", "paused"]
    created_at: datetime
    updated_at: datetime
    owner_id: int | None = Field(description="your user id; null for the built-in rule")
    builtin: bool = Field(description="the built-in SMA crossover (the `alert` event): it can be paused, "
                                      "which mutes those events, but not changed or deleted")
    judged: Literal["on each trade", "each minute"] | None = Field(
        None, description="where it is judged now: on each trade (an evaluate process, at the stream's "
                          "prints) or each minute (the tick); in GET answers")
    judged_why: str | None = Field(None, description="why it is judged there now")


class RuleWithState(RuleOut):
    stopped_too_often: list[str] = Field(description="tickers the storm breaker stopped (more than 15 fires "
                                                     "in 3 minutes); resuming the rule re-enables them")


class RuleList(BaseModel):
    rules: list[RuleWithState]


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "paused"]


class Deleted(BaseModel):
    id: int
    deleted: bool


class ReplaySpan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Timestamp | None = Field(None, description="default: the start of the last 5 XNYS sessions")
    end: Timestamp | None = Field(None, description="default: now")


class ReplayUnsaved(ReplaySpan):
    rule: RuleBody


class ReplayFire(BaseModel):
    ticker: str
    bar_time: datetime
    bucket: str
    inputs: dict[str, float | None] = Field(description="operands at [0] and [1], channel bounds, "
                                                        "N-bar reference; trade_time_ms and trade_price "
                                                        "when judged on the print")
    explanation: str
    on_print: bool = Field(description="judged on the print (the seconds the evaluate process stored), "
                                       "not at the bar's close")


class ReplayResult(BaseModel):
    start: datetime
    end: datetime
    tickers: int
    unreplayable: list[str] = Field(description="operands the condition uses that are not stored per minute "
                                                "(vwap, rvol, gap_pct, day_volume): the count is no preview")
    bars: int
    count: int
    fires: list[ReplayFire]
    judged_on_print: int = Field(description="(ticker, bar) pairs judged on the stored seconds; the rest "
                                             "were judged at their close, as the minute tick judged them")
    stopped_too_often: list[str]
    note: str


def _spec(body: RuleBody):  # type: ignore[no-untyped-def]
    try:
        return rules_service.rule_spec(body.model_dump(), me().id)
    except RuleError as exc:
        raise ApiError(400, "bad_rule", str(exc)) from None


def _found(rule_id: str, changing: bool = False) -> dict[str, Any]:
    """The caller's rule, or the built-in one (a 404 for anyone else's)."""
    rule = rules_store.get(db.session, int(rule_id), me().id)
    if rule is None:
        raise ApiError(404, "unknown_rule", f"no rule {rule_id}")
    if changing and rule["builtin"]:
        raise ApiError(409, "builtin_rule", f"rule {rule_id} is the built-in SMA crossover: it can be "
                                            "paused (PATCH status) but not changed or deleted; create a rule "
                                            "of your own instead")
    return rule


def _replay(spec, span: ReplaySpan, rule_id: int = 0, version: int = 0):  # type: ignore[no-untyped-def]
    try:
        return jsonify(rules_service.replay_rule(spec, span.start, span.end, rule_id, version))
    except rules_service.ReplayError as exc:
        raise ApiError(400, "bad_replay", str(exc)) from None
    except scanner.UnknownList as exc:
        raise ApiError(400, "bad_rule", str(exc)) from None


@endpoint(bp, "/rules", response=RuleList, summary="Your alert rules, and the built-in one", auth=PRIVATE)
def list_rules():
    return jsonify({"rules": rules_service.rules_with_state(me().id)})


@endpoint(bp, "/rules", method="POST", status=201, response=RuleOut, body=RuleBody,
          auth=writer("rules:write"), summary="Create an alert rule")
def create_rule(data: RuleBody):
    return jsonify(rules_store.create(db.session, _spec(data), me().id)), 201


@endpoint(bp, "/rules/<rule_id>", response=RuleOut, summary="One alert rule", auth=PRIVATE, errors=(404,))
def get_rule(rule_id: str):
    return jsonify(judged_where([_found(rule_id)])[0])


@endpoint(bp, "/rules/<rule_id>", method="PUT", response=RuleOut, body=RuleBody, auth=writer("rules:write"),
          summary="Change an alert rule (a new version; its state starts over)", errors=(404, 409),
)
def replace_rule(rule_id: str, data: RuleBody):
    _found(rule_id, changing=True)
    return jsonify(rules_store.replace(db.session, int(rule_id), _spec(data), me().id))


@endpoint(bp, "/rules/<rule_id>", method="PATCH", response=RuleOut, body=StatusBody,
          auth=writer("rules:write"), errors=(404,),
          summary="Pause (mute) or resume an alert rule (the built-in one: an admin); resuming re-enables "
                  "stopped tickers",
)
def pause_rule(rule_id: str, data: StatusBody):
    rule, who = _found(rule_id), me()
    if rule["builtin"] and not who.is_admin:
        raise ApiError(403, "forbidden", "only an admin pauses or resumes the built-in rule: everyone sees "
                                         "its events")
    owner = None if rule["builtin"] else who.id
    return jsonify(rules_service.set_rule_status(rule["id"], data.status, owner))


@endpoint(bp, "/rules/<rule_id>", method="DELETE", response=Deleted, auth=writer("rules:write"),
          summary="Delete an alert rule", errors=(404, 409))
def delete_rule(rule_id: str):
    _found(rule_id, changing=True)
    return jsonify({"id": int(rule_id), "deleted": rules_store.delete(db.session, int(rule_id), me().id)})


@endpoint(bp, "/rules/replay", method="POST", response=ReplayResult, body=ReplayUnsaved,
          auth=PRIVATE, summary="Replay an unsaved rule over the stored history (delivers nothing)")
def replay_unsaved(data: ReplayUnsaved):
    return _replay(_spec(data.rule), data)


@endpoint(bp, "/rules/<rule_id>/replay", method="POST", response=ReplayResult, body=ReplaySpan,
          auth=PRIVATE, errors=(404,),
          summary="Replay a rule over the stored history (delivers nothing)")
def replay_saved(rule_id: str, data: ReplaySpan):
    rule = _found(rule_id)
    spec = rules_service.rule_spec({k: rule[k] for k in ("name", "condition", "scope", "frequency",
                                                         "cooldown_seconds", "expires_at", "channels")},
                                   rule["owner_id"] or me().id)
    return _replay(spec, data, rule["id"], rule["version"])

