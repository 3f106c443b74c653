"""Failed sign-ins, counted per account and per address in Redis (the ``limits`` library, on which
Flask-Limiter is built, with the same moving window and storage as the API's rate limit).

Only failures count: a user who types the password right is never slowed,
and a guesser is stopped after ``SIGN_IN_FAILURE_LIMIT`` failures for that
account *or* from that address, whichever comes first, across every web
process.  A success clears the account's count.  While Redis is down the
check lets sign-in through (it is logged): locking every user out because
the cache restarted would be its own outage.
"""
from __future__ import annotations

import logging
import math
import time

from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
_DOWN = (RedisError, ConnectionError, OSError)


class SignInThrottle:
    def __init__(self, storage_uri: str, rate: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._limits = parse_many(rate)

    @staticmethod
    def _keys(account: str, address: str) -> list[tuple[str, str]]:
        return [("account", account.strip().lower()[:64]), ("address", address)]

    def retry_after(self, account: str, address: str) -> int | None:
        """Seconds until another try is allowed, or None when one is allowed now."""
        wait, blocked = 0.0, False
        try:
            for kind, who in self._keys(account, address):
                for item in self._limits:
                    if not self._limiter.test(item, "signin", kind, who):
                        blocked = True
                        reset = self._limiter.get_window_stats(item, "signin", kind, who).reset_time
                        wait = max(wait, reset - time.time())
        except _DOWN as exc:
            log.warning("sign-in throttle unavailable (%s): allowing the attempt", type(exc).__name__)
            return None
        return max(1, math.ceil(wait)) if blocked else None

    def failed(self, account: str, address: str) -> None:
        try:
            for kind, who in self._keys(account, address):
                for item in self._limits:
                    self._limiter.hit(item, "signin", kind, who)
        except _DOWN as exc:
            log.warning("sign-in throttle unavailable (%s): this failure is not counted", type(exc).__name__)

    def succeeded(self, account: str, address: str) -> None:
        try:
            for item in self._limits:
                self._limiter.clear(item, "signin", "account", account.strip().lower()[:64])
        except _DOWN:
            pass
