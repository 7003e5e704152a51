"""Wrong API keys counted per client address (issue 36): past a limit in a short window,
the address's keys are refused with a wait, so guessing runs at a crawl; one log line per
window says which address and how many, and never what it sent."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from shared import redis_keys
from shared.config import AUTH_FAILURE_LIMIT, AUTH_FAILURE_WINDOW_S
from shared.errors import TooManyAttempts
from shared.redis_conn import redis_outage

log = logging.getLogger("vision_to_tag.auth")

MAX_ADDRESS = 64
"""An IPv6 address with a zone fits; anything longer is cut (it names a Redis key)."""


@dataclass(frozen=True)
class AttemptLimits:
    window_s: int = AUTH_FAILURE_WINDOW_S
    limit: int = AUTH_FAILURE_LIMIT


class FailedAttempts:
    """The counters in Redis (one per address, expiring with its window)."""

    def __init__(self, client: redis.Redis, limits: AttemptLimits | None = None) -> None:
        self.redis = client
        self.limits = limits or AttemptLimits()

    def check(self, address: str) -> None:
        """TooManyAttempts while the address is past its limit: its keys are not even
        looked at, so no answer tells a right guess from a wrong one."""
        name = redis_keys.auth_failures(address[:MAX_ADDRESS])
        with redis_outage():
            count, ttl_ms = self.redis.pipeline().get(name).pttl(name).execute()
        if int(count or 0) >= self.limits.limit:
            self.failed(address)
            wait_s = max(ttl_ms, 1000) / 1000
            raise TooManyAttempts(f"Authorization: too many wrong keys from this address; "
                                  f"try again in {wait_s:.0f} s", wait_s)

    def failed(self, address: str) -> int:
        """Count one wrong key; the window starts with the first. The line crossing the
        limit is logged, once per window."""
        name = redis_keys.auth_failures(address[:MAX_ADDRESS])
        with redis_outage():
            pipe = self.redis.pipeline()
            _, count = pipe.set(name, 0, ex=self.limits.window_s, nx=True).incr(name).execute()
        if count == self.limits.limit:
            log.warning("auth: %d wrong API keys from %s within %d s; its keys are refused "
                        "(429) until the window ends", count, address[:MAX_ADDRESS],
                        self.limits.window_s)
        return int(count)
