"""Process one delivered task: claim, run the pipeline under a heartbeat, record the outcome.

The answer (`Delivery`) tells the queue what to do: DONE = this delivery is done (the task
completed or failed, or its next try is already queued as a new, planned delivery); DROP =
the task does not exist: acknowledge and drop; RETRY_AFTER = deliver it again later
(another live worker holds the task, or a backing service is down). A task that is not
finished is never acknowledged without a successor delivery in the queue and its row
saying `pending`. `functions/worker.py` turns the answer into HTTP.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from shared import redis_keys
from shared.backoff import exponential_backoff
from shared.errors import (
    SERVICE_RETRY_S,
    ErrorCode,
    PermanentError,
    ServiceUnavailable,
    TaskError,
    TransientError,
    Wait,
    WaitForKey,
)
from shared.logs import log_context
from shared.pipeline import batch_wait
from shared.pipeline.callbacks import notify, notify_batches
from shared.pipeline.delivery import Delivery, DeliveryKind
from shared.pipeline.delivery import again as _again
from shared.pipeline.delivery import done as _done
from shared.pipeline.fair_dispatch import fair_turn
from shared.pipeline.stages import Job, run_stages
from shared.pipeline.worker import Worker
from shared.queue.base import Redelivery, new_generation
from shared.tasks.models import TaskStatus, out_of_attempts
from shared.tasks.store import Claim, ClaimOutcome, TaskStore

log = logging.getLogger("vision_to_tag.worker")

FIRST_RETRY_AFTER_S = 5
"""The wait before the second try after a transient error; it doubles with each try..."""

MAX_RETRY_AFTER_S = 300
"""...up to this."""


def _lease_lost() -> Delivery:
    return _done("lease lost: another attempt owns the task", TaskStatus.PROCESSING)


def handle_delivery(task_id: str, worker: Worker,
                    handed_off: threading.Event | None = None) -> Delivery:
    """`handed_off` (the synchronous API after its timeout): stop at the next stage and
    leave the task to the queue. With the worker's fair gate (Cloud Tasks), a delivery
    whose team's turn has not come is deferred before the claim."""
    config = worker.config
    # not thread-local: the heartbeat thread renews the lock this thread took
    lock = worker.redis.lock(
        redis_keys.task_lock(task_id), timeout=config.lease_s, blocking=False,
        thread_local=False,
    )
    try:
        if not lock.acquire():
            return _busy(_lock_left_s(worker, task_id))
    except RedisError:
        return _again("redis is unavailable", SERVICE_RETRY_S)
    try:
        deferred = fair_turn(task_id, worker) if handed_off is None else None
        if deferred is not None:
            return deferred
        claim = worker.store.claim(task_id, config.lease_s, config.max_attempts)
        if claim.outcome != ClaimOutcome.CLAIMED:
            return _not_claimed(task_id, claim, worker)
        return _run(claim, worker, lock, handed_off)
    except ServiceUnavailable as error:
        log.warning("backing service down: %s", error, extra={"task_id": task_id})
        return _again(str(error), SERVICE_RETRY_S)
    finally:
        try:
            lock.release()
        except (LockError, RedisError):
            pass


def _busy(left_s: float) -> Delivery:
    return _again("task is held by another worker: deliver again when its lease ends",
                  max(1, math.ceil(left_s)))


def _lock_left_s(worker: Worker, task_id: str) -> float:
    try:
        return max(0, worker.redis.pttl(redis_keys.task_lock(task_id))) / 1000
    except RedisError:
        return SERVICE_RETRY_S


def _not_claimed(task_id: str, claim: Claim, worker: Worker) -> Delivery:
    task = claim.task
    if claim.outcome == ClaimOutcome.MISSING:
        log.warning("delivery for an unknown task: acknowledged", extra={"task_id": task_id})
        return Delivery(DeliveryKind.DROP, "unknown task: dropped")
    assert task is not None
    if task.status == TaskStatus.PROCESSING:  # leased (or out of attempts) with a live lease
        until = task.lease_until or datetime.now(UTC)
        return _busy((until - datetime.now(UTC)).total_seconds())
    if claim.outcome == ClaimOutcome.EXHAUSTED and task.status == TaskStatus.PENDING:
        end_failed(task_id, worker, ErrorCode.ATTEMPTS_EXHAUSTED,
                   f"ran out of attempts ({task.message or 'no error recorded'})")
        return _done("task ran out of attempts", TaskStatus.FAILED)
    return _done(f"task already {task.status}", task.status)


def end_failed(task_id: str, worker: Worker, error_code: ErrorCode, message: str,
               attempt: int | None = None, timings: dict[str, int] | None = None,
               *, dead_letter: bool = True) -> bool:
    """The one way a task ends in failure: the row (owned by `attempt`, or pending), then
    `after_failure`."""
    store = worker.store
    if attempt is None:
        done = store.fail_pending(task_id, error_code=error_code, message=message)
    else:
        done = store.fail(task_id, attempt, error_code=error_code, message=message,
                          timings=timings)
    if done:
        log_failure(task_id, error_code, message)
        after_failure(task_id, worker, dead_letter=dead_letter)
    return done


