"""Hardening: no API key escapes through an upstream error, hostile bodies are 400, only
JSON bodies are read, every answer says nosniff."""

from __future__ import annotations

import hashlib
import json
import subprocess

import functions_framework
import pytest
import redis
import requests
import sqlalchemy as sa

from scripts.stack import LocalStack
from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool, account_id
from shared.redact import redact
from shared.services import get_services
from tests.conftest import REDIS_URL
from tests.gemini_standin import GeminiStandIn
from tests.helpers import queued_ids, wait_for

KEY = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"  # the shape of a real key (39 characters)


@pytest.mark.parametrize(("text", "kept"), [
    (f"Permission denied: Consumer 'api_key:{KEY}' has been suspended.", "has been suspended"),
    (f"GET https://generativelanguage.googleapis.com/v1beta/models?key={KEY}&alt=sse", "alt=sse"),
    (f"upstream said: Authorization: Bearer {KEY[4:]}", "upstream said"),
    (f"headers={{'x-goog-api-key': '{KEY[4:]}'}}", "headers"),
    (f"a key alone {KEY} in text", "in text"),
])
def test_redact_masks_every_key_shape(text: str, kept: str) -> None:
    cleaned = redact(text)
    assert KEY not in cleaned and KEY[4:20] not in cleaned and kept in cleaned


def test_a_masked_key_stays_recognisable() -> None:
    assert redact(f"key {KEY}") == f"key AIza…{KEY[-4:]}"


def test_old_last_error_values_are_redacted_on_read(redis_client: redis.Redis) -> None:
    import_accounts(redis_client, [AccountEntry(api_key=KEY, daily_limit=10, minute_limit=1,
                                                username="u", password="pw", phone="",
                                                email="")])
    redis_client.hset(redis_keys.account_info(account_id(KEY)), mapping={
        "last_error": f"HTTP 403: Consumer 'api_key:{KEY}' has been suspended.",
        "disabled_reason": f"HTTP 403: Consumer 'api_key:{KEY}'"})
    shown = json.dumps(AccountPool(redis_client).stats())
    assert KEY not in shown and "has been suspended" in shown


@pytest.mark.slow
def test_a_key_quoted_by_google_reaches_no_log_store_answer_or_callback(
        mysql_db_url, redis_client, media_server, receiver_factory, tmp_path) -> None:
    """Google's 403 for a suspended key and a relay's 400 both quote the full key; the
    key must appear nowhere but the pool's own `api_key` field."""
    quoting = {"AIzaSy" + hashlib.sha256(behaviour.encode()).hexdigest()[:33]: behaviour
               for behaviour in ["suspended", "suspended_info", "badrequest_quoting"]}
    standin = GeminiStandIn(behaviours=dict(quoting)).start()
    import_accounts(redis_client, [
        AccountEntry(api_key=key, daily_limit=100, minute_limit=100, username=f"u{n}",
                     password="pw", phone="", email="") for n, key in enumerate(quoting)])
    callback = receiver_factory([], path="/hook")
    env = {"DATABASE_URL": mysql_db_url, "REDIS_URL": REDIS_URL, "TAGGER": "gemini",
           "GEMINI_BASE_URL": standin.base_url, "STORAGE_DIR": str(tmp_path / "storage"),
           "ALLOW_PRIVATE_URLS": "true", "API_TOKENS": "", "LOG_FORMAT": "json",
           "LOG_LEVEL": "DEBUG"}
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=["--min-backoff", "0.2", "--reap-interval", "1"])
    answers: list[str] = []
    try:
        ids = []
        for _ in range(3):  # least recently used first: every key is tried by the end
            created = requests.post(f"{stack.api_url}/api/v1/task/create", timeout=10, json={
                "url": media_server.url("files/clip.mp4"), "platform": "rpa",
                "callback_url": callback.url})
            ids.append(created.json()["task_id"])
            answers.append(created.text)
            wait_for(lambda: requests.get(f"{stack.api_url}/api/v1/task/{ids[-1]}",
                                          timeout=10).json()["data"]["status"] == "failed",
                     timeout_s=30, interval_s=0.2)
        for path in [*(f"/api/v1/task/{i}" for i in ids), "/api/v1/tasks",
                     "/api/v1/accounts", "/api/v1/stats", "/healthz"]:
            answers.append(requests.get(stack.api_url + path, timeout=10).text)
        wait_for(lambda: len(callback.received) >= 3, timeout_s=20)
    finally:
        stack.stop()
        standin.stop()
    tasks = [json.loads(a)["data"] for a in answers[3:6]]
    assert {t["error_code"] for t in tasks} == {"gemini_bad_request"}
    accounts = json.loads(answers[-3])["data"]["accounts"]
    assert sum(a["status"] == "disabled" for a in accounts) == 2  # both 403s were seen
    logs = "\n".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    with sa.create_engine(mysql_db_url).connect() as conn:
        rows = json.dumps([dict(r) for r in conn.execute(sa.text(
            "SELECT * FROM video_tasks")).mappings()], default=str)
    callbacks = "\n".join(body.decode() for _, body in callback.received)
    for key in quoting:
        for place, text in [("log", logs), ("database", rows), ("api", "\n".join(answers)),
                            ("callback", callbacks), ("redis", _redis_dump(redis_client, key))]:
            assert key not in text and key[4:24] not in text, f"{key[:12]} in {place}"
    assert "has been suspended" in json.dumps(accounts)  # the text stays, the key does not
    assert "CONSUMER_SUSPENDED" in json.dumps(accounts)


