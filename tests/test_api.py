"""Function `api` through functions-framework's test client, on MariaDB + real Redis."""

from __future__ import annotations

import json
import logging
import uuid
from urllib.parse import urljoin

import functions_framework
import pytest
import redis

from shared.services import get_services
from tests.helpers import drop_queued, queued_ids


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


VALID = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}


def task_count() -> int:
    return get_services().queries.count_by_status().get("pending", 0)


def test_create_then_get_both_paths(client, redis_client: redis.Redis) -> None:
    response = client.post("/api/v1/task/create", json={**VALID, "uid": 42, "env": "production",
                                                         "dismensions": ["audio", "vision"]})
    body = response.get_json()
    assert response.status_code == 200 == body["code"] and body["message"] == "success"
    task_id = body["task_id"]
    assert body["data"] == {"status": "pending", "url": VALID["url"],
                            "task_url": f"/api/v1/task/{task_id}",  # where to poll it
                            "warnings": []}
    assert queued_ids(redis_client) == [task_id]
    for path in (f"/api/v1/task/{task_id}", f"/api/v1/task/get/{task_id}"):
        data = client.get(path).get_json()["data"]
        assert data["status"] == "pending" and data["uid"] == "42"
        assert data["dimensions"] == ["vision", "audio"] and data["env"] == "production"
        assert data["created_at"].endswith("Z")


def test_dimensions_forms(client) -> None:
    for given, expected in [("all", ["vision", "audio", "content", "business"]),
                            ("content,business", ["content", "business"]),
                            (["audio"], ["audio"])]:
        task_id = client.post("/api/v1/task/create",
                              json={**VALID, "dimensions": given}).get_json()["task_id"]
        assert client.get(f"/api/v1/task/{task_id}").get_json()["data"]["dimensions"] == expected


BAD_BODIES = [
    (b"not json", 400, "body: not valid JSON"),
    (b"[1, 2]", 400, "body: must be a JSON object"),
    (b'"text"', 400, "body: must be a JSON object"),
    (json.dumps({"platform": "rpa"}).encode(), 400, "url: is required"),
    (json.dumps({**VALID, "url": "file:///etc/passwd"}).encode(), 400, "url: must be an http"),
    (json.dumps({**VALID, "url": "ftp://example.com/v.mp4"}).encode(), 400, "url: must be an http"),
    (json.dumps({**VALID, "url": "javascript:alert(1)"}).encode(), 400, "url: must be an http"),
    (json.dumps({**VALID, "url": "http:///v.mp4"}).encode(), 400, "url: must include a host"),
    (json.dumps({**VALID, "url": "http://" + "a" * 2050}).encode(), 400, "url: must be at most"),
    (json.dumps({**VALID, "url": "http://u:p@example.com/v"}).encode(), 400, "url: must not "),
    (json.dumps({**VALID, "url": 5}).encode(), 400, "url: "),
    (json.dumps({**VALID, "platform": "tiktok"}).encode(), 400, "platform: unknown platform"),
    (json.dumps({"url": VALID["url"]}).encode(), 400, "platform: is required"),
    (json.dumps({**VALID, "dimensions": "smell"}).encode(), 400, "dimensions: unknown dimension"),
    (json.dumps({**VALID, "dimensions": []}).encode(), 400, "dimensions: must not be empty"),
    (json.dumps({**VALID, "dimensions": ""}).encode(), 400, "dimensions: must not be empty"),
    (json.dumps({**VALID, "dismensions": ["x"]}).encode(), 400, "dismensions: unknown"),
    (json.dumps({**VALID, "uid": [1]}).encode(), 400, "uid: wrong type (list)"),
    (json.dumps({**VALID, "uid": {"a": 1}}).encode(), 400, "uid: wrong type (dict)"),
    (json.dumps({**VALID, "uid": 1.5}).encode(), 400, "uid: wrong type (float)"),
    (json.dumps({**VALID, "uid": True}).encode(), 400, "uid: wrong type (bool)"),
    (json.dumps({**VALID, "env": "staging"}).encode(), 400, "env: "),
    (json.dumps({**VALID, "language": "fr"}).encode(), 400, "language: "),
    (json.dumps({**VALID, "callback_url": "ftp://x"}).encode(), 400, "callback_url: must be"),
    (json.dumps({**VALID, "callback_url": "https://h.io/" + "a" * 2048}).encode(), 400,
     "callback_url: must be at most 2048"),
    (json.dumps({**VALID, "pad": "x" * 70_000}).encode(), 413, "body: larger than 64 KB"),
]


