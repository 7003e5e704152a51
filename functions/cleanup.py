"""Function `cleanup`: Cloud Scheduler calls it daily to delete cached videos older than
CACHE_DAYS, and every minute with `?scope=tasks` to reconcile tasks with the queue
(expired leases, pending rows without a delivery) and retry failed search indexing.
It answers a JSON summary."""

from __future__ import annotations

from datetime import date

import flask

from functions.http import check_worker_token, nosniff, reply
from shared.cache_cleanup import clean_videos, default_range
from shared.errors import ApiError, ServiceUnavailable
from shared.pipeline.reaper import reap_stuck_tasks, retry_indexing
from shared.pipeline.runner import after_failure
from shared.services import get_services


@nosniff
def cleanup(request: flask.Request) -> flask.Response:
    try:
        services = get_services()
        settings = services.settings
        check_worker_token(request, settings.WORKER_TOKEN)
        dry_run = request.args.get("dry_run", "").lower() in ("1", "true", "yes")
        scope = request.args.get("scope", "all")
        if scope not in ("all", "tasks"):
            raise ApiError(400, "scope: must be all or tasks")
        data = {}
        if scope == "all":
            start, end = default_range(date.today(), settings.CACHE_DAYS)
            data["videos"] = clean_videos(services.storage, start, end,
                                          dry_run=dry_run).as_dict()
        data["stuck_tasks"] = reap_stuck_tasks(
            services.store, services.queue, settings.MAX_ATTEMPTS,
            on_failed=lambda task_id: after_failure(task_id, services),
            grace_s=settings.RECONCILE_GRACE_S)
        data["reindexed"] = retry_indexing(services.store, services.index)
    except ApiError as error:
        return reply(error.status, error.message)
    except ServiceUnavailable as error:
        return reply(503, str(error), headers={"Retry-After": "60"})
    return reply(200, data=data)
