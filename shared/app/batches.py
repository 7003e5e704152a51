"""Batch use cases: create a batch (all of it or none), read it with its progress,
list batches, stream its results."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from shared.app import uploads
from shared.app.admission import admitted
from shared.app.context import Services
from shared.app.tasks import (
    check_idempotency_key,
    check_targets,
    check_url,
    first_read,
    task_fields,
)
from shared.cursor import InvalidCursor
from shared.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from shared.redis_conn import redis_outage
from shared.tasks.batch_models import (
    Batch,
    BatchCreated,
    BatchItem,
    BatchPage,
    BatchResultsQuery,
    CreateBatchRequest,
    ItemError,
    ItemOutcome,
    ListBatchesQuery,
)
from shared.tasks.batches import DuplicateBatchKey
from shared.tasks.db import utcnow
from shared.tasks.export import EXPORT_COLUMNS, export_stream
from shared.tasks.models import new_task_id, task_id_forms
from shared.tasks.store import pending_row
from shared.teams.keys import DEFAULT_TEAM
from shared.validation import validation_problem
from shared.video.urls import upload_id_of

log = logging.getLogger("vision_to_tag.api")


BATCH_CHUNK = 200

"""Items written per transaction: short transactions, few round trips."""


MALFORMED_BATCH_ID = "batch_id: malformed (expected a UUID: dashed, or 32 hex digits)"


def create_batch(services: Services, request: CreateBatchRequest, body: dict[str, Any],
                 idempotency_key: str | None, context: dict[str, Any],
                 team: str = DEFAULT_TEAM) -> tuple[BatchCreated, bool]:
    """Validate every item on its own, write the batch (one transaction per chunk of
    items), queue every accepted task in one go, then open the batch: all of it or, when
    the queue cannot be written, none of it (503). Returns (answer, created); the same
    Idempotency-Key and body answer the stored batch again."""
    if request.callback_url is not None:
        check_url(services, "callback_url", request.callback_url)
    request_sha256 = hashlib.sha256(json.dumps(
        body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
        replayed = _replayed_batch(services, idempotency_key, request_sha256, team)
        if replayed:
            return replayed, False
    return admitted(services, team, len(request.items), lambda: _write_batch(  # each item counts
        services, request, idempotency_key, request_sha256, context, team))


def _write_batch(services: Services, request: CreateBatchRequest, idempotency_key: str | None,
                 request_sha256: str, context: dict[str, Any], team: str
                 ) -> tuple[BatchCreated, bool]:
    batch_id = new_task_id()
    try:
        services.batches.begin(batch_id, name=request.name, total=len(request.items),
                               callback_url=request.callback_url,
                               idempotency_key=idempotency_key, request_sha256=request_sha256,
                               team=team)
    except DuplicateBatchKey:
        replayed = _replayed_batch(services, idempotency_key or "", request_sha256, team)
        if replayed is None:
            raise
        return replayed, False
    taken: list[tuple[str, str]] = []
    try:
        outcomes, queued = _write_items(services, batch_id, request.items, context, team,
                                        taken)
        if queued:
            services.queue.enqueue_many(queued, team=team)
    except ServiceUnavailable:
        _discard(services, batch_id)
        _give_back(services, taken)
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
                 context: dict[str, Any], team: str, taken: list[tuple[str, str]]
                 ) -> tuple[list[ItemOutcome], list[tuple[str, str]]]:
    """Each item checked and written with its task, BATCH_CHUNK per transaction; returns
    every item's outcome and the (task_id, url) of the accepted ones, still to be queued;
    the uploads items took go in `taken` (issue 35)."""
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
            fields = task_fields(item, team=team)
            refused = _take_upload(services, outcome, item, fields, taken)
            if refused is not None:
                items.append(refused)
                continue
            rows.append(pending_row(outcome.task_id, fields, now))
            items.append({"item_index": index, "task_id": outcome.task_id, "error_field": None,
                          "error_reason": None})
            queued.append((outcome.task_id, item.url))
        services.batches.add_chunk(batch_id, rows, items)
    return outcomes, queued


def _take_upload(services: Services, outcome: ItemOutcome, item: BatchItem,
                 fields: dict[str, Any], taken: list[tuple[str, str]]
                 ) -> dict[str, Any] | None:
    """An `upload:` item takes its upload for its task (issue 35); an upload another
    task took already refuses the item in its slot (the row it would have had)."""
    upload_id = upload_id_of(item.url)
    if upload_id is None or outcome.task_id is None:
        return None
    try:
        fields["storage_uri"] = uploads.claim(services, upload_id, outcome.task_id,
                                              fields["team"])
    except (InvalidInput, Conflict) as error:
        field, _, reason = error.message.partition(": ")
        outcome.task_id, outcome.error = None, ItemError(field=field, reason=reason)
        return {"item_index": outcome.index, "task_id": None, "error_field": field[:64],
                "error_reason": reason[:512]}
    taken.append((upload_id, outcome.task_id))
    return None


def _give_back(services: Services, taken: list[tuple[str, str]]) -> None:
    """The uploads a batch that was not created had taken (its queue write failed)."""
    for upload_id, task_id in taken:
        try:
            uploads.release(services, upload_id, task_id)
        except ServiceUnavailable:  # the upload then waits for its TTL like an unused one
            log.error("could not give back upload %s", upload_id)


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


def _replayed_batch(services: Services, key: str, request_sha256: str,
                    team: str) -> BatchCreated | None:
    """The stored answer for a repeated call, None when the key is new; another team's
    batch is never shown."""
    row = services.batches.row_by_idempotency_key(key)
    if row is None:
        return None
    if row["request_sha256"] != request_sha256 or row["team"] != team:
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


def get_batch(services: Services, batch_id: str, team: str | None = None) -> Batch:
    """The batch with its progress and the estimated time left; another team's is not
    found."""
    batch = services.batches.get(_batch_id(batch_id))
    if batch is None or team is not None and batch.team != team:
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
    if services.settings.tagging.TAGGER == "gemini":
        try:
            with redis_outage():
                stats = services.pool.stats()
        except ServiceUnavailable:
            return None
        model = stats["model"]
        per_minute = sum(int(project["models"][model].get("effective_minute_limit") or 0)
                         for project in stats["projects"] if project["usable_keys"])
        return per_minute / 60 or None
    window_s = 600
    done = services.queries.finished_totals(utcnow() - timedelta(seconds=window_s))
    return sum(totals["tasks"] for totals in done.values()) / window_s or None


def list_batches(services: Services, query: ListBatchesQuery,
                 team: str | None = None) -> BatchPage:
    try:
        batches, next_cursor = services.batches.list(limit=query.limit, cursor=query.cursor,
                                                     team=team)
    except InvalidCursor as error:
        raise InvalidInput(str(error)) from None
    return BatchPage(batches=batches, next_cursor=next_cursor)


def batch_results(services: Services, batch_id: str, query: BatchResultsQuery,
                  team: str | None = None) -> Iterator[bytes]:
    """The export of a batch's tasks, in item order (checked before the first byte)."""
    batch = get_batch(services, batch_id, team)
    rows = services.batches.task_rows(batch.batch_id, EXPORT_COLUMNS)
    return export_stream(query.format, first_read(rows), with_index=True)
