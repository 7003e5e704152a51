"""The dashboard's charts over the last 24 h (GET /api/v1/stats/charts): throughput per
minute, stage latency and the most frequent tags, read from the rollups (issue 34): a
few thousand small rows whatever the history."""

from __future__ import annotations

from datetime import timedelta
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
    slots = int(CHART_WINDOW / STEP)
    figures = services.queries.chart_figures(start, slots, end - STEP - (CHART_WINDOW - HOUR),
                                             TOP_TAGS)
    per_minute = figures["per_minute"]
    return {"throughput": {"start": start.isoformat() + "Z", "step_s": int(STEP.total_seconds()),
                           "completed": per_minute.get(TaskStatus.COMPLETED, [0] * slots),
                           "failed": per_minute.get(TaskStatus.FAILED, [0] * slots)},
            "stages": {stage: latency_summary(histogram)
                       for stage, histogram in figures["stages"].items()},
            "top_tags": [{"tag": tag, "count": count} for tag, count in figures["top_tags"]]}
