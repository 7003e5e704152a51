"""Task use cases behind the HTTP API: create, tag now, read, list, retry, export,
subtitles, search. Each handler calls exactly one of these (or one of `batches`,
`pool`, `health`)."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from shared.app import uploads
from shared.app.admission import admitted
from shared.app.context import Services
from shared.cursor import InvalidCursor
from shared.errors import (
    Conflict,
    ErrorCode,
    InvalidInput,
    NotConfigured,
    NotFound,
    ServiceUnavailable,
)
from shared.pipeline.runner import Delivery, DeliveryKind, handle_delivery
from shared.queue.base import Redelivery, new_generation
from shared.search.query import SearchPage, SearchQuery
from shared.tasks.batch_models import ExportQuery
from shared.tasks.export import EXPORT_COLUMNS, export_stream
from shared.tasks.models import (
    CreateTaskRequest,
    ListTasksQuery,
    Task,
    TaskPage,
    TaskStatus,
    new_task_id,
    task_id_forms,
)
from shared.tasks.store import DuplicateIdempotencyKey
from shared.tasks.subtitles import SubtitlesQuery, render_subtitles
from shared.teams.keys import DEFAULT_TEAM
from shared.video.safety import UrlForbidden
from shared.video.urls import split_gs, upload_id_of

log = logging.getLogger("vision_to_tag.api")

MAX_IDEMPOTENCY_KEY = 128


def create_task(
    services: Services, request: CreateTaskRequest, idempotency_key: str | None = None,
    *, enqueue: bool = True, team: str = DEFAULT_TEAM,
) -> tuple[Task, bool]:
    """Insert a pending task of `team` and enqueue it: both or neither. Returns (task,
    created). `enqueue=False` is for the synchronous API, which runs the task itself."""
    store = services.store
    check_targets(services, request)
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
        existing = store.get_by_idempotency_key(idempotency_key)
        if existing:
            return _same_request(existing, request, team), False
    return admitted(services, team, 1, lambda: _insert_and_queue(
        services, request, idempotency_key, team, enqueue))


def _insert_and_queue(services: Services, request: CreateTaskRequest,
                      idempotency_key: str | None, team: str, enqueue: bool
                      ) -> tuple[Task, bool]:
    store = services.store
    task_id = new_task_id()
    fields = task_fields(request, idempotency_key, team)
    upload_id = upload_id_of(request.url)
    if upload_id is not None:  # the upload's file is the task's video from the start
        fields["storage_uri"] = uploads.claim(services, upload_id, task_id, team)
    try:
        task = store.insert(task_id, fields)
    except DuplicateIdempotencyKey:
        _give_back(services, upload_id, task_id)
        existing = store.get_by_idempotency_key(idempotency_key or "")
        if existing is None:
            raise
        return _same_request(existing, request, team), False
    except BaseException:
        _give_back(services, upload_id, task_id)
        raise
    if not enqueue:
        return task, True
    try:
        services.queue.enqueue(task_id, url=request.url, team=team)
    except ServiceUnavailable:
        store.delete(task_id)
        _give_back(services, upload_id, task_id)
        raise
    log.info("task created", extra={"task_id": task_id})
    return task, True


def _give_back(services: Services, upload_id: str | None, task_id: str) -> None:
    if upload_id is not None:
        uploads.release(services, upload_id, task_id)


def task_fields(request: CreateTaskRequest, idempotency_key: str | None = None,
                team: str = DEFAULT_TEAM) -> dict[str, Any]:
    """The columns a create request sets (single creates and batch items)."""
    return {
        "team": team,
        "url": request.url,
        "platform": request.platform,
        "uid": None if request.uid is None else str(request.uid),
        "env": request.env,
        "dimensions": request.dimensions,
        "language": request.language,
        "vocabulary": request.vocabulary,
        "callback_url": request.callback_url,
        "idempotency_key": idempotency_key,
        "mode": request.mode,
        "translate_to": request.translate_to,
        "storage_uri": None,  # an upload's file (issue 35), set when one is taken
        "reuse": request.reuse,
    }


_sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sync-tag")


@dataclass(frozen=True)
class SyncOutcome:
    """How a synchronous run ended: the task as stored now; `timed_out` when it was handed
    to the queue after SYNC_TIMEOUT_S; `retry_after_s` when it waits for its next try."""

    task: Task
    timed_out: bool = False
    retry_after_s: float | None = None


def tag_now(services: Services, request: CreateTaskRequest,
            team: str = DEFAULT_TEAM) -> SyncOutcome:
    """Run the whole pipeline inside the request, recorded as a task.

    Past SYNC_TIMEOUT_S the task is handed to the queue: the thread stops at its next stage
    and queues it (Cloud Run throttles the CPU once the response is sent; if the instance
    goes away, the reaper re-queues the task when its lease ends); the caller is told to
    poll the task."""
    if request.mode == "batch":
        raise InvalidInput("mode: the synchronous route tags interactively; create a task "
                           "(POST /api/v1/task/create) for batch mode")
    task, _ = create_task(services, request, enqueue=False, team=team)
    handed_off = threading.Event()

    def run() -> Delivery:
        delivery = handle_delivery(task.task_id, services.worker, handed_off)
        if delivery.kind is DeliveryKind.RETRY_AFTER:  # nothing queued it (a service was down)
            services.queue.enqueue(task.task_id, url=task.url,
                                   delay_s=delivery.retry_after_s or 0,
                                   generation=new_generation(Redelivery.SYNC_HANDOFF),
                                   team=task.team)
        return delivery

    future = _sync_pool.submit(run)
    try:
        delivery = future.result(timeout=services.settings.api.SYNC_TIMEOUT_S)
    except FutureTimeout:
        handed_off.set()  # the thread queues the task at its next stage (or the reaper does)
        return SyncOutcome(get_task(services, task.task_id), timed_out=True)
    final = get_task(services, task.task_id)
    if final.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        return SyncOutcome(final)
    return SyncOutcome(final, retry_after_s=delivery.retry_after_s)


def check_targets(services: Services, request: CreateTaskRequest) -> None:
    """Refuse URLs that point inside our network (a DNS lookup, no download), and batch
    mode where the tagger has no Batch API."""
    check_mode(services, request)
    if (gs := split_gs(request.url)) is not None:
        check_bucket_object(services, *gs)
    elif (upload_id := upload_id_of(request.url)) is not None:
        uploads.check_usable(services, upload_id)
    else:
        check_url(services, "url", request.url)
    if request.callback_url is not None:
        check_url(services, "callback_url", request.callback_url)


def check_bucket_object(services: Services, bucket: str, name: str) -> None:
    """A `gs://` video: a bucket of INPUT_BUCKETS, an object that exists and fits
    MAX_VIDEO_MB (one metadata read, time-limited; the worker reads it)."""
    if not services.inputs.allows(bucket):
        raise InvalidInput(f"url: bucket {bucket!r} is not one of INPUT_BUCKETS (the buckets "
                           f"this service may read)")
    try:
        size = services.inputs.size_of(bucket, name)
    except PermissionError:
        raise InvalidInput(f"url: this service's credentials may not read gs://{bucket}"
                           ) from None
    except Exception as error:  # an outage of GCS, not a bad request
        raise ServiceUnavailable("storage", type(error).__name__) from None
    if size is None:
        raise InvalidInput(f"url: gs://{bucket}/{name[:200]} does not exist")
    if size > services.settings.intake.max_video_bytes:
        raise InvalidInput(f"url: the object is {size} bytes, over the limit of "
                           f"{services.settings.intake.max_video_bytes} (MAX_VIDEO_MB)")


def check_mode(services: Services, request: CreateTaskRequest) -> None:
    if request.mode == "batch" and services.settings.tagging.TAGGER != "gemini":
        raise InvalidInput(f"mode: batch needs TAGGER=gemini (this deployment runs "
                           f"TAGGER={services.settings.tagging.TAGGER}, which has no Batch API)")


def _same_request(existing: Task, request: CreateTaskRequest, team: str) -> Task:
    """The task an Idempotency-Key already made; another team's is never shown."""
    if (existing.team, existing.url, existing.platform) != (team, request.url,
                                                            request.platform):
        raise Conflict("Idempotency-Key: already used for a different request")
    return existing


