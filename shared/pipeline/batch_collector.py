"""Batch mode, the collector's side (issue 27): one sweep groups the waiting tasks per key
and model into Gemini Batch API jobs, polls the jobs it created, and finishes each task
from its answer exactly as an interactive answer is finished.

It runs in the local consumer's periodic loop (every BATCH_POLL_S) and on Google Cloud as
`cleanup?scope=batches` (its own Cloud Scheduler job). One sweep at a time (a Redis lock).

- Jobs: inline requests while the job's requests stay under INLINE_JOB_MAX_BYTES, else a
  JSONL input file (`{"key": task_id, "request": {...}}` per line) uploaded through the
  Files API. The job row is written (state `creating`, its tasks taken) before Gemini is
  asked, and Gemini knows the job by the display name `vtt-{job_id}`: a sweep that finds
  a `creating` job looks it up by that name before creating it, so a crash between the
  creation call and its record never submits the same tasks twice.
- Ends: succeeded → each answer matched by key (unknown keys and unreadable lines are
  counted and skipped; a task without an answer waits for the next job); one item's error
  fails only its task; failed, cancelled or expired → its tasks wait again (no attempt
  spent) and go into the next job. Input and output files are deleted when the job ends,
  an uploaded video when its task stops waiting.
- A task waiting longer than BATCH_MAX_WAIT_S falls back to interactive tagging.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.genai import errors, types
from redis.exceptions import LockError, RedisError

from shared import redis_keys
from shared.accounts.pool import Lease
from shared.errors import ErrorCode, PermanentError, ServiceUnavailable, TransientError
from shared.pipeline import batch_wait
from shared.pipeline.callbacks import notify, notify_batches
from shared.pipeline.runner import after_failure, index_completed, log_failure
from shared.pipeline.stages import fitted, with_frames
from shared.pipeline.worker import Worker
from shared.queue.base import Redelivery, new_generation
from shared.redact import redact
from shared.redis_conn import redis_outage
from shared.tagging.gemini import GeminiTagger, rest_request
from shared.tagging.result import Usage
from shared.tasks.gemini_jobs import JOB_CREATING, JOB_SUBMITTED, GeminiJob, GeminiJobStore
from shared.tasks.models import TaskStatus

if TYPE_CHECKING:
    from google import genai

log = logging.getLogger("vision_to_tag.batch")

INLINE_JOB_MAX_BYTES = 19 * 1024 * 1024
"""Inline requests of one job stay under Gemini's 20 MB limit on the create call (the
Batch API guide), with room for the envelope."""

LOOKUP_PAGES = 5
"""Pages of 100 jobs searched for a display name (jobs are listed newest first)."""

STATES = {
    "JOB_STATE_PENDING": None, "JOB_STATE_QUEUED": None, "JOB_STATE_RUNNING": None,
    "JOB_STATE_SUCCEEDED": "succeeded", "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled", "JOB_STATE_CANCELLING": None,
    "JOB_STATE_EXPIRED": "expired",
}
"""The SDK's job states (it maps Gemini's BATCH_STATE_* onto JOB_STATE_*) → how our job
ends (None: still running)."""


@dataclass
class Sweep:
    worker: Worker
    tagger: GeminiTagger
    jobs: GeminiJobStore
    workdir: Path
    counts: Counter


def collect(worker: Worker) -> dict[str, int]:
    """One sweep; {} when the tagger has no Batch API or another sweep is running."""
    tagger = worker.tools.tagger
    if not isinstance(tagger, GeminiTagger):
        return {}
    lock = worker.redis.lock(redis_keys.BATCH_COLLECTOR_LOCK, timeout=600, blocking=False)
    with redis_outage():
        if not lock.acquire():
            return {}
    workdir = Path(tempfile.mkdtemp(prefix="vtt-batch-"))
    sweep = Sweep(worker, tagger, GeminiJobStore(worker.store.engine), workdir, Counter())
    try:
        fall_back_overdue(sweep)
        for job in sweep.jobs.in_states((JOB_CREATING,)):
            _guarded(sweep, job, recover)
        submit_waiting(sweep)
        for job in sweep.jobs.in_states((JOB_SUBMITTED,)):
            _guarded(sweep, job, poll)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            lock.release()
        except (LockError, RedisError):
            pass
    if sweep.counts:
        log.info("batch sweep: %s", dict(sweep.counts))
    return dict(sweep.counts)


def every(interval_s: float) -> Callable[[], bool]:
    """True at most once per `interval_s` (the first call included): paces the collector
    inside the consumer's more frequent housekeeping."""
    last = [float("-inf")]

    def due() -> bool:
        now = time.monotonic()
        if now - last[0] < interval_s:
            return False
        last[0] = now
        return True

    return due


