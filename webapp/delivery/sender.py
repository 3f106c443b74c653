"""One webhook attempt: the Standard Webhooks request, sent to the address that was checked.

**Signing** is the ``standardwebhooks`` package's: ``webhook-id`` is the
event's id (``evt_<n>``, the same on every retry and redelivery, the
receiver's idempotency key), ``webhook-timestamp`` is this attempt's
time, and ``webhook-signature`` holds one ``v1,<base64>`` per live secret
(two while a rotation overlaps).

**SSRF.**  The host is resolved once; every address it resolves to must
pass :func:`webapp.core.delivery.address_refusal`, and the connection is
made to that address (the ``Host`` header and the TLS SNI and
certificate check keep the name), so a DNS answer that changes between
the check and the connect (rebinding) cannot redirect the call.
Redirects are never followed: a 3xx is a failed attempt.

**Connections are kept** (:class:`Connections`, one per deliverer): a pool
per checked address, name and port, holding as many as the deliverer sends
at once, so a burst to one endpoint is not a TCP handshake and a teardown
per request on both sides.  Endpoints share a host's pool: many users'
endpoints on one webhook service (Zapier, Slack) reuse its connections,
where a pool of the endpoint cap's 2 discarded (and logged) every
connection beyond them.  A connection idle
longer than ``KEEP_IDLE_SECONDS`` is closed rather than reused: receivers
close idle ones (gunicorn after 2 s), and one closed as the request goes
out would fail an attempt the receiver never saw.  A response longer than
what is kept of it is not read to its end: its connection is closed.

Why not ``requests-hardened``, which pins the address the same way: its
filter has a loopback switch but no allow-list, and we need
``WEBHOOK_ALLOWED_CIDRS`` (tests and self-hosters allow a network, the
metadata range stays refused), and it checks only the first address a
name resolves to.  urllib3, already a dependency, connects to a given
address with a given SNI name in a few lines.
"""
from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import urllib3
from standardwebhooks.webhooks import Webhook
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from webapp.core import delivery as policy
from webapp.store.deliveries import Attempt

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
USER_AGENT = "stock-tracker-webhooks/1"
KEEP_IDLE_SECONDS = 1.0  # a kept connection idle longer is closed, not reused
KEPT_HOSTS = 64  # pools kept, the least recently used closed first


def body_of(event: dict[str, Any]) -> bytes:
    """The documented, versioned JSON body (docs/alerts.md, "Webhooks"): the same bytes on every attempt."""
    return json.dumps({
        "type": "alert.fired", "schema_version": SCHEMA_VERSION, "event_id": event["id"],
        "rule": {"id": event["rule_id"], "name": event["rule_name"], "version": event["rule_version"]},
        "ticker": event["ticker"], "bar_time": event["bar_time"], "trade_time": event.get("trade_time"),
        "fired_at": event["fired_at"],
        "inputs": event["inputs"], "explanation": event["explanation"],
        "data": {"source": event["source"], "age_seconds": event["data_age_seconds"],
                 "stale": event["stale"]},
    }, separators=(",", ":"), sort_keys=True).encode()


def webhook_id(event_id: int) -> str:
    return f"evt_{event_id}"


