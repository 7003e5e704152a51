"""CloudTasksQueue: the production queue backend (google-cloud-tasks).

Each task id becomes an HTTP task that POSTs `{"task_id": …}` to the worker function,
with an OIDC token for TASKS_SERVICE_ACCOUNT (audience = the worker URL) so the worker can
stay private. Task names are `{queue}/tasks/{hash8}-{task_id}-{generation}`: the hashed
prefix spreads names over Cloud Tasks' key space, and a duplicate create of the same
generation is "already exists", i.e. already queued — treated as success. Cloud Tasks
has no dead-letter queue: the worker records the final failure and answers 2xx.
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from google.api_core import exceptions as gexc
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2

from shared.errors import unavailable_on

log = logging.getLogger("vision_to_tag.cloudtasks")

MIN_DISPATCH_S, MAX_DISPATCH_S = 15, 1800
"""Cloud Tasks accepts HTTP dispatch deadlines between 15 s and 30 min."""

CREATE_TIMEOUT_S = 5.0
"""Default of CLOUD_TASKS_TIMEOUT_S: an enqueue is part of the create request's 10 s."""
ENQUEUE_THREADS = 16


def task_name(queue_path: str, task_id: str, generation: str = "0") -> str:
    prefix = hashlib.sha256(task_id.encode()).hexdigest()[:8]
    return f"{queue_path}/tasks/{prefix}-{task_id}-{generation}"


def build_tasks_client(emulator_host: str = "") -> tasks_v2.CloudTasksClient:
    """The real client; `emulator_host` (host:port) talks plain gRPC to a local emulator."""
    if not emulator_host:
        return tasks_v2.CloudTasksClient()
    import grpc
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(emulator_host)
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


class CloudTasksQueue:
    def __init__(self, client: tasks_v2.CloudTasksClient, queue_path: str, worker_url: str,
                 service_account: str = "", dispatch_deadline_s: int = 600,
                 timeout_s: float = CREATE_TIMEOUT_S) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.queue_path = queue_path
        self.worker_url = worker_url
        self.service_account = service_account
        self.dispatch_deadline_s = min(MAX_DISPATCH_S, max(MIN_DISPATCH_S, dispatch_deadline_s))

    def enqueue(self, task_id: str, *, url: str = "", delay_s: float = 0,
                generation: str = "0", planned: bool = False, team: str = "") -> None:
        """`team` is not sent: the worker's fair gate reads it from the task's row."""
        request = tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=self.worker_url,
            headers={"Content-Type": "application/json"},
            body=json.dumps({"task_id": task_id}).encode(),
        )
        if self.service_account:
            request.oidc_token = tasks_v2.OidcToken(
                service_account_email=self.service_account, audience=self.worker_url)
        task = tasks_v2.Task(
            name=task_name(self.queue_path, task_id, generation),
            http_request=request,
            dispatch_deadline=duration_pb2.Duration(seconds=self.dispatch_deadline_s),
        )
        if delay_s > 0:
            due = timestamp_pb2.Timestamp()
            due.FromDatetime(datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=delay_s))
            task.schedule_time = due
        with unavailable_on("cloud tasks", gexc.GoogleAPICallError, gexc.RetryError):
            try:
                self.client.create_task(parent=self.queue_path, task=task,
                                        timeout=self.timeout_s)
            except gexc.AlreadyExists:
                log.info("task already queued", extra={"task_id": task_id})

    def enqueue_many(self, items: list[tuple[str, str]], team: str = "") -> None:
        """Cloud Tasks creates one task per call: ENQUEUE_THREADS calls at a time; the
        first outage is raised once all have returned (the caller deletes the rows, and a
        delivery whose row is gone is acknowledged and dropped by the worker)."""
        with ThreadPoolExecutor(max_workers=ENQUEUE_THREADS) as pool:
            futures = [pool.submit(self.enqueue, task_id, url=url) for task_id, url in items]
        for future in futures:
            future.result()

    def dead_letter(self, task_id: str) -> None:
        """Nothing to move: the task row says `failed` and the worker answered 2xx."""
        log.warning("task ran out of attempts", extra={"task_id": task_id})

    def forget(self, task_ids: list[str]) -> None:
        """Nothing kept here: a delivery of a deleted task finds no row and is acknowledged
        (its name cannot be known without listing the queue)."""

    def depth(self) -> None:
        return None

    def is_live(self, task_id: str, generation: str) -> bool | None:
        """Whether the named delivery still exists (a task is deleted once acknowledged)."""
        try:
            self.client.get_task(name=task_name(self.queue_path, task_id, generation),
                                 timeout=self.timeout_s)
        except gexc.NotFound:
            return False
        except (gexc.GoogleAPICallError, gexc.RetryError):
            return None
        return True
