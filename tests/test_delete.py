"""Deleting tasks and batches (issue 34, part 2): nothing of a deleted task stays in the
database, storage (local folder and GCS emulator), the search index or Redis — checked by
listing them — another task with the same video keeps its own, the rollups stay exact,
and the bad inputs: unknown, malformed, processing and already-deleted tasks."""

from __future__ import annotations

import uuid

import functions_framework
import pytest
import redis
import sqlalchemy as sa

from shared.app.deletion import delete_task
from shared.app.tasks import create_task
from shared.errors import Conflict, InvalidInput, NotFound
from shared.pipeline.runner import handle_delivery
from shared.search.client import build_search_client
from shared.search.index import TagIndex
from shared.search.query import SearchQuery
from shared.services import Services, get_services
from shared.storage import Storage
from shared.tasks.models import CreateTaskRequest, TaskStatus
from shared.tasks.removal import TaskRemoval
from shared.teams.keys import KeyStore, parse_scopes
from tests.test_rollups import drift

PEPPER = "p" * 16 + "epper-for-tests-only-0123456789"


def new_task(services: Services, url: str) -> str:
    request = CreateTaskRequest.model_validate({"url": url, "platform": "rpa"},
                                               context={"platforms": ["rpa"]})
    return create_task(services, request)[0].task_id


def completed(services: Services, url: str) -> str:
    task_id = new_task(services, url)
    handle_delivery(task_id, services.worker)
    assert services.store.get(task_id).status == TaskStatus.COMPLETED
    return task_id


def redis_traces(client: redis.Redis, task_id: str) -> list[str]:
    """Every Redis key whose name or content names the task."""
    found = []
    for name in client.scan_iter():
        kind = client.type(name)
        if kind == "list":
            values = client.lrange(name, 0, -1)
        elif kind == "zset":
            values = client.zrange(name, 0, -1)
        elif kind == "hash":
            values = list(client.hgetall(name).values())
        else:
            values = []
        if task_id in name or task_id in values:
            found.append(name)
    return found


def objects_of(storage: Storage, task_id: str) -> list[str]:
    return [obj.key for obj in storage.list("") if f"/{task_id}/" in obj.key]


def indexed_ids(index: TagIndex) -> set[str]:
    index.refresh()
    hits = index.client.search(index=f"{index.prefix}-*", size=1000,
                               query={"match_all": {}}, _source=["task_id"])
    return {hit["_source"]["task_id"] for hit in hits["hits"]["hits"]}


@pytest.fixture
def indexed(sqlite_services: Services, search_server: str, request) -> Services:
    """SQLite + real Redis + the search server, on the local folder or GCS."""
    sqlite_services.index = TagIndex(build_search_client(search_server, compat_headers=False),
                                     f"vtt-{uuid.uuid4().hex[:8]}")
    return sqlite_services


@pytest.mark.slow
def test_a_deleted_task_leaves_nothing_and_its_twin_keeps_everything(
        indexed: Services, storage: Storage, media_server, redis_client: redis.Redis) -> None:
    services = indexed
    services.storage = storage
    url = media_server.url("files/clip.mp4")
    first, twin = completed(services, url), completed(services, url)
    kept = services.store.get(twin)
    assert kept.result.cached  # the twin's answer came from the first one's row
    assert kept.video_sha256 == services.store.get(first).video_sha256
    assert objects_of(storage, first) and objects_of(storage, twin)
    assert indexed_ids(services.index) == {first, twin}
    twin_objects = objects_of(storage, twin)

    assert delete_task(services, first.upper()) == first  # any form of the id

    assert services.store.get(first) is None
    assert objects_of(storage, first) == []
    assert indexed_ids(services.index) == {twin}
    assert services.index.search(SearchQuery(q="横屏")).total == 1
    assert redis_traces(redis_client, first) == []
    assert drift(services.store.engine).size() == 0
    # the twin keeps its row, its objects, its document and its place in the result cache
    assert objects_of(storage, twin) == twin_objects
    assert services.store.get(completed(services, url)).result.cached  # from the twin
    with pytest.raises(NotFound, match="task_id: no task"):
        delete_task(services, first)  # idempotent: the second delete finds nothing


