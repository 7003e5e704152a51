"""The worker: claim, pipeline, error classification, leases — on real Redis and both DBs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import functions_framework
import pytest
import redis

from shared import redis_keys
from shared.app.tasks import create_task
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import Services, get_services
from shared.tasks.models import CreateTaskRequest
from tests.helpers import call_together, drop_queued, queued_ids, reap, wait_for


def create(services: Services, url: str, **fields) -> str:
    request = CreateTaskRequest.model_validate(
        {"url": url, "platform": "rpa", **fields}, context={"platforms": ["rpa"]}
    )
    return create_task(services, request)[0].task_id


def test_happy_path_records_result_timings_and_storage(services: Services, media_server) -> None:
    task_id = create(services, media_server.url("files/clip.mp4"), dimensions=["vision", "audio"])
    reply = handle_delivery(task_id, services.worker)
    assert (reply.kind, reply.task_status) == (DeliveryKind.DONE, "completed")
    task = services.store.get(task_id)
    assert task.status == "completed" and task.attempts == 1 and task.stage is None
    assert set(task.timings) == {"downloading", "probing", "extracting_frames", "tagging"}
    assert len(task.video_sha256) == 64 and task.size_bytes > 0 and task.duration_s == 2.0
    assert task.storage_uri.endswith(f"/{task_id}/source.mp4")
    result = task.result
    assert set(result.dimensions) == {"vision", "audio"}
    assert "横屏" in result.tags and "有声" in result.tags
    assert result.technical.width == 320 and result.technical.orientation == "landscape"
    assert result.frames and result.frames[0].uri.endswith(f"/{task_id}/frames/001.jpg")
    assert result.technical.scene_changes is not None
    assert not services.redis.exists(redis_keys.task_lock(task_id))


def test_english_and_silent_portrait(services: Services, media_server) -> None:
    task_id = create(services, media_server.url("files/portrait.mp4"), language="en")
    handle_delivery(task_id, services.worker)
    result = services.store.get(task_id).result
    assert {"portrait", "silent", "SD"} <= set(result.tags) and result.language == "en"


def test_two_workers_same_task_exactly_one_processes(services: Services, media_server) -> None:
    path = "slow/1/clip.mp4"
    task_id = create(services, media_server.url(path))
    replies = []
    worker = services.worker
    threads = [threading.Thread(target=lambda: replies.append(handle_delivery(task_id, worker)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.task_status or "" for r in replies) == ["", "completed"]
    assert media_server.hits[f"/{path}"] == 1
    assert services.store.get(task_id).attempts == 1


def test_transient_failure_is_retried_then_completes(services: Services, media_server) -> None:
    task_id = create(services, media_server.url("flaky/2/clip.mp4"))
    for attempt in (1, 2):
        reply = handle_delivery(task_id, services.worker)
        # the next try is queued as a planned delivery; this one is done
        assert reply.kind == DeliveryKind.DONE and reply.retry_after_s >= 1
        task = services.store.get(task_id)
        assert (task.status, task.attempts, task.error_code) == (
            "pending", attempt, "download_unavailable")
        assert task.next_attempt_at > task.updated_at
        assert services.redis.zscore(redis_keys.TASK_QUEUE_DELAYED, task_id) is not None
    reply = handle_delivery(task_id, services.worker)
    assert reply.task_status == "completed"
    assert services.store.get(task_id).error_code is None


@pytest.mark.parametrize(("path", "code"), [
    ("status/404", "download_failed"),
    ("files/notes.txt", "unsupported_format"),
    ("lying-length/clip.mp4", "video_too_large"),
])
def test_permanent_failure_fails_at_once(services: Services, media_server, path, code) -> None:
    task_id = create(services, media_server.url(path))
    reply = handle_delivery(task_id, services.worker)
    assert (reply.kind, reply.task_status) == (DeliveryKind.DONE, "failed")
    task = services.store.get(task_id)
    assert (task.status, task.error_code, task.attempts) == ("failed", code, 1)
    assert task.message


def test_streamed_download_stops_at_the_size_limit(services: Services, media_server) -> None:
    services.settings.MAX_VIDEO_MB = 0.01
    task_id = create(services, media_server.url("chunked/clip.mp4"))
    handle_delivery(task_id, services.worker)
    assert services.store.get(task_id).error_code == "video_too_large"


def test_attempts_run_out_then_failed_and_dead_lettered(services: Services, media_server) -> None:
    services.settings.MAX_ATTEMPTS = 2
    task_id = create(services, media_server.url("status/500"))
    assert handle_delivery(task_id, services.worker).task_status == "pending"
    reply = handle_delivery(task_id, services.worker)
    assert (reply.kind, reply.task_status) == (DeliveryKind.DONE, "failed")
    task = services.store.get(task_id)
    assert task.status == "failed" and "after 2 attempts" in task.message
    assert services.redis.lrange(redis_keys.TASK_QUEUE_FAILED, 0, -1) == [task_id]
    assert handle_delivery(task_id, services.worker).message == "task already failed"


def test_completed_task_redelivered_is_acknowledged_without_work(
    services: Services, media_server
) -> None:
    path = "files/clip.mp4"
    task_id = create(services, media_server.url(path))
    handle_delivery(task_id, services.worker)
    reply = handle_delivery(task_id, services.worker)
    assert (reply.kind, reply.message) == (DeliveryKind.DONE, "task already completed")
    assert media_server.hits[f"/{path}"] == 1 and services.store.get(task_id).attempts == 1


def test_unknown_task_is_dropped(services: Services) -> None:
    assert handle_delivery(uuid.uuid4().hex, services.worker).kind == DeliveryKind.DROP


KILLABLE_WORKER = """
import sys
from shared.config import load_settings
from shared.services import build_services
from shared.pipeline.runner import handle_delivery
handle_delivery(sys.argv[1], build_services(load_settings()).worker)
"""


def test_worker_killed_mid_task_lease_expires_and_task_completes(
    services: Services, media_server, db_url: str, tmp_path
) -> None:
    """A real worker process is SIGKILLed while downloading; the reaper recovers it."""
    services.settings.TASK_TIMEOUT_S = 2
    task_id = create(services, media_server.url("hang-once/clip.mp4"))
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": services.settings.REDIS_URL,
           "STORAGE_DIR": str(tmp_path / "storage"), "TASK_TIMEOUT_S": "2",
           "ALLOW_PRIVATE_URLS": "true"}
    worker = subprocess.Popen([sys.executable, "-c", KILLABLE_WORKER, task_id], env=env)
    try:
        wait_for(lambda: services.store.get(task_id).stage == "downloading", timeout_s=20)
        wait_for(lambda: media_server.hits["/hang-once/clip.mp4"] == 1)  # request is out
    finally:
        worker.kill()
        worker.wait()
    task = services.store.get(task_id)
    assert (task.status, task.attempts) == ("processing", 1)
    drop_queued(services.redis)
    assert reap(services, 5)["requeued"] == 0  # lease alive
    time.sleep(2.2)
    assert reap(services, 5)["requeued"] == 1
    assert queued_ids(services.redis) == [task_id]
    task = services.store.get(task_id)
    assert (task.status, task.error_code) == ("pending", "worker_lost")
    reply = handle_delivery(task_id, services.worker)
    assert reply.task_status == "completed"
    assert services.store.get(task_id).attempts == 2


def test_reaper_fails_tasks_out_of_attempts(services: Services, media_server) -> None:
    task_id = create(services, media_server.url("files/clip.mp4"))
    services.store.claim(task_id, lease_s=-1, max_attempts=1)
    assert reap(services, 1) == {
        "requeued": 0, "failed": 1, "skipped": 0, "redelivered": 0}
    assert services.store.get(task_id).error_code == "attempts_exhausted"
    assert services.redis.lrange(redis_keys.TASK_QUEUE_FAILED, 0, -1) == [task_id]


@pytest.fixture
def worker_client(app_env):
    app_env(WORKER_TOKEN="s3cret")
    return functions_framework.create_app("process_task", "main.py").test_client()


def test_worker_function_checks_token_and_body(worker_client, redis_client: redis.Redis) -> None:
    task_id = uuid.uuid4().hex
    assert worker_client.post("/", json={"task_id": task_id}).status_code == 401
    wrong = worker_client.post("/", json={"task_id": task_id}, headers={"X-Worker-Token": "x"})
    assert wrong.status_code == 403 and "s3cret" not in wrong.get_data(as_text=True)
    ok = {"X-Worker-Token": "s3cret"}
    assert worker_client.post("/", json={"task_id": task_id}, headers=ok).status_code == 200
    for bad in ({"task_id": "nope"}, {}, {"task_id": 7}, {"task_id": "g" * 32}):
        answer = worker_client.post("/", json=bad, headers=ok)  # acknowledged: no retry storm
        assert answer.status_code == 200 and "malformed" in answer.get_json()["message"]
    as_json = {**ok, "Content-Type": "application/json"}
    assert worker_client.post("/", data=b"{", headers=as_json).status_code == 400
    assert worker_client.post("/", data=b"{}", headers=ok).status_code == 415
    assert worker_client.get("/", headers=ok).status_code == 405


def test_cleanup_function_deletes_old_videos_and_reaps(app_env, tmp_path) -> None:
    from shared.services import get_services

    client = functions_framework.create_app("cleanup", "main.py").test_client()
    storage = get_services().storage
    (tmp_path / "v").write_bytes(b"x" * 2048)
    storage.put_file("videos/2020/01/02/old/source.mp4", tmp_path / "v")
    storage.put_file("videos/2999/01/02/new/source.mp4", tmp_path / "v")
    preview = client.post("/?dry_run=true").get_json()["data"]["videos"]
    assert (preview["objects"], preview["dry_run"]) == (1, True)
    body = client.post("/").get_json()
    assert body["code"] == 200 and body["data"]["stuck_tasks"]["requeued"] == 0
    assert body["data"]["videos"]["objects"] == 1 and body["data"]["videos"]["freed"] == "2.0 KB"
    assert [o.key for o in storage.list("videos/")] == ["videos/2999/01/02/new/source.mp4"]


def test_concurrent_first_requests_build_the_services_once(app_env, monkeypatch) -> None:
    """A cold instance's first requests arrive together: one build, one set of clients."""
    import shared.services as services_module

    builds = []
    real_build = services_module.build_services

    def slow_build(settings):
        time.sleep(0.1)  # the window a second thread would enter
        builds.append(1)
        return real_build(settings)

    monkeypatch.setattr(services_module, "build_services", slow_build)
    get_services.cache_clear()
    seen = call_together(get_services, 6)
    assert len(builds) == 1 and len({id(services) for services in seen}) == 1
