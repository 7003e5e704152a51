"""Function `process_task`: the queue delivers `{"task_id"}` here (docs/architecture.md,
"Queue and lease protocol")."""

from __future__ import annotations

import logging

import flask

from functions.http import (
    ApiError,
    check_worker_token,
    json_object,
    nosniff,
    rejection_reply,
    reply,
    retry_after,
    unavailable_reply,
)
from shared.errors import ServiceUnavailable
from shared.logs import log_context, trace_fields
from shared.pipeline.runner import Delivery, DeliveryKind, handle_delivery
from shared.services import get_services
from shared.tasks.models import TASK_ID_PATTERN

log = logging.getLogger("vision_to_tag.worker")

HTTP_STATUS: dict[DeliveryKind, int] = {
    DeliveryKind.DONE: 200, DeliveryKind.DROP: 200, DeliveryKind.RETRY_AFTER: 503,
}
"""What the queue hears: 2xx drops the delivery, 503 + Retry-After delivers it again."""


@nosniff
def process_task(request: flask.Request) -> flask.Response:
    """Cloud Functions entry point; a 2xx tells the queue to drop the delivery."""
    try:
        services = get_services()
        check_worker_token(request, services.settings.queue.WORKER_TOKEN)
        if request.method != "POST":
            raise ApiError(405, f"method {request.method} not allowed (allowed: POST)")
        if services.settings.queue.QUEUE == "cloudtasks" and not request.headers.get(
                "X-CloudTasks-TaskName"):
            # Google strips X-CloudTasks-* from outside requests: without it, the caller
            # is not our queue.
            raise ApiError(403, "X-CloudTasks-TaskName: required (deliveries come from "
                                "Cloud Tasks)")
        task_id = json_object(request).get("task_id")
        if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
            # no retry could ever fix it: acknowledge (no retry storm) and say why
            log.warning("delivery with a missing or malformed task_id: acknowledged")
            return reply(200, "task_id: missing or malformed (expected a UUID); delivery "
                              "acknowledged and dropped")
    except ApiError as error:
        return rejection_reply(error)
    except ServiceUnavailable as error:
        return unavailable_reply(error)
    with log_context(task_id=task_id,
                     **trace_fields(request.headers.get("X-Cloud-Trace-Context"))):
        log.info(
            "delivery: queue retry %s, execution %s",
            request.headers.get("X-CloudTasks-TaskRetryCount", "-"),
            request.headers.get("X-CloudTasks-TaskExecutionCount", "-"),
        )
        delivery = handle_delivery(task_id, services.worker)
    return delivery_reply(task_id, delivery)


def delivery_reply(task_id: str, delivery: Delivery) -> flask.Response:
    """The runner's outcome as the envelope the queue reads (docs/architecture.md,
    "Answers of `process_task`")."""
    return reply(HTTP_STATUS[delivery.kind], delivery.message, task_id=task_id,
                 data={"status": delivery.task_status},
                 headers=retry_after(delivery.retry_after_s))
