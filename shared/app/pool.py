"""Key pool use cases of the API: the pool's state, a key enabled or disabled, the
history of a key and of the pool, and the warning that there is no key at all."""

from __future__ import annotations

import redis

from shared.accounts import history
from shared.accounts.history import HistoryQuery
from shared.accounts.pool import KEY_ID_PATTERN, PROJECT_PATTERN, PoolUnavailable
from shared.app.context import Services
from shared.errors import InvalidInput, NotFound
from shared.redis_conn import redis_outage
from shared.tasks.models import ServiceWarning

IMPORT_KEYS = "python scripts/import_accounts.py --file google_accounts.json"
"""The command that fills the pool (docs/key-pool.md)."""


def pool_stats(services: Services) -> dict[str, object]:
    """Key pool usage for operators (keys masked)."""
    with redis_outage():
        return services.pool.stats()


def set_account_enabled(services: Services, key_id: str, enabled: bool) -> dict[str, object]:
    """Enable or disable one pool key; answers its line of /api/v1/accounts."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise InvalidInput("key_id: malformed (16 lowercase hex characters, the key_id "
                            "/api/v1/accounts shows)")
    with redis_outage(PoolUnavailable):
        found = services.pool.set_enabled(key_id, enabled)
        accounts = services.pool.stats()["accounts"]
    if not found:
        raise NotFound(f"key_id: no key {key_id} in the pool")
    return next(account for account in accounts if account["key_id"] == key_id)


def account_history(services: Services, key_id: str, query: HistoryQuery) -> dict[str, object]:
    """One key's last `days` quota days and its latest probes."""
    if not KEY_ID_PATTERN.match(key_id):
        raise InvalidInput("key_id: malformed (16 lowercase hex characters, the key_id "
                           "/api/v1/accounts shows)")
    with redis_outage(PoolUnavailable):
        found = history.key_history(services.pool, key_id, query.days)
    if found is None:
        raise NotFound(f"key_id: no key {key_id} in the pool")
    return found


def project_history(services: Services, project: str,
                    query: HistoryQuery) -> dict[str, object]:
    """One Google Cloud project's last `days` quota days, summed over its keys."""
    if not PROJECT_PATTERN.match(project) or len(project) > 64:
        raise InvalidInput("project: malformed (letters, digits, '.', '_' and '-', at most "
                           "64: the project /api/v1/accounts shows)")
    with redis_outage(PoolUnavailable):
        found = history.project_history(services.pool, project, query.days)
    if found is None:
        raise NotFound(f"project: no key of project {project} in the pool")
    return found


def pool_history(services: Services, query: HistoryQuery) -> dict[str, object]:
    """The pool's totals per quota day and its last hour per minute against capacity."""
    with redis_outage(PoolUnavailable):
        return history.pool_history(services.pool, query.days)


def setup_warnings(services: Services) -> list[ServiceWarning]:
    """What keeps a running deployment from tagging: TAGGER=gemini with no key in the pool
    makes every task wait `no_key_available` for up to MAX_QUOTA_WAIT_S, and nothing else
    says so. Said at start-up, on the dashboard and in each create reply.

    Never raises: a warning must not fail the reply it rides on (Redis down is said by the
    503s and /healthz)."""
    settings = services.settings
    if settings.tagging.TAGGER != "gemini":
        return []
    try:
        if services.pool.key_count():
            return []
    except (redis.RedisError, OSError):
        return []
    wait_h = settings.queue.MAX_QUOTA_WAIT_S / 3600
    return [ServiceWarning(
        code="no_keys",
        message=f"TAGGER=gemini but the key pool holds no key: every task waits "
                f"(no_key_available) for up to {wait_h:g} h (MAX_QUOTA_WAIT_S), then fails. "
                f"Import the Gemini keys into this deployment's Redis to start tagging.",
        command=IMPORT_KEYS)]