def _guarded(sweep: Sweep, job: GeminiJob, step: Any) -> None:
    """A job whose Gemini call fails is tried again next sweep; the others go on."""
    try:
        step(sweep, job)
    except ServiceUnavailable:
        raise
    except Exception as error:  # noqa: BLE001 - Gemini's, the network's, a bad answer's
        sweep.counts["job_errors"] += 1
        log.warning("batch job %s: %s", job.job_id, _reason(error))


def _reason(error: BaseException) -> str:
    if isinstance(error, errors.APIError):
        return f"HTTP {error.code} {error.status or ''}".strip()
    return redact(f"{type(error).__name__}: {error}")[:300]


# --- submitting ----------------------------------------------------------------------


def submit_waiting(sweep: Sweep) -> None:
    limit = sweep.worker.config.batch_max_tasks
    while True:
        waiting = sweep.jobs.unassigned(limit * 20)
        if not waiting:
            return
        groups: dict[tuple[str, str], list] = {}
        for task in waiting:
            groups.setdefault((task.key_id, task.model), []).append(task)
        made = 0
        for (key_id, model), tasks in groups.items():
            for start in range(0, len(tasks), limit):
                job = sweep.jobs.create(uuid.uuid4().hex, key_id, model,
                                        tasks[start:start + limit])
                if job is not None:
                    made += 1
                    _guarded(sweep, job, create_remote)
        if made == 0 or len(waiting) < limit * 20:
            return


def recover(sweep: Sweep, job: GeminiJob) -> None:
    """A job left `creating` (a crash, or Gemini's create call failed): the job Gemini
    knows under its display name, else a creation now."""
    client = _client(sweep, job)
    pager = client.batches.list(config=types.ListBatchJobsConfig(page_size=100))
    for index, remote in enumerate(pager):
        if index >= 100 * LOOKUP_PAGES:
            break
        if remote.display_name == job.display_name and remote.name:
            sweep.jobs.submitted(job.job_id, remote.name)
            sweep.counts["jobs_recovered"] += 1
            return
    create_remote(sweep, job)


def create_remote(sweep: Sweep, job: GeminiJob) -> None:
    client = _client(sweep, job)
    lines: list[tuple[str, dict]] = []
    for task_id, token in job.items:
        task = sweep.worker.store.get(task_id)
        if task is None or task.status != TaskStatus.WAITING_BATCH or task.batch_token != token:
            continue  # moved on since the job took it (fell back, prepared again)
        recorded = batch_wait.load(sweep.worker.tools.storage, task, sweep.workdir)
        if recorded is None:  # its document is gone: the task is tagged interactively
            _fall_back(sweep, task_id, token, None, "batch request document missing")
            continue
        lines.append((task_id, recorded.request))
    if not lines:
        sweep.jobs.end(job.job_id, "failed", "no request left to submit")
        return
    size = sum(len(json.dumps(request)) for _, request in lines)
    config = types.CreateBatchJobConfig(display_name=job.display_name)
    if size <= INLINE_JOB_MAX_BYTES:
        source: Any = [types.InlinedRequest.model_validate({**request,
                                                            "metadata": {"key": task_id}})
                       for task_id, request in lines]
    else:
        source = job.input_file or _upload_input(sweep, client, job, lines)
    created = client.batches.create(model=job.model, src=source, config=config)
    sweep.jobs.submitted(job.job_id, created.name or "")
    sweep.counts["jobs_created"] += 1
    sweep.counts["tasks_submitted"] += len(lines)


def _upload_input(sweep: Sweep, client: genai.Client, job: GeminiJob,
                  lines: list[tuple[str, dict]]) -> str:
    path = sweep.workdir / f"{job.job_id}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for task_id, request in lines:
            handle.write(json.dumps({"key": task_id, "request": rest_request(client, request)},
                                    ensure_ascii=False) + "\n")
    uploaded = client.files.upload(file=str(path), config=types.UploadFileConfig(
        mime_type="application/jsonl", display_name=f"{job.display_name}-input"))
    path.unlink()
    assert uploaded.name
    sweep.jobs.set_input_file(job.job_id, uploaded.name)
    return uploaded.name


