"""Service statistics for operators (GET /api/v1/stats and the dashboard)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.app.context import Services
from shared.app.pool import setup_warnings
from shared.redis_conn import redis_outage
from shared.tasks.db import utcnow
from shared.tasks.gemini_jobs import GeminiJobStore
from shared.tasks.models import TaskStatus
from shared.tasks.removal import TaskRemoval
from shared.tasks.rollups import latency_summary
from shared.tasks.schema import USAGE_COLUMNS

LAST_HOUR_MINUTES = 60
"""`last_hour` is this minute and the 59 before it (the rollups count whole minutes)."""


def service_stats(services: Services) -> dict[str, Any]:
    """Tasks by status, the last hour's completions, failures and stage latency, usage:
    all read from the rollups (a few small indexed reads, whatever the history)."""
    figures = services.queries.stats_figures(
        utcnow() - timedelta(minutes=LAST_HOUR_MINUTES - 1), start_of_day())
    counts, last_hour = figures["counts"], figures["last_hour"]
    stages = {stage: latency_summary(histogram)
              for stage, histogram in figures["stages"].items()}
    with redis_outage():
        depth = services.queue.depth()
        pool = services.pool.stats()["totals"]
    return {
        "tasks": {status: counts.get(status, 0) for status in TaskStatus},
        "queue": None if depth is None else {"pending": depth.pending, "delayed": depth.delayed,
                                             "in_flight": depth.in_flight,
                                             "failed": depth.failed},
        "last_hour": {"completed": _tasks(last_hour, TaskStatus.COMPLETED),
                      "failed": _tasks(last_hour, TaskStatus.FAILED),
                      "stages": stages},
        "pool": pool,
        "search_enabled": services.index is not None,
        "gemini": gemini_status(services),
        "tagger": tagger_info(services),
        "usage": {"last_hour": usage_totals(last_hour),
                  "today": usage_totals(figures["today"])},
        "gemini_batches": batch_jobs(services),
        "retention": retention_state(services),
        "warnings": [warning.model_dump() for warning in setup_warnings(services)],
    }


def retention_state(services: Services) -> dict[str, Any]:
    """TASK_RETENTION_DAYS and when the oldest task kept was created (issue 34): the
    dashboard shows how far back the history goes."""
    oldest = TaskRemoval(services.store.engine).oldest_created_at()
    return {"days": services.settings.housekeeping.TASK_RETENTION_DAYS,
            "archive": services.settings.housekeeping.ARCHIVE_BEFORE_DELETE,
            "oldest_task_at": oldest.isoformat() + "Z" if oldest else None}


def _tasks(totals: dict[str, dict[str, int]], status: str) -> int:
    return totals.get(status, {}).get("tasks", 0)


def batch_jobs(services: Services) -> dict[str, Any]:
    """Gemini Batch API jobs (issue 27): how many in each state, and the latest ones."""
    jobs = GeminiJobStore(services.store.engine)
    return {"jobs": jobs.counts(), "recent": [job.as_dict() for job in jobs.recent(10)]}


def usage_totals(totals: dict[str, dict[str, int]]) -> dict[str, float]:
    """Gemini requests, tokens and estimated cost of the completed tasks' results (cache
    hits: 0), from the rollup's usage columns."""
    completed = totals.get(TaskStatus.COMPLETED, {})
    usage: dict[str, float] = {column.removeprefix("usage_"): completed.get(column, 0)
                               for column in USAGE_COLUMNS[:-1]}
    usage["cost_usd"] = round(completed.get("usage_cost_micro_usd", 0) / 1_000_000, 6)
    return usage


def start_of_day() -> datetime:
    """Midnight UTC today, as the naive UTC the columns store."""
    now = utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def tagger_info(services: Services) -> dict[str, Any]:
    """Which tagger answers and with which model: the offline one needs no keys, so the
    pool's capacity means nothing then."""
    tagging = services.settings.tagging
    if tagging.TAGGER == "gemini":
        return {"name": "gemini", "model": tagging.GEMINI_MODEL,
                "fallback_models": list(tagging.GEMINI_FALLBACK_MODELS), "needs_keys": True}
    return {"name": tagging.TAGGER, "model": getattr(services.tagger, "model", ""),
            "fallback_models": [], "needs_keys": False}


def gemini_status(services: Services) -> dict[str, Any] | None:
    """Overloaded models and refused or dead endpoints, with what to do (None when the
    offline tagger is in use)."""
    health = getattr(services.tagger, "health", None)
    if health is None:
        return None
    tagging = services.settings.tagging
    with redis_outage():
        return health.status([tagging.GEMINI_MODEL, *tagging.GEMINI_FALLBACK_MODELS],
                             tagging.gemini_endpoints)