MALFORMED_TASK_ID = "task_id: malformed (expected a UUID: dashed, or 32 hex digits)"


def get_task(services: Services, task_id: str, team: str | None = None) -> Task:
    """By id in either form and any case (ids are stored as created). Another team's task
    is not found (404, as an unknown id: its existence is not told)."""
    forms = task_id_forms(task_id)
    if forms is None:
        raise InvalidInput(MALFORMED_TASK_ID)
    task = services.store.find(forms)
    if task is None or team is not None and task.team != team:
        raise NotFound(f"task_id: no task {forms[0]}")
    return task


def list_tasks(services: Services, query: ListTasksQuery, team: str | None = None) -> TaskPage:
    try:
        tasks, next_cursor = services.queries.list(
            status=query.status, platform=query.platform, uid=query.uid, team=team,
            limit=query.limit, cursor=query.cursor,
        )
    except InvalidCursor as error:
        raise InvalidInput(str(error)) from None
    return TaskPage(tasks=tasks, next_cursor=next_cursor)


FINAL_FAILURES: dict[ErrorCode, str] = {
    ErrorCode.VIDEO_TOO_LONG: "MAX_VIDEO_SECONDS is raised above the video's length",
    ErrorCode.VIDEO_TOO_LARGE: "MAX_VIDEO_MB is raised above the video's size",
    ErrorCode.UNSUPPORTED_FORMAT: "the video is offered as mp4, mov, avi, 3gp, flv, webm or "
                                  "wav (create a task for that file)",
    ErrorCode.VIDEO_UNREADABLE: "a copy that decodes is offered (create a task for it)",
    ErrorCode.NO_VIDEO_STREAM: "a file with a picture is offered, or an audio-only one is "
                               "tagged with dimensions [\"audio\"] (create a task for it)",
    ErrorCode.URL_FORBIDDEN: "the host is allowed (PRIVATE_URL_ALLOWLIST) or a public URL is "
                             "used (create a task for it)",
    ErrorCode.DOWNLOAD_FAILED: "the URL works again (its host answered 4xx or does not exist) "
                               "or a fixed URL is used (create a task for it)",
}
"""Failures about the video itself that a retry meets again (the same URL, the same stored
bytes, the same limits), each with what would change the outcome; a retry of one is
refused unless forced (docs/decisions.md, issue 33)."""


