"""Function `cleanup`: Cloud Scheduler calls it daily. It deletes cached videos older than
CACHE_DAYS, re-queues stuck tasks, retries failed search indexing, and answers a JSON
summary."""

from __future__ import annotations

from datetime import date

import flask

from functions.http import check_worker_token, reply
from shared.cache_cleanup import clean_videos, default_range
from shared.errors import ApiError, ServiceUnavailable
from shared.services import get_services
from shared.tasks.callbacks import notify
from shared.tasks.reaper import reap_stuck_tasks, retry_indexing


def cleanup(request: flask.Request) -> flask.Response:
    try:
        services = get_services()
        settings = services.settings
        check_worker_token(request, settings.WORKER_TOKEN)
        dry_run = request.args.get("dry_run", "").lower() in ("1", "true", "yes")
        start, end = default_range(date.today(), settings.CACHE_DAYS)
        videos = clean_videos(services.storage, start, end, dry_run=dry_run)
        reaped = reap_stuck_tasks(services.store, services.queue, settings.MAX_ATTEMPTS,
                                  on_failed=lambda task_id: notify(task_id, services))
        reindexed = retry_indexing(services.store, services.index)
    except ApiError as error:
        return reply(error.status, error.message)
    except ServiceUnavailable as error:
        return reply(503, str(error), headers={"Retry-After": "60"})
    return reply(200, data={"videos": videos.as_dict(), "stuck_tasks": reaped,
                            "reindexed": reindexed})
