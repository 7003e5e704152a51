"""The dashboard's charts over the last 24 h (GET /api/v1/stats/charts): throughput per
minute, stage latency and the most frequent tags, read from the rollups (issue 34): a
few thousand small rows whatever the history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.app.context import Services
from shared.tasks.db import utcnow
from shared.tasks.models import TaskStatus
from shared.tasks.rollups import latency_summary

CHART_WINDOW = timedelta(hours=24)
STEP = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TOP_TAGS = 20


def chart_data(services: Services) -> dict[str, Any]:
    """Throughput per minute over 24 h; stage latency and top tags over this hour and
    the 23 before it (their rollups are hourly)."""
    end = utcnow().replace(second=0, microsecond=0) + STEP
    start = end - CHART_WINDOW
    hours_from = end - STEP - (CHART_WINDOW - HOUR)
    queries = services.queries
    return {"throughput": _throughput(queries.finished_per_minute(start), start),
            "stages": {stage: latency_summary(histogram) for stage, histogram
                       in queries.stage_latency(hours_from, 3600).items()},
            "top_tags": [{"tag": tag, "count": count}
                         for tag, count in queries.top_tags(hours_from, TOP_TAGS)]}


def _throughput(minutes: list[tuple[datetime, str, int]], start: datetime) -> dict[str, Any]:
    """Completed and failed per minute, oldest first; one slot per minute, zeros kept."""
    slots = int(CHART_WINDOW / STEP)
    counts = {TaskStatus.COMPLETED: [0] * slots, TaskStatus.FAILED: [0] * slots}
    for minute, status, tasks in minutes:
        slot = int((minute - start) / STEP)
        if 0 <= slot < slots and status in counts:
            counts[status][slot] += tasks
    return {"start": start.isoformat() + "Z", "step_s": int(STEP.total_seconds()),
            "completed": counts[TaskStatus.COMPLETED], "failed": counts[TaskStatus.FAILED]}
