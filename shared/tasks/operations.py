"""Task operations behind the HTTP API: each handler calls exactly one of these."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from shared.accounts.pool import KEY_ID_PATTERN, PoolUnavailable
from shared.cursor import InvalidCursor
from shared.errors import (
    Conflict,
    InvalidInput,
    NotConfigured,
    NotFound,
    ServiceUnavailable,
)
from shared.pipeline.runner import WorkerReply, handle_delivery
from shared.queue.base import new_generation
from shared.redis_conn import redis_outage
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
            raise InvalidInput(f"Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
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


_sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sync-tag")


@dataclass(frozen=True)
class SyncOutcome:
    """How a synchronous run ended: the task as stored now; `timed_out` when it was handed
    to the queue after SYNC_TIMEOUT_S; `retry_after_s` when it waits for its next try."""

    task: Task
    timed_out: bool = False
    retry_after_s: float | None = None


def tag_now(services: Services, request: CreateTaskRequest) -> SyncOutcome:
    """Run the whole pipeline inside the request, recorded as a task.

    Past SYNC_TIMEOUT_S the task is handed to
    the queue: the thread stops at its next stage and queues it (Cloud Run throttles the CPU
    once the response is sent; if the instance goes away, the reaper re-queues the task when
    its lease ends); the caller is told to poll the task."""
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
        return SyncOutcome(get_task(services, task.task_id), timed_out=True)
    final = get_task(services, task.task_id)
    if final.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
        return SyncOutcome(final)
    return SyncOutcome(final, retry_after_s=reply.retry_after_s)


def check_targets(services: Services, request: CreateTaskRequest) -> None:
    """Refuse URLs that point inside our network (a DNS lookup, no download)."""
    for field, url in (("url", request.url), ("callback_url", request.callback_url)):
        if url is None:
            continue
        try:
            services.url_policy.check_url(url)
        except UrlForbidden as error:
            raise InvalidInput(field + error.message.removeprefix("url")) from None


def _same_request(existing: Task, request: CreateTaskRequest) -> Task:
    if (existing.url, existing.platform) != (request.url, request.platform):
        raise Conflict("Idempotency-Key: already used for a different request")
    return existing


MALFORMED_TASK_ID = "task_id: malformed (expected a UUID: dashed, or 32 hex digits)"


def get_task(services: Services, task_id: str) -> Task:
    """By id in either form and any case (ids are stored as created)."""
    forms = task_id_forms(task_id)
    if forms is None:
        raise InvalidInput(MALFORMED_TASK_ID)
    task = services.store.find(forms)
    if task is None:
        raise NotFound(f"task_id: no task {forms[0]}")
    return task


def list_tasks(services: Services, query: ListTasksQuery) -> TaskPage:
    try:
        tasks, next_cursor = services.queries.list(
            status=query.status, platform=query.platform, uid=query.uid,
            limit=query.limit, cursor=query.cursor,
        )
    except InvalidCursor as error:
        raise InvalidInput(str(error)) from None
    return TaskPage(tasks=tasks, next_cursor=next_cursor)


def retry_task(services: Services, task_id: str) -> Task:
    """A failed task goes back to pending with fresh attempts and is re-queued."""
    task = get_task(services, task_id)
    task_id = task.task_id  # the stored form
    if task.status != TaskStatus.FAILED:
        raise Conflict(f"task_id: task is {task.status}; only failed tasks can be retried")
    if not services.store.reset_failed(task_id):
        raise Conflict("task_id: task changed while retrying; try again")
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
    with redis_outage():
        return services.pool.stats()


def set_account_enabled(services: Services, key_id: str, enabled: bool) -> dict[str, object]:
    """Enable or disable one pool key; answers its line of /api/v1/accounts."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise InvalidInput("key_id: malformed (16 lowercase hex characters, the key_id "
                            "/api/v1/accounts shows)")
    with redis_outage(PoolUnavailable):
        found = services.pool.set_enabled(key_id, enabled)
        accounts = services.pool.stats()["accounts"]
    if not found:
        raise NotFound(f"key_id: no key {key_id} in the pool")
    return next(account for account in accounts if account["key_id"] == key_id)


def search(services: Services, query: SearchQuery) -> SearchPage:
    if services.index is None:
        raise NotConfigured("search: not configured on this service (set ES_URL)")
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
