"""TaskQueries: reads over many tasks — listings, the result cache, what the stats and the
reconciler look at. Nothing here changes a task (that is `TaskStore`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared.cursor import decode_cursor, encode_cursor
from shared.tasks.db import connect, utcnow
from shared.tasks.export import EXPORT_CHUNK
from shared.tasks.models import Task, TaskStatus
from shared.tasks.schema import video_tasks as t
from shared.tasks.store import to_task


class TaskQueries:
    """Read-only questions about the task table behind one engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def list(
        self,
        *,
        status: str | None = None,
        platform: str | None = None,
        uid: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Task], str | None]:
        """Newest first; returns the page and the cursor of the next one (None at the end)."""
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit + 1)
        if status:
            query = query.where(t.c.status == status)
        if platform:
            query = query.where(t.c.platform == platform)
        if uid:
            query = query.where(t.c.uid == uid)
        if cursor:
            query = query.where(t.c.id < decode_cursor(cursor, int)[0])
        with connect(self.engine) as conn:
            rows = conn.execute(query).mappings().all()
        next_cursor = encode_cursor([rows[limit - 1]["id"]]) if len(rows) > limit else None
        return [to_task(row) for row in rows[:limit]], next_cursor

    def find_result(self, video_sha256: str, *, dimensions: list[str], language: str,
                    provider: str, model: str, prompt_version: str) -> dict[str, Any] | None:
        """A stored result for the same video, question and model (the result cache)."""
        query = (
            sa.select(t.c.tags)
            .where(t.c.video_sha256 == video_sha256, t.c.status == TaskStatus.COMPLETED)
            .order_by(t.c.id.desc())
            .limit(50)
        )
        with connect(self.engine) as conn:
            for (tags,) in conn.execute(query):
                if not isinstance(tags, dict):
                    continue
                if (sorted(tags.get("dimensions", {})) == sorted(dimensions)
                        and tags.get("language") == language
                        and tags.get("provider") == provider and tags.get("model") == model
                        and tags.get("prompt_version", "") == prompt_version):
                    return tags
        return None

    def finished_since(self, since: datetime, limit: int = 5000) -> list[tuple[str, dict]]:
        """(status, timings) of tasks that ended since `since`, newest first."""
        query = (sa.select(t.c.status, t.c.timings)
                 .where(t.c.status.in_((TaskStatus.COMPLETED, TaskStatus.FAILED)),
                        t.c.processed_end >= since)
                 .order_by(t.c.processed_end.desc()).limit(limit))
        with connect(self.engine) as conn:
            return [(status, timings or {}) for status, timings in conn.execute(query)]

    def usage_since(self, since: datetime, limit: int = 20_000) -> list[dict[str, Any]]:
        """`usage` of the results of tasks completed since `since` (token and cost sums)."""
        query = (sa.select(t.c.tags)
                 .where(t.c.status == TaskStatus.COMPLETED, t.c.processed_end >= since)
                 .order_by(t.c.processed_end.desc()).limit(limit))
        with connect(self.engine) as conn:
            return [tags.get("usage") or {} for (tags,) in conn.execute(query)
                    if isinstance(tags, dict)]

    def count_by_status(self) -> dict[str, int]:
        with connect(self.engine) as conn:
            rows = conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
            return {status: count for status, count in rows}

    def expired_leases(self, now: datetime | None = None, limit: int = 100) -> list[Task]:
        """Processing tasks whose worker stopped renewing (crashed, killed, timed out)."""
        query = (
            sa.select(t)
            .where(t.c.status == TaskStatus.PROCESSING, t.c.lease_until < (now or utcnow()))
            .limit(limit)
        )
        with connect(self.engine) as conn:
            return [to_task(row) for row in conn.execute(query).mappings()]

    def overdue_pending(self, grace_s: float, now: datetime | None = None,
                        limit: int = 200) -> list[Task]:
        """Pending tasks whose delivery should have arrived more than `grace_s` ago."""
        cutoff = (now or utcnow()) - timedelta(seconds=grace_s)
        due = sa.func.coalesce(t.c.next_attempt_at, t.c.updated_at)
        query = (sa.select(t).where(t.c.status == TaskStatus.PENDING, due < cutoff)
                 .order_by(t.c.id).limit(limit))
        with connect(self.engine) as conn:
            return [to_task(row) for row in conn.execute(query).mappings()]

    def iter_completed(self, *, env: str | None = None, since: datetime | None = None,
                       batch: int = 500) -> Iterator[list[Task]]:
        """Completed tasks in id order, a batch at a time (keyset pagination)."""
        last_id = 0
        while True:
            query = sa.select(t).where(t.c.status == TaskStatus.COMPLETED, t.c.id > last_id)
            if env:
                query = query.where(t.c.env == env)
            if since:
                query = query.where(t.c.created_at >= since)
            with connect(self.engine) as conn:
                rows = conn.execute(query.order_by(t.c.id).limit(batch)).mappings().all()
            if not rows:
                return
            last_id = rows[-1]["id"]
            yield [to_task(row) for row in rows]

    def count_completed(self, *, env: str | None = None, since: datetime | None = None) -> int:
        query = sa.select(sa.func.count()).where(t.c.status == TaskStatus.COMPLETED)
        if env:
            query = query.where(t.c.env == env)
        if since:
            query = query.where(t.c.created_at >= since)
        with connect(self.engine) as conn:
            return conn.execute(query).scalar_one()

    def export_rows(self, columns: list[sa.Column], *, status: str | None = None,
                    platform: str | None = None, uid: str | None = None,
                    env: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, chunk: int = EXPORT_CHUNK
                    ) -> Iterator[list[dict[str, Any]]]:
        """Tasks matching the filters in id order, `chunk` at a time (keyset pagination:
        one short query per chunk, nothing held open while the caller writes)."""
        query = sa.select(*columns)
        for column, value in ((t.c.status, status), (t.c.platform, platform),
                              (t.c.uid, uid), (t.c.env, env)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(t.c.created_at >= since)
        if until is not None:
            query = query.where(t.c.created_at < until)
        last_id = 0
        while True:
            page = query.where(t.c.id > last_id).order_by(t.c.id).limit(chunk)
            with connect(self.engine) as conn:
                rows = [dict(row) for row in conn.execute(page).mappings()]
            if not rows:
                return
            last_id = rows[-1]["id"]
            yield rows
