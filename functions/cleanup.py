"""Function `cleanup`: Cloud Scheduler calls it daily; it re-queues stuck tasks."""

from __future__ import annotations

import flask

from functions.http import check_token, reply
from shared.errors import ApiError, ServiceUnavailable
from shared.services import get_services
from shared.tasks.reaper import reap_stuck_tasks


def cleanup(request: flask.Request) -> flask.Response:
    try:
        services = get_services()
        token = services.settings.WORKER_TOKEN
        check_token(request.headers.get("X-Worker-Token"), [token] if token else [],
                    "X-Worker-Token")
        reaped = reap_stuck_tasks(services.store, services.queue, services.settings.MAX_ATTEMPTS)
    except ApiError as error:
        return reply(error.status, error.message)
    except ServiceUnavailable as error:
        return reply(503, str(error), headers={"Retry-After": "60"})
    return reply(200, data={"stuck_tasks": reaped})
