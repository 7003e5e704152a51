"""The reconciler: the database row is the source of truth, and every task that is not
finished must be deliverable (in the queue) or held by a live lease.

It runs every ~30 s in the local consumer and every minute on Google Cloud (the
`cleanup` function with `?scope=tasks`, its own Cloud Scheduler job), and fixes two
states a crash, a restart or a Redis flush can leave behind:

- `processing` rows whose lease expired (the worker died): re-queued, or failed when no
  attempts are left. The id is enqueued before the row changes, so a crash between the two
  leaves a harmless extra delivery (the claim succeeds on an expired lease), never a lost task.
- `pending` rows whose delivery should have arrived more than RECONCILE_GRACE_S ago and
  that the queue no longer holds (Redis flushed, a delivery dropped): enqueued again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.errors import ErrorCode
from shared.pipeline.callbacks import notify_batch
from shared.pipeline.runner import after_failure, log_failure
from shared.pipeline.worker import Worker
from shared.queue.base import Redelivery, TaskQueue, new_generation
from shared.search.index import TagIndex
from shared.tasks.db import utcnow
from shared.tasks.followups import Followups
from shared.tasks.models import Task, out_of_attempts
from shared.tasks.queries import TaskQueries
from shared.tasks.store import TaskStore

log = logging.getLogger("vision_to_tag.reaper")


def reconcile(worker: Worker) -> dict[str, int]:
    """One sweep as the consumer and the cleanup function run it: stuck tasks (failures
    followed by `after_failure`), then completed tasks the search index missed, then —
    every ROLLUP_RECOUNT_S — the exact recount of the stats' rollups."""
    config = worker.config
    counts = reap_stuck_tasks(worker.store, worker.queries, worker.queue,
                              config.max_attempts, grace_s=config.reconcile_grace_s,
                              on_failed=lambda task_id: after_failure(task_id, worker))
    recounted = worker.store.recount_rollups(config.rollup_recount_s)
    if recounted and recounted["repaired"]:
        log.warning("rollups drifted from the task rows: %d figures repaired",
                    recounted["repaired"])
    return {**counts, "reindexed": retry_indexing(worker.followups, worker.index),
            "batches_finished": finish_stale_batches(worker),
            "rollups_recounted": int(recounted is not None)}


def finish_stale_batches(worker: Worker) -> int:
    """Batches whose last item ended while the database was out of reach: finished now,
    with their callback (exactly once: the same conditional UPDATE as the worker's)."""
    finished = worker.batches.finish_stale()
    for batch_id in finished:
        notify_batch(batch_id, worker)
    return len(finished)


def reap_stuck_tasks(store: TaskStore, queries: TaskQueries, queue: TaskQueue,
                     max_attempts: int,
                     on_failed: Callable[[str], object] | None = None,
                     grace_s: float = 60) -> dict[str, int]:
    """`on_failed(task_id)` runs for each task failed here: `runner.after_failure` (dead
    letter, completion callback); without it the dead letter is still recorded."""
    counts = {"requeued": 0, "failed": 0, "skipped": 0, "redelivered": 0}
    for task in queries.expired_leases():
        generation = new_generation(Redelivery.LEASE_EXPIRED)
        if not out_of_attempts(task.attempts, max_attempts):
            queue.enqueue(task.task_id, url=task.url, generation=generation, team=task.team)
        message = f"worker lost during stage {task.stage or 'start'} (lease expired)"
        outcome = store.reap(task, max_attempts=max_attempts, generation=generation,
                             message=message)
        if outcome == "failed":
            log_failure(task.task_id, ErrorCode.ATTEMPTS_EXHAUSTED, message)
            if on_failed is not None:
                on_failed(task.task_id)
            else:
                queue.dead_letter(task.task_id)
        counts[outcome] += 1
        log.info("reaped stuck task: %s", outcome, extra={"task_id": task.task_id})
    now = utcnow()
    for task in queries.overdue_pending(grace_s):
        live = queue.is_live(task.task_id, task.delivery or "0")
        if live or (live is None and not _long_overdue(task, now, grace_s)):
            continue
        generation = new_generation(Redelivery.RECONCILED)
        queue.enqueue(task.task_id, url=task.url, generation=generation, team=task.team)
        store.mark_enqueued(task.task_id, generation)
        counts["redelivered"] += 1
        log.info("pending task had no delivery: enqueued again", extra={"task_id": task.task_id})
    return counts


UNKNOWN_LIVENESS_FACTOR = 10
"""When the queue cannot say whether a delivery exists (e.g. an emulator without GetTask),
a pending task this many grace periods overdue is enqueued again anyway: a duplicate
delivery is harmless, a missing one is not."""


def _long_overdue(task: Task, now: datetime, grace_s: float) -> bool:
    due = task.next_attempt_at or task.updated_at
    return (now - due.replace(tzinfo=None)).total_seconds() > UNKNOWN_LIVENESS_FACTOR * grace_s


def retry_indexing(followups: Followups, index: TagIndex | None, batch: int = 500) -> int:
    """Completed tasks whose indexing failed (or was cut short) go to the index again."""
    if index is None:
        return 0
    pending = followups.not_indexed(limit=batch)
    if not pending:
        return 0
    try:
        done = index.bulk_index(pending)
    except Exception as error:  # noqa: BLE001 - the search cluster is down: next sweep
        log.warning("re-indexing failed: %s", type(error).__name__)
        return 0
    if done:
        followups.mark_indexed_many(done)
    return len(done)
