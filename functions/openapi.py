"""The OpenAPI 3 document, generated from the pydantic models the handlers validate with."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.accounts.history import HistoryQuery
from shared.accounts.pool import KEY_ID_PATTERN
from shared.app.operations import MAX_IDEMPOTENCY_KEY
from shared.search.query import SearchPage, SearchQuery
from shared.tasks.batch_models import (
    DATE_REGEX,
    Batch,
    BatchCreated,
    BatchPage,
    BatchResultsQuery,
    CreateBatchRequest,
    ExportQuery,
    ListBatchesQuery,
)
from shared.tasks.models import (
    TASK_ID_REGEX,
    CreateTaskRequest,
    Envelope,
    ListTasksQuery,
    StatsQuery,
    SyncTagRequest,
    Task,
    TaskPage,
)

REF = "#/components/schemas/{model}"


def _envelope(data_ref: str | None, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"allOf": [{"$ref": REF.format(model="Envelope")}]}
    if data_ref:
        schema["allOf"].append(
            {"type": "object", "properties": {"data": {"$ref": REF.format(model=data_ref)}}}
        )
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _envelope(None, "error: `message` names the field and the reason")
            for code in codes}


def _with_choices(defs: dict[str, Any], platforms: tuple[str, ...],
                  envs: tuple[str, ...]) -> dict[str, Any]:
    for model in ("CreateTaskRequest", "SyncTagRequest"):
        properties = defs.get(model, {}).get("properties", {})
        for name, choices in (("platform", platforms), ("env", envs)):
            if choices and name in properties:
                properties[name] = {**properties[name], "enum": list(choices)}
    sync = defs.get("SyncTagRequest", {}).get("properties", {})
    if platforms and "platform" in sync:  # optional there: the first one is used
        sync["platform"] = {**sync["platform"], "default": platforms[0]}
    return defs


def _query_parameters(model: type[BaseModel] = ListTasksQuery, platforms: tuple[str, ...] = (),
                      envs: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The model's fields as query parameters; `platform` and `env` as this deployment's
    enums."""
    schema = model.model_json_schema()
    parameters = []
    for name, prop in schema["properties"].items():
        choices = {"platform": platforms, "env": envs}.get(name)
        if choices:
            prop = {"type": "string", "enum": list(choices),
                    **({"description": prop["description"]} if "description" in prop else {})}
        parameters.append({"name": name, "in": "query", "required": False, "schema": prop})
    return parameters


TASK_ID = {"name": "task_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": TASK_ID_REGEX}}
AUTH = [{"bearer": []}, {"apiKey": []}]

TASK_LINKS = {
    name: {"operationId": operation, "parameters": {"task_id": "$response.body#/task_id"}}
    for name, operation in (("GetTask", "getTask"), ("RetryTask", "retryTask"))
}
"""The created task's id feeds the task routes (stateful testing follows them)."""


