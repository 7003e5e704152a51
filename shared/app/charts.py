"""The dashboard's charts over the last 24 h (GET /api/v1/stats/charts): throughput per
minute, stage latency and the most frequent tags. Read-only, bounded reads."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared.app.context import Services
from shared.app.stats import percentile
from shared.tasks.db import connect, utcnow
from shared.tasks.models import TaskStatus
from shared.tasks.schema import video_tasks as t

CHART_WINDOW = timedelta(hours=24)
STEP = timedelta(minutes=1)
MAX_FINISHED = 200_000
"""Finished tasks read for throughput and latency (a day at ~2.3 tasks/s)."""
MAX_TAGGED = 2_000
"""Newest results read for the top tags: the mix of the last few thousand is the mix."""
TOP_TAGS = 20


def chart_data(services: Services) -> dict[str, Any]:
    end = utcnow().replace(second=0, microsecond=0) + STEP
    start = end - CHART_WINDOW
    engine = services.queries.engine
    finished = _finished(engine, start)
    return {"throughput": _throughput(finished, start),
            "stages": _stages(finished),
            "top_tags": _top_tags(engine, start)}


def _finished(engine: sa.Engine, start: datetime) -> list[tuple[str, datetime, dict]]:
    query = (sa.select(t.c.status, t.c.processed_end, t.c.timings)
             .where(t.c.status.in_((TaskStatus.COMPLETED, TaskStatus.FAILED)),
                    t.c.processed_end >= start)
             .order_by(t.c.processed_end.desc()).limit(MAX_FINISHED))
    with connect(engine) as conn:
        return [(status, end, timings or {}) for status, end, timings in conn.execute(query)]


def _throughput(finished: list[tuple[str, datetime, dict]], start: datetime
                ) -> dict[str, Any]:
    """Completed and failed per minute, oldest first; one slot per minute, zeros kept."""
    slots = int(CHART_WINDOW / STEP)
    counts = {TaskStatus.COMPLETED: [0] * slots, TaskStatus.FAILED: [0] * slots}
    for status, ended, _ in finished:
        slot = int((ended - start) / STEP)
        if 0 <= slot < slots:
            counts[status][slot] += 1
    return {"start": start.isoformat() + "Z", "step_s": int(STEP.total_seconds()),
            "completed": counts[TaskStatus.COMPLETED], "failed": counts[TaskStatus.FAILED]}


def _stages(finished: list[tuple[str, datetime, dict]]) -> dict[str, dict[str, int]]:
    by_stage: dict[str, list[int]] = {}
    for _, _, timings in finished:
        for stage, ms in timings.items():
            if isinstance(ms, int | float):
                by_stage.setdefault(stage, []).append(int(ms))
    return {stage: {"count": len(values), "p50_ms": percentile(sorted(values), 0.5),
                    "p95_ms": percentile(sorted(values), 0.95)}
            for stage, values in ((s, sorted(v)) for s, v in by_stage.items())}


def _top_tags(engine: sa.Engine, start: datetime) -> list[dict[str, Any]]:
    query = (sa.select(t.c.tags)
             .where(t.c.status == TaskStatus.COMPLETED, t.c.processed_end >= start)
             .order_by(t.c.processed_end.desc()).limit(MAX_TAGGED))
    counter: Counter[str] = Counter()
    with connect(engine) as conn:
        for (result,) in conn.execute(query):
            if isinstance(result, dict):
                counter.update({tag for tag in result.get("tags") or [] if isinstance(tag, str)})
    return [{"tag": tag, "count": count} for tag, count in counter.most_common(TOP_TAGS)]
