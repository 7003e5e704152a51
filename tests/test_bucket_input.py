"""Issue 35: `url: "gs://bucket/object"` read with the service's own credentials from the
buckets of INPUT_BUCKETS (GCS emulator): the service's own bucket in place, another one
streamed into storage; anything else refused naming the setting."""

from __future__ import annotations

from collections.abc import Iterator

import functions_framework
import pytest
import redis

from shared.app.tasks import create_task
from shared.errors import InvalidInput
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import Services, build_services
from shared.tasks.models import CreateTaskRequest

INPUT = "vtt-input"


@pytest.fixture
def gcs_services(gcs_emulator, redis_client: redis.Redis, make_settings
                 ) -> Iterator[Services]:
    built = build_services(make_settings(TASK_TIMEOUT_S=30, STORAGE="gcs",
                                         GCS_BUCKET="vtt-test",
                                         INPUT_BUCKETS=f"{INPUT},vtt-test"))
    client = built.inputs.client
    if client.lookup_bucket(INPUT) is None:
        client.create_bucket(INPUT)
    yield built
    for bucket in ("vtt-test", INPUT):
        for blob in list(client.list_blobs(bucket)):
            blob.delete()
    built.store.engine.dispose()


def put(services: Services, bucket: str, name: str, data: bytes) -> str:
    services.inputs.client.bucket(bucket).blob(name).upload_from_string(data)
    return f"gs://{bucket}/{name}"


def create(services: Services, url: str) -> str:
    request = CreateTaskRequest.model_validate({"url": url, "platform": "rpa"},
                                               context={"platforms": ["rpa"]})
    return create_task(services, request)[0].task_id


def keys(services: Services, bucket: str) -> list[str]:
    return sorted(b.name for b in services.inputs.client.list_blobs(bucket))


def test_an_object_of_another_bucket_is_streamed_into_storage(gcs_services, media_dir
                                                              ) -> None:
    data = (media_dir / "clip.mp4").read_bytes()
    url = put(gcs_services, INPUT, "in/clip.mp4", data)
    task_id = create(gcs_services, url)
    reply = handle_delivery(task_id, gcs_services.worker)
    task = gcs_services.store.get(task_id)
    assert (reply.kind, task.status) == (DeliveryKind.DONE, "completed"), task.message
    assert task.storage_uri.startswith("gs://vtt-test/videos/")
    assert task.storage_uri.endswith(f"/{task_id}/source.mp4") and task.size_bytes == len(data)
    import hashlib
    assert task.video_sha256 == hashlib.sha256(data).hexdigest()
    assert keys(gcs_services, INPUT) == ["in/clip.mp4"]  # the caller's object is left alone


def test_an_object_of_the_own_bucket_is_read_in_place(gcs_services, media_dir) -> None:
    data = (media_dir / "clip.mp4").read_bytes()
    url = put(gcs_services, "vtt-test", "incoming/clip.mp4", data)
    task_id = create(gcs_services, url)
    handle_delivery(task_id, gcs_services.worker)
    task = gcs_services.store.get(task_id)
    assert task.status == "completed", task.message
    assert task.storage_uri == url and task.size_bytes == len(data)
    stored = keys(gcs_services, "vtt-test")
    assert not [k for k in stored if k.endswith(("source.mp4", "source.bin"))]  # no copy
    assert [k for k in stored if "/frames/" in k] and "incoming/clip.mp4" in stored


def test_a_bucket_not_listed_is_refused_naming_the_setting(gcs_services) -> None:
    with pytest.raises(InvalidInput, match="INPUT_BUCKETS"):
        create(gcs_services, "gs://someone-elses-bucket/clip.mp4")


def test_an_object_that_does_not_exist_is_refused(gcs_services) -> None:
    with pytest.raises(InvalidInput, match=r"gs://vtt-input/nothing\.mp4 does not exist"):
        create(gcs_services, f"gs://{INPUT}/nothing.mp4")


def test_an_object_gone_before_the_worker_fails_the_task(gcs_services, media_dir) -> None:
    url = put(gcs_services, INPUT, "brief.mp4", (media_dir / "clip.mp4").read_bytes())
    task_id = create(gcs_services, url)
    gcs_services.inputs.client.bucket(INPUT).blob("brief.mp4").delete()
    handle_delivery(task_id, gcs_services.worker)
    task = gcs_services.store.get(task_id)
    assert (task.status, task.error_code) == ("failed", "download_failed")
    assert "no such object" in task.message


def test_a_non_video_object_fails_as_unsupported(gcs_services) -> None:
    url = put(gcs_services, INPUT, "notes.mp4", b"this is not a video\n" * 20)
    task_id = create(gcs_services, url)
    handle_delivery(task_id, gcs_services.worker)
    task = gcs_services.store.get(task_id)
    assert (task.status, task.error_code) == ("failed", "unsupported_format")


def test_a_bucket_removed_from_the_setting_is_refused_by_the_worker(
        gcs_services, media_dir, make_settings) -> None:
    url = put(gcs_services, INPUT, "clip.mp4", (media_dir / "clip.mp4").read_bytes())
    task_id = create(gcs_services, url)
    gcs_services.inputs = type(gcs_services.inputs)(["vtt-test"])
    handle_delivery(task_id, gcs_services.worker)
    task = gcs_services.store.get(task_id)
    assert (task.status, task.error_code) == ("failed", "download_failed")
    assert "INPUT_BUCKETS" in task.message


@pytest.mark.parametrize(("url", "reason"), [
    ("gs://UPPER/clip.mp4", "bucket 'UPPER' is not a valid GCS bucket name"),
    ("gs://bucket-only", "must be gs://bucket/object with an object name"),
    ("gs://bucket/", "must be gs://bucket/object with an object name"),
    ("upload:123", "upload id must be the 32 hex digits"),
    ("ftp://example.com/v.mp4", "must be an http or https URL, gs://bucket/object or upload:"),
])
def test_the_api_refuses_malformed_video_urls(app_env, url: str, reason: str) -> None:
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.post("/api/v1/task/create", json={"url": url, "platform": "rpa"})
    assert response.status_code == 400
    assert reason in response.get_json()["message"]


def test_the_api_names_the_setting_for_a_bucket_not_listed(app_env, gcs_emulator) -> None:
    app_env(INPUT_BUCKETS="vtt-test")
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.post("/api/v1/task/create",
                           json={"url": "gs://other-bucket/v.mp4", "platform": "rpa"})
    assert response.status_code == 400
    assert "INPUT_BUCKETS" in response.get_json()["message"]
