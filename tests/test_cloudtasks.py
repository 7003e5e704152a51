"""CloudTasksQueue with the real google-cloud-tasks client against gcloud-tasks-emulator
(bound to 127.0.0.1), whose dispatch reaches the real `process_task` function."""

from __future__ import annotations

import threading

import functions_framework
import pytest
from werkzeug.serving import make_server

from scripts.stack import free_port
from shared.config import ConfigError, load_settings
from shared.queue.cloudtasks import build_tasks_client, task_name
from shared.services import get_services
from tests.helpers import wait_for

QUEUE = "projects/vtt-test/locations/us-central1/queues/tagging"


@pytest.fixture(scope="session")
def tasks_emulator():
    from gcloud_tasks_emulator import server as emulator

    class LocalAPIThread(emulator.APIThread):
        """The emulator binds [::] (all interfaces); tests bind 127.0.0.1 only."""

        def run(self) -> None:
            from concurrent import futures

            import grpc

            self._httpd = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            emulator.add_CloudTasksServicer_to_server(emulator.Greeter(self._state),
                                                      self._httpd)
            self._httpd.add_insecure_port(f"127.0.0.1:{self._port}")
            self._httpd.start()

    port = free_port()
    server = emulator.create_server("127.0.0.1", port, default_queue_names=[QUEUE])
    server._api = LocalAPIThread(server._state, "127.0.0.1", port)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def worker_server(app_env):
    """process_task served over HTTP on 127.0.0.1 (the URL Cloud Tasks dispatches to)."""
    port = free_port()
    app = functions_framework.create_app("process_task", "main.py")
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/"
    httpd.shutdown()


@pytest.fixture
def cloud_env(app_env, tasks_emulator, worker_server):
    app_env(QUEUE="cloudtasks", CLOUD_TASKS_QUEUE=QUEUE, WORKER_URL=worker_server,
            CLOUD_TASKS_EMULATOR_HOST=tasks_emulator)
    return app_env


def test_created_task_is_dispatched_to_the_worker_and_completes(cloud_env, media_server):
    client = functions_framework.create_app("api", "main.py").test_client()
    body = client.post("/api/v1/task/create", json={
        "url": media_server.url("files/clip.mp4"), "platform": "rpa"}).get_json()
    assert body["code"] == 200, body
    store = get_services().store
    task = wait_for(lambda: (t := store.get(body["task_id"])).status == "completed" and t,
                    timeout_s=30)
    assert task.attempts == 1 and task.result.tags


def test_duplicate_create_is_harmless(cloud_env, media_server):
    services = get_services()
    from shared.app.tasks import create_task
    from shared.tasks.models import CreateTaskRequest

    request = CreateTaskRequest.model_validate(
        {"url": media_server.url("files/clip.mp4"), "platform": "rpa"},
        context={"platforms": ["rpa"]})
    task = create_task(services, request)[0]
    services.queue.enqueue(task.task_id, url=task.url)  # same name again: no error
    done = wait_for(lambda: (t := services.store.get(task.task_id)).status == "completed"
                    and t, timeout_s=30)
    assert done.attempts == 1  # the second delivery was acknowledged without work
    assert task_name(QUEUE, task.task_id) == task_name(QUEUE, task.task_id)
    assert task_name(QUEUE, task.task_id, "a1") != task_name(QUEUE, task.task_id)


def test_emulator_down_at_create_is_503_without_orphan(app_env):
    app_env(QUEUE="cloudtasks", CLOUD_TASKS_QUEUE=QUEUE, WORKER_URL="http://127.0.0.1:9/",
            CLOUD_TASKS_EMULATOR_HOST=f"127.0.0.1:{free_port()}")
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.post("/api/v1/task/create", json={
        "url": "https://cdn.example.com/v.mp4", "platform": "rpa"})
    assert response.status_code == 503 and "cloud tasks" in response.get_json()["message"]
    assert sum(get_services().queries.count_by_status().values()) == 0


def test_worker_requires_cloud_tasks_headers(cloud_env, worker_server):
    import requests

    task_id = "a" * 32
    plain = requests.post(worker_server, json={"task_id": task_id}, timeout=10)
    assert plain.status_code == 403 and "X-CloudTasks-TaskName" in plain.json()["message"]
    queued = requests.post(worker_server, json={"task_id": task_id}, timeout=10,
                           headers={"X-CloudTasks-TaskName": "t",
                                    "X-CloudTasks-TaskRetryCount": "0"})
    assert queued.status_code == 200  # unknown task: acknowledged and dropped


CLOUD = {"QUEUE": "cloudtasks", "CLOUD_TASKS_QUEUE": QUEUE, "WORKER_URL": "https://w.example",
         "REDIS_URL": "redis://10.0.0.3:6379/0", "DATABASE_URL": "mysql+pymysql://u@/d"}


@pytest.mark.parametrize(("env", "message"), [
    ({**CLOUD, "CLOUD_TASKS_QUEUE": ""}, "CLOUD_TASKS_QUEUE must be set"),
    ({**CLOUD, "WORKER_URL": ""}, "WORKER_URL must be set"),
    ({**CLOUD, "REDIS_URL": ""}, "REDIS_URL must be set"),
    ({**CLOUD, "DATABASE_URL": "sqlite:///x.db"}, "DATABASE_URL must be MySQL"),
    ({"CLOUD_TASKS_QUEUE": "projects/x/queues/q"}, "CLOUD_TASKS_QUEUE='projects/x/queues/q'"),
])
def test_cloud_tasks_settings_are_checked_at_start_up(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert message in str(caught.value)


def test_client_builds_for_the_emulator(tasks_emulator):
    client = build_tasks_client(tasks_emulator)
    assert client.get_queue(name=QUEUE).name == QUEUE


def test_a_batch_is_queued_on_cloud_tasks_and_finishes(cloud_env, media_server,
                                                        receiver_factory):
    receiver = receiver_factory([], path="/batch")
    client = functions_framework.create_app("api", "main.py").test_client()
    items = [{"url": media_server.url("files/clip.mp4"), "platform": "rpa"}] * 3
    body = client.post("/api/v1/batches", json={"name": "ct", "items": items,
                                                "callback_url": receiver.url}).get_json()
    assert body["code"] == 200 and body["data"]["accepted"] == 3, body
    batch_id = body["data"]["batch"]["batch_id"]
    batches = get_services().batches
    batch = wait_for(lambda: (b := batches.get(batch_id)).finished_at and b, timeout_s=60)
    assert batch.counts["completed"] == 3
    wait_for(lambda: batches.get(batch_id).callback_status == "delivered", timeout_s=10)
    assert [headers["X-Batch-Id"] for headers, _ in receiver.received] == [batch_id]


def test_emulator_down_during_a_batch_is_503_and_leaves_nothing(app_env):
    app_env(QUEUE="cloudtasks", CLOUD_TASKS_QUEUE=QUEUE, WORKER_URL="http://127.0.0.1:9/",
            CLOUD_TASKS_EMULATOR_HOST=f"127.0.0.1:{free_port()}")
    client = functions_framework.create_app("api", "main.py").test_client()
    items = [{"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}] * 2
    response = client.post("/api/v1/batches", json={"name": "down", "items": items})
    assert response.status_code == 503 and "cloud tasks" in response.get_json()["message"]
    services = get_services()
    assert sum(services.queries.count_by_status().values()) == 0
    assert services.batches.list()[0] == []