@lru_cache(maxsize=4)
def openapi_document(platforms: tuple[str, ...] = (), envs: tuple[str, ...] = ()
                     ) -> dict[str, Any]:
    """The document; with this deployment's PLATFORMS and ENVS, `platform` and `env` are
    enums (what the API really accepts)."""
    _, schemas = models_json_schema(
        [(CreateTaskRequest, "validation"), (SyncTagRequest, "validation"),
         (CreateBatchRequest, "validation"), (Batch, "serialization"),
         (BatchCreated, "serialization"), (BatchPage, "serialization"),
         (Task, "serialization"),
         (TaskPage, "serialization"), (SearchPage, "serialization"),
         (Envelope, "serialization")],
        ref_template=REF,
    )
    get_task = {
        "operationId": "getTask",
        "summary": "Read a task (status, stage, attempts, error, timings, result)",
        "parameters": [TASK_ID], "security": AUTH,
        "responses": {"200": _envelope("Task", "the task"), **_errors(400, 401, 403, 404, 503)},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "vision-to-tag", "version": "1",
                 "description": "Structured tags for videos. Every reply is the envelope "
                                "`{code, message, task_id, data}`; HTTP status = `code`."},
        "paths": {
            "/api/v1/task/create": {"post": {
                "operationId": "createTask",
                "summary": "Create a tagging task",
                "security": AUTH,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "minLength": 1,
                                           "maxLength": MAX_IDEMPOTENCY_KEY}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": REF.format(model="CreateTaskRequest")}}}},
                "responses": {"200": {**_envelope(None, "created; `task_id` is set"),
                                      "links": TASK_LINKS},
                              **_errors(400, 401, 403, 409, 413, 415, 503)},
            }},
            "/api/v1/vision_to_tag/google": {"post": {
                "operationId": "tagNow",
                "summary": "Tag a video synchronously: the whole pipeline inside the request "
                           "(bounded by SYNC_TIMEOUT_S), recorded as a task; `data.tags` is "
                           "the flat list, `data.result` the full result",
                "security": AUTH,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": REF.format(model="SyncTagRequest")}}}},
                "responses": {"200": _envelope(None, "tags, result and task"),
                              **_errors(400, 401, 403, 413, 415, 422, 429, 502, 503, 504)},
            }},
            "/api/v1/task/{task_id}": {"get": get_task},
            "/api/v1/task/get/{task_id}": {"get": {**get_task, "operationId": "getTaskAlias"}},
            "/api/v1/tasks": {"get": {
                "operationId": "listTasks",
                "summary": "List tasks, newest first, with cursor pagination",
                "parameters": _query_parameters(ListTasksQuery, platforms, envs),
                "security": AUTH,
                "responses": {"200": _envelope("TaskPage", "a page of tasks"),
                              **_errors(400, 401, 403, 503)},
            }},
            **batch_paths(platforms, envs),
            "/api/v1/task/{task_id}/retry": {"post": {
                "operationId": "retryTask",
                "summary": "Re-queue a failed task with fresh attempts",
                "parameters": [TASK_ID], "security": AUTH,
                "responses": {"200": _envelope("Task", "re-queued"),
                              **_errors(400, 401, 403, 404, 409, 503)},
            }},
            "/api/v1/search": {"get": {
                "operationId": "search",
                "summary": "Find completed tasks by tags (all / any), free text, platform, "
                           "env, uid and duration; newest first, with top-tag facets",
                "parameters": _query_parameters(SearchQuery, platforms, envs),
                "security": AUTH,
                "responses": {"200": _envelope("SearchPage", "matching tasks and facets"),
                              **_errors(400, 401, 403, 501, 503)},
            }},
            "/api/v1/stats": {"get": {
                "summary": "Tasks by status, queue depth, last hour's completions, failures "
                           "and per-stage p50/p95, key pool capacity left",
                "parameters": _query_parameters(StatsQuery), "security": AUTH,
                "responses": {"200": _envelope(None, "stats in `data`"),
                              **_errors(400, 401, 403, 503)},
            }},
            "/api/v1/stats/charts": {"get": {
                "operationId": "getStatsCharts",
                "summary": "The dashboard's charts over the last 24 h: `throughput` (completed "
                           "and failed per minute from `start`, oldest first), `stages` "
                           "(p50/p95 per stage), `top_tags` (the 20 most frequent tags of "
                           "the newest 2,000 results)",
                "security": AUTH,
                "responses": {"200": _envelope(None, "chart data in `data`"),
                              **_errors(401, 403, 503)},
            }},
            "/api/v1/task/{task_id}/frames/{index}": {"get": {
                "operationId": "getTaskFrame",
                "summary": "One stored key frame of a task (`result.frames[index]`) as JPEG",
                "parameters": [TASK_ID, {"name": "index", "in": "path", "required": True,
                                         "schema": {"type": "string",
                                                    "pattern": "^[0-9]{1,4}$"}}],
                "security": AUTH,
                "responses": {"200": {"description": "the frame", "content": {
                                  "image/jpeg": {"schema": {"type": "string",
                                                            "format": "binary"}}}},
                              **_errors(400, 401, 403, 404, 503)},
            }},
            "/dashboard": {"get": {
                "summary": "Operator dashboard (HTML; its data comes from the API with a token)",
                "responses": {"200": {"description": "the page"}},
            }},
            "/api/v1/accounts/{key_id}/{action}": {"post": {
                "operationId": "setAccountStatus",
                "summary": "Enable or disable one pool key (`key_id` as /api/v1/accounts "
                           "shows it)",
                "parameters": [
                    {"name": "key_id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": KEY_ID_PATTERN.pattern}},
                    {"name": "action", "in": "path", "required": True,
                     "schema": {"type": "string", "enum": ["enable", "disable"]}}],
                "security": AUTH,
                "responses": {"200": _envelope(None, "the key's line of /api/v1/accounts"),
                              **_errors(400, 401, 403, 404, 503)},
            }},
            "/api/v1/accounts/{key_id}/history": {"get": {
                "operationId": "getAccountHistory",
                "summary": "One key's history per quota day (requests, 429s by kind, "
                           "errors, tokens, cost, probes) and its latest health probes",
                "parameters": [
                    {"name": "key_id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
                    *_query_parameters(HistoryQuery)],
                "security": AUTH,
                "responses": {"200": _envelope(None, "`data.days` oldest first, "
                                                     "`data.probes` newest first"),
                              **_errors(400, 401, 403, 404, 503)},
            }},
            "/api/v1/accounts/history": {"get": {
                "operationId": "getPoolHistory",
                "summary": "The key pool's totals per quota day and its last hour per "
                           "minute (requests, 429s, capacity)",
                "parameters": _query_parameters(HistoryQuery),
                "security": AUTH,
                "responses": {"200": _envelope(None, "`data.days`, `data.last_hour`"),
                              **_errors(400, 401, 403, 503)},
            }},
            "/api/v1/accounts": {"get": {
                "summary": "Key pool usage: per key (masked) status, use today and this "
                           "minute, cooldown, last error; totals of capacity left",
                "security": AUTH,
                "responses": {"200": _envelope(None, "pool stats in `data`"),
                              **_errors(401, 403, 503)},
            }},
            "/healthz": {"get": {
                "summary": "Reachability of database, Redis and storage",
                "responses": {"200": _envelope(None, "all reachable"),
                              "503": _envelope(None, "something is down")},
            }},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document"}},
            }},
        },
        "components": {
            "schemas": _with_choices(schemas["$defs"], platforms, envs),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


BATCH_ID = {"name": "batch_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": TASK_ID_REGEX}}
EXPORT_TYPES = {"application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}}}


def _download(description: str) -> dict[str, Any]:
    return {"description": description, "content": EXPORT_TYPES}


def _subtitles(kind: str, media_type: str) -> dict[str, Any]:
    return {"get": {
        "operationId": f"taskSubtitles{kind.capitalize()}",
        "summary": f"The task's on-screen text, speech segments and key moments as timed "
                   f"cues ({kind.upper()}); 409 while the task has no result",
        "parameters": [TASK_ID], "security": AUTH,
        "responses": {"200": {"description": "subtitles",
                              "content": {media_type: {"schema": {"type": "string"}}}},
                      **_errors(400, 401, 403, 404, 409, 503)},
    }}


def batch_paths(platforms: tuple[str, ...], envs: tuple[str, ...]) -> dict[str, Any]:
    """Batches, exports and subtitles (README, "Batches, exports and subtitles")."""
    export_parameters = _query_parameters(ExportQuery)
    for parameter in export_parameters:
        choices = {"platform": platforms, "env": envs}.get(parameter["name"])
        if choices:
            parameter["schema"] = {"type": "string", "enum": list(choices)}
        if parameter["name"] in ("since", "until"):
            parameter["schema"] = {"type": "string", "pattern": DATE_REGEX,
                                   "description": "YYYY-MM-DD or an ISO 8601 date-time (UTC "
                                                  "unless it has an offset)"}
    return {
        "/api/v1/batches": {
            "post": {
                "operationId": "createBatch",
                "summary": "Create up to 1,000 tasks at once: each item is checked on its own "
                           "(the answer lists per item its task_id or its error)",
                "security": AUTH,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 128}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": REF.format(model="CreateBatchRequest")}}}},
                "responses": {
                    "200": {**_envelope("BatchCreated", "the batch and every item's outcome"),
                            "links": {"GetBatch": {
                                "operationId": "getBatch",
                                "parameters": {"batch_id": "$response.body#/data/batch/batch_id"},
                            }}},
                    **_errors(400, 401, 403, 409, 413, 415, 503)},
            },
            "get": {
                "operationId": "listBatches",
                "summary": "List batches, newest first, with their progress",
                "parameters": _query_parameters(ListBatchesQuery), "security": AUTH,
                "responses": {"200": _envelope("BatchPage", "a page of batches"),
                              **_errors(400, 401, 403, 503)},
            },
        },
        "/api/v1/batches/{batch_id}": {"get": {
            "operationId": "getBatch",
            "summary": "A batch: counts by status, progress, ETA, start and finish times",
            "parameters": [BATCH_ID], "security": AUTH,
            "responses": {"200": _envelope("Batch", "the batch"),
                          **_errors(400, 401, 403, 404, 503)},
        }},
        "/api/v1/batches/{batch_id}/results": {"get": {
            "operationId": "batchResults",
            "summary": "The batch's tasks, one row each, streamed as JSON Lines or CSV",
            "parameters": [BATCH_ID, *_query_parameters(BatchResultsQuery)],
            "security": AUTH,
            "responses": {"200": _download("one row per task, in item order"),
                          **_errors(400, 401, 403, 404, 503)},
        }},
        "/api/v1/tasks/export": {"get": {
            "operationId": "exportTasks",
            "summary": "Every task the filters match, one row each, streamed as JSON Lines "
                       "or CSV (UTF-8 BOM, formulas escaped)",
            "parameters": export_parameters, "security": AUTH,
            "responses": {"200": _download("one row per task, oldest first"),
                          **_errors(400, 401, 403, 503)},
        }},
        "/api/v1/task/{task_id}/subtitles.vtt": _subtitles("vtt", "text/vtt"),
        "/api/v1/task/{task_id}/subtitles.srt": _subtitles("srt", "application/x-subrip"),
    }
