"""Function `cleanup`: Cloud Scheduler calls it daily to delete cached videos older than
CACHE_DAYS, every minute with `?scope=tasks` to reconcile tasks with the queue
(expired leases, pending rows without a delivery) and retry failed search indexing, and
with `?scope=batches` to run the Gemini batch collector (issue 27). It answers a JSON
summary."""

from __future__ import annotations

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
from shared.cache_cleanup import clean_videos, default_range
from shared.errors import ServiceUnavailable
from shared.pipeline.batch_collector import collect
from shared.pipeline.reaper import reconcile
from shared.services import get_services


@nosniff
def cleanup(request: flask.Request) -> flask.Response:
    try:
        services = get_services()
        settings = services.settings
        check_worker_token(request, settings.WORKER_TOKEN)
        dry_run = request.args.get("dry_run", "").lower() in ("1", "true", "yes")
        scope = request.args.get("scope", "all")
        if scope not in ("all", "tasks", "batches"):
            raise ApiError(400, "scope: must be all, tasks or batches")
        if scope == "batches":
            return reply(200, data={"batches": collect(services)})
        data = {}
        if scope == "all":
            start, end = default_range(date.today(), settings.CACHE_DAYS)
            data["videos"] = clean_videos(services.storage, start, end,
                                          dry_run=dry_run).as_dict()
        swept = reconcile(services)
        reindexed, batches = swept.pop("reindexed"), swept.pop("batches_finished")
        data["stuck_tasks"], data["reindexed"] = swept, reindexed
        data["batches_finished"] = batches
    except ApiError as error:
        return rejection_reply(error)
    except ServiceUnavailable as error:
        return unavailable_reply(error, retry_after_s=60)
    return reply(200, data=data)
