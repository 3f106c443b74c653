"""Webhook delivery policy: when to retry, what an answer means, which addresses may be called.

Pure: the delivery worker (:mod:`webapp.delivery.worker`) asks these and
does the I/O.  The schedule and the answers' meanings follow Svix and the
Standard Webhooks spec (``../shared/research/alerts.md`` §2):

* attempts go out immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
  10 h later (8 in all, about 27.6 h), each delay ±10 % jitter; a
  ``Retry-After`` on 429 or 503 is honoured when it asks for longer;
* 2xx is delivered; a 3xx is a failure (redirects are never followed);
  410 Gone disables the endpoint; anything else, a timeout or a refused
  connection is retried;
* an endpoint failing continuously for 5 days is disabled, and says so.

**Addresses.**  A webhook URL is http(s) and must not reach the machine's
own network: loopback, private, link-local (169.254/16, where cloud
metadata lives), CGNAT (100.64/10), multicast, reserved and unspecified
addresses are refused unless ``WEBHOOK_ALLOWED_CIDRS`` names them; the
metadata range is refused even then.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)  # seconds after attempt 1, 2, …
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)
JITTER = 0.10
DISABLE_AFTER = timedelta(days=5)
TIMEOUT_SECONDS = 10.0
IN_FLIGHT_PER_ENDPOINT = 2
RESPONSE_KEPT = 2048  # bytes of the response body kept in the delivery log
LEASE_SECONDS = 60  # longer than the timeout: a live worker always finishes first

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
METADATA = ipaddress.ip_network("169.254.0.0/16")
_BLOCKED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
))


class UrlRefused(ValueError):
    """A webhook URL or address that may not be called; the message says why."""


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """The allowed networks of ``WEBHOOK_ALLOWED_CIDRS`` (already checked by the config)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


_EMBEDDING = tuple((ipaddress.ip_network(n), how) for n, how in (
    ("::ffff:0:0/96", "IPv4-mapped"), ("::ffff:0:0:0/96", "IPv4-translated"), ("::/96", "IPv4-compatible"),
    ("64:ff9b::/96", "NAT64"), ("64:ff9b:1::/48", "local NAT64"), ("2002::/16", "6to4"),
    ("2001::/32", "Teredo"),
))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries, and the form's name (None: it carries none).

    Mapped, translated, compatible and NAT64 carry it in the last 32 bits;
    6to4 in bits 16-48; Teredo carries the client's, inverted, in the last 32.
    """
    value = int(ip)
    for net, how in _EMBEDDING:
        if ip in net:
            if how == "6to4":
                return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF), how
            if how == "Teredo":
                return ipaddress.IPv4Address(~value & 0xFFFFFFFF), how
            if how == "IPv4-compatible" and value <= 1:
                return None  # :: and ::1, refused as themselves
            return ipaddress.IPv4Address(value & 0xFFFFFFFF), how
    return None


def address_refusal(address: str, allowed: Sequence[Network]) -> str | None:
    """Why ``address`` may not be called (None: it may).  An IPv6 form that embeds an IPv4 address
    is judged by that address too, so ``[::127.0.0.1]`` is loopback as ``127.0.0.1`` is."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = address_refusal(str(inner[0]), allowed)
            if why is not None or inner[1] == "IPv4-mapped":
                return None if why is None else f"{ip} embeds {inner[0]} ({inner[1]}): {why}"
    if ip in METADATA:
        return f"{ip} is link-local (cloud metadata lives there)"
    if any(ip in net for net in allowed if net.version == ip.version):
        return None
    for net in _BLOCKED:
        if net.version == ip.version and ip in net:
            kind = ("loopback" if ip.is_loopback else "private" if ip.is_private else
                    "multicast" if ip.is_multicast else "CGNAT" if net.prefixlen == 10 else "reserved")
            return f"{ip} is a {kind} address ({net}); WEBHOOK_ALLOWED_CIDRS can allow it"
    return None


@dataclass(frozen=True)
class Verdict:
    """What one attempt's answer means for the delivery."""

    state: str  # delivered, retry, dead (attempts used up), disable (the endpoint said 410)
    next_at: datetime | None = None


def error_class(status: int | None, failure: str | None) -> str | None:
    """The delivery log's error class: timeout, dns, tls, refused, redirect, non_2xx, or a transport error."""
    if failure is not None:
        return failure
    if status is None or 200 <= status < 300:
        return None
    return "redirect" if 300 <= status < 400 else "non_2xx"


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), if it parses."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def verdict(attempt: int, status: int | None, now: datetime, jitter: float,
            asked_wait: float | None = None) -> Verdict:
    """After attempt number ``attempt`` (1-based) answered ``status`` (None: no answer).

    ``jitter`` is a number in [-1, 1] (the caller's random draw) scaled to ±10 %.
    """
    if status is not None and 200 <= status < 300:
        return Verdict("delivered")
    if status == 410:
        return Verdict("disable")
    if attempt >= MAX_ATTEMPTS:
        return Verdict("dead")
    delay = RETRY_DELAYS[attempt - 1] * (1.0 + JITTER * max(-1.0, min(1.0, jitter)))
    if status in (429, 503) and asked_wait is not None:
        delay = max(delay, asked_wait)
    return Verdict("retry", now + timedelta(seconds=delay))


def failing_too_long(failing_since: datetime | None, now: datetime) -> bool:
    """An endpoint that has failed without a success for :data:`DISABLE_AFTER` is disabled."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