@pytest.mark.parametrize(("raw", "code", "message"), BAD_BODIES)
def test_bad_create_bodies_are_refused_and_nothing_is_written(
    client, redis_client: redis.Redis, raw: bytes, code: int, message: str
) -> None:
    response = client.post("/api/v1/task/create", data=raw,
                           headers={"Content-Type": "application/json"})
    body = response.get_json()
    assert response.status_code == code == body["code"]
    assert body["message"].startswith(message), body["message"]
    assert task_count() == 0 and len(queued_ids(redis_client)) == 0


def test_unknown_and_malformed_task_ids(client) -> None:
    unknown = client.get(f"/api/v1/task/{uuid.uuid4().hex}")
    assert unknown.status_code == 404 and unknown.get_json()["message"].startswith("task_id:")
    for bad in ("123", "Z" * 32, "a" * 33, "../../etc"):
        response = client.get(f"/api/v1/task/get/{bad}")
        assert response.status_code == 400
    assert client.get("/api/v1/task/xyz").status_code == 400
    assert client.post(f"/api/v1/task/{'g' * 32}/retry").status_code == 400


def test_an_unknown_subtitle_format_is_404_naming_the_formats(client) -> None:
    task_id = client.post("/api/v1/task/create", json=VALID).get_json()["task_id"]
    for form in (task_id, uuid.UUID(task_id).hex.upper()):
        response = client.get(f"/api/v1/task/{form}/subtitles.txt")
        said = response.get_json()["message"]
        assert response.status_code == 404 and said.startswith("subtitles:"), said
        assert ".txt" in said and ".vtt" in said and ".srt" in said
    other = client.get(f"/api/v1/task/{task_id}/nothing")
    assert other.status_code == 404 and other.get_json()["message"].startswith("no route")
    malformed = client.get("/api/v1/task/nope/subtitles.txt")
    assert malformed.status_code == 400
    assert malformed.get_json()["message"].startswith("task_id: malformed")


def test_the_root_redirects_to_the_dashboard(client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert urljoin("http://host/", response.headers["Location"]) == "http://host/dashboard"
    assert urljoin("http://host/api/", response.headers["Location"]) == (
        "http://host/api/dashboard")  # under a path prefix too
    assert response.get_json()["code"] == 302
    assert client.get("/", follow_redirects=True).mimetype == "text/html"


def test_wrong_method_and_unknown_route(client) -> None:
    response = client.delete("/api/v1/task/create")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert client.put(f"/api/v1/task/{uuid.uuid4().hex}").status_code == 405
    assert client.post("/api/v1/tasks").status_code == 405
    assert client.get("/api/v2/nothing").status_code == 404


def test_tokens_are_required_when_configured(app_env) -> None:
    app_env(API_TOKENS="alpha,beta")
    client = functions_framework.create_app("api", "main.py").test_client()
    missing = client.post("/api/v1/task/create", json=VALID)
    assert missing.status_code == 401 and "key" in missing.get_json()["message"]
    wrong = client.post("/api/v1/task/create", json=VALID, headers={"X-API-Key": "gamma"})
    assert wrong.status_code == 401  # unknown key (issue 36); 403 is a key without the scope
    assert "gamma" not in wrong.get_data(as_text=True)
    ok = client.post("/api/v1/task/create", json=VALID, headers={"Authorization": "Bearer beta"})
    assert ok.status_code == 200
    assert client.get("/api/v1/tasks", headers={"X-API-Key": "alpha"}).status_code == 200
    assert client.get("/api/v1/tasks").status_code == 401
    assert client.get("/healthz").status_code == 200  # probes need no token


def test_idempotency_key_returns_the_same_task(client, redis_client: redis.Redis) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = client.post("/api/v1/task/create", json=VALID, headers=headers).get_json()
    second = client.post("/api/v1/task/create", json=VALID, headers=headers).get_json()
    assert first["task_id"] == second["task_id"] and second["code"] == 200
    assert len(queued_ids(redis_client)) == 1
    other = client.post("/api/v1/task/create", json={**VALID, "url": "http://x.org/2.mp4"},
                        headers=headers)
    assert other.status_code == 409 and other.get_json()["message"].startswith("Idempotency-Key")
    too_long = client.post("/api/v1/task/create", json=VALID,
                           headers={"Idempotency-Key": "k" * 200})
    assert too_long.status_code == 400


def test_list_tasks_with_filters_and_cursor(client) -> None:
    ids = [client.post("/api/v1/task/create", json={**VALID, "uid": "u1" if i < 3 else "u2"})
           .get_json()["task_id"] for i in range(5)]
    page = client.get("/api/v1/tasks?limit=2").get_json()["data"]
    assert [t["task_id"] for t in page["tasks"]] == ids[::-1][:2]
    rest = client.get(f"/api/v1/tasks?limit=10&cursor={page['next_cursor']}").get_json()["data"]
    assert [t["task_id"] for t in rest["tasks"]] == ids[::-1][2:] and rest["next_cursor"] is None
    u1 = client.get("/api/v1/tasks?uid=u1&status=pending").get_json()["data"]["tasks"]
    assert {t["task_id"] for t in u1} == set(ids[:3])


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=1000", "limit"), ("limit=x", "limit"),
    ("status=done", "status"), ("cursor=@@@", "cursor"), ("colour=red", "colour"),
])
def test_bad_list_queries(client, query: str, field: str) -> None:
    response = client.get(f"/api/v1/tasks?{query}")
    assert response.status_code == 400 and response.get_json()["message"].startswith(field)


