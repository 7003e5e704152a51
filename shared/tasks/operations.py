"""Task operations behind the HTTP API: each handler calls exactly one of these."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import redis

from shared.accounts.pool import KEY_ID_PATTERN
from shared.cursor import InvalidCursor
from shared.errors import ApiError, ServiceUnavailable, TransientError
from shared.pipeline.runner import WorkerReply, handle_delivery
from shared.queue.base import new_generation
from shared.search import SearchPage, SearchQuery
from shared.services import Services
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
from shared.video.safety import UrlForbidden

log = logging.getLogger("vision_to_tag.api")

MAX_IDEMPOTENCY_KEY = 128


def create_task(
    services: Services, request: CreateTaskRequest, idempotency_key: str | None = None,
    *, enqueue: bool = True,
) -> tuple[Task, bool]:
    """Insert a pending task and enqueue it: both or neither. Returns (task, created).
    `enqueue=False` is for the synchronous API, which runs the task itself."""
    store = services.store
    check_targets(services, request)
    if idempotency_key is not None:
        if not (0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY):
            raise ApiError(400, f"Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        existing = store.get_by_idempotency_key(idempotency_key)
        if existing:
            return _same_request(existing, request), False
    task_id = new_task_id()
    fields: dict[str, Any] = {
        "url": request.url,
        "platform": request.platform,
        "uid": None if request.uid is None else str(request.uid),
        "env": request.env,
        "dimensions": request.dimensions,
        "language": request.language,
        "callback_url": request.callback_url,
        "idempotency_key": idempotency_key,
    }
    try:
        task = store.insert(task_id, fields)
    except DuplicateIdempotencyKey:
        existing = store.get_by_idempotency_key(idempotency_key or "")
        if existing is None:
            raise
        return _same_request(existing, request), False
    if not enqueue:
        return task, True
    try:
        services.queue.enqueue(task_id, url=request.url)
    except ServiceUnavailable:
        store.delete(task_id)
        raise
    log.info("task created", extra={"task_id": task_id})
    return task, True


SYNC_ERROR_STATUS = {
    "url_forbidden": 400, "download_failed": 400, "video_too_large": 413,
    "video_too_long": 413, "unsupported_format": 415, "video_unreadable": 422,
    "no_video_stream": 422, "blocked_by_safety": 422, "gemini_file_failed": 422,
    "no_key_available": 429, "gemini_bad_request": 502, "gemini_unavailable": 503,
    "gemini_file_timeout": 503, "invalid_model_output": 502, "download_unavailable": 503,
    "download_timeout": 504, "redis_unavailable": 503, "internal_error": 503,
    "attempts_exhausted": 503, "worker_lost": 503, "delivery_failed": 503,
    "lease_lost": 503, "handed_off": 503, "gemini_overloaded": 503,
    "gemini_region_refused": 503, "request_too_large": 413,
}
"""HTTP status of the synchronous API for a task that ended (or waits) with this
error_code: never 500 — the service did not crash, the task could not be done."""

_sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sync-tag")


def tag_now(services: Services, request: CreateTaskRequest) -> tuple[int, Task, float | None]:
    """Run the whole pipeline inside the request, recorded as a task.

    Returns (HTTP status, task, Retry-After). Past SYNC_TIMEOUT_S the task is handed to
    the queue: the thread stops at its next stage and queues it (Cloud Run throttles the CPU
    once the response is sent; if the instance goes away, the reaper re-queues the task when
    its lease ends). The caller gets 504 with the task_id to poll."""
    task, _ = create_task(services, request, enqueue=False)
    handed_off = threading.Event()

    def run() -> WorkerReply:
        reply = handle_delivery(task.task_id, services, handed_off)
        if reply.status_code == 503:  # nothing queued it (a backing service was down)
            services.queue.enqueue(task.task_id, url=task.url,
                                   delay_s=reply.retry_after_s or 0,
                                   generation=new_generation("s"))
        return reply

    future = _sync_pool.submit(run)
    try:
        reply = future.result(timeout=services.settings.SYNC_TIMEOUT_S)
    except FutureTimeout:
        handed_off.set()  # the thread queues the task at its next stage (or the reaper does)
        return 504, get_task(services, task.task_id), None
    final = get_task(services, task.task_id)
    if final.status == TaskStatus.COMPLETED:
        return 200, final, None
    if final.status == TaskStatus.FAILED:
        return SYNC_ERROR_STATUS.get(final.error_code or "", 503), final, None
    status = SYNC_ERROR_STATUS.get(final.error_code or "", 503)
    return status, final, reply.retry_after_s


def check_targets(services: Services, request: CreateTaskRequest) -> None:
    """Refuse URLs that point inside our network (a DNS lookup, no download)."""
    for field, url in (("url", request.url), ("callback_url", request.callback_url)):
        if url is None:
            continue
        try:
            services.url_policy.check_url(url)
        except UrlForbidden as error:
            raise ApiError(400, field + error.message.removeprefix("url")) from None


def _same_request(existing: Task, request: CreateTaskRequest) -> Task:
    if (existing.url, existing.platform) != (request.url, request.platform):
        raise ApiError(409, "Idempotency-Key: already used for a different request")
    return existing


MALFORMED_TASK_ID = "task_id: malformed (expected a UUID: dashed, or 32 hex digits)"


def get_task(services: Services, task_id: str) -> Task:
    """By id in either form and any case (ids are stored as created)."""
    forms = task_id_forms(task_id)
    if forms is None:
        raise ApiError(400, MALFORMED_TASK_ID)
    task = services.store.find(forms)
    if task is None:
        raise ApiError(404, f"task_id: no task {forms[0]}")
    return task


def list_tasks(services: Services, query: ListTasksQuery) -> TaskPage:
    try:
        tasks, next_cursor = services.store.list(
            status=query.status, platform=query.platform, uid=query.uid,
            limit=query.limit, cursor=query.cursor,
        )
    except InvalidCursor as error:
        raise ApiError(400, str(error)) from None
    return TaskPage(tasks=tasks, next_cursor=next_cursor)


def retry_task(services: Services, task_id: str) -> Task:
    """A failed task goes back to pending with fresh attempts and is re-queued."""
    task = get_task(services, task_id)
    task_id = task.task_id  # the stored form
    if task.status != TaskStatus.FAILED:
        raise ApiError(409, f"task_id: task is {task.status}; only failed tasks can be retried")
    if not services.store.reset_failed(task_id):
        raise ApiError(409, "task_id: task changed while retrying; try again")
    generation = new_generation("r")
    try:
        services.queue.enqueue(task_id, url=task.url, generation=generation)
    except ServiceUnavailable:
        services.store.restore_failed(task)
        raise
    services.store.mark_enqueued(task_id, generation)
    refreshed = services.store.get(task_id)
    assert refreshed is not None
    return refreshed


def pool_stats(services: Services) -> dict[str, object]:
    """Key pool usage for operators (keys masked)."""
    try:
        return services.pool.stats()
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise ServiceUnavailable("redis", type(error).__name__) from error


def set_account_enabled(services: Services, key_id: str, enabled: bool) -> dict[str, object]:
    """Enable or disable one pool key; answers its line of /api/v1/accounts."""
    if not KEY_ID_PATTERN.match(key_id):
        raise ApiError(400, "key_id: malformed (16 lowercase hex characters, the key_id "
                            "/api/v1/accounts shows)")
    try:
        found = services.pool.set_enabled(key_id, enabled)
        accounts = services.pool.stats()["accounts"]
    except (redis.ConnectionError, redis.TimeoutError, TransientError) as error:
        raise ServiceUnavailable("redis", type(error).__name__) from error
    if not found:
        raise ApiError(404, f"key_id: no key {key_id} in the pool")
    return next(account for account in accounts if account["key_id"] == key_id)


def search(services: Services, query: SearchQuery) -> SearchPage:
    if services.index is None:
        raise ApiError(501, "search: not configured on this service (set ES_URL)")
    return services.index.search(query)


def health(services: Services) -> dict[str, str]:
    """Reachability of each backing service: 'ok' or the reason it failed."""
    checks = {
        "database": services.store.ping,
        "redis": services.redis.ping,
        "storage": services.storage.ping,
    }
    report = {}
    for name, check in checks.items():
        try:
            check()
            report[name] = "ok"
        except Exception as error:  # noqa: BLE001 - any failure is reported, not raised
            report[name] = f"error: {type(error).__name__}"
    return report
