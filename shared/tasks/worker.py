"""Process one delivered task: claim, run the pipeline, record the outcome.

The answer tells the queue what to do (DESIGN §1): 2xx = done, drop it (completed,
permanently failed, or someone else has it); 503 + Retry-After = deliver again later.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import LockError, RedisError

from shared import keys
from shared.errors import PermanentError, ServiceUnavailable, TaskError, TransientError
from shared.logs import log_context
from shared.services import Services
from shared.tasks.callbacks import notify
from shared.tasks.pipeline import Job, run_stages
from shared.tasks.store import Claim

log = logging.getLogger("vision_to_tag.worker")

MAX_RETRY_AFTER_S = 300
"""Upper bound of the backoff the worker asks for after a transient error."""


@dataclass(frozen=True)
class WorkerReply:
    status_code: int
    message: str
    task_status: str | None = None
    retry_after_s: int | None = None


def backoff_s(attempt: int) -> int:
    """5 s, 10 s, 20 s ... capped: the delay before the next delivery."""
    return min(MAX_RETRY_AFTER_S, 5 * 2 ** max(0, attempt - 1))


def process_task(task_id: str, services: Services) -> WorkerReply:
    settings = services.settings
    lock = services.redis.lock(
        keys.task_lock(task_id), timeout=settings.TASK_TIMEOUT_S, blocking=False
    )
    try:
        if not lock.acquire():
            return WorkerReply(200, "task is being processed by another worker")
    except RedisError:
        return WorkerReply(503, "redis is unavailable", retry_after_s=backoff_s(1))
    try:
        claim = services.store.claim(task_id, settings.TASK_TIMEOUT_S, settings.MAX_ATTEMPTS)
        if claim.outcome != "claimed":
            return _not_claimed(task_id, claim, services)
        return _run(claim, services)
    except ServiceUnavailable as error:
        log.warning("backing service down: %s", error, extra={"task_id": task_id})
        return WorkerReply(503, str(error), retry_after_s=backoff_s(1))
    finally:
        try:
            lock.release()
        except (LockError, RedisError):
            pass


def _not_claimed(task_id: str, claim: Claim, services: Services) -> WorkerReply:
    if claim.outcome == "exhausted" and claim.task and claim.task.status == "pending":
        _fail_exhausted(claim, services)
        return WorkerReply(200, "task ran out of attempts", "failed")
    messages = {
        "missing": "unknown task: dropped",
        "completed": "task already completed",
        "failed": "task already failed",
        "leased": "task is leased by another worker",
        "exhausted": "task ran out of attempts",
    }
    status = claim.task.status if claim.task else None
    return WorkerReply(200, messages[claim.outcome], status)


def _fail_exhausted(claim: Claim, services: Services) -> None:
    """A pending task with no attempts left (e.g. requeued after a crash): fail it for good."""
    task = claim.task
    assert task is not None
    message = f"ran out of attempts ({task.message or 'no error recorded'})"
    if services.store.fail_pending(task.task_id, error_code="attempts_exhausted", message=message):
        services.queue.dead_letter(task.task_id)
        notify(task.task_id, services)


def _run(claim: Claim, services: Services) -> WorkerReply:
    task = claim.task
    assert task is not None
    workdir = Path(tempfile.mkdtemp(prefix=f"vtt-{task.task_id}-"))
    job = Job(task=task, workdir=workdir, services=services)
    try:
        with log_context(task_id=task.task_id, attempt=task.attempts):
            return _run_job(job, services)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_job(job: Job, services: Services) -> WorkerReply:
    """The stages, then the final write; the outcome decides what the queue hears."""
    store, task_id, attempt = services.store, job.task.task_id, job.task.attempts
    try:
        run_stages(job, lambda stage: _enter_stage(store, task_id, attempt, stage))
        assert job.result is not None and job.downloaded is not None and job.media is not None
        store.set_stage(task_id, attempt, "saving")
        saved = store.complete(
            task_id, attempt,
            result=job.result.model_dump(mode="json"),
            timings=job.timings,
            video={
                "video_sha256": job.downloaded.sha256,
                "size_bytes": job.downloaded.size_bytes,
                "duration_s": job.media.duration_s,
                "storage_uri": job.storage_uri,
            },
        )
    except PermanentError as error:
        store.fail(task_id, attempt, error_code=error.error_code, message=error.message,
                   timings=job.timings)
        log.info("task failed: %s", error.message, extra={"error_code": error.error_code})
        notify(task_id, services)
        return WorkerReply(200, error.message, "failed")
    except Exception as error:  # transient, or unexpected: retried while attempts last
        return _transient(task_id, attempt, error, job, services)
    if not saved:
        return WorkerReply(200, "lease lost: another attempt owns the task", "processing")
    log.info("task completed", extra={"duration_ms": sum(job.timings.values())})
    index_completed(task_id, services)
    notify(task_id, services)
    return WorkerReply(200, "completed", "completed")


def index_completed(task_id: str, services: Services) -> bool:
    """Put a completed task into the search index. A failure never fails the task: it is
    recorded on the task (`index_error`) and the reaper tries again later."""
    if services.index is None:
        return False
    started = time.perf_counter()
    try:
        task = services.store.get(task_id)
        assert task is not None
        services.index.index_task(task)
    except Exception as error:  # noqa: BLE001 - any indexing failure is retried later
        services.store.mark_indexed(task_id, error=f"{type(error).__name__}: {error}"[:500])
        log.warning("indexing failed; will retry: %s", type(error).__name__,
                    extra={"task_id": task_id, "stage": "indexing"})
        return False
    services.store.mark_indexed(task_id)
    log.info("indexed", extra={"task_id": task_id, "stage": "indexing",
                               "duration_ms": int((time.perf_counter() - started) * 1000)})
    return True


def _enter_stage(store, task_id: str, attempt: int, stage: str) -> None:
    if not store.set_stage(task_id, attempt, stage):
        raise TransientError("lease lost during processing", error_code="lease_lost")


def _transient(
    task_id: str, attempt: int, error: Exception, job: Job, services: Services
) -> WorkerReply:
    if isinstance(error, TaskError):
        code, message = error.error_code, error.message
    else:
        code, message = "internal_error", f"{type(error).__name__}: {error}"
        log.exception("unexpected error", extra={"task_id": task_id, "attempt": attempt})
    store = services.store
    if attempt >= services.settings.MAX_ATTEMPTS:
        store.fail(task_id, attempt, error_code=code,
                   message=f"{message} (after {attempt} attempts)", timings=job.timings)
        services.queue.dead_letter(task_id)
        notify(task_id, services)
        return WorkerReply(200, message, "failed")
    store.release(task_id, attempt, error_code=code, message=message, timings=job.timings)
    hint = getattr(error, "retry_after_s", None)
    retry_after = int(hint) if hint else backoff_s(attempt)
    return WorkerReply(503, message, "pending", retry_after_s=max(1, retry_after))