def retry_task(services: Services, task_id: str, *, force: bool = False,
               team: str | None = None) -> Task:
    """A failed task goes back to pending with fresh attempts, its old error cleared, and
    is re-queued. A failure in FINAL_FAILURES is Conflict unless `force`: re-running it
    would only fail the same way."""
    task = get_task(services, task_id, team)
    task_id = task.task_id  # the stored form
    if task.status != TaskStatus.FAILED:
        raise Conflict(f"task_id: task is {task.status}; only failed tasks can be retried")
    check_retry_helps(task, force)
    if not services.store.reset_failed(task_id):
        raise Conflict("task_id: task changed while retrying; try again")
    generation = new_generation(Redelivery.RETRY_ROUTE)
    try:
        services.queue.enqueue(task_id, url=task.url, generation=generation, team=task.team)
    except ServiceUnavailable:
        services.store.restore_failed(task)
        raise
    services.store.mark_enqueued(task_id, generation)
    refreshed = services.store.get(task_id)
    assert refreshed is not None
    return refreshed


def check_retry_helps(task: Task, force: bool) -> None:
    """Conflict for a failure a retry would meet again (FINAL_FAILURES), naming the code
    and what would change the outcome; `force` skips the check. Every retry route (one
    task, or a batch's failed tasks) asks this."""
    if force or task.error_code not in FINAL_FAILURES:
        return
    change = FINAL_FAILURES[ErrorCode(task.error_code)]
    raise Conflict(f"task_id: task failed with {task.error_code} ({(task.message or '')[:200]})"
                   f"; a retry would fail the same way unless {change}; to retry anyway, "
                   "add ?force=true")


def search(services: Services, query: SearchQuery, team: str | None = None) -> SearchPage:
    if services.index is None:
        raise NotConfigured("search: not configured on this service (set ES_URL)")
    return services.index.search(query, team)


def check_url(services: Services, field: str, url: str) -> None:
    try:
        services.url_policy.check_url(url)
    except UrlForbidden as error:
        raise InvalidInput(field + error.message.removeprefix("url")) from None


def check_idempotency_key(key: str) -> None:
    if not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        raise InvalidInput(f"Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} characters")


def export_tasks(services: Services, query: ExportQuery,
                 team: str | None = None) -> Iterator[bytes]:
    """The export of every task the filters match, oldest first, in chunks."""
    filters = {"status": query.status, "platform": query.platform, "uid": query.uid,
               "env": query.env, "team": team}
    chunks = services.queries.export_rows(EXPORT_COLUMNS, since=query.since, until=query.until,
                                          **filters)
    return export_stream(query.format, first_read(chunks))


def first_read(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """The first chunk is read now, so a database outage is a 503 before the first byte
    (later chunks are read while streaming)."""
    first = next(chunks, None)
    return iter([]) if first is None else itertools.chain([first], chunks)


def subtitles(services: Services, task_id: str, fmt: str, query: SubtitlesQuery,
              team: str | None = None) -> str:
    """WebVTT or SRT of a completed task: its transcript, its translation, its on-screen
    text or its key moments (`query.kind`)."""
    task = get_task(services, task_id, team)
    if task.result is None:
        raise Conflict(f"task_id: task is {task.status} and has no result yet; subtitles "
                       "come from the result")
    if query.kind == "translation" and not task.result.translated_to:
        raise NotFound("kind: this result has no translation (create the task with "
                       "`translate_to` and the audio dimension)")
    return render_subtitles(task.result, fmt, query.kind)