def failed_task(client, redis_client: redis.Redis, error_code: str, message: str) -> str:
    """A created task failed on its first attempt, with the queue emptied."""
    task_id = client.post("/api/v1/task/create", json=VALID).get_json()["task_id"]
    store = get_services().store
    store.claim(task_id, 60, 5)
    store.fail(task_id, 1, error_code=error_code, message=message)
    drop_queued(redis_client)
    return task_id


def test_retry_requeues_only_failed_tasks(client, redis_client: redis.Redis) -> None:
    pending = client.post("/api/v1/task/create", json=VALID).get_json()["task_id"]
    assert client.post(f"/api/v1/task/{pending}/retry").status_code == 409
    task_id = failed_task(client, redis_client, "attempts_exhausted", "ran out of attempts")
    response = client.post(f"/api/v1/task/{task_id}/retry")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert (data["status"], data["attempts"]) == ("pending", 0)
    assert (data["error_code"], data["message"]) == (None, None)  # the old error is gone
    assert queued_ids(redis_client) == [task_id]
    assert client.post(f"/api/v1/task/{uuid.uuid4().hex}/retry").status_code == 404


@pytest.mark.parametrize(("error_code", "message", "change"), [
    ("video_too_long", "video is 900 s long, over the limit of 600 s", "MAX_VIDEO_SECONDS"),
    ("video_too_large", "video is over the limit of 52428800 bytes", "MAX_VIDEO_MB"),
    ("unsupported_format", "file looks like mp4 but ffmpeg reads it as nothing", "mp4, mov"),
    ("download_failed", "download failed: HTTP 404", "the URL works again"),
])
def test_a_retry_that_would_fail_the_same_way_is_409_unless_forced(
        client, redis_client: redis.Redis, error_code: str, message: str, change: str) -> None:
    task_id = failed_task(client, redis_client, error_code, message)
    refused = client.post(f"/api/v1/task/{task_id}/retry")
    said = refused.get_json()["message"]
    assert refused.status_code == 409 and said.startswith("task_id:"), said
    assert error_code in said and message in said and change in said and "force=true" in said
    task = client.get(f"/api/v1/task/{task_id}").get_json()["data"]
    assert (task["status"], task["error_code"]) == ("failed", error_code)  # nothing changed
    assert len(queued_ids(redis_client)) == 0
    forced = client.post(f"/api/v1/task/{task_id}/retry?force=true")
    assert forced.status_code == 200, forced.get_json()
    data = forced.get_json()["data"]
    assert (data["status"], data["error_code"], data["message"]) == ("pending", None, None)
    assert queued_ids(redis_client) == [task_id]


@pytest.mark.parametrize("query", ["force=yes", "force=1", "force=", "colour=red",
                                   "force=true&force=true"])
