"""What follows a finished task, recorded on its row: the completion callback's outcome
and the search index state (the reconciler retries what did not reach the index)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from shared.redact import redact
from shared.tasks.db import begin, connect, utcnow
from shared.tasks.models import Task, TaskStatus
from shared.tasks.schema import video_tasks as t
from shared.tasks.store import to_task


class Followups:
    """Callback and search-index bookkeeping; never changes a task's status."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record_callback(self, task_id: str, *, status: str, attempts: int,
                        error: str | None) -> None:
        with begin(self.engine) as conn:
            conn.execute(sa.update(t).where(t.c.task_id == task_id).values(
                callback_status=status, callback_attempts=attempts,
                callback_error=redact(error)[:512] if error else None))

    def mark_indexed(self, task_id: str, error: str | None = None) -> None:
        """Record the search index outcome: indexed now, or why not (retried later)."""
        values = {"index_error": redact(error)[:512]} if error else {"indexed_at": utcnow(),
                                                              "index_error": None}
        with begin(self.engine) as conn:
            conn.execute(sa.update(t).where(t.c.task_id == task_id).values(**values))

    def mark_indexed_many(self, task_ids: list[str]) -> None:
        with begin(self.engine) as conn:
            conn.execute(sa.update(t).where(t.c.task_id.in_(task_ids))
                         .values(indexed_at=utcnow(), index_error=None))

    def not_indexed(self, older_than_s: float = 60, limit: int = 500) -> list[Task]:
        """Completed tasks that have not reached the search index (the reaper retries)."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        query = (sa.select(t).where(t.c.status == TaskStatus.COMPLETED, t.c.indexed_at.is_(None),
                                    t.c.updated_at < cutoff).order_by(t.c.id).limit(limit))
        with connect(self.engine) as conn:
            return [to_task(row) for row in conn.execute(query).mappings()]
