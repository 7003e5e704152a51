"""Drives the API through a client that openapi-python-client generated from the served
document (tests/test_generated_client.py runs this in the generator's own venv, where
the generated package `vision_to_tag_client` is installed). Every reply must parse into a
typed model, never a dict; exits non-zero on the first mismatch.

    python client_driver.py ok BASE_URL TOKEN MEDIA_URL
    python client_driver.py down BASE_URL TOKEN MEDIA_URL   (Redis stopped: 503)
"""

from __future__ import annotations

import sys
import time
import uuid

from vision_to_tag_client import AuthenticatedClient, Client
from vision_to_tag_client.api.batches import create_batch, get_batch
from vision_to_tag_client.api.keys import get_accounts, get_pool_history
from vision_to_tag_client.api.operations import get_healthz, get_stats, get_stats_charts
from vision_to_tag_client.api.tasks import create_task, get_task, list_tasks, retry_task
from vision_to_tag_client.models import (
    Batch,
    BatchCreated,
    Charts,
    CreateBatchRequest,
    CreateTaskRequest,
    ErrorEnvelope,
    Health,
    ItemOutcome,
    PoolHistory,
    PoolStats,
    Stats,
    TagResult,
    Task,
    TaskCreated,
    TaskPage,
)
from vision_to_tag_client.models.create_task_request_platform import CreateTaskRequestPlatform


def expect_error(response, status: int, field: str | None = None) -> ErrorEnvelope:
    assert response.status_code == status, (response.status_code, response.content[:300])
    error = response.parsed
    assert isinstance(error, ErrorEnvelope), type(error)
    assert error.code == status and error.message
    if field is not None:
        assert error.field == field, (error.field, error.message)
    return error


def happy_path(api: AuthenticatedClient, media_url: str) -> str:
    request = CreateTaskRequest(url=media_url, platform=CreateTaskRequestPlatform.RPA)
    created = create_task.sync_detailed(client=api, body=request).parsed
    assert isinstance(created.data, TaskCreated), type(created.data)
    task_id = created.task_id
    deadline = time.monotonic() + 60
    while True:
        task = get_task.sync(task_id, client=api).data
        assert isinstance(task, Task), type(task)
        if task.status.value in ("completed", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert task.status.value == "completed", task.message
    assert isinstance(task.result, TagResult) and task.result.tags
    page = list_tasks.sync(client=api, limit=5).data
    assert isinstance(page, TaskPage) and isinstance(page.tasks[0], Task)
    batch = create_batch.sync(client=api, body=CreateBatchRequest(name="driver", items=[
        CreateTaskRequest(url=media_url, platform=CreateTaskRequestPlatform.RPA)])).data
    assert isinstance(batch, BatchCreated) and isinstance(batch.items[0], ItemOutcome)
    shown = get_batch.sync(batch.batch.batch_id, client=api).data
    assert isinstance(shown, Batch) and shown.total == 1
    operations(api)
    return task_id


def operations(api: AuthenticatedClient) -> None:
    """The operators' replies: typed too."""
    stats = get_stats.sync(client=api).data
    assert isinstance(stats, Stats) and stats.tasks["completed"] >= 1, stats
    charts = get_stats_charts.sync(client=api).data
    assert isinstance(charts, Charts) and sum(charts.throughput.completed) >= 1
    assert isinstance(get_accounts.sync(client=api).data, PoolStats)
    history = get_pool_history.sync(client=api, days=2).data
    assert isinstance(history, PoolHistory) and len(history.days) == 2
    health = get_healthz.sync(client=Client(base_url=api._base_url, timeout=30)).data
    assert isinstance(health, Health) and health.database == "ok"


def errors(api: AuthenticatedClient, anonymous: Client, task_id: str) -> None:
    bad = CreateTaskRequest(url="ftp://example.com/v.mp4", platform=CreateTaskRequestPlatform.RPA)
    expect_error(create_task.sync_detailed(client=api, body=bad), 400, "url")
    expect_error(get_task.sync_detailed(str(uuid.uuid4()), client=api), 404, "task_id")
    expect_error(retry_task.sync_detailed(task_id, client=api), 409)
    expect_error(list_tasks.sync_detailed(client=anonymous), 401, "Authorization")
    huge = CreateTaskRequest(url="https://example.com/v.mp4",
                             platform=CreateTaskRequestPlatform.RPA, uid="u" * 70_000)
    expect_error(create_task.sync_detailed(client=api, body=huge), 413, "body")
    throttled(api)


def throttled(api: AuthenticatedClient) -> None:
    """Wrong keys from one address (AUTH_FAILURE_LIMIT=3 here): 401s, then 429 with
    Retry-After, in the error model. Last: the address stays refused for the window."""
    wrong = AuthenticatedClient(base_url=api._base_url, token="wrong-token", timeout=30)
    for _ in range(3):
        expect_error(list_tasks.sync_detailed(client=wrong), 401)
    response = list_tasks.sync_detailed(client=wrong)
    expect_error(response, 429)
    assert int(response.headers["Retry-After"]) >= 1


def main(phase: str, base_url: str, token: str, media_url: str) -> int:
    api = AuthenticatedClient(base_url=base_url, token=token, timeout=30)
    anonymous = Client(base_url=base_url, timeout=30)
    if phase == "ok":
        errors(api, anonymous, happy_path(api, media_url))
    else:
        request = CreateTaskRequest(url=media_url, platform=CreateTaskRequestPlatform.RPA)
        response = create_task.sync_detailed(client=api, body=request)
        expect_error(response, 503)
        assert int(response.headers["Retry-After"]) >= 1
    print(f"{phase}: every reply parsed into its model")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
