"""Task operations behind the HTTP API: each handler calls exactly one of these."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from shared.accounts import history
from shared.accounts.history import HistoryQuery
from shared.accounts.pool import KEY_ID_PATTERN, PoolUnavailable
from shared.app.context import Services
from shared.cursor import InvalidCursor
from shared.errors import (
    Conflict,
    InvalidInput,
    NotConfigured,
    NotFound,
    ServiceUnavailable,
)
from shared.pipeline.runner import Delivery, DeliveryKind, handle_delivery
from shared.queue.base import Redelivery, new_generation
from shared.redis_conn import redis_outage
from shared.search.query import SearchPage, SearchQuery
from shared.tasks.batch_models import (
    Batch,
    BatchCreated,
    BatchItem,
    BatchPage,
    BatchResultsQuery,
    CreateBatchRequest,
    ExportQuery,
    ItemError,
    ItemOutcome,
    ListBatchesQuery,
)
from shared.tasks.batches import DuplicateBatchKey
from shared.tasks.db import utcnow
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
from shared.tasks.store import DuplicateIdempotencyKey, pending_row
from shared.tasks.subtitles import render_subtitles
from shared.validation import validation_problem
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
        _check_idempotency_key(idempotency_key)
        existing = store.get_by_idempotency_key(idempotency_key)
        if existing:
            return _same_request(existing, request), False
    task_id = new_task_id()
    try:
        task = store.insert(task_id, task_fields(request, idempotency_key))
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


def task_fields(request: CreateTaskRequest, idempotency_key: str | None = None
                ) -> dict[str, Any]:
    """The columns a create request sets (single creates and batch items)."""
    return {
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
    }


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
    if request.mode == "batch":
        raise InvalidInput("mode: the synchronous route tags interactively; create a task "
                           "(POST /api/v1/task/create) for batch mode")
    task, _ = create_task(services, request, enqueue=False)
    handed_off = threading.Event()

    def run() -> Delivery:
        delivery = handle_delivery(task.task_id, services.worker, handed_off)
        if delivery.kind is DeliveryKind.RETRY_AFTER:  # nothing queued it (a service was down)
            services.queue.enqueue(task.task_id, url=task.url,
                                   delay_s=delivery.retry_after_s or 0,
                                   generation=new_generation(Redelivery.SYNC_HANDOFF))
        return delivery

    future = _sync_pool.submit(run)
    try:
        delivery = future.result(timeout=services.settings.SYNC_TIMEOUT_S)
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
    for field, url in (("url", request.url), ("callback_url", request.callback_url)):
        if url is not None:
            _check_url(services, field, url)


def check_mode(services: Services, request: CreateTaskRequest) -> None:
    if request.mode == "batch" and services.settings.TAGGER != "gemini":
        raise InvalidInput(f"mode: batch needs TAGGER=gemini (this deployment runs "
                           f"TAGGER={services.settings.TAGGER}, which has no Batch API)")


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
    generation = new_generation(Redelivery.RETRY_ROUTE)
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


def account_history(services: Services, key_id: str, query: HistoryQuery) -> dict[str, object]:
    """One key's last `days` quota days and its latest probes."""
    if not KEY_ID_PATTERN.match(key_id):
        raise InvalidInput("key_id: malformed (16 lowercase hex characters, the key_id "
                           "/api/v1/accounts shows)")
    with redis_outage(PoolUnavailable):
        found = history.key_history(services.pool, key_id, query.days)
    if found is None:
        raise NotFound(f"key_id: no key {key_id} in the pool")
    return found


def pool_history(services: Services, query: HistoryQuery) -> dict[str, object]:
    """The pool's totals per quota day and its last hour per minute against capacity."""
    with redis_outage(PoolUnavailable):
        return history.pool_history(services.pool, query.days)


def search(services: Services, query: SearchQuery) -> SearchPage:
    if services.index is None:
        raise NotConfigured("search: not configured on this service (set ES_URL)")
    return services.index.search(query)


HEALTH_CHECKS = ThreadPoolExecutor(6, thread_name_prefix="healthz")
"""Runs the health checks side by side; bounded, so probes against a hanging service
queue up (and read as timed out) instead of piling up threads."""


def ready_services(get: Callable[[], Services], limit_s: float) -> Services:
    """The process's services for a probe: a cold instance whose database or Redis hangs
    while it builds them is unavailable within `limit_s` (the build goes on behind)."""
    future = HEALTH_CHECKS.submit(get)
    try:
        return future.result(timeout=limit_s)
    except FutureTimeout:
        raise ServiceUnavailable("backing services", f"no answer within {limit_s:g} s") \
            from None


