"""Deleting task rows (issue 34): one task on request, a batch's tasks, or the finished
tasks past TASK_RETENTION_DAYS — always with their share of the rollups taken out in the
same transaction, so the stats stay exact.

A task being processed (`processing`, or `waiting_batch` for a Gemini batch job) is never
deleted: the DELETE re-checks the status under the row lock, so a worker that claims the
task first wins and the delete is refused; a delete that commits first leaves the claim
nothing to find (MISSING)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shared.tasks import rollups
from shared.tasks.db import begin, begin_without_gaps, connect, utcnow
from shared.tasks.models import TaskStatus
from shared.tasks.schema import batch_items as bi
from shared.tasks.schema import batches as b
from shared.tasks.schema import video_fingerprints
from shared.tasks.schema import video_tasks as t

BUSY = (TaskStatus.PROCESSING, TaskStatus.WAITING_BATCH)
"""Statuses of a task being processed: never deleted."""
FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED)
PURGE_COLUMNS = (t.c.task_id, t.c.status, t.c.env, t.c.created_at, t.c.storage_uri)
"""What removing a task's traces outside the database needs (storage keys, index, queue)."""
CHUNK = 500


def share_with_tags(row: Mapping[str, Any]) -> rollups.Share:
    """The row's whole share, the flat tags of a completed result included (the top-tags
    rollup counts them): what a deleted row takes out of the rollups."""
    share = rollups.share_of(row)
    if row["status"] == TaskStatus.COMPLETED:
        share = dataclasses.replace(share, tags=rollups.flat_tags(_mapping(row["tags"])))
    return share


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


class TaskRemoval:
    """Task rows deleted by id, and the reads that choose them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def delete(self, task_ids: Iterable[str], *, only: tuple[str, ...] | None = None
               ) -> list[str]:
        """Delete these tasks unless busy (or, with `only`, unless in one of those
        statuses), in one transaction with their rollups; returns the ids deleted. The
        rows are locked by id and re-checked; no gap is locked, so creates (new ids
        landing next to a deleted one in the task_id index) never wait for it."""
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return []
        allowed = t.c.status.in_(only) if only else t.c.status.not_in(BUSY)
        query = (sa.select(*rollups.SHARE_COLUMNS, t.c.tags)
                 .where(t.c.task_id.in_(ids), allowed).order_by(t.c.task_id).with_for_update())
        with begin_without_gaps(self.engine) as conn:
            rows = conn.execute(query).mappings().all()
            if not rows:
                return []
            doomed = [row["task_id"] for row in rows]
            conn.execute(sa.delete(t).where(t.c.task_id.in_(doomed)))
            conn.execute(sa.delete(video_fingerprints)
                         .where(video_fingerprints.c.task_id.in_(doomed)))
            deltas, now = rollups.Deltas(), utcnow()
            for row in rows:
                deltas.add(share_with_tags(row), -1, now)
            rollups.write(conn, deltas)
        return doomed

    def purge_rows(self, task_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The PURGE_COLUMNS of these tasks (those that exist)."""
        ids = list(dict.fromkeys(task_ids))
        found: list[dict[str, Any]] = []
        with connect(self.engine) as conn:
            for start in range(0, len(ids), CHUNK):
                query = sa.select(*PURGE_COLUMNS).where(t.c.task_id.in_(ids[start:start + CHUNK]))
                found += [dict(row) for row in conn.execute(query).mappings()]
        return found

    def shares_uri(self, storage_uri: str, task_id: str) -> bool:
        """Whether another task's row names this stored object (then it stays)."""
        query = (sa.select(t.c.id).where(t.c.storage_uri == storage_uri,
                                          t.c.task_id != task_id).limit(1))
        with connect(self.engine) as conn:
            return conn.execute(query).first() is not None

    def expired(self, status: str, before: datetime, limit: int = CHUNK
                ) -> list[dict[str, Any]]:
        """Up to `limit` whole rows of `status` created before `before`, oldest first (the
        (status, created_at) index: a short range read, whatever the table's size)."""
        query = (sa.select(t).where(t.c.status == status, t.c.created_at < before)
                 .order_by(t.c.created_at, t.c.id).limit(limit))
        with connect(self.engine) as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def oldest_created_at(self) -> datetime | None:
        """When the oldest task kept was created (the created_at index's first entry)."""
        with connect(self.engine) as conn:
            return conn.execute(sa.select(sa.func.min(t.c.created_at))).scalar()

    # --- batches -------------------------------------------------------------

    def batch_task_ids(self, batch_id: str) -> list[str]:
        query = (sa.select(bi.c.task_id).where(bi.c.batch_id == batch_id,
                                                bi.c.task_id.is_not(None))
                 .order_by(bi.c.item_index))
        with connect(self.engine) as conn:
            return [row[0] for row in conn.execute(query)]

    def busy_among(self, task_ids: list[str]) -> int:
        """How many of these tasks are being processed."""
        busy = 0
        with connect(self.engine) as conn:
            for start in range(0, len(task_ids), CHUNK):
                busy += conn.execute(sa.select(sa.func.count()).where(
                    t.c.task_id.in_(task_ids[start:start + CHUNK]),
                    t.c.status.in_(BUSY))).scalar_one()
        return busy

    def delete_batch(self, batch_id: str) -> bool:
        """The batch row and its items (its tasks stay); False when there was none."""
        with begin(self.engine) as conn:
            conn.execute(sa.delete(bi).where(bi.c.batch_id == batch_id))
            return conn.execute(sa.delete(b).where(b.c.batch_id == batch_id)).rowcount == 1
