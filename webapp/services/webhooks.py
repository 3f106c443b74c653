"""Webhook endpoints: the address check, creation, secret rotation, and the deliver process's loop.

The SSRF check lives here and in :mod:`webapp.delivery.sender` only, so the
API and the deliver process refuse the same addresses.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from webapp.core import delivery as delivery_policy
from webapp.delivery import sender
from webapp.extensions import db, get_redis
from webapp.services.context import config
from webapp.store import webhooks

ROTATION_OVERLAP = timedelta(hours=24)


def webhook_networks() -> tuple[Any, ...]:
    return delivery_policy.networks(config().WEBHOOK_ALLOWED_CIDRS)


def check_webhook_url(url: str) -> None:
    """Refuse a URL that is not http(s) or resolves to a forbidden address (:class:`UrlRefused`)."""
    try:
        sender.resolve_checked(url, webhook_networks())
    except OSError as exc:
        raise delivery_policy.UrlRefused(f"cannot resolve the host: {exc}") from None


def create_webhook(url: str, description: str, owner: int) -> dict[str, Any]:
    """A new endpoint of ``owner``'s, with its signing secret: shown this once."""
    check_webhook_url(url)
    endpoint, secret = webhooks.create_endpoint(db.session, url, description, owner)
    return {**endpoint, "secret": secret}


def rotate_webhook_secret(endpoint_id: int, owner: int) -> dict[str, Any] | None:
    """A new secret for ``owner``'s endpoint; for 24 h both the old and the new sign every request."""
    got = webhooks.rotate_secret(db.session, endpoint_id, ROTATION_OVERLAP, owner)
    return None if got is None else {**got[0], "secret": got[1]}


def delivery_worker() -> Any:
    """The deliver process's loop, on this app's Postgres and Redis."""
    from webapp.delivery.worker import DeliveryWorker

    cfg = config()
    return DeliveryWorker(db.engine, get_redis(), webhook_networks(), cfg.DELIVERY_CONCURRENCY,
                          cfg.DELIVERY_POLL_SECONDS, timeout=cfg.WEBHOOK_TIMEOUT_SECONDS,
                          lease_seconds=cfg.DELIVERY_LEASE_SECONDS)
