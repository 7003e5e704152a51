"""The stuck-task reaper: processing tasks whose lease expired go back to the queue.

Run from the consumer loop and from the daily `cleanup` function. The id is enqueued
before the row changes, so a crash between the two leaves a harmless extra delivery
(the worker's claim still succeeds on an expired lease) and never a lost task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.search import TagIndex
from shared.tasks.queue import TaskQueue
from shared.tasks.store import TaskStore

log = logging.getLogger("vision_to_tag.reaper")


def reap_stuck_tasks(store: TaskStore, queue: TaskQueue, max_attempts: int,
                     on_failed: Callable[[str], object] | None = None) -> dict[str, int]:
    """`on_failed(task_id)` runs for each task failed here (the completion callback)."""
    counts = {"requeued": 0, "failed": 0, "skipped": 0}
    for task in store.expired_leases():
        if task.attempts < max_attempts:
            queue.enqueue(task.task_id, url=task.url, generation=f"a{task.attempts}")
        outcome = store.reap(
            task, max_attempts=max_attempts,
            message=f"worker lost during stage {task.stage or 'start'} (lease expired)",
        )
        if outcome == "failed":
            queue.dead_letter(task.task_id)
            if on_failed is not None:
                on_failed(task.task_id)
        counts[outcome] += 1
        log.info("reaped stuck task: %s", outcome, extra={"task_id": task.task_id})
    return counts


def retry_indexing(store: TaskStore, index: TagIndex | None, batch: int = 500) -> int:
    """Completed tasks whose indexing failed (or was cut short) go to the index again."""
    if index is None:
        return 0
    pending = store.not_indexed(limit=batch)
    if not pending:
        return 0
    try:
        done = index.bulk_index(pending)
    except Exception as error:  # noqa: BLE001 - the search cluster is down: next sweep
        log.warning("re-indexing failed: %s", type(error).__name__)
        return 0
    if done:
        store.mark_indexed_many(done)
    return len(done)
