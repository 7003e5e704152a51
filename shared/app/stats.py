"""Service statistics for operators (GET /api/v1/stats and the dashboard)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from shared.app.context import Services
from shared.app.pool import setup_warnings
from shared.redis_conn import redis_outage
from shared.tasks.db import utcnow
from shared.tasks.gemini_jobs import GeminiJobStore
from shared.tasks.models import TaskStatus

WINDOW = timedelta(hours=1)


def percentile(sorted_values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def service_stats(services: Services) -> dict[str, Any]:
    queries = services.queries
    finished = queries.finished_since(utcnow() - WINDOW)
    by_stage: dict[str, list[int]] = {}
    for _, timings in finished:
        for stage, ms in timings.items():
            if isinstance(ms, int | float):
                by_stage.setdefault(stage, []).append(int(ms))
    stages = {
        stage: {"count": len(values), "p50_ms": percentile(sorted(values), 0.5),
                "p95_ms": percentile(sorted(values), 0.95)}
        for stage, values in by_stage.items()
    }
    with redis_outage():
        depth = services.queue.depth()
        pool = services.pool.stats()["totals"]
    return {
        "tasks": {status: queries.count_by_status().get(status, 0)
                  for status in TaskStatus},
        "queue": None if depth is None else {"pending": depth.pending, "delayed": depth.delayed,
                                             "in_flight": depth.in_flight,
                                             "failed": depth.failed},
        "last_hour": {"completed": sum(1 for s, _ in finished if s == TaskStatus.COMPLETED),
                      "failed": sum(1 for s, _ in finished if s == TaskStatus.FAILED),
                      "stages": stages},
        "pool": pool,
        "search_enabled": services.index is not None,
        "gemini": gemini_status(services),
        "tagger": tagger_info(services),
        "usage": {"last_hour": usage_totals(queries.usage_since(utcnow() - WINDOW)),
                  "today": usage_totals(queries.usage_since(start_of_day()))},
        "gemini_batches": batch_jobs(services),
        "warnings": [warning.model_dump() for warning in setup_warnings(services)],
    }


def batch_jobs(services: Services) -> dict[str, Any]:
    """Gemini Batch API jobs (issue 27): how many in each state, and the latest ones."""
    jobs = GeminiJobStore(services.store.engine)
    return {"jobs": jobs.counts(), "recent": [job.as_dict() for job in jobs.recent(10)]}


USAGE_FIELDS = ("requests", "prompt_tokens", "cached_tokens", "output_tokens",
                "thinking_tokens", "cost_usd", "batch_requests")


def usage_totals(usages: list[dict[str, Any]]) -> dict[str, float]:
    """Gemini requests, tokens and estimated cost summed over results (cache hits: 0)."""
    totals = {name: sum(float(usage.get(name) or 0) for usage in usages)
              for name in USAGE_FIELDS}
    return {name: round(value, 6) if name == "cost_usd" else int(value)
            for name, value in totals.items()}


def start_of_day() -> datetime:
    """Midnight UTC today, as the naive UTC the columns store."""
    now = utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def tagger_info(services: Services) -> dict[str, Any]:
    """Which tagger answers and with which model: the offline one needs no keys, so the
    pool's capacity means nothing then."""
    settings = services.settings
    if settings.TAGGER == "gemini":
        return {"name": "gemini", "model": settings.GEMINI_MODEL,
                "fallback_models": list(settings.GEMINI_FALLBACK_MODELS), "needs_keys": True}
    return {"name": settings.TAGGER, "model": getattr(services.tagger, "model", ""),
            "fallback_models": [], "needs_keys": False}


def gemini_status(services: Services) -> dict[str, Any] | None:
    """Overloaded models and refused or dead endpoints, with what to do (None when the
    offline tagger is in use)."""
    health = getattr(services.tagger, "health", None)
    if health is None:
        return None
    settings = services.settings
    with redis_outage():
        return health.status([settings.GEMINI_MODEL, *settings.GEMINI_FALLBACK_MODELS],
                             settings.gemini_endpoints)