def test_a_queued_task_leaves_the_queue(sqlite_services: Services,
                                        redis_client: redis.Redis) -> None:
    task_id = new_task(sqlite_services, "https://cdn.example.com/v.mp4")
    sqlite_services.queue.retry_later(task_id, 60)  # in the delayed set with its info
    assert redis_traces(redis_client, task_id)
    delete_task(sqlite_services, task_id)
    assert redis_traces(redis_client, task_id) == []
    assert sqlite_services.queries.status_counts() == {}
    assert drift(sqlite_services.store.engine).size() == 0


def test_bad_deletes(services: Services) -> None:
    """On SQLite and MariaDB: malformed, unknown, processing, waiting for a batch job,
    already deleted."""
    with pytest.raises(InvalidInput, match="task_id: malformed"):
        delete_task(services, "not-a-uuid")
    with pytest.raises(NotFound, match="task_id: no task"):
        delete_task(services, str(uuid.uuid4()))
    task_id = new_task(services, "https://cdn.example.com/v.mp4")
    assert services.store.claim(task_id, 60, 5).task is not None
    with pytest.raises(Conflict, match="being processed"):
        delete_task(services, task_id)
    assert services.store.get(task_id).status == TaskStatus.PROCESSING
    assert services.store.wait_batch(task_id, 1, token="t", key_id="k", model="m",
                                     timings={}, video={})
    with pytest.raises(Conflict, match="Gemini batch job"):
        delete_task(services, task_id)
    assert TaskRemoval(services.store.engine).delete([task_id]) == []  # re-checked in SQL
    with services.store.engine.begin() as conn:  # the job answered: finished
        conn.execute(sa.text("UPDATE video_tasks SET status='failed' WHERE task_id=:i"),
                     {"i": task_id})
    services.store.recount_rollups()
    delete_task(services, task_id)
    with pytest.raises(NotFound):
        delete_task(services, task_id)
    assert drift(services.store.engine).size() == 0


def test_a_claim_and_a_delete_never_both_win(services: Services) -> None:
    """The delete re-checks the status under the row lock: once claimed, it is refused;
    once deleted, the claim finds nothing."""
    claimed = new_task(services, "https://cdn.example.com/a.mp4")
    services.store.claim(claimed, 60, 5)
    assert TaskRemoval(services.store.engine).delete([claimed]) == []
    deleted = new_task(services, "https://cdn.example.com/b.mp4")
    assert TaskRemoval(services.store.engine).delete([deleted]) == [deleted]
    assert services.store.claim(deleted, 60, 5).outcome == "missing"
    assert drift(services.store.engine).size() == 0


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def test_the_delete_route(client) -> None:
    task_id = client.post("/api/v1/task/create", json={
        "url": "https://cdn.example.com/v.mp4", "platform": "rpa"}).get_json()["task_id"]
    answer = client.delete(f"/api/v1/task/{task_id}")
    assert answer.status_code == 200 and answer.get_json()["task_id"] == task_id
    assert client.get(f"/api/v1/task/{task_id}").status_code == 404
    again = client.delete(f"/api/v1/task/{task_id}")
    assert again.status_code == 404 and "no task" in again.get_json()["message"]
    assert client.delete("/api/v1/task/nope").status_code == 400
    assert client.delete("/api/v1/task/a/b").status_code == 400
    assert client.delete(f"/api/v1/task/{uuid.uuid4()}").status_code == 404
    refused = client.delete("/api/v1/task/create")
    assert refused.status_code == 405 and refused.headers["Allow"] == "POST"
    busy = client.post("/api/v1/task/create", json={
        "url": "https://cdn.example.com/w.mp4", "platform": "rpa"}).get_json()["task_id"]
    get_services().store.claim(busy, 60, 5)
    conflict = client.delete(f"/api/v1/task/{busy}")
    assert conflict.status_code == 409 and "being processed" in conflict.get_json()["message"]