def test_bad_retry_queries_are_400(client, redis_client: redis.Redis, query: str) -> None:
    task_id = failed_task(client, redis_client, "video_too_long", "too long")
    response = client.post(f"/api/v1/task/{task_id}/retry?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["message"].startswith(query.split("=")[0])
    assert client.post(f"/api/v1/task/{task_id}/retry?force=false").status_code == 409


def test_a_retry_the_queue_refuses_keeps_the_failure(services, monkeypatch) -> None:
    from shared.app.tasks import retry_task, task_fields
    from shared.errors import ServiceUnavailable
    from shared.tasks.models import CreateTaskRequest

    request = CreateTaskRequest.model_validate(VALID, context={"platforms": ["rpa"]})
    task_id = services.store.insert(str(uuid.uuid4()), task_fields(request)).task_id
    services.store.claim(task_id, 60, 5)
    services.store.fail(task_id, 1, error_code="attempts_exhausted", message="out of tries")

    def down(*args, **kwargs):
        raise ServiceUnavailable("redis")

    monkeypatch.setattr(services.queue, "enqueue", down)
    with pytest.raises(ServiceUnavailable):
        retry_task(services, task_id)
    task = services.store.get(task_id)
    assert (task.status, task.attempts) == ("failed", 1)
    assert (task.error_code, task.message) == ("attempts_exhausted", "out of tries")


def test_redis_down_during_create_leaves_nothing(app_env) -> None:
    app_env(REDIS_URL="redis://127.0.0.1:1/0")
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.post("/api/v1/task/create", json=VALID)
    assert response.status_code == 503 and "redis" in response.get_json()["message"]
    assert response.headers["Retry-After"]
    assert sum(get_services().queries.count_by_status().values()) == 0
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["data"]["redis"].startswith("error")


def test_database_down_is_503(app_env) -> None:
    app_env(DATABASE_URL="mysql+pymysql://root@127.0.0.1:1/nothing")
    client = functions_framework.create_app("api", "main.py").test_client()
    create = client.post("/api/v1/task/create", json=VALID)
    assert create.status_code == 503 and "database" in create.get_json()["message"]
    assert client.get(f"/api/v1/task/{uuid.uuid4().hex}").status_code == 503


def test_healthz_and_openapi(client) -> None:
    health = client.get("/healthz").get_json()
    assert health["data"] == {"database": "ok", "redis": "ok", "storage": "ok"}
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/task/create", "/api/v1/task/{task_id}", "/api/v1/tasks",
            "/api/v1/task/{task_id}/retry", "/healthz"} <= set(doc["paths"])
    retry = doc["paths"]["/api/v1/task/{task_id}/retry"]["post"]
    force = next(p["schema"] for p in retry["parameters"] if p["name"] == "force")
    assert force["type"] == "boolean" and "video_too_long" in force["description"]
    create_schema = doc["components"]["schemas"]["CreateTaskRequest"]
    assert set(create_schema["required"]) == {"url", "platform"}
    assert "TagResult" in doc["components"]["schemas"]


def test_gemini_with_no_key_warns_in_the_create_reply_and_once_in_the_log(
        client, app_env, redis_client: redis.Redis, caplog) -> None:
    """TAGGER=gemini and an empty pool: the task is accepted (it waits for a key) and the
    reply says so with the command that imports keys; the api logs it once per build of
    its services; with a key in the pool, no warning."""
    from shared.accounts.importer import AccountEntry, import_accounts

    app_env(TAGGER="gemini", GEMINI_BASE_URL="http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="vision_to_tag.api"):
        first = client.post("/api/v1/task/create", json=VALID).get_json()
        second = client.post("/api/v1/task/create", json=VALID).get_json()
    assert first["code"] == 200 and first["data"]["status"] == "pending"
    [warning] = first["data"]["warnings"]
    assert warning["code"] == "no_keys"
    assert warning["command"] == "python scripts/import_accounts.py --file google_accounts.json"
    assert "no_key_available" in warning["message"] and "24 h" in warning["message"]
    assert second["data"]["warnings"] == [warning]
    logged = [r.getMessage() for r in caplog.records if "holds no key" in r.getMessage()]
    assert len(logged) == 1 and logged[0].endswith(f"Run: {warning['command']}")

    import_accounts(redis_client, [AccountEntry(
        api_key="AIzaSyWARN" + "0" * 29, daily_limit=10, minute_limit=2, username="u",
        password="pw", phone="", email="")])
    assert client.post("/api/v1/task/create", json=VALID).get_json()["data"]["warnings"] == []
    stats = client.get("/api/v1/stats").get_json()["data"]
    assert stats["warnings"] == []


def test_a_warning_never_fails_the_create_reply(client, app_env, monkeypatch) -> None:
    """Redis refusing the pool's count: the task is still created, without a warning."""
    app_env(TAGGER="gemini", GEMINI_BASE_URL="http://127.0.0.1:9")
    pool = get_services().pool

    def down() -> int:
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(pool, "key_count", down)
    body = client.post("/api/v1/task/create", json=VALID).get_json()
    assert body["code"] == 200 and body["data"]["warnings"] == []
