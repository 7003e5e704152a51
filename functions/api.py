"""Function `api`: the public HTTP API (README, "HTTP API")."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
from pydantic import ValidationError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from functions.http import (
    api_token,
    check_token,
    describe_validation,
    json_object,
    nosniff,
    rejection_reply,
    reply,
    retry_after,
    single_valued,
    unavailable_reply,
)
from functions.openapi import openapi_document
from shared.accounts.history import HistoryQuery
from shared.app import operations
from shared.app.charts import chart_data
from shared.app.frames import frame_bytes
from shared.app.stats import gemini_status, service_stats
from shared.config import get_settings
from shared.errors import SERVICE_RETRY_S, Rejected, ServiceUnavailable
from shared.logs import log_context, trace_fields
from shared.search.query import SearchQuery
from shared.services import Services, get_services
from shared.tasks.batch_models import (
    MAX_BATCH_BODY_BYTES,
    BatchResultsQuery,
    CreateBatchRequest,
    ExportQuery,
    ListBatchesQuery,
)
from shared.tasks.export import CONTENT_TYPES
from shared.tasks.models import (
    CreateTaskRequest,
    ListTasksQuery,
    StatsQuery,
    SyncTagRequest,
    TaskStatus,
)
from shared.tasks.subtitles import SUBTITLE_TYPES

log = logging.getLogger("vision_to_tag.api")

ROUTES = Map(
    [
        Rule("/api/v1/task/create", endpoint="create", methods=["POST"]),
        Rule("/api/v1/task/get/<task_id>", endpoint="get", methods=["GET"]),
        Rule("/api/v1/task/<task_id>/retry", endpoint="retry", methods=["POST"]),
        Rule("/api/v1/task/<task_id>", endpoint="get", methods=["GET"]),
        Rule("/api/v1/tasks", endpoint="list", methods=["GET"]),
        Rule("/api/v1/tasks/export", endpoint="export", methods=["GET"]),
        Rule("/api/v1/task/<task_id>/frames/<index>", endpoint="frame", methods=["GET"]),
        Rule("/api/v1/task/<task_id>/subtitles.<any(vtt, srt):kind>", endpoint="subtitles",
             methods=["GET"]),
        Rule("/api/v1/batches", endpoint="create_batch", methods=["POST"]),
        Rule("/api/v1/batches", endpoint="list_batches", methods=["GET"]),
        Rule("/api/v1/batches/<batch_id>", endpoint="get_batch", methods=["GET"]),
        Rule("/api/v1/batches/<batch_id>/results", endpoint="batch_results", methods=["GET"]),
        Rule("/api/v1/vision_to_tag/google", endpoint="tag_now", methods=["POST"]),
        Rule("/api/v1/accounts", endpoint="accounts", methods=["GET"]),
        Rule("/api/v1/accounts/history", endpoint="pool_history", methods=["GET"]),
        Rule("/api/v1/accounts/<key_id>/history", endpoint="account_history",
             methods=["GET"]),
        Rule("/api/v1/accounts/<key_id>/<any(enable, disable):action>",
             endpoint="account_status", methods=["POST"]),
        Rule("/api/v1/search", endpoint="search", methods=["GET"]),
        Rule("/api/v1/stats", endpoint="stats", methods=["GET"]),
        Rule("/api/v1/stats/charts", endpoint="charts", methods=["GET"]),
        Rule("/dashboard", endpoint="dashboard", methods=["GET"]),
        Rule("/dashboard/<any(app.js, style.css, favicon.svg, gemini_jobs.js):asset>",
             endpoint="dashboard", methods=["GET"]),
        Rule("/dashboard/vendor/<any(uplot.min.js, uplot.min.css):vendored>",
             endpoint="dashboard", methods=["GET"]),
        Rule("/api/v1/openapi.json", endpoint="openapi", methods=["GET"]),
        Rule("/healthz", endpoint="healthz", methods=["GET"]),
    ],
    strict_slashes=False,
)
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


PUBLIC = {"healthz", "openapi", "dashboard"}
"""No token needed: probes, the API description, and the dashboard's static files (the
page itself asks for a token and fetches every number through the token-checked API)."""

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.html": "text/html", "app.js": "text/javascript", "style.css": "text/css",
          "favicon.svg": "image/svg+xml", "gemini_jobs.js": "text/javascript",
          "vendor/uplot.min.js": "text/javascript", "vendor/uplot.min.css": "text/css"}
"""The dashboard's files; vendor/ holds uPlot 1.6.32 (MIT, vendor/uplot.LICENSE) for the
pool's charts: no CDN, nothing fetched from elsewhere."""