def log_failure(task_id: str, error_code: str, message: str) -> None:
    """A task's failure, at WARNING wherever the row was failed (here, the reaper, the
    batch collector): a filter at WARNING sees every failed task."""
    log.warning("task failed: %s", message, extra={"task_id": task_id,
                                                    "error_code": error_code})


def after_failure(task_id: str, worker: Worker, *, dead_letter: bool = True) -> None:
    """What follows every failure, wherever the row was failed (here, or by the reaper on
    a lost worker): the dead-letter record (retries, deliveries or attempts ran out — not
    for a permanent error) and the completion callback."""
    try:
        if dead_letter:
            worker.queue.dead_letter(task_id)
    except (RedisError, ServiceUnavailable):
        log.warning("could not record the dead letter", extra={"task_id": task_id})
    notify(task_id, worker)
    notify_batches(task_id, worker)


class Heartbeat:
    """While a worker is alive it renews its lease (database) and lock (Redis) every
    third of TASK_TIMEOUT_S, during long calls too. So TASK_TIMEOUT_S is how fast a dead
    worker is noticed, not how long a task may take. `lost` is set when the row says
    another attempt owns the task."""

    def __init__(self, store: TaskStore, lock: Lock, task_id: str, attempt: int,
                 lease_s: float) -> None:
        self.store, self.lock, self.task_id, self.attempt = store, lock, task_id, attempt
        self.lease_s = lease_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"heartbeat-{task_id[:8]}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(max(0.2, self.lease_s / 3)):
            try:
                self._renew()
            except Exception:  # noqa: BLE001 - a heartbeat never dies: log, beat again
                log.exception("heartbeat failed", extra={"task_id": self.task_id})
            if self.lost.is_set():
                return

    def _renew(self) -> None:
        try:
            if not self.store.renew(self.task_id, self.attempt, self.lease_s):
                self.lost.set()
                return
        except ServiceUnavailable:
            log.warning("lease renewal failed: database down", extra={"task_id": self.task_id})
        try:
            self.lock.reacquire()
        except LockError:  # expired (e.g. Redis restarted): take it again if free
            try:
                self.lock.acquire(blocking=False)
            except RedisError:
                pass
        except RedisError:
            log.warning("lock renewal failed: redis down", extra={"task_id": self.task_id})


def _run(claim: Claim, worker: Worker, lock: Lock,
         handed_off: threading.Event | None) -> Delivery:
    task = claim.task
    assert task is not None
    workdir = Path(tempfile.mkdtemp(prefix=f"vtt-{task.task_id}-"))
    job = Job(task=task, workdir=workdir, tools=worker.tools)
    heartbeat = Heartbeat(worker.store, lock, task.task_id, task.attempts,
                          worker.config.lease_s)
    try:
        with log_context(task_id=task.task_id, attempt=task.attempts), heartbeat:
            return _run_job(job, worker, heartbeat, handed_off)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class HandedOff(TransientError):
    """The synchronous API gave the task to the queue: stop and let it carry on there."""

    error_code = ErrorCode.HANDED_OFF


def _run_job(job: Job, worker: Worker, heartbeat: Heartbeat,
             handed_off: threading.Event | None) -> Delivery:
    """The stages, then the final write; the outcome decides what the queue hears."""
    store, task_id, attempt = worker.store, job.task.task_id, job.task.attempts

    def enter(stage: str) -> None:
        if heartbeat.lost.is_set() or not store.set_stage(task_id, attempt, stage):
            raise TransientError("lease lost during processing", error_code=ErrorCode.LEASE_LOST)
        if handed_off is not None and handed_off.is_set() and job.result is None:
            raise HandedOff("handed to the queue after SYNC_TIMEOUT_S")

    try:
        run_stages(job, enter)
        if job.batch is not None:  # batch mode: the request waits for a batch job
            if not batch_wait.park(job, store, worker.tools.storage):
                return _lease_lost()
            log.info("waiting for a Gemini batch job")
            return _done("waiting for a Gemini batch job", TaskStatus.WAITING_BATCH)
        assert job.result is not None and job.downloaded is not None and job.media is not None
        enter("saving")
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
        end_failed(task_id, worker, error.error_code, error.message, attempt, job.timings,
                   dead_letter=False)
        return _done(error.message, TaskStatus.FAILED)
    except Exception as error:  # transient, or unexpected: retried while attempts last
        return _transient(job, error, worker)
    if not saved:
        return _lease_lost()
    log.info("task completed", extra={"duration_ms": sum(job.timings.values())})
    index_completed(task_id, worker)
    notify(task_id, worker)
    notify_batches(task_id, worker)
    return _done("completed", TaskStatus.COMPLETED)