def headers_for(msg_id: str, body: bytes, keys: Sequence[str], at: datetime) -> dict[str, str]:
    text = body.decode()
    signatures = " ".join(Webhook(k).sign(msg_id, at, text) for k in keys)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json", "user-agent": USER_AGENT}


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a webhook URL, or :class:`UrlRefused`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise policy.UrlRefused(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise policy.UrlRefused(f"a webhook URL must be http or https, got {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise policy.UrlRefused("a webhook URL needs a host")
    if parts.username or parts.password:
        raise policy.UrlRefused("a webhook URL must not carry a user name or password")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_checked(url: str, allowed: Sequence[policy.Network]) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to), or :class:`~webapp.core.delivery.UrlRefused`."""
    scheme, host, port = check_url(url)
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        why = policy.address_refusal(address, allowed)
        if why:
            raise policy.UrlRefused(f"{host} resolves to {why}")
    return scheme, host, port, addresses[0]


def _failure(exc: BaseException) -> str:
    if isinstance(exc, policy.UrlRefused):
        return "ssrf"
    if isinstance(exc, socket.gaierror | NameResolutionError):
        return "dns"
    if isinstance(exc, NewConnectionError):  # urllib3 makes it a ConnectTimeoutError too: ask first
        return "timeout" if "timed out" in str(exc) else "refused"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, SSLError | ssl.SSLError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    return "connection"  # reset, closed early, a protocol error


class _IdleLimit:
    """A pool whose connections idle past ``KEEP_IDLE_SECONDS`` are closed before reuse (and so
    reconnected): the receiver may be closing them at that very moment."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        if time.monotonic() - getattr(conn, "idle_since", float("inf")) > KEEP_IDLE_SECONDS:
            conn.close()
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.idle_since = time.monotonic()
        super()._put_conn(conn)  # type: ignore[misc]


class _KeptHTTP(_IdleLimit, urllib3.HTTPConnectionPool):
    pass


class _KeptHTTPS(_IdleLimit, urllib3.HTTPSConnectionPool):
    pass


class Connections:
    """The deliverer's kept connections, a pool per (scheme, checked address, port, name) holding up
    to ``per_host``: what the deliverer sends at once (its threads), to one endpoint or several."""

    def __init__(self, per_host: int = policy.IN_FLIGHT_PER_ENDPOINT, hosts: int = KEPT_HOSTS) -> None:
        self._pools: OrderedDict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()
        self._hosts, self._per_host = hosts, per_host

    def pool(self, scheme: str, address: str, port: int, host: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, address, port, host)
        with self._lock:
            got = self._pools.get(key)
            if got is None:
                got = self._pools[key] = _pool(scheme, address, port, host, self._per_host)
            self._pools.move_to_end(key)
            while len(self._pools) > self._hosts:
                self._pools.popitem(last=False)[1].close()  # one in use raises ClosedPoolError: see post
            return got

    def close(self) -> None:
        with self._lock:
            for p in self._pools.values():
                p.close()
            self._pools.clear()


def _pool(scheme: str, address: str, port: int, host: str, kept: int = 0) -> urllib3.HTTPConnectionPool:
    """A pool keeping up to ``kept`` connections (0: one request's, closed after it)."""
    kw: dict[str, Any] = {"retries": False, "maxsize": max(1, kept), "block": False}
    if scheme == "https":
        return (_KeptHTTPS if kept else urllib3.HTTPSConnectionPool)(
            address, port, server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED", **kw)
    return (_KeptHTTP if kept else urllib3.HTTPConnectionPool)(address, port, **kw)


def post(url: str, body: bytes, headers: dict[str, str], allowed: Sequence[policy.Network],
         timeout: float = policy.TIMEOUT_SECONDS, connections: Connections | None = None) -> Attempt:
    """POST once (on a kept connection when ``connections`` is given); never raises for what the
    network or the receiver did."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    try:
        scheme, host, port, address = resolve_checked(url, allowed)
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default = 443 if scheme == "https" else 80
        host_header = (f"[{host}]" if ":" in host else host) + ("" if port == default else f":{port}")
        request: dict[str, Any] = {
            "body": body, "headers": {**headers, "host": host_header}, "redirect": False, "retries": False,
            "preload_content": False, "assert_same_host": False,
            "timeout": urllib3.Timeout(connect=timeout, read=timeout)}
        once = connections is None
        pool = _pool(scheme, address, port, host) if once else \
            connections.pool(scheme, address, port, host)  # type: ignore[union-attr]
        try:
            try:
                resp = pool.urlopen("POST", path, **request)
            except ClosedPoolError:  # evicted as we took it; nothing was sent
                once, pool = True, _pool(scheme, address, port, host)
                resp = pool.urlopen("POST", path, **request)
            try:
                kept = resp.read(policy.RESPONSE_KEPT, decode_content=True)
                if once or resp.read(1, decode_content=False):
                    resp.close()  # not read to its end (or not kept): the connection cannot carry another
            finally:
                resp.release_conn()
        finally:
            if once:
                pool.close()
        status = resp.status
        wait = policy.retry_after(resp.headers.get("retry-after"), datetime.now(timezone.utc))
        text = kept.decode("utf-8", "replace")
        err = policy.error_class(status, None)
        return Attempt(started, (time.perf_counter() - t0) * 1000, status, err,
                       None if err is None else f"HTTP {status}" + (" (redirects are not followed)"
                                                                    if err == "redirect" else ""), text, wait)
    except Exception as exc:
        return Attempt(started, (time.perf_counter() - t0) * 1000, None, _failure(exc),
                       f"{type(exc).__name__}: {exc}"[:500], None)
