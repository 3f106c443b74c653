"""What every HTTP market-data provider shares: a session with timeouts and
retries, Retry-After handling for 429, and error descriptions without secrets.

Connection errors, read timeouts and 5xx are retried once by urllib3's
``Retry`` with backoff.  429 is handled here instead: a short ``Retry-After``
is slept once, a long one is returned to the caller, which stops and starts a
cool-down rather than sleeping whatever the server says.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from webapp import names

log = logging.getLogger(__name__)


def retry_after(resp: requests.Response) -> float:
    """Seconds the server asked us to wait (1 s when it said nothing usable)."""
    try:
        return max(0.0, float(resp.headers.get("Retry-After", "")))
    except ValueError:
        return 1.0


def describe(exc: requests.RequestException) -> str:
    """A short reason for a failed call (URLs never carry our keys: they go in headers)."""
    # after urllib3's retries a read timeout surfaces as ConnectionError
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return "timed out"
    return f"network error ({type(exc).__name__})"


class ProviderSession:
    """A ``requests`` session for one provider: auth headers, timeouts, retries."""

    def __init__(
        self,
        name: str,
        headers: Mapping[str, str],
        timeout: float = 5.0,
        max_retry_after: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.timeout = (min(3.05, timeout), timeout)
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **headers})
        retry = Retry(
            total=2, connect=1, read=1, status=1,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            backoff_factor=0.3, backoff_max=2.0,
            respect_retry_after_header=False, raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def __repr__(self) -> str:  # never show the headers (they hold the keys)
        return f"ProviderSession({self.name!r})"

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET with one polite retry on a short 429; a long one is returned as is."""
        resp = self.session.get(url, params=params, timeout=self.timeout)
        if resp.status_code == 429:
            wait = retry_after(resp)
            if wait <= self.max_retry_after:
                log.info("%s 429; honouring Retry-After %.1f s", self.name, wait)
                self._sleep(wait)
                resp = self.session.get(url, params=params, timeout=self.timeout)
        return resp


class Cooldown:
    """A pause every process respects, started by a long 429 (kept in Redis)."""

    def __init__(self, client: redis.Redis, provider: str) -> None:
        self._client = client
        self._key = names.provider_cooldown_key(provider)

    def left(self) -> float:
        """Seconds left (0 when none)."""
        return max(self._client.pttl(self._key), 0) / 1000.0

    def start(self, seconds: float) -> None:
        self._client.set(self._key, "1", px=max(1, int(seconds * 1000)))