def test_deleting_needs_the_admin_scope(app_env, redis_client: redis.Redis) -> None:
    app_env(API_KEY_PEPPER=PEPPER)
    client = functions_framework.create_app("api", "main.py").test_client()
    keys = KeyStore(redis_client, PEPPER)
    writer = keys.create("news", parse_scopes("submit,read"))
    admin = keys.create("ops", parse_scopes("admin"))
    task_id = client.post("/api/v1/task/create", headers={"Authorization": f"Bearer {writer}"},
                          json={"url": "https://cdn.example.com/v.mp4",
                                "platform": "rpa"}).get_json()["task_id"]
    refused = client.delete(f"/api/v1/task/{task_id}",
                            headers={"Authorization": f"Bearer {writer}"})
    assert refused.status_code == 403 and "`admin`" in refused.get_json()["message"]
    assert client.delete(f"/api/v1/task/{task_id}",
                         headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def new_batch(client, urls: list[str]) -> tuple[str, list[str]]:
    answer = client.post("/api/v1/batches", json={
        "name": "b", "items": [{"url": url, "platform": "rpa"} for url in urls]}).get_json()
    return (answer["data"]["batch"]["batch_id"],
            [item["task_id"] for item in answer["data"]["items"]])


def test_deleting_a_batch(client, redis_client: redis.Redis) -> None:
    services = get_services()
    urls = [f"https://cdn.example.com/{n}.mp4" for n in range(3)]
    alone, alone_tasks = new_batch(client, urls)
    answer = client.delete(f"/api/v1/batches/{alone}")
    assert answer.status_code == 200
    assert answer.get_json()["data"] == {"tasks_deleted": 0, "tasks_kept": 0}
    assert client.get(f"/api/v1/batches/{alone}").status_code == 404
    assert all(services.store.get(task_id) for task_id in alone_tasks)  # the tasks stay

    whole, tasks = new_batch(client, urls)
    services.store.claim(tasks[1], 60, 5)
    refused = client.delete(f"/api/v1/batches/{whole}?tasks=true")
    assert refused.status_code == 409 and "1 of the batch's tasks" in refused.get_json()["message"]
    assert all(services.store.get(task_id) for task_id in tasks)  # nothing was deleted
    services.store.release(tasks[1], 1, error_code="worker_lost", message="gone")
    answer = client.delete(f"/api/v1/batches/{whole}?tasks=true")
    assert answer.get_json()["data"] == {"tasks_deleted": 3, "tasks_kept": 0}
    assert client.get(f"/api/v1/batches/{whole}").status_code == 404
    assert not any(services.store.get(task_id) for task_id in tasks)
    assert not any(redis_traces(redis_client, task_id) for task_id in tasks)
    assert client.delete(f"/api/v1/batches/{whole}?tasks=true").status_code == 404
    assert drift(services.store.engine).size() == 0
    with services.store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM batch_items WHERE batch_id IN "
                                    "(:a, :b)"), {"a": alone, "b": whole}).scalar() == 0


@pytest.mark.parametrize(("path", "status", "said"), [
    ("/api/v1/batches/nope", 400, "batch_id: malformed"),
    ("/api/v1/batches/0ee407b1-430c-41bf-9681-f1014bdfeb3d", 404, "batch_id: no batch"),
    ("/api/v1/batches/0a657fa3-6b4e-4fc0-a703-48114754aade?tasks=maybe", 400, "tasks:"),
    ("/api/v1/batches/da680116-829e-4ee0-84bd-11714433dca6?color=red", 400, "color:"),
])
def test_bad_batch_deletes(client, path: str, status: int, said: str) -> None:
    answer = client.delete(path)
    assert answer.status_code == status and answer.get_json()["message"].startswith(said)
