"""Request and answer models of the batch routes (`/api/v1/batches`). A batch item is
validated by the create model itself (`BatchItem` is `CreateTaskRequest` refusing unknown
fields), so a batch accepts exactly what single creates accept."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.tasks.models import CreateTaskRequest, QueryBool, Status, envs_of
from shared.video.urls import check_http_url

MAX_BATCH_ITEMS = 1000
MAX_BATCH_BODY_BYTES = 5 * 1024 * 1024
"""1,000 items with the longest URLs (2,048 characters for `url` and `callback_url`) fit."""


class BatchItem(CreateTaskRequest):
    """One item: the fields of a single create (`vocabulary` and `mode` included). Unknown
    fields are refused here (a create ignores them for old clients): a field a later
    version adds must not be dropped silently from a thousand tasks."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dismensions" in data:
            data = dict(data)
            spelled = data.pop("dismensions")
            data.setdefault("dimensions", spelled)
        return data


class CreateBatchRequest(BaseModel):
    """Body of POST /api/v1/batches. `items` are checked one by one (BatchItem): a bad item
    is refused in its slot of the answer, the others are created."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, max_length=200, description="shown in listings")
    items: list[Any] = Field(
        description=f"1 to {MAX_BATCH_ITEMS} items, each with the fields of a task create "
        "(url, platform, uid, dimensions, language, env, vocabulary, callback_url, mode, "
        "translate_to)",
        json_schema_extra={"minItems": 1, "maxItems": MAX_BATCH_ITEMS,
                           # each item is a task create, validated one by one: an item
                           # that is not one is accepted here and refused in its slot
                           "items": {"anyOf": [
                               {"$ref": "#/components/schemas/CreateTaskRequest"},
                               {"description": "anything else: refused in its slot of "
                                               "the answer (`error`), the others run"}]}},
    )
    callback_url: StrictStr | None = Field(
        default=None, description="POSTed the batch once every item has finished")

    @field_validator("items")
    @classmethod
    def _size(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("must not be empty")
        if len(value) > MAX_BATCH_ITEMS:
            raise ValueError(f"at most {MAX_BATCH_ITEMS} items (got {len(value)})")
        return value

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class ItemError(BaseModel):
    field: str
    reason: str


class ItemOutcome(BaseModel):
    """One item of a batch, in request order: its task, or why it was refused."""

    index: int
    task_id: str | None = None
    error: ItemError | None = None


class Progress(BaseModel):
    finished: int
    total: int


BatchState = Literal["creating", "open", "finished"]
"""A batch's life: creating → open → finished (one with nothing accepted is finished at
once)."""


class Batch(BaseModel):
    """A batch as the API shows it (`data` of GET /api/v1/batches/{id})."""

    batch_id: str
    team: str = Field(default="default", description="the team whose key created it")
    name: str
    state: BatchState = Field(
        description="creating: its items are being written and queued; open: its tasks "
        "are queued and some have not finished; finished: every item has finished "
        "(completed or failed; at once when none was accepted), `finished_at` says when")
    total: int
    accepted: int
    rejected: int
    counts: dict[str, int] = Field(description="accepted items by task status")
    progress: Progress = Field(description="finished (completed or failed) of accepted")
    eta_s: float | None = Field(
        default=None, description="estimated seconds until every item has finished, from "
        "the tasks queued ahead and the key pool's capacity (null: finished or unknown)")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    callback_url: str | None = None
    callback_status: str | None = None
    callback_attempts: int | None = None
    callback_error: str | None = None

    @field_validator("created_at", "started_at", "finished_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class BatchCreated(BaseModel):
    """`data` of POST /api/v1/batches."""

    batch: Batch
    accepted: int
    rejected: int
    items: list[ItemOutcome]


class BatchPage(BaseModel):
    """`data` of GET /api/v1/batches: newest first; pass `next_cursor` back for more."""

    batches: list[Batch]
    next_cursor: str | None = None


class ListBatchesQuery(BaseModel):
    """Query string of GET /api/v1/batches."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=64)


EXPORT_FORMATS = ("jsonl", "csv")
DATE_REGEX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9].*)?$"
DATE_START = re.compile(DATE_REGEX)


class DeleteBatchQuery(BaseModel):
    """Query string of DELETE /api/v1/batches/{id}."""

    model_config = ConfigDict(extra="forbid")

    tasks: QueryBool = Field(default=False, description="delete the batch's tasks too "
                             "(refused while any of them is being processed)")


class BatchDeleted(BaseModel):
    """What DELETE /api/v1/batches/{id} did."""

    tasks_deleted: int = Field(description="tasks deleted with the batch")
    tasks_kept: int = Field(description="tasks that started processing meanwhile and stay")


class BatchResultsQuery(BaseModel):
    """Query string of GET /api/v1/batches/{id}/results."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field(default="jsonl", description="jsonl or csv",
                        json_schema_extra={"enum": list(EXPORT_FORMATS)})

    @field_validator("format")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in EXPORT_FORMATS:
            raise ValueError(f"unknown format {value[:32]!r} (allowed: jsonl, csv)")
        return value


class ExportQuery(BatchResultsQuery):
    """Query string of GET /api/v1/tasks/export: the filters, then the format."""

    status: Status | None = None
    platform: str | None = Field(default=None, max_length=32)
    uid: str | None = Field(default=None, max_length=64)
    env: str | None = Field(default=None, max_length=16)
    since: datetime | None = Field(default=None, description="created at or after (ISO 8601)")
    until: datetime | None = Field(default=None, description="created before (ISO 8601)")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _a_date(cls, value: Any) -> Any:
        """A date or an ISO 8601 date-time, never a number (pydantic would read `0.5` as
        seconds since 1970)."""
        if value is not None and not (isinstance(value, str) and DATE_START.match(value)):
            raise ValueError("must be a date (YYYY-MM-DD) or an ISO 8601 date-time")
        return value

    @field_validator("since", "until")
    @classmethod
    def _naive_utc(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """Compared with the naive UTC the columns store."""
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        since = info.data.get("since")
        if info.field_name == "until" and value is not None and since and value <= since:
            raise ValueError("must be after since")
        return value

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str | None, info: ValidationInfo) -> str | None:
        allowed = (info.context or {}).get("platforms") or ()
        if value is not None and allowed and value not in allowed:
            raise ValueError(f"unknown platform {value!r} (allowed: {', '.join(allowed)})")
        return value

    @field_validator("env")
    @classmethod
    def _known_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        allowed = envs_of(info)
        if value is not None and value not in allowed:
            raise ValueError(f"unknown env {value!r} (allowed: {', '.join(allowed)})")
        return value