def health(services: Services) -> dict[str, str]:
    """Reachability of each backing service: 'ok' or the reason it failed. All are asked
    at once and each gets HEALTH_TIMEOUT_S: a hanging service reads as down in that
    time (the check itself ends within its client's own time limit)."""
    checks = {
        "database": services.store.ping,
        "redis": services.redis.ping,
        "storage": services.storage.ping,
    }
    limit_s = services.settings.HEALTH_TIMEOUT_S
    futures = {name: HEALTH_CHECKS.submit(check) for name, check in checks.items()}
    deadline = time.monotonic() + limit_s
    report = {}
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            report[name] = "ok"
        except FutureTimeout:
            report[name] = f"error: no answer within {limit_s:g} s"
        except Exception as error:  # noqa: BLE001 - any failure is reported, not raised
            report[name] = f"error: {type(error).__name__}"
    return report


# --- batches -------------------------------------------------------------------------

BATCH_CHUNK = 200
"""Items written per transaction: short transactions, few round trips."""

MALFORMED_BATCH_ID = "batch_id: malformed (expected a UUID: dashed, or 32 hex digits)"


def create_batch(services: Services, request: CreateBatchRequest, body: dict[str, Any],
                 idempotency_key: str | None, context: dict[str, Any]
                 ) -> tuple[BatchCreated, bool]:
    """Validate every item on its own, write the batch (one transaction per chunk of
    items), queue every accepted task in one go, then open the batch: all of it or, when
    the queue cannot be written, none of it (503). Returns (answer, created); the same
    Idempotency-Key and body answer the stored batch again."""
    if request.callback_url is not None:
        _check_url(services, "callback_url", request.callback_url)
    request_sha256 = hashlib.sha256(json.dumps(
        body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
        replayed = _replayed_batch(services, idempotency_key, request_sha256)
        if replayed:
            return replayed, False
    batch_id = new_task_id()
    try:
        services.batches.begin(batch_id, name=request.name, total=len(request.items),
                               callback_url=request.callback_url,
                               idempotency_key=idempotency_key, request_sha256=request_sha256)
    except DuplicateBatchKey:
        replayed = _replayed_batch(services, idempotency_key or "", request_sha256)
        if replayed is None:
            raise
        return replayed, False
    try:
        outcomes, queued = _write_items(services, batch_id, request.items, context)
        if queued:
            services.queue.enqueue_many(queued)
    except ServiceUnavailable:
        _discard(services, batch_id)
        raise
    accepted = len(queued)
    services.batches.open(batch_id, accepted=accepted, rejected=len(outcomes) - accepted)
    log.info("batch created: %d accepted, %d refused", accepted, len(outcomes) - accepted,
             extra={"batch_id": batch_id})
    batch = services.batches.get(batch_id)
    assert batch is not None
    return BatchCreated(batch=batch, accepted=accepted, rejected=len(outcomes) - accepted,
                        items=outcomes), True


def _write_items(services: Services, batch_id: str, raw_items: list[Any],
                 context: dict[str, Any]) -> tuple[list[ItemOutcome], list[tuple[str, str]]]:
    """Each item checked and written with its task, BATCH_CHUNK per transaction; returns
    every item's outcome and the (task_id, url) of the accepted ones, still to be queued."""
    outcomes: list[ItemOutcome] = []
    queued: list[tuple[str, str]] = []
    for start in range(0, len(raw_items), BATCH_CHUNK):
        now = utcnow()
        rows, items = [], []
        for index, raw in enumerate(raw_items[start:start + BATCH_CHUNK], start):
            outcome, item = _batch_item(services, index, raw, context)
            outcomes.append(outcome)
            if item is None:
                assert outcome.error is not None
                items.append({"item_index": index, "task_id": None,
                              "error_field": outcome.error.field[:64],
                              "error_reason": outcome.error.reason[:512]})
                continue
            outcome.task_id = new_task_id()
            rows.append(pending_row(outcome.task_id, task_fields(item), now))
            items.append({"item_index": index, "task_id": outcome.task_id, "error_field": None,
                          "error_reason": None})
            queued.append((outcome.task_id, item.url))
        services.batches.add_chunk(batch_id, rows, items)
    return outcomes, queued


def _batch_item(services: Services, index: int, raw: Any, context: dict[str, Any]
                ) -> tuple[ItemOutcome, BatchItem | None]:
    """One item checked exactly as a single create checks its body."""
    if not isinstance(raw, dict):
        return ItemOutcome(index=index, error=ItemError(
            field="item", reason=f"must be a JSON object (got {_json_type(raw)})")), None
    try:
        item = BatchItem.model_validate(raw, context=context)
        check_targets(services, item)
    except ValidationError as error:
        field, reason = validation_problem(error)
        return ItemOutcome(index=index, error=ItemError(field=field, reason=reason)), None
    except InvalidInput as error:
        field, _, reason = error.message.partition(": ")
        return ItemOutcome(index=index, error=ItemError(field=field, reason=reason)), None
    return ItemOutcome(index=index), item


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check_url(services: Services, field: str, url: str) -> None:
    try:
        services.url_policy.check_url(url)
    except UrlForbidden as error:
        raise InvalidInput(field + error.message.removeprefix("url")) from None


def _check_idempotency_key(key: str) -> None:
    if not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        raise InvalidInput(f"Idempotency-Key: must be 1 to {MAX_IDEMPOTENCY_KEY} characters")


def _replayed_batch(services: Services, key: str, request_sha256: str) -> BatchCreated | None:
    """The stored answer for a repeated call, None when the key is new."""
    row = services.batches.row_by_idempotency_key(key)
    if row is None:
        return None
    if row["request_sha256"] != request_sha256:
        raise Conflict("Idempotency-Key: already used for a different request")
    if row["state"] == "creating":
        raise Conflict("Idempotency-Key: a request with this key is still being processed; "
                       "try again in a few seconds")
    batch = services.batches.get(row["batch_id"])
    assert batch is not None
    return BatchCreated(batch=batch, accepted=batch.accepted, rejected=batch.rejected,
                        items=services.batches.items(batch.batch_id))


def _discard(services: Services, batch_id: str) -> None:
    try:
        services.batches.discard(batch_id)
    except ServiceUnavailable:  # the reconciler queues what stayed; logged for operators
        log.error("could not remove a batch that was not queued", extra={"batch_id": batch_id})


def _batch_id(raw: str) -> str:
    forms = task_id_forms(raw)
    if forms is None:
        raise InvalidInput(MALFORMED_BATCH_ID)
    return forms[0]


def get_batch(services: Services, batch_id: str) -> Batch:
    """The batch with its progress and the estimated time left."""
    batch = services.batches.get(_batch_id(batch_id))
    if batch is None:
        raise NotFound(f"batch_id: no batch {_batch_id(batch_id)}")
    if batch.progress.finished < batch.progress.total:
        batch.eta_s = _eta_s(services, batch.batch_id)
    return batch


def _eta_s(services: Services, batch_id: str) -> float | None:
    """Seconds until the batch's last item is done: the unfinished tasks up to it, at the
    rate the service can take them (docs/decisions.md, "Batch ETA")."""
    left, ahead = services.batches.unfinished_ahead(batch_id)
    if not left:
        return None
    rate = _throughput_per_s(services)
    return None if not rate else round(ahead / rate, 1)


def _throughput_per_s(services: Services) -> float | None:
    """Tasks per second: with Gemini, what the key pool allows per minute (one request a
    task); otherwise the completions of the last 10 minutes."""
    if services.settings.TAGGER == "gemini":
        try:
            with redis_outage():
                accounts = services.pool.stats()["accounts"]
        except ServiceUnavailable:
            return None
        per_minute = sum(int(account.get("effective_minute_limit") or 0)
                         for account in accounts
                         if account.get("status") == "active" and not account.get("problem"))
        return per_minute / 60 or None
    window_s = 600
    done = services.queries.finished_since(utcnow() - timedelta(seconds=window_s))
    return len(done) / window_s or None


def list_batches(services: Services, query: ListBatchesQuery) -> BatchPage:
    try:
        batches, next_cursor = services.batches.list(limit=query.limit, cursor=query.cursor)
    except InvalidCursor as error:
        raise InvalidInput(str(error)) from None
    return BatchPage(batches=batches, next_cursor=next_cursor)


def batch_results(services: Services, batch_id: str, query: BatchResultsQuery
                  ) -> Iterator[bytes]:
    """The export of a batch's tasks, in item order (checked before the first byte)."""
    batch = get_batch(services, batch_id)
    rows = services.batches.task_rows(batch.batch_id, EXPORT_COLUMNS)
    return export_stream(query.format, _first_read(rows), with_index=True)


def export_tasks(services: Services, query: ExportQuery) -> Iterator[bytes]:
    """The export of every task the filters match, oldest first, in chunks."""
    filters = {"status": query.status, "platform": query.platform, "uid": query.uid,
               "env": query.env}
    chunks = services.queries.export_rows(EXPORT_COLUMNS, since=query.since, until=query.until,
                                          **filters)
    return export_stream(query.format, _first_read(chunks))


def _first_read(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """The first chunk is read now, so a database outage is a 503 before the first byte
    (later chunks are read while streaming)."""
    first = next(chunks, None)
    return iter([]) if first is None else itertools.chain([first], chunks)


def subtitles(services: Services, task_id: str, kind: str) -> str:
    """WebVTT or SRT of a completed task's on-screen text, speech and key moments."""
    task = get_task(services, task_id)
    if task.result is None:
        raise Conflict(f"task_id: task is {task.status} and has no result yet; subtitles "
                       "come from the result")
    return render_subtitles(task.result, kind)
