"""Deleting tasks and batches (issue 34): DELETE /api/v1/task/{id}, DELETE
/api/v1/batches/{id}[?tasks=true], and the retention job (`retention.py`).

A task leaves nothing behind: its stored video, frames and batch request (every object
under its own `videos/…/{task_id}/` prefix), its search document and passages, its queue
entries and Redis keys, and its row — which is also the result-cache entry
(`TaskQueries.find_result` reads completed rows by `video_sha256`): another task with
the same video bytes keeps its own row, objects and cache entry.

The traces outside the database go first, the row last (`TaskRemoval.delete`, which
takes its share out of the rollups in the same transaction): a failure half-way answers
503 and leaves the row, so the delete can simply be asked again; a row gone with its
objects left behind could never be found again."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from shared.app.context import Services
from shared.app.tasks import MALFORMED_TASK_ID
from shared.errors import Conflict, InvalidInput, NotFound
from shared.storage import video_prefix
from shared.tasks.models import TaskStatus, task_id_forms
from shared.tasks.removal import BUSY, CHUNK, TaskRemoval

log = logging.getLogger("vision_to_tag.api")

MALFORMED_BATCH_ID = "batch_id: malformed (expected a UUID: dashed, or 32 hex digits)"


def removal(services: Services) -> TaskRemoval:
    return TaskRemoval(services.store.engine)


def delete_task(services: Services, raw_id: str) -> str:
    """Delete one task and all it left; returns its id. 404 when there is none (a second
    delete included), 409 while it is being processed."""
    forms = task_id_forms(raw_id)
    if forms is None:
        raise InvalidInput(MALFORMED_TASK_ID)
    task = services.store.find(forms)
    if task is None:
        raise NotFound(f"task_id: no task {forms[0]}")
    if task.status in BUSY:
        raise Conflict(_busy_message(task.status))
    rows = removal(services).purge_rows([task.task_id])
    purge_outside(services, rows)
    if not removal(services).delete([task.task_id]):
        now = services.store.get(task.task_id)
        if now is None:
            raise NotFound(f"task_id: no task {forms[0]}")
        raise Conflict(_busy_message(now.status))
    log.info("task deleted", extra={"task_id": task.task_id})
    return task.task_id


def _busy_message(status: str) -> str:
    what = ("waits for a Gemini batch job" if status == TaskStatus.WAITING_BATCH
            else "is being processed")
    return f"task_id: task {what} ({status}); delete it once it has finished"


def purge_outside(services: Services, rows: Iterable[dict[str, Any]]) -> None:
    """Everything of these tasks outside the database: stored objects, search documents,
    queue entries and Redis keys (rows: `removal.PURGE_COLUMNS`)."""
    rows = list(rows)
    if not rows:
        return
    ids = [row["task_id"] for row in rows]
    remove_objects(services, rows)
    if services.index is not None:
        services.index.remove(ids)
    services.queue.forget(ids)


def remove_objects(services: Services, rows: list[dict[str, Any]]) -> int:
    """The tasks' own objects (their prefixes); a stored video outside them only when no
    other task names it. Returns how many were deleted.

    A task created before the video cache window (CACHE_DAYS) normally has nothing left:
    the daily cleanup deleted its day. Those are looked for with one listing of their
    day (empty, one request) instead of one per task — what keeps the retention job's
    chunks to a few storage requests on GCS."""
    storage, keys = services.storage, []
    cached_from = date.today() - timedelta(days=services.settings.housekeeping.CACHE_DAYS + 1)
    old_days: dict[date, set[str]] = {}
    for row in rows:
        day = row["created_at"].date()
        if day < cached_from:
            old_days.setdefault(day, set()).add(row["task_id"])
        else:
            keys += [obj.key for obj in storage.list(video_prefix(row["created_at"],
                                                                  row["task_id"]))]
        keys += _outside_key(services, row)
    for day, ids in old_days.items():
        keys += [obj.key for obj in storage.list(f"videos/{day:%Y/%m/%d}/")
                 if obj.key.split("/")[4:5] and obj.key.split("/")[4] in ids]
    for key in keys:
        storage.delete(key)
    return len(keys)


def _outside_key(services: Services, row: dict[str, Any]) -> list[str]:
    """The stored video's key when it lies outside the task's prefix and no other task
    names it (none does today: every key is the task's own)."""
    uri = row.get("storage_uri")
    key = services.storage.key_of(uri) if uri else None
    if not key or key.startswith(video_prefix(row["created_at"], row["task_id"])):
        return []
    return [] if removal(services).shares_uri(uri, row["task_id"]) else [key]


def delete_batch(services: Services, raw_id: str, *, with_tasks: bool) -> dict[str, int]:
    """Delete a batch (and its items); `with_tasks`: its tasks too, each as
    `delete_task` does, all refused (409) while any of them is being processed."""
    forms = task_id_forms(raw_id)
    if forms is None:
        raise InvalidInput(MALFORMED_BATCH_ID)
    batch_id = forms[0]
    if services.batches.row(batch_id) is None:
        raise NotFound(f"batch_id: no batch {batch_id}")
    remover = removal(services)
    deleted = kept = 0
    if with_tasks:
        task_ids = remover.batch_task_ids(batch_id)
        busy = remover.busy_among(task_ids)
        if busy:
            raise Conflict(f"tasks: {busy} of the batch's tasks are being processed; delete "
                           "the batch once they have finished (or without ?tasks=true)")
        for start in range(0, len(task_ids), CHUNK):
            chunk = task_ids[start:start + CHUNK]
            purge_outside(services, remover.purge_rows(chunk))
            done = remover.delete(chunk)
            deleted += len(done)
            kept += len(remover.purge_rows(set(chunk) - set(done)))
    if not remover.delete_batch(batch_id):
        raise NotFound(f"batch_id: no batch {batch_id}")
    log.info("batch deleted", extra={"batch_id": batch_id, "tasks_deleted": deleted})
    return {"tasks_deleted": deleted, "tasks_kept": kept}
