"""Function `api`: the public HTTP API (README, "HTTP API"; details: docs/api.md).

Every route is declared once, in ENDPOINTS at the end: the router and the OpenAPI document
are both built from that list."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import flask
from pydantic import ValidationError
from werkzeug.exceptions import MethodNotAllowed, NotFound

from functions.http import (
    CALLER,
    ApiError,
    api_token,
    caller_of,
    client_address,
    describe_validation,
    json_object,
    nosniff,
    refuse_key_in_query,
    rejection_reply,
    reply,
    retry_after,
    single_valued,
    sync_status,
    unavailable_reply,
)
from functions.openapi import openapi_document
from functions.routes import Endpoint, route_map
from shared.accounts.history import HistoryQuery
from shared.accounts.pool import KEY_ID_PATTERN, PROJECT_PATTERN
from shared.app import access, batches, deletion, health, pool, replies, tasks, uploads, usage
from shared.app.access import Scope
from shared.app.charts import chart_data
from shared.app.frames import frame_bytes
from shared.app.similar import similar_videos
from shared.app.stats import gemini_status, service_stats
from shared.config import get_settings
from shared.errors import SERVICE_RETRY_S, Rejected, ServiceUnavailable
from shared.logs import log_context, trace_fields
from shared.search.query import SearchPage, SearchQuery
from shared.services import Services, get_services
from shared.tasks.batch_models import (
    DATE_REGEX,
    MAX_BATCH_BODY_BYTES,
    Batch,
    BatchCreated,
    BatchDeleted,
    BatchPage,
    BatchResultsQuery,
    CreateBatchRequest,
    DeleteBatchQuery,
    ExportQuery,
    ListBatchesQuery,
)
from shared.tasks.export import CONTENT_TYPES
from shared.tasks.models import (
    TASK_ID_REGEX,
    CreateTaskRequest,
    ListTasksQuery,
    RetryQuery,
    SimilarQuery,
    SimilarVideos,
    StatsQuery,
    SyncTagRequest,
    Task,
    TaskCreated,
    TaskPage,
    TaskStatus,
    task_id_forms,
)
from shared.tasks.store import UnreadableRow
from shared.tasks.subtitles import SUBTITLE_TYPES, SubtitlesQuery

log = logging.getLogger("vision_to_tag.api")

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.html": "text/html", "app.js": "text/javascript", "style.css": "text/css",
          "favicon.svg": "image/svg+xml", "gemini_jobs.js": "text/javascript",
          "vendor/uplot.min.js": "text/javascript", "vendor/uplot.min.css": "text/css",
          "docs.html": "text/html", "docs.js": "text/javascript",
          "vendor/swaggerui.bundle.js": "text/javascript",
          "vendor/swaggerui.css": "text/css"}
"""The dashboard's and the API docs page's files; vendor/ holds uPlot 1.6.32 (MIT,
vendor/uplot.LICENSE) for the pool's charts and Swagger UI 5.36.0 (Apache-2.0,
vendor/swaggerui.LICENSE) for /docs: no CDN, nothing fetched from elsewhere."""


@nosniff
def api(request: flask.Request) -> flask.Response:
    """Cloud Functions entry point."""
    try:
        endpoint, args = ROUTES.bind_to_environ(request.environ).match()  # an Endpoint
    except MethodNotAllowed as error:
        allowed = ", ".join(sorted(error.valid_methods or []))
        return reply(405, f"method {request.method} not allowed here (allowed: {allowed})",
                     headers={"Allow": allowed})
    except NotFound:
        return _no_route(request.path)
    if endpoint.handler in (get, delete) and args.get("task_id") == "create":  # the create route
        return reply(405, f"method {request.method} not allowed here (allowed: POST)",
                     headers={"Allow": "POST"})
    with log_context(**trace_fields(request.headers.get("X-Cloud-Trace-Context"))):
        return _dispatch(request, endpoint, args)


TASK_PREFIX = "/api/v1/task/"
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


def _no_route(path: str) -> flask.Response:
    """A path no route matches. Under /api/v1/task/ a malformed id is the problem (400,
    an id with slashes in it included); after a well-formed id it is what follows (404),
    and a subtitle format that does not exist is named with the ones that do."""
    if path.startswith(TASK_PREFIX):
        task_id, _, rest = path.removeprefix(TASK_PREFIX).partition("/")
        if task_id_forms(task_id) is None:
            return reply(400, tasks.MALFORMED_TASK_ID)
        if rest.startswith("subtitles.") and "/" not in rest:
            formats = " and ".join(f".{kind}" for kind in SUBTITLE_TYPES)
            return reply(404, f"subtitles: no format .{rest.removeprefix('subtitles.')[:16]} "
                              f"(subtitles come as {formats})")
    return reply(404, f"no route {path}")


def _dispatch(request: flask.Request, endpoint: Endpoint, args: dict) -> flask.Response:
    try:
        if endpoint.handler is healthz:  # a probe answers within HEALTH_TIMEOUT_S, even cold
            services = health.ready_services(get_services, get_settings().HEALTH_TIMEOUT_S)
        else:
            services = get_services()
            log_setup_warnings(services)
        refuse_key_in_query(request)
        if not endpoint.public:
            _authenticate(request, services, endpoint)
        return endpoint.handler(request, services, **args)
    except Rejected as error:
        return rejection_reply(error)
    except ValidationError as error:
        return reply(400, describe_validation(error))
    except ServiceUnavailable as error:
        log.warning("%s", error)
        return unavailable_reply(error, message=f"{error}; nothing was changed, try again")
    except UnreadableRow as error:  # the server's fault, not the caller's
        log.error("%s on %s %s", error, request.method, request.path,
                  extra={"task_id": error.task_id})
        return reply(500, f"internal error: the stored task {error.task_id} cannot be read "
                          "(logged for the operators)")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return reply(500, "internal error")


def _authenticate(request: flask.Request, services: Services, endpoint: Endpoint) -> None:
    """The caller (team, scopes) attached to the request, or the refusal (401, 403, 429)."""
    address = client_address(request, services.settings.api.TRUSTED_PROXY_HOPS)
    caller = access.authenticate(services, api_token(request), address)
    access.authorize(caller, endpoint.scope or Scope.ADMIN)
    request.environ[CALLER] = caller


_warned_for: list[Services] = []
_warned_lock = threading.Lock()


def log_setup_warnings(services: Services) -> None:
    """Once per build of the services (a Cloud Functions instance builds them on its first
    request): log what keeps this deployment from tagging, where operators read logs. The
    services warned about stay referenced, so a later build is never mistaken for it."""
    with _warned_lock:
        if _warned_for and _warned_for[0] is services:
            return
        _warned_for[:] = [services]
    for warning in pool.setup_warnings(services):
        log.warning("%s Run: %s", warning.message, warning.command)


def validation_context(services: Services) -> dict[str, Any]:
    """What the request models check against: this deployment's platforms and envs, and
    the mode a request that names none gets (DEFAULT_MODE)."""
    settings = services.settings
    return {"platforms": settings.api.PLATFORMS, "envs": settings.api.ENVS,
            "default_mode": settings.tagging.DEFAULT_MODE,
            "default_reuse": settings.reuse.REUSE,
            "semantic": settings.search.SEMANTIC_SEARCH}


def seen(request: flask.Request) -> str | None:
    """The team whose records the caller may read; None: all (an admin key)."""
    return access.visible_team(caller_of(request))


def create(request: flask.Request, services: Services) -> flask.Response:
    body = json_object(request)
    parsed = CreateTaskRequest.model_validate(body, context=validation_context(services))
    task, created = tasks.create_task(services, parsed, request.headers.get("Idempotency-Key"),
                                      team=caller_of(request).team)
    data = TaskCreated(status=task.status, url=task.url, task_url=f"/api/v1/task/{task.task_id}",
                       warnings=pool.setup_warnings(services))
    return reply(200, "success" if created else "success (existing task for this Idempotency-Key)",
                 task_id=task.task_id, data=data.model_dump(mode="json"))


def tag_now(request: flask.Request, services: Services) -> flask.Response:
    parsed = SyncTagRequest.model_validate(json_object(request), context={
        **validation_context(services), "default_mode": "interactive"})
    outcome = tasks.tag_now(services, parsed, caller_of(request).team)
    task, headers = outcome.task, retry_after(outcome.retry_after_s)
    if not outcome.timed_out and task.status == TaskStatus.COMPLETED and task.result:
        data = {"tags": task.result.tags, "result": task.result.model_dump(mode="json"),
                "task": task.model_dump(mode="json", exclude={"result"})}
        return reply(200, task_id=task.task_id, data=data)
    status = 504 if outcome.timed_out else sync_status(task.error_code)
    if outcome.timed_out:
        message = (f"still processing after {services.settings.api.SYNC_TIMEOUT_S:g} s; "
                   f"poll GET /api/v1/task/{task.task_id}")
    else:
        message = f"{task.error_code}: {task.message}" if task.error_code else "failed"
    return reply(status, message, task_id=task.task_id,
                 data={"task": task.model_dump(mode="json")}, headers=headers)


def get(request: flask.Request, services: Services, task_id: str) -> flask.Response:
    task = tasks.get_task(services, task_id, seen(request))
    return reply(200, task_id=task.task_id, data=task.model_dump(mode="json"))


def delete(request: flask.Request, services: Services, task_id: str) -> flask.Response:
    deleted = deletion.delete_task(services, task_id)
    return reply(200, "deleted", task_id=deleted, data={"task_id": deleted})


def delete_batch(request: flask.Request, services: Services, batch_id: str) -> flask.Response:
    query = DeleteBatchQuery.model_validate(single_valued(request))
    done = deletion.delete_batch(services, batch_id, with_tasks=query.tasks)
    return reply(200, "deleted", data=BatchDeleted(**done).model_dump(mode="json"))


def list_(request: flask.Request, services: Services) -> flask.Response:
    query = ListTasksQuery.model_validate(single_valued(request),
                                          context=validation_context(services))
    page = tasks.list_tasks(services, query, seen(request))
    return reply(200, data=page.model_dump(mode="json"))


def retry(request: flask.Request, services: Services, task_id: str) -> flask.Response:
    query = RetryQuery.model_validate(single_valued(request))
    task = tasks.retry_task(services, task_id, force=query.force, team=seen(request))
    return reply(200, "re-queued", task_id=task.task_id, data=task.model_dump(mode="json"))


def create_batch(request: flask.Request, services: Services) -> flask.Response:
    body = json_object(request, MAX_BATCH_BODY_BYTES)
    parsed = CreateBatchRequest.model_validate(body)
    created, new = batches.create_batch(services, parsed, body,
                                           request.headers.get("Idempotency-Key"),
                                           validation_context(services), caller_of(request).team)
    message = "success" if new else "success (existing batch for this Idempotency-Key)"
    return reply(200, message, data=created.model_dump(mode="json"))


def create_upload(request: flask.Request, services: Services) -> flask.Response:
    parsed = uploads.CreateUploadRequest.model_validate(json_object(request))
    created = uploads.create_upload(services, parsed, caller_of(request).team,
                                    request.host_url.rstrip("/"))
    return reply(200, data=created.model_dump(mode="json"))


def put_upload(request: flask.Request, services: Services, upload_id: str) -> flask.Response:
    if not UPLOAD_ID.fullmatch(upload_id):
        raise ApiError(400, "upload_id: malformed (32 hex digits, as POST /api/v1/uploads "
                            "gave it)")
    stored = uploads.receive(services, upload_id, request.stream, request.content_length,
                             seen(request))
    return reply(200, data=uploads.UploadStored(
        upload_id=upload_id, size_bytes=stored, url=f"upload:{upload_id}").model_dump())


def get_batch(request: flask.Request, services: Services, batch_id: str) -> flask.Response:
    batch = batches.get_batch(services, batch_id, seen(request))
    return reply(200, data=batch.model_dump(mode="json"))


def list_batches(request: flask.Request, services: Services) -> flask.Response:
    query = ListBatchesQuery.model_validate(single_valued(request))
    return reply(200, data=batches.list_batches(services, query, seen(request)).model_dump(
        mode="json"))


def batch_results(request: flask.Request, services: Services, batch_id: str) -> flask.Response:
    query = BatchResultsQuery.model_validate(single_valued(request))
    pieces = batches.batch_results(services, batch_id, query, seen(request))
    return _download(pieces, query.format, f"batch-{batch_id[:36]}")


def export(request: flask.Request, services: Services) -> flask.Response:
    query = ExportQuery.model_validate(single_valued(request),
                                       context=validation_context(services))
    return _download(tasks.export_tasks(services, query, seen(request)), query.format, "tasks")


def _download(pieces: Iterator[bytes], kind: str, name: str) -> flask.Response:
    """Streamed as it is read (no length known in advance), saved as a file."""
    response = flask.Response(pieces, content_type=CONTENT_TYPES[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response


def subtitles(request: flask.Request, services: Services, task_id: str,
              fmt: str) -> flask.Response:
    query = SubtitlesQuery.model_validate(single_valued(request))
    text = tasks.subtitles(services, task_id, fmt, query, seen(request))
    return flask.Response(text.encode(), content_type=SUBTITLE_TYPES[fmt])


def similar(request: flask.Request, services: Services, task_id: str) -> flask.Response:
    query = SimilarQuery.model_validate(single_valued(request))
    found = similar_videos(services, task_id, query, seen(request))
    return reply(200, task_id=found.task_id, data=found.model_dump(mode="json"))


def accounts(request: flask.Request, services: Services) -> flask.Response:
    return reply(200, data=pool.pool_stats(services))


def account_status(request: flask.Request, services: Services, key_id: str,
                   action: str) -> flask.Response:
    account = pool.set_account_enabled(services, key_id, action == "enable")
    return reply(200, f"key {action}d", data=account)


def account_history(request: flask.Request, services: Services, key_id: str
                    ) -> flask.Response:
    query = HistoryQuery.model_validate(single_valued(request))
    return reply(200, data=pool.account_history(services, key_id, query))


def project_history(request: flask.Request, services: Services, project: str
                    ) -> flask.Response:
    query = HistoryQuery.model_validate(single_valued(request))
    return reply(200, data=pool.project_history(services, project, query))


def pool_history(request: flask.Request, services: Services) -> flask.Response:
    query = HistoryQuery.model_validate(single_valued(request))
    return reply(200, data=pool.pool_history(services, query))


def team_usage(request: flask.Request, services: Services, team: str) -> flask.Response:
    query = usage.UsageQuery.model_validate(single_valued(request))
    answer = usage.team_usage(services, team, query, seen(request))
    return reply(200, data=answer.model_dump(mode="json"))


def search(request: flask.Request, services: Services) -> flask.Response:
    query = SearchQuery.model_validate(single_valued(request),
                                       context=validation_context(services))
    return reply(200, data=tasks.search(services, query, seen(request)).model_dump(mode="json"))


def me(request: flask.Request, services: Services) -> flask.Response:
    StatsQuery.model_validate(single_valued(request))
    caller = caller_of(request)
    return reply(200, data=replies.Me(team=caller.team, scopes=sorted(caller.scopes),
                                      admin=caller.allows(Scope.ADMIN)).model_dump())


def stats(request: flask.Request, services: Services) -> flask.Response:
    StatsQuery.model_validate(single_valued(request))
    return reply(200, data=service_stats(services))


def charts(request: flask.Request, services: Services) -> flask.Response:
    return reply(200, data=chart_data(services))


def frame(request: flask.Request, services: Services, task_id: str,
          index: str) -> flask.Response:
    response = flask.Response(frame_bytes(services, task_id, index, seen(request)),
                              mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def dashboard(request: flask.Request, services: Services,
              asset: str = "dashboard.html", vendored: str = "") -> flask.Response:
    asset = f"vendor/{vendored}" if vendored else asset
    response = flask.Response((STATIC / asset).read_bytes(), mimetype=ASSETS[asset])
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    response.headers["Cache-Control"] = "no-cache"
    return response


def home(request: flask.Request, services: Services) -> flask.Response:
    """The root is where a browser lands: it is sent on to the dashboard. The target is
    relative, as the dashboard's own links are, so it also works under a path prefix
    (`…/api/` on a cloudfunctions.net address)."""
    return reply(302, "the dashboard is at /dashboard", headers={"Location": "dashboard"})


def healthz(request: flask.Request, services: Services) -> flask.Response:
    checks = health.health(services)
    healthy = all(value == "ok" for value in checks.values())
    data: dict[str, object] = dict(checks)
    if services.settings.tagging.TAGGER == "gemini" and checks["redis"] == "ok":
        data["gemini"] = gemini_status(services)  # said plainly; tasks wait, nothing fails
    return reply(200 if healthy else 503, "ok" if healthy else "degraded", data=data,
                 headers=None if healthy else retry_after(SERVICE_RETRY_S))


def openapi(request: flask.Request, services: Services) -> flask.Response:
    settings = services.settings
    return flask.jsonify(openapi_document(ENDPOINTS, tuple(settings.api.PLATFORMS),
                                          tuple(settings.api.ENVS)))


TASK_ID = {"type": "string", "pattern": TASK_ID_REGEX}
KEY_ID = {"type": "string", "pattern": KEY_ID_PATTERN.pattern}
PROJECT = {"type": "string", "pattern": PROJECT_PATTERN.pattern, "maxLength": 64}
DATE = {"type": "string", "pattern": DATE_REGEX,
        "description": "YYYY-MM-DD or an ISO 8601 date-time (UTC unless it has an offset)"}
DOWNLOAD = {"application/x-ndjson": {"type": "string"}, "text/csv": {"type": "string"}}
FORCE = {"type": "boolean", "default": False,
         "description": "retry even a failure that a retry would meet again: "
                        + ", ".join(tasks.FINAL_FAILURES)}
"""Schemas the declarations below use: path parameters, export dates, streamed rows, the
retry's `force` (naming the failures it overrides)."""

