"""Key pool use cases of the API: the pool's state, a key enabled or disabled, the
history of a key and of the pool."""

from __future__ import annotations

from shared.accounts import history
from shared.accounts.history import HistoryQuery
from shared.accounts.pool import KEY_ID_PATTERN, PoolUnavailable
from shared.app.context import Services
from shared.errors import InvalidInput, NotFound
from shared.redis_conn import redis_outage


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


def pool_history(services: Services, query: HistoryQuery) -> dict[str, object]:
    """The pool's totals per quota day and its last hour per minute against capacity."""
    with redis_outage(PoolUnavailable):
        return history.pool_history(services.pool, query.days)