@nosniff
def api(request: flask.Request) -> flask.Response:
    """Cloud Functions entry point."""
    try:
        endpoint, args = ROUTES.bind_to_environ(request.environ).match()
    except MethodNotAllowed as error:
        allowed = ", ".join(sorted(error.valid_methods or []))
        return reply(405, f"method {request.method} not allowed here (allowed: {allowed})",
                     headers={"Allow": allowed})
    except NotFound:
        if request.path.startswith("/api/v1/task/"):  # an id with slashes in it
            return reply(400, operations.MALFORMED_TASK_ID)
        return reply(404, f"no route {request.path}")
    if endpoint == "get" and args.get("task_id") == "create":  # GET on the create route
        return reply(405, f"method {request.method} not allowed here (allowed: POST)",
                     headers={"Allow": "POST"})
    with log_context(**trace_fields(request.headers.get("X-Cloud-Trace-Context"))):
        return _dispatch(request, endpoint, args)


def _dispatch(request: flask.Request, endpoint: str, args: dict) -> flask.Response:
    try:
        if endpoint == "healthz":  # a probe answers within HEALTH_TIMEOUT_S, even cold
            services = operations.ready_services(get_services, get_settings().HEALTH_TIMEOUT_S)
        else:
            services = get_services()
        if endpoint not in PUBLIC:
            check_token(api_token(request), services.settings.API_TOKENS, "Authorization")
        return HANDLERS[endpoint](request, services, **args)
    except Rejected as error:
        return rejection_reply(error)
    except ValidationError as error:
        return reply(400, describe_validation(error))
    except ServiceUnavailable as error:
        log.warning("%s", error)
        return unavailable_reply(error, message=f"{error}; nothing was changed, try again")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return reply(500, "internal error")


def validation_context(services: Services) -> dict[str, Any]:
    """What the request models check against: this deployment's platforms and envs, and
    the mode a request that names none gets (DEFAULT_MODE)."""
    return {"platforms": services.settings.PLATFORMS, "envs": services.settings.ENVS,
            "default_mode": services.settings.DEFAULT_MODE}


def create(request: flask.Request, services: Services) -> flask.Response:
    body = json_object(request)
    parsed = CreateTaskRequest.model_validate(body, context=validation_context(services))
    task, created = operations.create_task(services, parsed, request.headers.get("Idempotency-Key"))
    return reply(200, "success" if created else "success (existing task for this Idempotency-Key)",
                 task_id=task.task_id,
                 data={"status": task.status, "url": task.url,
                       "task_url": f"/api/v1/task/{task.task_id}"})


def tag_now(request: flask.Request, services: Services) -> flask.Response:
    parsed = SyncTagRequest.model_validate(json_object(request), context={
        **validation_context(services), "default_mode": "interactive"})
    outcome = operations.tag_now(services, parsed)
    task, headers = outcome.task, retry_after(outcome.retry_after_s)
    if not outcome.timed_out and task.status == TaskStatus.COMPLETED and task.result:
        data = {"tags": task.result.tags, "result": task.result.model_dump(mode="json"),
                "task": task.model_dump(mode="json", exclude={"result"})}
        return reply(200, task_id=task.task_id, data=data)
    status = 504 if outcome.timed_out else SYNC_ERROR_STATUS.get(task.error_code or "", 503)
    if outcome.timed_out:
        message = (f"still processing after {services.settings.SYNC_TIMEOUT_S:g} s; "
                   f"poll GET /api/v1/task/{task.task_id}")
    else:
        message = f"{task.error_code}: {task.message}" if task.error_code else "failed"
    return reply(status, message, task_id=task.task_id,
                 data={"task": task.model_dump(mode="json")}, headers=headers)


def get(request: flask.Request, services: Services, task_id: str) -> flask.Response:
    task = operations.get_task(services, task_id)
    return reply(200, task_id=task.task_id, data=task.model_dump(mode="json"))


def list_(request: flask.Request, services: Services) -> flask.Response:
    query = ListTasksQuery.model_validate(single_valued(request),
                                          context=validation_context(services))
    page = operations.list_tasks(services, query)
    return reply(200, data=page.model_dump(mode="json"))


def retry(request: flask.Request, services: Services, task_id: str) -> flask.Response:
    task = operations.retry_task(services, task_id)
    return reply(200, "re-queued", task_id=task.task_id, data=task.model_dump(mode="json"))


