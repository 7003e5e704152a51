"""The key pool's periodic jobs: `watch_pool` (this minute's capacity for the history,
and the alerts) and `keys_job` (health probes of disabled keys, history pruning, then a
watch). Locally the consumer runs them in a thread of their own; on Google Cloud the
`cleanup` function does (`scope=tasks` every minute watches, `scope=keys` every 15
minutes probes)."""

from __future__ import annotations

import logging

from shared import redis_keys
from shared.accounts import history
from shared.accounts.checks import KeyChecker
from shared.accounts.probes import KeyProber
from shared.app.context import Services
from shared.app.pool_alerts import run_alerts
from shared.tagging.health import GeminiHealth

log = logging.getLogger("vision_to_tag.pool_jobs")


def watch_pool(services: Services) -> dict[str, object]:
    """Record this minute's capacity and send the alerts that are due."""
    pool = services.pool
    if not pool.redis.scard(redis_keys.ACCOUNT_IDS):
        return {"keys": 0}
    stats = pool.stats()
    capacity = history.usable_capacity(stats)
    history.record_capacity(pool, capacity)
    return {"capacity": capacity, "alerts": run_alerts(services, stats, capacity)}


def checker_for(services: Services) -> KeyChecker:
    """Probes go through the first endpoint that is not backing off (a relay refused for
    its region would otherwise make every key look region-refused)."""
    settings = services.settings
    endpoints = settings.tagging.gemini_endpoints
    health = GeminiHealth(services.pool.redis)
    chosen = next((url for url in endpoints if health.endpoint_gate(url).open),
                  endpoints[0] if endpoints else "")
    return KeyChecker(settings.tagging.GEMINI_MODEL, chosen, settings.pool.POOL_PROBE_TIMEOUT_S)


def keys_job(services: Services, checker: KeyChecker | None = None) -> dict[str, object]:
    """Probe the disabled keys that can heal, prune old history, then watch the pool."""
    pool = services.pool
    if not pool.redis.scard(redis_keys.ACCOUNT_IDS):
        return {"keys": 0}
    probes = KeyProber(pool, checker or checker_for(services)).run()
    pruned = history.prune(pool)
    return {"probes": probes.as_dict(), "history_pruned": pruned, **watch_pool(services)}