GET_TASK = Endpoint(
    "/api/v1/task/<task_id>", "GET", get, operation_id="getTask",
    summary="Read a task (status, stage, attempts, error, timings, result)",
    schemas={"task_id": TASK_ID}, data=Task, answer="the task", errors=(400, 404, 503),
    scope=Scope.READ)


def _subtitles(fmt: str, media_type: str) -> Endpoint:
    """One route per format: each is its own operation with its own media type."""
    return Endpoint(
        f"/api/v1/task/<task_id>/subtitles.{fmt}", "GET", subtitles, defaults={"fmt": fmt},
        operation_id=f"taskSubtitles{fmt.capitalize()}",
        summary=f"The task's transcript (cues of at most 2 lines of 42 characters, at least "
                f"1 s each), its translation, on-screen text or key moments as timed cues "
                f"({fmt.upper()}, `kind`); 409 while the task has no result, 404 for "
                f"`kind=translation` without one",
        schemas={"task_id": TASK_ID}, query=SubtitlesQuery, answer="subtitles",
        media={media_type: {"type": "string"}}, errors=(400, 404, 409, 503), scope=Scope.READ)


ENDPOINTS = (
    Endpoint("/api/v1/task/create", "POST", create, operation_id="createTask",
             summary="Create a tagging task", body=CreateTaskRequest,
             headers={"Idempotency-Key": {"type": "string", "minLength": 1,
                                          "maxLength": tasks.MAX_IDEMPOTENCY_KEY}},
             data=TaskCreated,
             answer="created; `task_id` is set; `data.warnings` says why it may wait",
             links={operation: {"task_id": "$response.body#/task_id"}
                    for operation in ("getTask", "retryTask")},  # stateful testing follows
             errors=(400, 409, 413, 415, 503), scope=Scope.SUBMIT),
    replace(GET_TASK, path="/api/v1/task/get/<task_id>", operation_id="getTaskAlias"),
    Endpoint("/api/v1/task/<task_id>/retry", "POST", retry, operation_id="retryTask",
             summary="Re-queue a failed task with fresh attempts, its old error cleared; 409 "
                     "for a failure about the video itself that a retry would meet again "
                     "(the message names the code and what would change the outcome) "
                     "unless `force=true`",
             schemas={"task_id": TASK_ID, "force": FORCE}, query=RetryQuery, data=Task,
             answer="re-queued",
             errors=(400, 404, 409, 503), scope=Scope.SUBMIT),
    GET_TASK,
    Endpoint("/api/v1/task/<task_id>", "DELETE", delete, operation_id="deleteTask",
             summary="Delete a task and everything it left: its stored video and frames, its "
                     "search document, its queue entries and its result-cache entry (another "
                     "task with the same video keeps its own); 404 once deleted, 409 while it "
                     "is being processed",
             schemas={"task_id": TASK_ID}, data=replies.TaskDeleted,
             answer="deleted; `task_id` is set",
             errors=(400, 404, 409, 503), scope=Scope.ADMIN),
    Endpoint("/api/v1/tasks", "GET", list_, operation_id="listTasks",
             summary="List tasks, newest first, with cursor pagination",
             query=ListTasksQuery, data=TaskPage, answer="a page of tasks", errors=(400, 503),
             scope=Scope.READ),
    Endpoint("/api/v1/tasks/export", "GET", export, operation_id="exportTasks",
             summary="Every task the filters match, one row each, streamed as JSON Lines or "
                     "CSV (UTF-8 BOM, formulas escaped)",
             query=ExportQuery, schemas={"since": DATE, "until": DATE},
             answer="one row per task, oldest first", media=DOWNLOAD, errors=(400, 503),
             scope=Scope.READ),
    Endpoint("/api/v1/task/<task_id>/frames/<index>", "GET", frame,
             operation_id="getTaskFrame",
             summary="One stored key frame of a task (`result.frames[index]`) as JPEG",
             schemas={"task_id": TASK_ID, "index": {"type": "string",
                                                    "pattern": "^[0-9]{1,4}$"}},
             answer="the frame", media={"image/jpeg": {"type": "string", "format": "binary"}},
             errors=(400, 404, 503), scope=Scope.READ),
    Endpoint("/api/v1/task/<task_id>/similar", "GET", similar, operation_id="similarTasks",
             summary="The earlier videos closest to this task's (near-duplicates: "
                     "re-encoded, resized, cropped, letterboxed, watermarked, trimmed), "
                     "closest first, with their similarity and whether `reuse: similar` "
                     "would take their result",
             schemas={"task_id": TASK_ID}, query=SimilarQuery, data=SimilarVideos,
             answer="the closest earlier videos", errors=(400, 404, 503), scope=Scope.READ),
    _subtitles("vtt", "text/vtt"),
    _subtitles("srt", "application/x-subrip"),
    Endpoint("/api/v1/batches", "POST", create_batch, operation_id="createBatch",
             summary="Create up to 1,000 tasks at once: each item is checked on its own (the "
                     "answer lists per item its task_id or its error)",
             body=CreateBatchRequest,
             headers={"Idempotency-Key": {"type": "string",
                                          "maxLength": tasks.MAX_IDEMPOTENCY_KEY}},
             data=BatchCreated, answer="the batch and every item's outcome",
             links={"getBatch": {"batch_id": "$response.body#/data/batch/batch_id"}},
             errors=(400, 409, 413, 415, 503), scope=Scope.SUBMIT),
    Endpoint("/api/v1/uploads", "POST", create_upload, operation_id="createUpload",
             summary="Start an upload of a local file: PUT its bytes to `upload_url`, then "
                     "create a task (or a batch item) with `url: \"upload:<upload_id>\"` "
                     "before `expires_at` (UPLOAD_TTL_S)",
             body=uploads.CreateUploadRequest, data=uploads.UploadCreated,
             answer="where to send the file", errors=(400, 413, 415, 503),
             scope=Scope.SUBMIT),
    Endpoint("/api/v1/uploads/<upload_id>", "PUT", put_upload, operation_id="putUpload",
             summary="The file's bytes, exactly `size_bytes` of them (local storage; on GCS "
                     "`upload_url` is a storage URL instead); 409 once finished",
             schemas={"upload_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
             raw_body={"application/octet-stream": {"type": "string", "format": "binary"}},
             data=uploads.UploadStored, answer="stored; use `url` in a create",
             errors=(400, 404, 409, 413, 503),
             scope=Scope.SUBMIT),
    Endpoint("/api/v1/batches", "GET", list_batches, operation_id="listBatches",
             summary="List batches, newest first, with their progress",
             query=ListBatchesQuery, data=BatchPage, answer="a page of batches",
             errors=(400, 503), scope=Scope.READ),
    Endpoint("/api/v1/batches/<batch_id>", "GET", get_batch, operation_id="getBatch",
             summary="A batch: counts by status, progress, ETA, start and finish times",
             schemas={"batch_id": TASK_ID}, data=Batch, answer="the batch",
             errors=(400, 404, 503), scope=Scope.READ),
    Endpoint("/api/v1/batches/<batch_id>", "DELETE", delete_batch, operation_id="deleteBatch",
             summary="Delete a batch and its items; with `tasks=true` its tasks too, as "
                     "DELETE /api/v1/task/{task_id} does (409 while any is being processed)",
             schemas={"batch_id": TASK_ID}, query=DeleteBatchQuery, data=BatchDeleted,
             answer="deleted", errors=(400, 404, 409, 503), scope=Scope.ADMIN),
    Endpoint("/api/v1/batches/<batch_id>/results", "GET", batch_results,
             operation_id="batchResults",
             summary="The batch's tasks, one row each, streamed as JSON Lines or CSV",
             schemas={"batch_id": TASK_ID}, query=BatchResultsQuery,
             answer="one row per task, in item order", media=DOWNLOAD, errors=(400, 404, 503),
             scope=Scope.READ),
    Endpoint("/api/v1/vision_to_tag/google", "POST", tag_now, operation_id="tagNow",
             summary="Tag a video synchronously: the whole pipeline inside the request "
                     "(bounded by SYNC_TIMEOUT_S), recorded as a task; `data.tags` is the flat "
                     "list, `data.result` the full result",
             body=SyncTagRequest, data=replies.TagNow, answer="tags, result and task",
             errors=(400, 413, 415, 422, 429, 502, 503, 504), scope=Scope.SUBMIT),
    Endpoint("/api/v1/accounts", "GET", accounts,
             summary="Key pool usage: per key (masked) status, project, use today and this "
                     "minute, cooldown, last error; per project its use against its limits "
                     "per model; totals of capacity left",
             data=replies.PoolStats, answer="pool stats", errors=(503,), scope=Scope.ADMIN),
    Endpoint("/api/v1/accounts/history", "GET", pool_history, operation_id="getPoolHistory",
             summary="The key pool's totals per quota day and its last hour per minute "
                     "(requests, 429s, capacity)",
             query=HistoryQuery, data=replies.PoolHistory, answer="`data.days`, `data.last_hour`",
             errors=(400, 503),
             scope=Scope.ADMIN),
    Endpoint("/api/v1/accounts/projects/<project>/history", "GET", project_history,
             operation_id="getProjectHistory",
             summary="One Google Cloud project's history per quota day, summed over its "
                     "keys (requests, 429s by kind, errors, tokens, cost, probes)",
             schemas={"project": PROJECT}, query=HistoryQuery, data=replies.ProjectHistory,
             answer="`data.keys`, `data.days` oldest first", errors=(400, 404, 503),
             scope=Scope.ADMIN),
    Endpoint("/api/v1/accounts/<key_id>/history", "GET", account_history,
             operation_id="getAccountHistory",
             summary="One key's history per quota day (requests, 429s by kind, errors, "
                     "tokens, cost, probes) and its latest health probes",
             schemas={"key_id": KEY_ID}, query=HistoryQuery, data=replies.KeyHistory,
             answer="`data.days` oldest first, `data.probes` newest first",
             errors=(400, 404, 503), scope=Scope.ADMIN),
    Endpoint("/api/v1/accounts/<key_id>/<any(enable, disable):action>", "POST",
             account_status, operation_id="setAccountStatus",
             summary="Enable or disable one pool key (`key_id` as /api/v1/accounts shows it)",
             schemas={"key_id": KEY_ID}, data=replies.KeyLine,
             answer="the key's line of /api/v1/accounts",
             errors=(400, 404, 503), scope=Scope.ADMIN),
    Endpoint("/api/v1/teams/<team>/usage", "GET", team_usage, operation_id="getTeamUsage",
             summary="A team's usage per UTC day: tasks completed, Gemini requests, tokens "
                     "and cost (a ledger: deleting tasks keeps what they cost); a team's key "
                     "reads its own team's, an admin key any team's",
             schemas={"team": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$",
                               "maxLength": 32}},
             query=usage.UsageQuery, data=usage.TeamUsage, answer="the days, oldest first",
             errors=(400, 404, 503), scope=Scope.READ),
    Endpoint("/api/v1/search", "GET", search, operation_id="search",
             summary="Find completed tasks by tags (all / any), free text, platform, env, uid "
                     "and duration; newest first, with top-tag facets — or, with "
                     "`kind=moments`, the passages (summary, key moments, on-screen text, "
                     "transcript segments) that best match `q`, each with its task and times",
             query=SearchQuery, data=SearchPage,
             answer="matching tasks and facets, or moments",
             errors=(400, 501, 503), scope=Scope.READ),
    Endpoint("/api/v1/me", "GET", me, operation_id="getMe",
             summary="The calling key's team and scopes (the dashboard shows a team's key "
                     "its own team, an admin key everything)",
             query=StatsQuery, data=replies.Me, answer="the key's team and scopes",
             errors=(400,), scope=Scope.READ),
    Endpoint("/api/v1/stats", "GET", stats,
             summary="Tasks by status, queue depth, last hour's completions, failures and "
                     "per-stage p50/p95, key pool capacity left",
             query=StatsQuery, data=replies.Stats, answer="stats", errors=(400, 503),
             scope=Scope.ADMIN),
    Endpoint("/api/v1/stats/charts", "GET", charts, operation_id="getStatsCharts",
             summary="The dashboard's charts over the last 24 h: `throughput` (completed and "
                     "failed per minute from `start`, oldest first), `stages` (p50/p95 per "
                     "stage), `top_tags` (the 20 most frequent tags of the newest 2,000 "
                     "results)",
             data=replies.Charts, answer="chart data", errors=(503,), scope=Scope.ADMIN),
    # public: the page, its files, the API description and the probe; the page itself asks
    # for a token and fetches every number through the token-checked API
    Endpoint("/", "GET", home, public=True, documented=False,
             summary="302 to the dashboard"),
    Endpoint("/dashboard", "GET", dashboard, public=True,
             summary="Operator dashboard (HTML; its data comes from the API with a token)",
             answer="the page", media={}),
    Endpoint("/dashboard/<any(app.js, style.css, favicon.svg, gemini_jobs.js):asset>", "GET",
             dashboard, public=True, documented=False),
    Endpoint("/dashboard/vendor/<any(uplot.min.js, uplot.min.css):vendored>", "GET",
             dashboard, public=True, documented=False),
    Endpoint("/docs", "GET", dashboard, public=True, defaults={"asset": "docs.html"},
             summary="API docs page: this document rendered (Swagger UI, vendored)",
             answer="the page", media={}),
    Endpoint("/docs/<any(docs.js):asset>", "GET", dashboard, public=True, documented=False),
    Endpoint("/docs/vendor/<any(swaggerui.bundle.js, swaggerui.css):vendored>", "GET",
             dashboard, public=True, documented=False),
    Endpoint("/api/v1/openapi.json", "GET", openapi, public=True, summary="This document",
             answer="OpenAPI 3 document", media={}),
    Endpoint("/healthz", "GET", healthz, public=True,
             summary="Reachability of database, Redis and storage",
             data=replies.Health, answer="all reachable", other_replies={503: "something is down"}),
)
"""Every route of the API, in the router's order; the OpenAPI document is built from the
same list (functions/routes.py says what each field means)."""

ROUTES = route_map(ENDPOINTS)
