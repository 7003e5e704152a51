"""Health: each backing service checked within a time limit, even on a cold instance."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from shared.app.context import Services
from shared.errors import ServiceUnavailable

HEALTH_CHECKS = ThreadPoolExecutor(6, thread_name_prefix="healthz")

"""Runs the health checks side by side; bounded, so probes against a hanging service
queue up (and read as timed out) instead of piling up threads."""


def ready_services(get: Callable[[], Services], limit_s: float) -> Services:
    """The process's services for a probe: a cold instance whose database or Redis hangs
    while it builds them is unavailable within `limit_s` (the build goes on behind)."""
    future = HEALTH_CHECKS.submit(get)
    try:
        return future.result(timeout=limit_s)
    except FutureTimeout:
        raise ServiceUnavailable("backing services", f"no answer within {limit_s:g} s") \
            from None


def health(services: Services) -> dict[str, str]:
    """Reachability of each backing service: 'ok' or the reason it failed. All are asked
    at once and each gets HEALTH_TIMEOUT_S: a hanging service reads as down in that
    time (the check itself ends within its client's own time limit)."""
    checks = {
        "database": services.store.ping,
        "redis": services.redis.ping,
        "storage": services.storage.ping,
    }
    limit_s = services.settings.api.HEALTH_TIMEOUT_S
    futures = {name: HEALTH_CHECKS.submit(check) for name, check in checks.items()}
    deadline = time.monotonic() + limit_s
    report = {}
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            report[name] = "ok"
        except FutureTimeout:
            report[name] = f"error: no answer within {limit_s:g} s"
        except Exception as error:  # noqa: BLE001 - any failure is reported, not raised
            report[name] = f"error: {type(error).__name__}"
    return report