def _redis_dump(client: redis.Redis, key: str) -> str:
    """Every name and value in Redis, except the one field that must hold the key."""
    parts = []
    for name in client.scan_iter("*"):
        parts.append(name)
        kind = client.type(name)
        if kind == "hash":
            values = client.hgetall(name)
            if name.endswith(":info") and values.get("api_key") == key:
                values.pop("api_key")
            parts.append(json.dumps(values))
        elif kind == "string":
            parts.append(client.get(name) or "")
        elif kind == "list":
            parts.extend(client.lrange(name, 0, -1))
        elif kind == "set":
            parts.extend(client.smembers(name))
        elif kind == "zset":
            parts.extend(member for member, _ in client.zrange(name, 0, -1, withscores=True))
    return "\n".join(parts)


# --- hostile and non-JSON bodies -----------------------------------------------------------

VALID = {"url": "https://cdn.example.com/video.mp4", "platform": "rpa"}


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def task_count() -> int:
    return sum(get_services().queries.count_by_status().values())


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


NESTED_BODIES = [
    nested(10_000),
    '{"a":' * 10_000 + "1" + "}" * 10_000,
    json.dumps(VALID)[:-1] + ', "uid": ' + nested(9_000) + "}",
    json.dumps(VALID)[:-1] + ', "dimensions": ' + '{"x":' * 9_000 + "1" + "}" * 9_000 + "}",
]


@pytest.mark.parametrize("route", ["/api/v1/task/create", "/api/v1/vision_to_tag/google"])
@pytest.mark.parametrize("raw", NESTED_BODIES, ids=["arrays", "objects", "in-field-arrays",
                                                     "in-field-objects"])
def test_deeply_nested_json_is_400(client, route: str, raw: str) -> None:
    before = task_count()
    response = client.post(route, data=raw, headers={"Content-Type": "application/json"})
    body = response.get_json()
    assert response.status_code == 400 == body["code"]
    assert body["message"] == "body: nested too deeply"
    assert task_count() == before


@pytest.mark.parametrize(("content_type", "code"), [
    ("text/plain", 415),
    ("application/x-www-form-urlencoded", 415),
    (None, 415),
    ("application/json-patch+json", 415),
    ("multipart/form-data; boundary=x", 415),
    ("application/json; charset=utf-8", 200),
    ("Application/JSON", 200),
])
def test_only_json_bodies_are_read(client, redis_client, content_type, code) -> None:
    before = task_count()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/v1/task/create", data=json.dumps(VALID), headers=headers)
    body = response.get_json()
    assert response.status_code == code == body["code"], body
    assert task_count() == before + (code == 200)
    if code == 415:
        assert body["message"].startswith("Content-Type: must be application/json")
        assert len(queued_ids(redis_client)) == 0


def test_the_sync_route_refuses_a_form_too(client) -> None:
    response = client.post("/api/v1/vision_to_tag/google", data={"url": VALID["url"]})
    assert response.status_code == 415 and task_count() == 0


def test_every_answer_says_nosniff(client, app_env) -> None:
    answers = [client.get("/healthz"), client.get("/api/v1/nowhere"),
               client.put("/api/v1/tasks"), client.get("/dashboard"),
               client.get("/dashboard/app.js"), client.get("/api/v1/openapi.json"),
               client.post("/api/v1/task/create", data="x", headers={
                   "Content-Type": "text/plain"}),
               client.get("/api/v1/task/" + "a" * 32)]
    worker = functions_framework.create_app("process_task", "main.py").test_client()
    cleanup = functions_framework.create_app("cleanup", "main.py").test_client()
    answers += [worker.get("/"), worker.post("/", json={"task_id": "x"}),
                cleanup.get("/?scope=nope")]
    for answer in answers:
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.request.path


def test_create_does_not_say_what_an_internal_name_resolves_to(app_env) -> None:
    app_env(ALLOW_PRIVATE_URLS="false")
    client = functions_framework.create_app("api", "main.py").test_client()
    for url in ("http://localhost:8080/v.mp4", "http://127.0.0.1/v.mp4",
                "http://169.254.169.254/latest/meta-data", "http://10.0.0.8/v.mp4"):
        body = client.post("/api/v1/task/create", json={**VALID, "url": url}).get_json()
        assert body["code"] == 400 and "does not resolve to a public address" in body[
            "message"], body
        assert "ALLOW_PRIVATE_URLS=true" in body["message"]  # the way out for a local stack
        for word in ("loopback", "private", "link-local", "127.0.0.1 resolves"):
            assert word not in body["message"]


@pytest.mark.slow
def test_headers_too_large_get_an_answer_a_client_can_read(mysql_db_url, tmp_path) -> None:
    """gunicorn (under functions-framework) refuses a header field over 8190 bytes before
    the function runs: 431 with a small HTML page naming the problem (not the envelope)."""
    env = {"DATABASE_URL": mysql_db_url, "REDIS_URL": REDIS_URL, "API_TOKENS": "",
           "STORAGE_DIR": str(tmp_path / "storage")}
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer=False)
    try:
        answer = subprocess.run(
            ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H", "X-Big: " + "a" * 20_000,
             f"{stack.api_url}/healthz"], capture_output=True, text=True, timeout=10)
        normal = requests.get(f"{stack.api_url}/healthz", timeout=10)
    finally:
        stack.stop()
    text, _, code = answer.stdout.rpartition("\n")
    assert code == "431" and "Request Header Fields Too Large" in text, answer.stdout[-300:]
    assert normal.status_code == 200  # the server is fine afterwards
