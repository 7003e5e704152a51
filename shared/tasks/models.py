"""Request and task models of the HTTP API; the OpenAPI document is generated from them."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.tagging import transcript, vocabulary
from shared.tagging.result import ALL_DIMENSIONS, TRANSLATIONS, TagResult
from shared.video.urls import (
    MAX_URL_LENGTH,
    URL_PATTERN,
    VIDEO_URL_PATTERN,
    check_http_url,
    check_video_url,
)

TASK_ID_REGEX = (r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                 r"[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$")
TASK_ID_PATTERN = re.compile(TASK_ID_REGEX)
"""A task id is a UUID, dashed (the original service's form, and new ids) or as 32 hex
digits (ids created before), in any case. Anything else is malformed (400), not unknown."""


def task_id_forms(raw: str) -> tuple[str, str] | None:
    """The two stored forms (dashed, hex; lower case) of a task id, None when malformed.
    Ids are stored as they were created, so a lookup tries both."""
    if not TASK_ID_PATTERN.fullmatch(raw):
        return None
    value = uuid.UUID(raw)
    return str(value), value.hex


def new_task_id() -> str:
    """Canonical dashed UUID, like the original service answered."""
    return str(uuid.uuid4())

class TaskStatus(StrEnum):
    """pending → processing → completed | failed; processing → waiting_batch → completed |
    failed | pending for a task in Gemini Batch mode (docs/architecture.md, "Task states")."""

    PENDING = "pending"
    PROCESSING = "processing"
    WAITING_BATCH = "waiting_batch"
    COMPLETED = "completed"
    FAILED = "failed"


def out_of_attempts(attempts, max_attempts: int):
    """The one rule for attempts: a task that has started `max_attempts` of them gets no
    more. Works on an int and on a SQL column (the claim's condition)."""
    return attempts >= max_attempts


Status = Literal["pending", "processing", "waiting_batch", "completed", "failed"]
"""The same values as a type the OpenAPI document spells out inline."""


DEFAULT_ENVS = ("develop", "production")


def envs_of(info: ValidationInfo) -> tuple[str, ...]:
    """The deployment's ENVS, passed in the validation context (the defaults otherwise)."""
    return tuple((info.context or {}).get("envs") or DEFAULT_ENVS)


def check_platform(value: str | None, info: ValidationInfo) -> str | None:
    """A filter's `platform` must be one of PLATFORMS when the caller passes them in the
    context (the API does; the document lists them as the enum)."""
    allowed = (info.context or {}).get("platforms")
    if value is not None and allowed is not None and value not in allowed:
        raise ValueError(f"unknown platform {value[:64]!r} (allowed: {', '.join(allowed)})")
    return value


URL_SCHEMA = {"maxLength": MAX_URL_LENGTH, "pattern": URL_PATTERN}
"""The URL form in the document: the very pattern `check_http_url` decides with."""
VIDEO_URL_SCHEMA = {"maxLength": MAX_URL_LENGTH, "pattern": VIDEO_URL_PATTERN}
"""A video's `url`: also `gs://bucket/object` and `upload:<upload_id>` (issue 35)."""


class CreateTaskRequest(BaseModel):
    """Body of POST /api/v1/task/create. An unknown field is 400 naming it (a misspelt
    optional field would otherwise be dropped without a word), except the original
    service's spelling `dismensions`."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(description="the video: an http(s) URL (the form: docs/api.md, "
                           "\"Video intake\"), `gs://bucket/object` of a bucket in "
                           "INPUT_BUCKETS, or `upload:<upload_id>` (POST /api/v1/uploads)",
                           json_schema_extra=VIDEO_URL_SCHEMA)
    platform: StrictStr = Field(description="calling platform, one of PLATFORMS")
    uid: StrictInt | Annotated[StrictStr, StringConstraints(min_length=1, max_length=64)] \
        | None = Field(default=None, description="caller's user id")
    dimensions: list[str] | str = Field(
        default="all",
        validate_default=True,
        description="`all` or any of vision, audio, content, business (string, comma list "
        "or array); the original spelling `dismensions` is accepted too",
    )
    dismensions: list[str] | str | None = Field(
        default=None, exclude=True, json_schema_extra={"deprecated": True},
        description="the original service's spelling of `dimensions`, same values; used "
        "when `dimensions` is absent")
    env: StrictStr = Field(default="develop", description="one of ENVS (default: the first)")
    language: Literal["zh", "en"] = "zh"
    callback_url: StrictStr | None = Field(default=None, description="POSTed the final task",
                                           json_schema_extra=URL_SCHEMA)
    vocabulary: dict[str, Any] | None = Field(
        default=None,
        description="the caller's own tags per `dimension.field`: a list (preferred, others "
        "kept as free) or {\"tags\": [...], \"closed\": true} (only these); at most "
        "50 fields × 300 tags of ≤ 40 characters",
    )
    mode: Literal["interactive", "batch"] = Field(
        default="interactive",
        description="`batch`: tagged through Gemini's Batch API at half price, answered "
        "within 24 h (usually much sooner); default: the deployment's DEFAULT_MODE")
    reuse: Literal["exact", "similar", "none"] = Field(
        default="exact",
        description="`exact`: a byte-identical video's earlier result is reused; `similar`: "
        "also a near-duplicate's (re-encoded, resized, cropped, letterboxed, watermarked, "
        "trimmed by up to 3 s: `result.reused_from` says which); `none`: always tagged "
        "afresh. Default: the deployment's REUSE")
    translate_to: StrictStr | None = Field(
        default=None, json_schema_extra={"enum": [*TRANSLATIONS, None]},
        description="each transcript segment also gets a `translation` into this language "
        "(needs the audio dimension; the transcript itself stays in the language spoken)")

    @model_validator(mode="before")
    @classmethod
    def _original_spelling(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and "env" not in data:
            data = {**data, "env": envs_of(info)[0]}
        if isinstance(data, dict) and "mode" not in data:
            data = {**data, "mode": (info.context or {}).get("default_mode", "interactive")}
        if isinstance(data, dict) and "reuse" not in data:
            data = {**data, "reuse": (info.context or {}).get("default_reuse", "exact")}
        return data

    @field_validator("env")
    @classmethod
    def _known_env(cls, value: str, info: ValidationInfo) -> str:
        allowed = envs_of(info)
        if value not in allowed:
            raise ValueError(f"unknown env {value[:64]!r} (allowed: {', '.join(allowed)})")
        return value

    @field_validator("url")
    @classmethod
    def _video_url(cls, value: str) -> str:
        return check_video_url(value)

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("translate_to")
    @classmethod
    def _translation(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A supported language, for a request whose transcript exists (audio)."""
        transcript.check_translation(value)
        dimensions = info.data.get("dimensions")
        if value and isinstance(dimensions, list) and "audio" not in dimensions:
            raise ValueError("translates the transcript, which comes with the audio "
                             "dimension (add \"audio\" to dimensions)")
        return value

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str, info: ValidationInfo) -> str:
        allowed = (info.context or {}).get("platforms", ())
        if value not in allowed:
            raise ValueError(f"unknown platform {value!r} (allowed: {', '.join(allowed)})")
        return value

    @field_validator("vocabulary", mode="before")
    @classmethod
    def _vocabulary(cls, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            return vocabulary.parse(value)
        except vocabulary.VocabularyError as error:
            raise ValueError(str(error).removeprefix("vocabulary.")) from None

    @model_validator(mode="after")
    def _from_original_spelling(self) -> CreateTaskRequest:
        if "dimensions" not in self.model_fields_set and self.dismensions is not None:
            self.dimensions = self.dismensions
        return self

    @field_validator("dimensions", "dismensions")
    @classmethod
    def _known_dimensions(cls, value: list[str] | str | None) -> list[str] | None:
        if value is None:
            return None
        names = value.split(",") if isinstance(value, str) else value
        names = [name.strip() for name in names if isinstance(name, str) and name.strip()]
        if not names:
            raise ValueError("must not be empty")
        if "all" in names:
            return list(ALL_DIMENSIONS)
        unknown = [name for name in names if name not in ALL_DIMENSIONS]
        if unknown:
            raise ValueError(
                f"unknown dimension {unknown[0]!r} (allowed: all, {', '.join(ALL_DIMENSIONS)})"
            )
        return [name for name in ALL_DIMENSIONS if name in names]


class SyncTagRequest(CreateTaskRequest):
    """Body of POST /api/v1/vision_to_tag/google: `platform` may be left out (the first
    configured platform is used), everything else as for task creation."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=lambda schema: schema.update(
        required=[name for name in schema.get("required", []) if name != "platform"]))

    @model_validator(mode="before")
    @classmethod
    def _default_platform(cls, data: Any, info: ValidationInfo) -> Any:
        platforms = (info.context or {}).get("platforms") or ()
        if isinstance(data, dict) and "platform" not in data and platforms:
            data = {**data, "platform": platforms[0]}
        return data


class Task(BaseModel):
    """A task as the API shows it (`data` of GET /api/v1/task/{id})."""

    task_id: str
    team: str = Field(default="default", description="the team whose key created it")
    status: Status
    stage: str | None = None
    attempts: int
    url: str
    platform: str
    uid: str | None = None
    env: str
    dimensions: list[str]
    language: str
    vocabulary: dict[str, Any] | None = None
    translate_to: str | None = None
    reuse: Literal["exact", "similar", "none"] | None = Field(
        default=None, description="the request's `reuse` (null: a task made before: exact)")
    windows: dict[str, Any] | None = Field(default=None, exclude=True)
    """A long video's parts already answered (kept until the task completes)."""
    mode: Literal["interactive", "batch"] = "interactive"
    batch_job: str | None = Field(
        default=None, description="waiting_batch: the Gemini batch job that carries the task "
        "(null until the collector submits it)")
    batch_since: datetime | None = Field(
        default=None, description="batch mode: since when the task waits for a batch answer")
    message: str | None = None
    error_code: str | None = None
    timings: dict[str, int] | None = None
    video_sha256: str | None = None
    size_bytes: int | None = None
    duration_s: float | None = None
    storage_uri: str | None = None
    callback_url: str | None = None
    callback_status: str | None = None
    callback_attempts: int | None = None
    callback_error: str | None = None
    created_at: datetime
    updated_at: datetime
    processed_start: datetime | None = None
    processed_end: datetime | None = None
    indexed_at: datetime | None = None
    index_error: str | None = None
    next_attempt_at: datetime | None = Field(
        default=None, description="pending: when the next delivery is due")
    waiting_since: datetime | None = Field(
        default=None, description="pending: since when the task waits for a free Gemini key")
    lease_until: datetime | None = Field(
        default=None, description="processing: the lease the worker keeps renewing")
    delivery: str | None = Field(default=None, exclude=True)
    batch_token: str | None = Field(default=None, exclude=True)
    batch_key: str | None = Field(default=None, exclude=True)
    batch_model: str | None = Field(default=None, exclude=True)
    result: TagResult | None = None

    @field_validator("created_at", "updated_at", "processed_start", "processed_end",
                     "indexed_at", "next_attempt_at", "waiting_since", "lease_until",
                     "batch_since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """The database keeps naive UTC; the API says so explicitly."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class UnreadableTask(BaseModel):
    """A listed row this version cannot read as a task (written by another version, or
    changed by hand): listed with what can be shown, never hidden; reading it alone
    answers 500, and the server logs it with its id."""

    task_id: str
    unreadable: Literal[True] = True
    status: str
    url: str
    platform: str
    created_at: datetime
    problem: str = Field(description="the first field the row got wrong, and why")

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class TaskPage(BaseModel):
    """`data` of GET /api/v1/tasks: newest first; pass `next_cursor` back for more."""

    tasks: list[Task | UnreadableTask]
    next_cursor: str | None = None


class ServiceWarning(BaseModel):
    """Something that keeps this deployment from doing its work although it runs and took
    the request (a Gemini tagger with no key: tasks wait instead of failing)."""

    code: str = Field(description="what it is, stable: `no_keys`")
    message: str = Field(description="what it means for the caller's tasks, said plainly")
    command: str | None = Field(default=None, description="what an operator runs to fix it")


class TaskCreated(BaseModel):
    """`data` of POST /api/v1/task/create."""

    status: Status
    url: str
    task_url: str = Field(description="where to poll the task")
    warnings: list[ServiceWarning] = Field(
        default_factory=list, description="why the task may not be processed soon although it "
        "was accepted (empty when nothing is wrong)")


INTEGER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)")
NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _written_as(pattern: re.Pattern[str], what: str):
    def check(value: Any) -> Any:
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise ValueError(f"must be {what} (got {value[:32]!r})")
        return value
    return BeforeValidator(check)


QueryInt = Annotated[int, _written_as(INTEGER_TEXT, "an integer")]
"""An integer query parameter spelt the way the document's `integer` is (no `+5`,
`5_000`, ` 5` or `1.0`, which Python's parsers would take)."""
QueryFloat = Annotated[float, _written_as(NUMBER_TEXT, "a number"),
                       Field(allow_inf_nan=False)]
"""A number query parameter as JSON spells a number (no `inf`, `nan`, `1_0`)."""
QueryBool = Annotated[bool, _written_as(re.compile("true|false"), "true or false")]
"""A boolean query parameter spelt `true` or `false`, as the document's `boolean` is
(pydantic alone would also take `1`, `yes`, `on`)."""


class ListTasksQuery(BaseModel):
    """Query string of GET /api/v1/tasks. Every filter takes only what the document
    allows (`platform`: one of PLATFORMS), else 400 naming it."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    platform: str | None = Field(default=None, description="one of PLATFORMS")
    uid: str | None = Field(default=None, max_length=64)
    limit: QueryInt = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=64)

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_platform(value, info)


class RetryQuery(BaseModel):
    """Query string of POST /api/v1/task/{id}/retry."""

    model_config = ConfigDict(extra="forbid")

    force: QueryBool = Field(
        default=False, description="retry even a failure about the video itself that a "
        "retry would meet again")


class StatsQuery(BaseModel):
    """Query string of GET /api/v1/stats: no parameters; any given is 400 naming it."""

    model_config = ConfigDict(extra="forbid")


class Envelope(BaseModel):
    """Every reply: the HTTP status equals `code`."""

    code: int
    message: str
    task_id: str | None = None
    data: dict[str, Any] = {}


class ErrorEnvelope(Envelope):
    """Every 4xx/5xx reply: the envelope, `message` saying what is wrong (`field: reason`
    when one field is), and that field on its own."""

    field: str | None = None
    """The request field, query parameter, path variable or header the message is about."""


class SimilarQuery(BaseModel):
    """Query string of GET /api/v1/task/{id}/similar."""

    model_config = ConfigDict(extra="forbid")

    limit: QueryInt = Field(default=10, ge=1, le=50, description="videos listed at most")


class SimilarVideo(BaseModel):
    """An earlier video close to this one, and how they relate (issue 40)."""

    task_id: str
    status: str
    similarity: float = Field(description="how alike the pictures are, 0 to 1 (1: the same)")
    offset_s: float = Field(description="this video's time t is the other's t + offset_s")
    scale: float = Field(description="this video's picture width over the other's")
    duration_delta_s: float = Field(description="this video's duration minus the other's")
    match: bool = Field(description="whether `reuse: similar` would take its result "
                        "(besides answering the same question)")
    reason: str | None = Field(default=None, description="why it is not a match")


class SimilarVideos(BaseModel):
    """`data` of GET /api/v1/task/{id}/similar: closest first."""

    task_id: str
    fingerprinted: bool = Field(description="false: the video has no fingerprint yet (not "
                                "processed) or none at all (black, still): nothing listed")
    videos: list[SimilarVideo]