# --- polling and finishing -------------------------------------------------------------


def poll(sweep: Sweep, job: GeminiJob) -> None:
    client = _client(sweep, job)
    remote = client.batches.get(name=job.name or "")
    state = getattr(remote.state, "name", str(remote.state))
    ended = STATES.get(state)
    if ended is None:
        return
    if ended == "succeeded":
        finish_job(sweep, job, client, remote)
    error = getattr(remote, "error", None)
    if sweep.jobs.end(job.job_id, ended, None if error is None else str(error)):
        sweep.counts[f"jobs_{ended}"] += 1
        if ended != "succeeded":
            log.warning("batch job %s %s: its %d tasks wait for the next job", job.job_id,
                        ended, len(job.items))
    _delete_file(client, job.input_file)
    if remote.dest is not None:
        _delete_file(client, remote.dest.file_name)


def finish_job(sweep: Sweep, job: GeminiJob, client: genai.Client,
               remote: types.BatchJob) -> None:
    tokens = dict(job.items)
    dest = remote.dest
    if dest is not None and dest.inlined_responses is not None:
        for position, item in enumerate(dest.inlined_responses):
            key = (item.metadata or {}).get("key")
            if key is None and position < len(job.items):  # answers keep request order
                key = job.items[position][0]
            _answer(sweep, tokens, key, item.response, item.error)
    elif dest is not None and dest.file_name:
        data = client.files.download(file=dest.file_name) or b""
        for line in data.decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
                key = parsed["key"]
                response = (types.GenerateContentResponse.model_validate(parsed["response"])
                            if parsed.get("response") is not None else None)
                error = parsed.get("error") or parsed.get("status")
            except (ValueError, KeyError, TypeError):
                sweep.counts["malformed_lines"] += 1
                log.warning("batch job %s: unreadable output line skipped", job.job_id)
                continue
            _answer(sweep, tokens, key, response, error)


def _answer(sweep: Sweep, tokens: dict[str, str], key: str | None,
            response: types.GenerateContentResponse | None, error: Any) -> None:
    if key not in tokens:
        sweep.counts["unknown_keys"] += 1
        log.warning("batch answer for an unknown key skipped: %s", str(key)[:64])
        return
    assert key is not None
    finish_task(sweep, key, tokens[key], response, error)


def finish_task(sweep: Sweep, task_id: str, token: str,
                response: types.GenerateContentResponse | None, error: Any) -> None:
    """One task's answer: completed, failed (its item's error, or a blocked answer), or
    back to interactive tagging (an answer that is no usable JSON). Every write is fenced
    on the token: a task that moved on ignores the answer."""
    worker, jobs = sweep.worker, sweep.jobs
    task = worker.store.get(task_id)
    if task is None or task.batch_token != token:
        sweep.counts["late_answers_ignored"] += 1
        return
    recorded = batch_wait.load(worker.tools.storage, task, sweep.workdir)
    if recorded is None:
        _fall_back(sweep, task_id, token, None, "batch request document missing")
        return
    if response is None:
        _fail(sweep, task_id, token, recorded, *item_error(error))
        return
    try:
        result = sweep.tagger.finish_batch(recorded.tag_request(task), recorded.model, response)
    except PermanentError as failure:
        _fail(sweep, task_id, token, recorded, failure.error_code, failure.message)
        return
    except TransientError as failure:
        _fall_back(sweep, task_id, token, recorded, failure.message,
                   error_code=failure.error_code)
        return
    result = with_frames(fitted(result, recorded.media.duration_s, recorded.cuts),
                         recorded.frames, recorded.scene_changes)
    timings = dict(task.timings or {})
    if task.batch_since is not None:
        timings["batch_wait"] = int((datetime.now(UTC) - task.batch_since).total_seconds()
                                    * 1000)
    if not jobs.finish_task(task_id, token, result=result.model_dump(mode="json"),
                            timings=timings):
        sweep.counts["late_answers_ignored"] += 1
        return
    sweep.counts["tasks_completed"] += 1
    _account_for(sweep, recorded.key_id, result.usage)
    _delete_upload(sweep, recorded)
    index_completed(task_id, worker)
    notify(task_id, worker)
    notify_batches(task_id, worker)


