"""The shapes of the operators' replies (key pool, stats, charts, health, the synchronous
route) as models, for the OpenAPI document: a generated client gets a class per reply, not a
dict. The use cases build plain dicts; these models only describe them. Each one allows
extra fields, so a figure added later does not break a client generated today."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.tagging.result import TagResult
from shared.tasks.models import Task


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Counts429(_Open):
    minute: int
    tokens: int
    day: int


class Spent(_Open):
    input_tokens: int
    output_tokens: int
    cost_usd: float


class KeyLine(_Open):
    """One pool key as /api/v1/accounts shows it: masked, never the secret."""

    key_id: str = Field(description="16 hex characters; what the other key routes take")
    key: str = Field(description="masked: the first 4 and last 4 characters")
    status: str
    project: str | None
    used_today: int
    used_this_minute: int
    quota_daily: int
    minute_limit: int
    effective_minute_limit: int
    tpm_limit: int | None
    cooldown_left_s: float
    last_error: str
    disabled_reason: str | None = None
    tokens_this_minute: int
    limit_changes: list[dict[str, Any]]
    today: Spent


class ProjectUse(_Open):
    """One Google Cloud project: its keys and its use against its limits, per model."""

    project: str
    keys: list[str]
    usable_keys: int
    models: dict[str, dict[str, Any]]


class PoolTotals(_Open):
    keys: int
    active: int
    projects: int
    capacity_left_today: int
    capacity_left_this_minute: int


class PoolStats(_Open):
    """GET /api/v1/accounts."""

    quota_day: str = Field(description="the quota day (Pacific time), YYYY-MM-DD")
    send_margin_ms: int
    model: str
    accounts: list[KeyLine]
    projects: list[ProjectUse]
    totals: PoolTotals


class DayUse(_Open):
    """One quota day of a key, a project or the pool."""

    day: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    probes: int
    probes_ok: int
    counts_429: Counts429 = Field(alias="429s")


class MinuteUse(_Open):
    minute: str
    requests: int
    counts_429: int = Field(alias="429s")
    capacity: int | None


class PoolHistory(_Open):
    """GET /api/v1/accounts/history."""

    keys: int
    days: list[DayUse] = Field(description="oldest first")
    last_hour: list[MinuteUse] = Field(description="per minute, oldest first")


class KeyHistory(_Open):
    """GET /api/v1/accounts/{key_id}/history."""

    key_id: str
    days: list[DayUse] = Field(description="oldest first")
    probes: list[dict[str, Any]] = Field(description="the latest health probes, newest first")


class ProjectHistory(_Open):
    """GET /api/v1/accounts/projects/{project}/history."""

    project: str
    keys: list[str]
    days: list[DayUse] = Field(description="oldest first, summed over the project's keys")


class Latency(_Open):
    count: int
    p50_ms: int
    p95_ms: int


class UsageTotals(_Open):
    requests: int
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    thinking_tokens: int
    batch_requests: int
    cost_usd: float


class Stats(_Open):
    """GET /api/v1/stats: what the dashboard's cards show."""

    tasks: dict[str, int] = Field(description="tasks by status")
    queue: dict[str, int] | None = Field(description="queue depth; null when unknown")
    last_hour: dict[str, Any] = Field(
        description="`completed`, `failed` and `stages` (count, p50_ms, p95_ms per stage)")
    pool: PoolTotals
    search_enabled: bool
    gemini: dict[str, Any] | None = Field(description="Gemini's status (Gemini tagger only)")
    tagger: dict[str, Any]
    usage: dict[str, UsageTotals] = Field(description="`last_hour` and `today`")
    gemini_batches: dict[str, Any]
    warnings: list[dict[str, Any]]


class Throughput(_Open):
    start: str = Field(description="the first minute, ISO 8601 UTC")
    step_s: int
    completed: list[int]
    failed: list[int]


class TagCount(_Open):
    tag: str
    count: int


class Charts(_Open):
    """GET /api/v1/stats/charts: the dashboard's 24 h charts."""

    throughput: Throughput
    stages: dict[str, Latency]
    top_tags: list[TagCount]


class Health(_Open):
    """GET /healthz: each dependency `ok` or what is wrong with it."""

    database: str
    redis: str
    storage: str
    gemini: dict[str, Any] | None = None


class TagNow(_Open):
    """POST /api/v1/vision_to_tag/google when the video was tagged in time."""

    tags: list[str]
    result: TagResult
    task: Task


class TaskDeleted(_Open):
    """DELETE /api/v1/task/{task_id}: the id, in its stored form."""

    task_id: str


class Me(_Open):
    """GET /api/v1/me: who the key is, so a page can show what the key may see."""

    team: str
    scopes: list[str] = Field(description="submit, read, admin")
    admin: bool = Field(description="sees every team's records and the key pool")
