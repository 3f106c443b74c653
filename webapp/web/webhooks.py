"""``/api/alert-events``, ``/api/webhooks`` and ``/api/deliveries``: what rules fired and where it went.

Thin: validation here, the work in :mod:`webapp.services` and
:mod:`webapp.store`.  Everything here is the caller's own: an endpoint, its
deliveries and their logs belong to the user who made it, an event to its
rule's owner (the built-in rule's events are everyone's), and someone
else's id is a 404.  A webhook secret
appears in exactly two answers, the endpoint's creation and a rotation;
never in a listing, a log or a page.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from webapp.core.delivery import UrlRefused
from webapp.extensions import db
from webapp.services import webhooks
from webapp.store import alert_events
from webapp.store import deliveries as deliveries_store
from webapp.store import webhooks as webhooks_store
from webapp.web.access import PRIVATE, me, writer
from webapp.web.apispec import MAX_ID, TEXT_PATTERN, Query, endpoint
from webapp.web.errors import ApiError
from webapp.web.rules import Deleted

bp = Blueprint("webhooks", __name__)
MAX_EVENTS = 500


class EventsQuery(Query):
    rule_id: int | None = Field(None, ge=1, le=MAX_ID)
    ticker: str | None = Field(None, pattern=r"^[A-Za-z0-9.\-]{1,10}$")
    after: int | None = Field(None, ge=0, le=MAX_ID,
                              description="events with a larger id, oldest first (catching up)")
    cursor: int | None = Field(None, ge=1, le=MAX_ID,
                               description="the previous page's next_cursor (newest first)")
    limit: int = Field(100, ge=1, le=MAX_EVENTS)


class Event(BaseModel):
    id: int
    rule_id: int
    rule_version: int
    rule_name: str | None = Field(description="null once the rule is deleted")
    ticker: str
    bar_time: datetime
    trade_time: datetime | None = Field(description="a fire on the print: the trade that made it true; "
                                                    "null for one judged at the bar's close")
    bucket: str
    inputs: dict[str, float | None] = Field(description="operands at [0] and [1], channel bounds, N-bar ref")
    explanation: str
    source: str | None
    data_age_seconds: float | None
    latency_ms: float | None
    stale: bool
    fired_at: datetime


class EventsPage(BaseModel):
    events: list[Event]
    next_cursor: int | None


class Attempt(BaseModel):
    attempt: int
    trigger: Literal["scheduled", "manual"]
    at: datetime
    duration_ms: float
    status_code: int | None
    error_class: str | None = Field(description="timeout, dns, tls, refused, connection, ssrf, redirect, "
                                                "non_2xx; null when delivered")
    error: str | None
    response: str | None = Field(description="the first 2 KB of the response body")


class Delivery(BaseModel):
    id: int
    event_id: int
    endpoint_id: int
    status: Literal["pending", "in_flight", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    log: list[Attempt]


class EventDetail(Event):
    deliveries: list[Delivery]


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, pattern=r"^[!-~]+$",
                     description="http(s); private and loopback addresses are refused")
    description: str = Field("", max_length=200, pattern=TEXT_PATTERN)


class Endpoint(BaseModel):
    id: int
    url: str
    description: str
    status: Literal["active", "disabled"]
    disabled_reason: str | None = Field(description="why it was disabled (410, 5 days of failure, the user)")
    failing_since: datetime | None
    rotating_until: datetime | None = Field(description="the old secret also signs until then")
    created_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="whsec_…: shown only now; verify with standardwebhooks")


class EndpointList(BaseModel):
    endpoints: list[Endpoint]


class EndpointDetail(Endpoint):
    deliveries: list[Delivery]


class EndpointStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "disabled"]


class Redelivered(BaseModel):
    id: int
    queued: bool


def _endpoint(raw: str) -> dict[str, Any]:
    """The caller's endpoint (a 404 for anyone else's)."""
    got = webhooks_store.endpoint(db.session, int(raw), me().id)
    if got is None:
        raise ApiError(404, "unknown_webhook", f"no webhook endpoint {raw}")
    return got


@endpoint(bp, "/alert-events", response=EventsPage, query=EventsQuery, auth=PRIVATE,
          summary="Alert events of your rules and the built-in one, newest first or after an id")
def list_events(q: EventsQuery):
    got = alert_events.events(db.session, me().id, rule_id=q.rule_id,
                              ticker=q.ticker.upper() if q.ticker else None, after=q.after, before=q.cursor,
                              limit=q.limit)
    more = len(got) == q.limit and q.after is None
    return jsonify({"events": got, "next_cursor": got[-1]["id"] if more else None})


@endpoint(bp, "/alert-events/<event_id>", response=EventDetail, auth=PRIVATE,
          summary="One alert event, with its deliveries and their attempt logs", errors=(404,))
def get_event(event_id: str):
    who = me().id
    got = alert_events.events_by_id(db.session, [int(event_id)], who)
    if not got:
        raise ApiError(404, "unknown_event", f"no alert event {event_id}")
    sent = deliveries_store.deliveries(db.session, who, event_id=got[0]["id"])
    return jsonify({**got[0], "deliveries": sent})


@endpoint(bp, "/webhooks", response=EndpointList, auth=PRIVATE, summary="Your webhook endpoints")
def list_webhooks():
    return jsonify({"endpoints": webhooks_store.endpoints(db.session, me().id)})


@endpoint(bp, "/webhooks", method="POST", status=201, response=EndpointWithSecret, body=EndpointBody,
          auth=writer("webhooks:write"), summary="Add a webhook endpoint (its secret is shown once)")
def create_webhook(data: EndpointBody):
    try:
        return jsonify(webhooks.create_webhook(data.url.strip(), data.description.strip(), me().id)), 201
    except UrlRefused as exc:
        raise ApiError(400, "bad_webhook_url", str(exc)) from None


@endpoint(bp, "/webhooks/<webhook_id>", response=EndpointDetail, auth=PRIVATE, errors=(404,),
          summary="A webhook endpoint and its recent deliveries")
def get_webhook(webhook_id: str):
    ep = _endpoint(webhook_id)
    sent = deliveries_store.deliveries(db.session, me().id, endpoint_id=ep["id"], limit=50)
    return jsonify({**ep, "deliveries": sent})


@endpoint(bp, "/webhooks/<webhook_id>", method="PATCH", response=Endpoint, body=EndpointStatus,
          auth=writer("webhooks:write"), errors=(404,), summary="Disable or re-enable a webhook endpoint")
def set_webhook_status(webhook_id: str, data: EndpointStatus):
    return jsonify(webhooks_store.set_endpoint_status(db.session, _endpoint(webhook_id)["id"], data.status,
                                                      me().id))


@endpoint(bp, "/webhooks/<webhook_id>/rotate", method="POST", response=EndpointWithSecret,
          auth=writer("webhooks:write"), errors=(404,),
          summary="A new signing secret (the old one also signs for 24 h)")
def rotate_webhook(webhook_id: str):
    return jsonify(webhooks.rotate_webhook_secret(_endpoint(webhook_id)["id"], me().id))


@endpoint(bp, "/webhooks/<webhook_id>", method="DELETE", response=Deleted, auth=writer("webhooks:write"),
          errors=(404,), summary="Delete a webhook endpoint")
def delete_webhook(webhook_id: str):
    ep = _endpoint(webhook_id)
    return jsonify({"id": ep["id"], "deleted": webhooks_store.delete_endpoint(db.session, ep["id"], me().id)})


@endpoint(bp, "/deliveries/<delivery_id>/redeliver", method="POST", response=Redelivered,
          auth=writer("webhooks:write"),
          errors=(404, 409),
          summary="Send a delivery again now, with the same webhook-id")
def redeliver(delivery_id: str):
    did, who = int(delivery_id), me().id
    if not deliveries_store.deliveries(db.session, who, delivery_id=did, limit=1):
        raise ApiError(404, "unknown_delivery", f"no delivery {delivery_id}")
    if not deliveries_store.redeliver(db.session, did, who):
        raise ApiError(409, "in_flight", f"delivery {did} is being sent right now; try again in a moment")
    return jsonify({"id": did, "queued": True})