def _fail(sweep: Sweep, task_id: str, token: str, recorded: batch_wait.Recorded,
          code: ErrorCode, message: str) -> None:
    """The task failed for good (its item's error, a blocked answer); its upload goes."""
    if sweep.jobs.fail_task(task_id, token, error_code=code, message=message):
        sweep.counts["tasks_failed"] += 1
        log_failure(task_id, code, message)
        after_failure(task_id, sweep.worker, dead_letter=False)
    _delete_upload(sweep, recorded)


def _account_for(sweep: Sweep, key_id: str, usage: Usage) -> None:
    """The answer's tokens and cost on its key's day (the pool's per-key spend)."""
    pool = sweep.worker.pool
    try:
        pool.record_usage(Lease(key_id, "", "", pool.quota_day()[0]), usage.prompt_tokens,
                          usage.output_tokens + usage.thinking_tokens, usage.cost_usd)
    except TransientError:
        log.warning("could not record the batch answer's usage on its key")


def item_error(error: Any) -> tuple[ErrorCode, str]:
    """A failed item's `google.rpc.Status` as the task's error code and message."""
    status = error if isinstance(error, dict) else (
        error.model_dump(mode="json", exclude_none=True) if hasattr(error, "model_dump")
        else {"message": str(error)})
    code = status.get("code")
    message = redact(str(status.get("message") or "no message"))[:300]
    error_code = {3: ErrorCode.GEMINI_BAD_REQUEST, 400: ErrorCode.GEMINI_BAD_REQUEST,
                  8: ErrorCode.GEMINI_QUOTA, 429: ErrorCode.GEMINI_QUOTA,
                  }.get(code, ErrorCode.GEMINI_BATCH_ITEM_FAILED)
    return error_code, f"Gemini batch item failed (code {code}): {message}"


# --- falling back, deleting --------------------------------------------------------------


def fall_back_overdue(sweep: Sweep) -> None:
    limit = sweep.worker.config.batch_max_wait_s
    for waiting in sweep.jobs.overdue(limit):
        _fall_back(sweep, waiting.task_id, waiting.token, None,
                   f"no batch answer within BATCH_MAX_WAIT_S={limit:g}: tagged interactively",
                   error_code=ErrorCode.BATCH_WAIT_EXCEEDED)


def _fall_back(sweep: Sweep, task_id: str, token: str,
               recorded: batch_wait.Recorded | None, message: str,
               error_code: ErrorCode = ErrorCode.BATCH_FALLBACK) -> None:
    """Pending and interactive: the row first (naming its delivery), then the queue; if
    the queue cannot be written the reconciler finds the named delivery missing."""
    worker = sweep.worker
    generation = new_generation(Redelivery.BATCH)
    if not sweep.jobs.fall_back(task_id, token, generation=generation, message=message,
                                error_code=error_code):
        return
    sweep.counts["fell_back"] += 1
    task = worker.store.get(task_id)
    if recorded is None and task is not None:
        recorded = batch_wait.load(worker.tools.storage, task, sweep.workdir)
    if recorded is not None:
        _delete_upload(sweep, recorded)
    try:
        worker.queue.enqueue(task_id, url=task.url if task else "", generation=generation,
                             team=task.team if task else "")
    except ServiceUnavailable:
        log.warning("queue down: the reconciler re-queues the task", extra={"task_id": task_id})


def _delete_upload(sweep: Sweep, recorded: batch_wait.Recorded) -> None:
    """The video a task uploaded to the Files API, once the task stops waiting."""
    if recorded.uploaded_file is None:
        return
    try:
        client = sweep.tagger.batch_client(recorded.key_id, recorded.endpoint)
    except TransientError:
        return
    _delete_file(client, recorded.uploaded_file)


def _delete_file(client: genai.Client, name: str | None) -> None:
    if not name:
        return
    try:
        client.files.delete(name=name)
    except Exception as error:  # noqa: BLE001 - files expire after 48 h anyway
        log.warning("could not delete Gemini file %s: %s", name, type(error).__name__)


def _client(sweep: Sweep, job: GeminiJob) -> genai.Client:
    return sweep.tagger.batch_client(job.key_id, sweep.tagger.config.endpoints[0])
