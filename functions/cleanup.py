"""Function `cleanup`: Cloud Scheduler calls it daily to delete cached videos older than
CACHE_DAYS, every minute with `?scope=tasks` to reconcile tasks with the queue
(expired leases, pending rows without a delivery), remove uploads no task took within
UPLOAD_TTL_S (issue 35), retry failed search indexing and watch
the key pool (capacity history, alerts), every 15 minutes with `?scope=keys` to probe
the disabled keys that can heal, and with `?scope=batches` to run the Gemini batch
collector (issue 27). The daily run also deletes the finished tasks older than
TASK_RETENTION_DAYS (issue 34; `?scope=retention` runs that alone). It answers a JSON
summary."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

import flask

from functions.http import (
    ApiError,
    check_worker_token,
    nosniff,
    rejection_reply,
    reply,
    unavailable_reply,
)
from shared.app.cleanup import clean_videos, default_range
from shared.app.pool_jobs import keys_job, watch_pool
from shared.app.retention import run_retention
from shared.app.uploads import clean_uploads
from shared.errors import ServiceUnavailable
from shared.pipeline.batch_collector import collect
from shared.pipeline.reaper import reconcile
from shared.redis_conn import redis_outage
from shared.services import Services, get_services

log = logging.getLogger("vision_to_tag.cleanup")


@nosniff
def cleanup(request: flask.Request) -> flask.Response:
    try:
        services = get_services()
        settings = services.settings
        check_worker_token(request, settings.queue.WORKER_TOKEN)
        dry_run = request.args.get("dry_run", "").lower() in ("1", "true", "yes")
        scope = request.args.get("scope", "all")
        if scope not in ("all", "tasks", "keys", "batches", "retention"):
            raise ApiError(400, "scope: must be all, tasks, keys, batches or retention")
        data: dict[str, object] = {}
        if scope == "keys":
            with redis_outage():
                return reply(200, data={"keys": keys_job(services)})
        if scope == "batches":
            return reply(200, data={"batches": collect(services.worker)})
        if scope == "retention":
            return reply(200, data={"retention": _retention(services, dry_run)})
        if scope == "all":
            start, end = default_range(date.today(), settings.housekeeping.CACHE_DAYS)
            data["videos"] = clean_videos(services.storage, start, end,
                                          dry_run=dry_run).as_dict()
            data["retention"] = _retention(services, dry_run)
        with redis_outage():
            data["uploads"] = clean_uploads(services, dry_run=dry_run)
        swept = reconcile(services.worker)
        reindexed, batches = swept.pop("reindexed"), swept.pop("batches_finished")
        data["rollups_recounted"] = swept.pop("rollups_recounted")
        data["stuck_tasks"], data["reindexed"] = swept, reindexed
        data["batches_finished"] = batches
        data["keys"] = _pool_job(keys_job if scope == "all" else watch_pool, services)
    except ApiError as error:
        return rejection_reply(error)
    except ServiceUnavailable as error:
        return unavailable_reply(error, retry_after_s=60)
    return reply(200, data=data)


def _retention(services: Services, dry_run: bool) -> dict:
    """The retention job; a dry run deletes nothing, so it is not run. Its failure (the
    search cluster or storage down) never costs the daily run its other parts: what it
    did not delete is deleted by the next run."""
    if dry_run:
        return {"enabled": services.settings.housekeeping.TASK_RETENTION_DAYS is not None,
                "skipped": "dry_run"}
    try:
        return run_retention(services)
    except Exception as error:  # noqa: BLE001 - logged and answered
        log.warning("retention job failed: %s: %s", type(error).__name__, error)
        return {"enabled": True, "error": type(error).__name__}


def _pool_job(job: Callable[[Services], dict], services: Services) -> dict:
    """The pool's part never costs the tasks' part its answer."""
    try:
        return job(services)
    except Exception as error:  # noqa: BLE001 - logged and answered
        log.warning("key pool job failed: %s: %s", type(error).__name__, error)
        return {"error": f"{type(error).__name__}"}