def create_batch(request: flask.Request, services: Services) -> flask.Response:
    body = json_object(request, MAX_BATCH_BODY_BYTES)
    parsed = CreateBatchRequest.model_validate(body)
    created, new = operations.create_batch(services, parsed, body,
                                           request.headers.get("Idempotency-Key"),
                                           validation_context(services))
    message = "success" if new else "success (existing batch for this Idempotency-Key)"
    return reply(200, message, data=created.model_dump(mode="json"))


def get_batch(request: flask.Request, services: Services, batch_id: str) -> flask.Response:
    batch = operations.get_batch(services, batch_id)
    return reply(200, data=batch.model_dump(mode="json"))


def list_batches(request: flask.Request, services: Services) -> flask.Response:
    query = ListBatchesQuery.model_validate(single_valued(request))
    return reply(200, data=operations.list_batches(services, query).model_dump(mode="json"))


def batch_results(request: flask.Request, services: Services, batch_id: str) -> flask.Response:
    query = BatchResultsQuery.model_validate(single_valued(request))
    pieces = operations.batch_results(services, batch_id, query)
    return _download(pieces, query.format, f"batch-{batch_id[:36]}")


def export(request: flask.Request, services: Services) -> flask.Response:
    query = ExportQuery.model_validate(single_valued(request),
                                       context=validation_context(services))
    return _download(operations.export_tasks(services, query), query.format, "tasks")


def _download(pieces: Iterator[bytes], kind: str, name: str) -> flask.Response:
    """Streamed as it is read (no length known in advance), saved as a file."""
    response = flask.Response(pieces, content_type=CONTENT_TYPES[kind])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response


def subtitles(request: flask.Request, services: Services, task_id: str,
              kind: str) -> flask.Response:
    text = operations.subtitles(services, task_id, kind)
    return flask.Response(text.encode(), content_type=SUBTITLE_TYPES[kind])


def accounts(request: flask.Request, services: Services) -> flask.Response:
    return reply(200, data=operations.pool_stats(services))


def account_status(request: flask.Request, services: Services, key_id: str,
                   action: str) -> flask.Response:
    account = operations.set_account_enabled(services, key_id, action == "enable")
    return reply(200, f"key {action}d", data=account)


def account_history(request: flask.Request, services: Services, key_id: str
                    ) -> flask.Response:
    query = HistoryQuery.model_validate(single_valued(request))
    return reply(200, data=operations.account_history(services, key_id, query))


def pool_history(request: flask.Request, services: Services) -> flask.Response:
    query = HistoryQuery.model_validate(single_valued(request))
    return reply(200, data=operations.pool_history(services, query))


def search(request: flask.Request, services: Services) -> flask.Response:
    query = SearchQuery.model_validate(single_valued(request),
                                       context=validation_context(services))
    return reply(200, data=operations.search(services, query).model_dump(mode="json"))


def stats(request: flask.Request, services: Services) -> flask.Response:
    StatsQuery.model_validate(single_valued(request))
    return reply(200, data=service_stats(services))


def charts(request: flask.Request, services: Services) -> flask.Response:
    return reply(200, data=chart_data(services))


def frame(request: flask.Request, services: Services, task_id: str,
          index: str) -> flask.Response:
    response = flask.Response(frame_bytes(services, task_id, index), mimetype="image/jpeg")
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


def healthz(request: flask.Request, services: Services) -> flask.Response:
    checks = operations.health(services)
    healthy = all(value == "ok" for value in checks.values())
    data: dict[str, object] = dict(checks)
    if services.settings.TAGGER == "gemini" and checks["redis"] == "ok":
        data["gemini"] = gemini_status(services)  # said plainly; tasks wait, nothing fails
    return reply(200 if healthy else 503, "ok" if healthy else "degraded", data=data,
                 headers=None if healthy else retry_after(SERVICE_RETRY_S))


def openapi(request: flask.Request, services: Services) -> flask.Response:
    settings = services.settings
    return flask.jsonify(openapi_document(tuple(settings.PLATFORMS), tuple(settings.ENVS)))


HANDLERS = {
    "create": create, "tag_now": tag_now, "get": get, "list": list_, "retry": retry,
    "accounts": accounts, "account_status": account_status, "search": search,
    "account_history": account_history, "pool_history": pool_history,
    "stats": stats, "charts": charts, "frame": frame, "dashboard": dashboard,
    "healthz": healthz, "openapi": openapi,
    "create_batch": create_batch, "get_batch": get_batch, "list_batches": list_batches,
    "batch_results": batch_results, "export": export, "subtitles": subtitles,
}
