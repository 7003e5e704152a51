"""Issue 35: uploads. POST /api/v1/uploads, the file PUT to `upload_url` (the API's own
route on the local folder, a GCS resumable session on the emulator), then a create with
`url: "upload:<upload_id>"`; every misuse refused with its status, nothing half-stored,
unused uploads removed by the clean-up after UPLOAD_TTL_S."""

from __future__ import annotations

import hashlib
import time

import functions_framework
import pytest
import redis
import requests

from shared import redis_keys
from shared.app.uploads import clean_uploads
from shared.pipeline.runner import handle_delivery
from shared.services import get_services
from tests.test_submit import api_url  # noqa: F401 - fixture


@pytest.fixture
def api(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def start(api, size: int) -> dict:
    response = api.post("/api/v1/uploads", json={"size_bytes": size})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def put(api, data: dict, body: bytes):
    path = data["upload_url"].split("://", 1)[1].split("/", 1)[1]
    return api.put("/" + path, data=body, content_type="application/octet-stream")


def create(api, url: str):
    return api.post("/api/v1/task/create", json={"url": url, "platform": "rpa"})


def test_upload_then_create_tags_the_file_in_place(api, media_dir) -> None:
    video = (media_dir / "clip.mp4").read_bytes()
    data = start(api, len(video))
    assert data["needs_api_key"] and data["upload_url"].endswith(
        f"/api/v1/uploads/{data['upload_id']}")
    stored = put(api, data, video)
    assert stored.status_code == 200 and stored.get_json()["data"]["size_bytes"] == len(video)
    created = create(api, f"upload:{data['upload_id']}")
    assert created.status_code == 200, created.get_json()
    services = get_services()
    task_id = created.get_json()["task_id"]
    handle_delivery(task_id, services.worker)
    task = services.store.get(task_id)
    assert task.status == "completed", task.message
    assert task.storage_uri.endswith(f"/uploads/{data['upload_id']}/source")
    assert task.video_sha256 == hashlib.sha256(video).hexdigest()
    sources = [o.key for o in services.storage.list("videos/") if "/source" in o.key]
    assert sources == [services.storage.key_of(task.storage_uri)]  # nothing copied


def test_an_upload_never_finished_is_refused_then_cleaned_up(api, redis_client) -> None:
    data = start(api, 1000)
    refused = create(api, f"upload:{data['upload_id']}")
    assert refused.status_code == 400
    assert "is not finished" in refused.get_json()["message"]
    services = get_services()
    assert clean_uploads(services)["removed"] == 0  # not due yet
    report = clean_uploads(services, now=time.time() + services.settings.UPLOAD_TTL_S + 1)
    assert report["removed"] == 1
    assert not redis_client.exists(redis_keys.upload(data["upload_id"]))
    gone = create(api, f"upload:{data['upload_id']}")
    assert gone.status_code == 400 and "does not exist or has expired" in gone.get_json()[
        "message"]


def test_a_finished_upload_past_its_ttl_is_refused_and_its_file_removed(
        api, media_dir, redis_client) -> None:
    video = (media_dir / "clip.mp4").read_bytes()
    data = start(api, len(video))
    assert put(api, data, video).status_code == 200
    past = time.time() - 1  # as if UPLOAD_TTL_S had passed
    redis_client.hset(redis_keys.upload(data["upload_id"]), "expires_at", past)
    redis_client.zadd(redis_keys.UPLOADS_EXPIRING, {data["upload_id"]: past})
    refused = create(api, f"upload:{data['upload_id']}")
    assert refused.status_code == 400 and "expired (UPLOAD_TTL_S)" in refused.get_json()[
        "message"]
    services = get_services()
    assert clean_uploads(services)["removed"] == 1
    assert [o.key for o in services.storage.list("videos/")] == []


def test_an_upload_finished_twice_is_409(api) -> None:
    data = start(api, 4)
    assert put(api, data, b"abcd").status_code == 200
    again = put(api, data, b"abcd")
    assert again.status_code == 409 and "already finished" in again.get_json()["message"]


def test_over_the_size_limit(api, app_env) -> None:
    app_env(MAX_VIDEO_MB=1)
    big = api.post("/api/v1/uploads", json={"size_bytes": 1024 * 1024 + 1})
    assert big.status_code == 413 and "MAX_VIDEO_MB" in big.get_json()["message"]
    data = start(api, 10)
    more = put(api, data, b"x" * 11)
    assert more.status_code == 413 and "over the 10" in more.get_json()["message"]
    assert list(get_services().storage.list("")) == []
    less = put(api, data, b"x" * 9)
    assert less.status_code == 400 and "ended after 9 of the 10" in less.get_json()["message"]
    assert list(get_services().storage.list("")) == []  # nothing half-stored
    assert put(api, data, b"x" * 10).status_code == 200  # and it can be sent again


def test_an_upload_used_by_two_creates(api, media_dir) -> None:
    video = (media_dir / "clip.mp4").read_bytes()
    data = start(api, len(video))
    put(api, data, video)
    first = create(api, f"upload:{data['upload_id']}")
    assert first.status_code == 200
    second = create(api, f"upload:{data['upload_id']}")
    assert second.status_code == 409
    assert first.get_json()["task_id"] in second.get_json()["message"]
    batch = api.post("/api/v1/batches", json={"name": "uploads", "items": [
        {"url": f"upload:{data['upload_id']}", "platform": "rpa"}]})
    assert batch.status_code == 200, batch.get_json()
    item = batch.get_json()["data"]["items"][0]
    assert item["task_id"] is None and item["error"]["field"] == "url"
    assert "already used by task" in item["error"]["reason"]


def test_a_batch_item_takes_an_upload(api, media_dir) -> None:
    video = (media_dir / "clip.mp4").read_bytes()
    data = start(api, len(video))
    put(api, data, video)
    batch = api.post("/api/v1/batches", json={"name": "uploads", "items": [
        {"url": f"upload:{data['upload_id']}", "platform": "rpa"},
        {"url": f"upload:{data['upload_id']}", "platform": "rpa"}]})
    items = batch.get_json()["data"]["items"]
    assert items[0]["task_id"] and items[1]["task_id"] is None  # one task per upload
    task = get_services().store.get(items[0]["task_id"])
    assert task.storage_uri.endswith(f"/uploads/{data['upload_id']}/source")


def test_an_upload_id_that_does_not_exist(api) -> None:
    missing = create(api, "upload:" + "0" * 32)
    assert missing.status_code == 400
    assert "does not exist or has expired" in missing.get_json()["message"]
    put_missing = api.put("/api/v1/uploads/" + "0" * 32, data=b"x",
                          content_type="application/octet-stream")
    assert put_missing.status_code == 404
    malformed = api.put("/api/v1/uploads/nothex", data=b"x",
                        content_type="application/octet-stream")
    assert malformed.status_code == 400


def test_the_upload_routes_need_the_submit_scope(api, app_env, redis_client) -> None:
    from shared.teams.keys import KeyStore, parse_scopes

    pepper = "p" * 40
    app_env(API_KEY_PEPPER=pepper)
    secret = KeyStore(redis_client, pepper).create("viewers", parse_scopes("read"), "reader")
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.post("/api/v1/uploads", json={"size_bytes": 1},
                    headers=headers).status_code == 403
    assert api.put("/api/v1/uploads/" + "0" * 32, data=b"x", headers=headers).status_code == 403


def test_the_cleanup_function_reports_uploads(app_env) -> None:
    api = functions_framework.create_app("api", "main.py").test_client()
    start(api, 10)
    cleanup = functions_framework.create_app("cleanup", "main.py").test_client()
    answer = cleanup.get("/?scope=tasks").get_json()
    assert answer["data"]["uploads"] == {"removed": 0, "due": 0}


def test_on_gcs_the_file_goes_to_a_resumable_session(app_env, gcs_emulator, media_dir,
                                                     redis_client: redis.Redis) -> None:
    app_env(STORAGE="gcs", GCS_BUCKET="vtt-test")
    api = functions_framework.create_app("api", "main.py").test_client()
    video = (media_dir / "clip.mp4").read_bytes()
    data = start(api, len(video))
    assert not data["needs_api_key"] and data["upload_url"].startswith(gcs_emulator)
    half = create(api, f"upload:{data['upload_id']}")
    assert half.status_code == 400  # nothing there until the session is complete
    sent = requests.put(data["upload_url"], data=video, timeout=30,
                        headers={"Content-Range": f"bytes 0-{len(video) - 1}/{len(video)}"})
    assert sent.status_code == 200
    created = create(api, f"upload:{data['upload_id']}")
    assert created.status_code == 200, created.get_json()
    services = get_services()
    task_id = created.get_json()["task_id"]
    handle_delivery(task_id, services.worker)
    task = services.store.get(task_id)
    try:
        assert task.status == "completed", task.message
        assert task.storage_uri.startswith("gs://vtt-test/videos/")
    finally:
        for obj in list(services.storage.list("")):
            services.storage.delete(obj.key)


def test_vtt_submit_uploads_local_files(api_url, media_dir, tmp_path,  # noqa: F811
                                        capsys) -> None:
    """A line with a local path (relative to the list's folder) is uploaded with the
    same token, streamed, and created as `upload:<id>`; URL lines go as they are."""
    from scripts.submit import main

    (tmp_path / "clip.mp4").write_bytes((media_dir / "clip.mp4").read_bytes())
    source = tmp_path / "videos.txt"
    source.write_text(f"clip.mp4\n{media_dir / 'portrait.mp4'}\nhttps://cdn.example.com/1.mp4\n")
    code = main([str(source), "--api", api_url, "--token", "submit-token", "--no-wait"])
    assert code == 0, capsys.readouterr().err
    tasks, _ = get_services().queries.list(limit=10)
    urls = sorted(task.url for task in tasks)
    assert urls[0] == "https://cdn.example.com/1.mp4"
    assert [u.split(":")[0] for u in urls[1:]] == ["upload", "upload"]
    assert all(t.storage_uri for t in tasks if t.url.startswith("upload:"))
    assert "clip.mp4" in capsys.readouterr().err  # the progress bar names the file


def test_vtt_submit_refuses_a_missing_local_file(api_url, tmp_path,  # noqa: F811
                                                 capsys) -> None:
    from scripts.submit import main

    source = tmp_path / "videos.txt"
    source.write_text("nothere.mp4\n")
    assert main([str(source), "--api", api_url, "--token", "submit-token",
                 "--no-wait"]) == 2
    assert "line 1: nothere.mp4: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("route", ["create", "batch"])
def test_a_create_the_queue_refuses_gives_the_upload_back(api, media_dir, monkeypatch,
                                                          route: str) -> None:
    """503 leaves nothing: no task, and the upload free for the create that follows."""
    from shared.errors import ServiceUnavailable

    video = (media_dir / "clip.mp4").read_bytes()
    data = start(api, len(video))
    put(api, data, video)
    queue = get_services().queue

    def down(*args, **kwargs):
        raise ServiceUnavailable("redis")

    item = {"url": f"upload:{data['upload_id']}", "platform": "rpa"}
    with monkeypatch.context() as patched:
        patched.setattr(queue, "enqueue", down)
        patched.setattr(queue, "enqueue_many", down)
        if route == "create":
            refused = create(api, item["url"])
        else:
            refused = api.post("/api/v1/batches", json={"name": "b", "items": [item]})
        assert refused.status_code == 503
    assert sum(get_services().queries.count_by_status().values()) == 0
    again = create(api, item["url"])
    assert again.status_code == 200, again.get_json()