def index_completed(task_id: str, worker: Worker) -> bool:
    """Put a completed task into the search index. A failure never fails the task: it is
    recorded on the task (`index_error`) and the reaper tries again later."""
    if worker.index is None:
        return False
    started = time.perf_counter()
    try:
        task = worker.store.get(task_id)
        assert task is not None
        worker.index.index_task(task)
    except Exception as error:  # noqa: BLE001 - any indexing failure is retried later
        worker.followups.mark_indexed(task_id, error=f"{type(error).__name__}: {error}"[:500])
        log.warning("indexing failed; will retry: %s", type(error).__name__,
                    extra={"task_id": task_id, "stage": "indexing"})
        return False
    worker.followups.mark_indexed(task_id)
    log.info("indexed", extra={"task_id": task_id, "stage": "indexing",
                               "duration_ms": int((time.perf_counter() - started) * 1000)})
    return True


def _transient(job: Job, error: Exception, worker: Worker) -> Delivery:
    task_id, attempt = job.task.task_id, job.task.attempts
    if isinstance(error, ServiceUnavailable):  # an outage (refused or timed out) is not
        # the task's fault: the attempt is given back, as a delivery refused at the claim
        log.warning("backing service down mid-task: %s", error, extra={"task_id": task_id})
        return _plan_retry(job, worker, ErrorCode.SERVICE_UNAVAILABLE, str(error), SERVICE_RETRY_S,
                           refund_attempt=True)
    if isinstance(error, TaskError):
        code, message = error.error_code, error.message
    else:
        code, message = ErrorCode.INTERNAL_ERROR, f"{type(error).__name__}: {error}"
        log.exception("unexpected error", extra={"task_id": task_id, "attempt": attempt})
    if code == ErrorCode.LEASE_LOST:
        return _lease_lost()
    if isinstance(error, Wait):
        return _wait(job, error, worker)
    if isinstance(error, HandedOff):
        return _plan_retry(job, worker, code, message, 0, refund_attempt=True)
    if out_of_attempts(attempt, worker.config.max_attempts):
        end_failed(task_id, worker, code, f"{message} (after {attempt} attempts)", attempt,
                   job.timings)
        return _done(message, TaskStatus.FAILED)
    hint = getattr(error, "retry_after_s", None)
    return _plan_retry(job, worker, code, message, hint or exponential_backoff(
        attempt - 1, FIRST_RETRY_AFTER_S, MAX_RETRY_AFTER_S))


def _wait(job: Job, error: Wait, worker: Worker) -> Delivery:
    """Waiting (for a key, an overloaded model, a refused region) spends no attempt; it is
    bounded by MAX_QUOTA_WAIT_S from the first wait, then fails with the wait's code. A
    task waiting for a key is timed to a slot the pool promises it alone."""
    task = job.task
    since = task.waiting_since or datetime.now(UTC)
    waited = (datetime.now(UTC) - since).total_seconds()
    limit = worker.config.max_quota_wait_s
    if waited >= limit:
        end_failed(task.task_id, worker, error.error_code,
                   f"{error.message}: waited {waited:.0f} s (MAX_QUOTA_WAIT_S={limit:g})",
                   task.attempts, job.timings)
        return _done(error.message, TaskStatus.FAILED)
    delay = None
    if isinstance(error, WaitForKey):
        try:
            delay = worker.pool.promise_slot()
        except TransientError:
            delay = None
    if delay is None:
        delay = error.retry_after_s or 60.0
    return _plan_retry(job, worker, error.error_code, error.message, delay,
                       refund_attempt=True, waiting_for_key=True)


def _plan_retry(job: Job, worker: Worker, code: ErrorCode, message: str, delay_s: float,
                *, refund_attempt: bool = False, waiting_for_key: bool = False) -> Delivery:
    """Row back to pending (naming the delivery that will carry it), then that delivery,
    due in `delay_s`; this delivery is done. If the queue cannot be written, RETRY_AFTER
    makes the queue deliver this one again (and the reconciler finds the named delivery
    missing)."""
    task_id, store = job.task.task_id, worker.store
    generation = new_generation(Redelivery.KEY_WAIT if waiting_for_key else Redelivery.TRANSIENT)
    if not store.release(task_id, job.task.attempts, error_code=code, message=message,
                         retry_in_s=delay_s, timings=job.timings, delivery=generation,
                         refund_attempt=refund_attempt, waiting_for_key=waiting_for_key):
        return _lease_lost()
    try:
        worker.queue.enqueue(task_id, url=job.task.url, delay_s=delay_s,
                             generation=generation, planned=waiting_for_key, team=job.task.team)
    except ServiceUnavailable:
        return _again(message, max(1, math.ceil(delay_s)), TaskStatus.PENDING)
    log.info("next try in %.3f s: %s", delay_s, message,
             extra={"task_id": task_id, "error_code": code})
    return _done(f"{message}; next try in {delay_s:.3f} s", TaskStatus.PENDING,
                 round(delay_s, 3))
