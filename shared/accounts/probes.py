"""Health probes: disabled keys whose reason can heal are checked again with the free
`models.get` call (shared/accounts/checks.py) and brought back when it succeeds.

Which disabled keys are probed, by their `disabled_reason`:
- "disabled by an operator": never — a person took it out, a person brings it back;
- `API_KEY_INVALID` (and 401): at most once a day (a deleted key rarely comes back, but a
  key re-created under the same value, or a relay's passing mistake, does);
- anything else (suspended, permission denied, region refused, unreachable, repeated
  failures): at every run (every 15 minutes on Google Cloud, POOL_PROBE_INTERVAL_S locally).

A probe answered 429 means the key works (only its quota is spent): it is re-enabled. A
probe that times out or cannot connect says nothing about the key: it stays as it is.
One process probes at a time (a Redis lock with a timeout). Every probe is recorded in
the key's history (`{day}:probes`, `{day}:probes_ok` and the `probes` list).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared import redis_keys
from shared.accounts.checks import UNREACHABLE, VALID, KeyChecker
from shared.accounts.pool import AccountPool
from shared.lua import read_script
from shared.redact import redact

log = logging.getLogger("vision_to_tag.probes")

OPERATOR_REASON = "disabled by an operator"
INVALID_PROBE_EVERY_MS = 24 * 3600 * 1000
PARALLEL = 8
"""Probes in flight at once."""
PROBES_KEPT = 100
"""Probe outcomes kept per key (the `probes` list of its history)."""


def heal_class(reason: str) -> str:
    """never | daily | scheduled: how often a key disabled for `reason` is probed."""
    if reason.strip().lower() == OPERATOR_REASON:
        return "never"
    if "API_KEY_INVALID" in reason or reason.startswith("HTTP 401"):
        return "daily"
    return "scheduled"


@dataclass
class ProbeRun:
    ran: bool = True
    probed: list[dict] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    skipped: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"ran": self.ran, "probed": len(self.probed), "enabled": self.enabled,
                "outcomes": self.probed, **({"skipped": self.skipped} if self.skipped else {})}


class KeyProber:
    def __init__(self, pool: AccountPool, checker: KeyChecker, lock_s: float = 600) -> None:
        self.pool = pool
        self.redis = pool.redis
        self.checker = checker
        self.lock_s = lock_s
        self._apply = self.redis.register_script(read_script(__file__, "probe_apply.lua"))

    def due(self, now_ms: int) -> list[tuple[str, str, str]]:
        """(key id, api key, reason) of the disabled keys a probe should look at now."""
        ids = sorted(self.redis.smembers(redis_keys.ACCOUNT_IDS))
        pipe = self.redis.pipeline(transaction=False)
        for key_id in ids:
            pipe.hmget(redis_keys.account_info(key_id), "status", "disabled_reason", "api_key",
                       "last_probe_at")
        found = []
        for key_id, (status, reason, api_key, last) in zip(ids, pipe.execute(), strict=True):
            if status != "disabled" or not api_key:
                continue
            kind = heal_class(reason or "")
            if kind == "never":
                continue
            if kind == "daily" and now_ms - int(last or 0) < INVALID_PROBE_EVERY_MS:
                continue
            found.append((key_id, api_key, reason or ""))
        return found

    def run(self) -> ProbeRun:
        """Probe every due key once, unless another process is probing right now."""
        lock = self.redis.lock(redis_keys.ACCOUNT_PROBE_LOCK, timeout=self.lock_s, blocking=False)
        if not lock.acquire():
            return ProbeRun(ran=False, skipped="another process is probing the keys")
        try:
            result = ProbeRun()
            due = self.due(int(time.time() * 1000))
            # a few at a time: many disabled keys, each up to its time limit, still end
            # well within the lock and the Scheduler's deadline
            with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(due)))) as workers:
                result.probed = list(workers.map(lambda found: self.probe(*found), due))
            result.enabled = [o["key_id"] for o in result.probed if o["enabled"]]
            return result
        finally:
            lock.release()

    def probe(self, key_id: str, api_key: str, reason: str) -> dict:
        check = self.checker.check(api_key)
        now_ms = int(time.time() * 1000)
        if check.verdict == VALID:
            action, new_reason = "enable", ""
        elif check.verdict == UNREACHABLE:  # no answer: nothing learned about the key
            action, new_reason = "keep", ""
        else:  # Google answered: its answer is the key's reason now
            action, new_reason = "reason", check.disabled_reason
        applied = bool(int(self._apply(keys=[redis_keys.account_info(key_id),
                                             redis_keys.ACCOUNT_READY],
                                       args=[reason, action, new_reason, now_ms, key_id])))
        enabled = applied and action == "enable"
        outcome = {"at": now_ms, "key_id": key_id, "verdict": check.verdict,
                   "detail": redact(check.detail)[:300], "enabled": enabled,
                   "was": redact(reason)[:300]}
        day, _ = self.pool.quota_day()
        pipe = self.redis.pipeline(transaction=False)
        usage = redis_keys.account_usage(key_id)
        pipe.hincrby(usage, f"{day}:probes", 1)
        if check.verdict == VALID:
            pipe.hincrby(usage, f"{day}:probes_ok", 1)
        pipe.expire(usage, redis_keys.HISTORY_TTL_S)
        pipe.lpush(redis_keys.account_probes(key_id), json.dumps(outcome))
        pipe.ltrim(redis_keys.account_probes(key_id), 0, PROBES_KEPT - 1)
        pipe.expire(redis_keys.account_probes(key_id), redis_keys.HISTORY_TTL_S)
        pipe.execute()
        log.info("probe of disabled key %s: %s%s", key_id, check.verdict,
                 " - enabled again" if enabled else "", extra={"key_id": key_id})
        return outcome
