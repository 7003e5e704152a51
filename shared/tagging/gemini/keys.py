"""Which key, model and endpoint a call goes out with: the pool's next free key (waited
for when it frees within SHORT_WAIT_S, else the task goes back to the queue), the primary
model unless it backs off, the first endpoint that is not refused or unreachable."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared import redis_keys
from shared.accounts.pool import AccountPool, Lease
from shared.errors import ErrorCode, TransientError, WaitForKey, WaitForModel, WaitForRoute
from shared.tagging.gemini_config import GeminiConfig
from shared.tagging.health import GeminiHealth

SHORT_WAIT_S = 3.0
"""A key that frees within this long is waited for; a longer wait re-queues the task."""


class KeyChoice:
    """Keys from the pool; models and endpoints past their shared back-offs."""

    def __init__(self, pool: AccountPool, config: GeminiConfig, health: GeminiHealth,
                 sleep: Callable[[float], None]) -> None:
        self.pool = pool
        self.config = config
        self.health = health
        self.sleep = sleep

    def check_quota(self) -> None:
        """WaitForKey unless a key frees within SHORT_WAIT_S (the pool's own answer; the
        key itself is taken when the request is ready to go)."""
        wait = self.pool.next_free_in()
        if wait is None:
            raise WaitForKey("no Gemini key free: no usable key in the pool", retry_after_s=60)
        if wait > SHORT_WAIT_S:
            raise WaitForKey("no Gemini key free: all keys busy", retry_after_s=wait)

    def model(self) -> str:
        """The primary model unless it is backing off, else the first fallback that is not."""
        waits = []
        for model in [self.config.model, *self.config.fallback_models]:
            gate = self.health.model_gate(model)
            if gate.open:
                return model
            waits.append(gate.wait_s)
        raise WaitForModel(f"{self.config.model} is overloaded (shared back-off)",
                           retry_after_s=max(1.0, min(waits)))

    def endpoint(self) -> str:
        waits = []
        for endpoint in self.config.endpoints:
            gate = self.health.endpoint_gate(endpoint)
            if gate.open:
                return endpoint
            waits.append(gate.wait_s)
        raise WaitForRoute("every Gemini endpoint is refused or unreachable: "
                           "see /healthz (gemini)", retry_after_s=max(1.0, min(waits)))

    def lease(self, deadline: float, tokens: int = 0, model: str | None = None) -> Lease:
        """A key for `model`: counted in that model's quota of the key's project."""
        while True:
            lease = self.pool.acquire(tokens, model)
            if isinstance(lease, Lease):
                return lease
            wait = lease.retry_after_s
            if wait <= SHORT_WAIT_S and time.monotonic() + wait < deadline:
                self.sleep(max(wait, 0.05))
                continue
            raise WaitForKey(f"no Gemini key free: {lease.reason}",
                             retry_after_s=max(0.05, wait))

    def batch_key(self) -> Lease:
        """A key for a batch request: the pool's next key when one is free (its request
        slot given back at once: batch requests have their own limits), else the key
        free soonest — a batch task never waits for an interactive request slot."""
        lease = self.pool.acquire(0)
        if isinstance(lease, Lease):
            self.pool.release(lease)
            return lease
        ready = self.pool.redis.zrange(redis_keys.ACCOUNT_READY, 0, 0)
        if not ready:
            raise WaitForKey(f"no Gemini key usable: {lease.reason}", retry_after_s=60)
        key_id = ready[0].decode() if isinstance(ready[0], bytes) else ready[0]
        api_key = self._api_key(key_id)
        if api_key is None:
            raise WaitForKey("no Gemini key usable: the pool is being rebuilt",
                             retry_after_s=5)
        return Lease(key_id, api_key, "", "")

    def pooled(self, key_id: str) -> Lease:
        """A lease-shaped handle on one pooled key (no request slot: batch jobs and their
        files); TransientError when the key is no longer in the pool."""
        api_key = self._api_key(key_id)
        if api_key is None:
            raise TransientError(f"Gemini key {key_id} is no longer in the pool",
                                 error_code=ErrorCode.GEMINI_KEY_GONE)
        return Lease(key_id, api_key, "", "")

    def _api_key(self, key_id: str) -> str | None:
        """A pooled key's secret (None: no longer in the pool)."""
        api_key = self.pool.redis.hget(redis_keys.account_info(key_id), "api_key")
        if not api_key:
            return None
        return api_key.decode() if isinstance(api_key, bytes) else api_key
