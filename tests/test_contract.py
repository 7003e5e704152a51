"""The API keeps its OpenAPI document: Schemathesis (coverage, fuzzing and stateful
phases) against the running `api` function, plus a plain test for each thing it found."""

from __future__ import annotations

import subprocess

import functions_framework
import pytest

from benchmarks.contract_fuzz import st_command, stack_env
from scripts.stack import LocalStack
from tests.conftest import REDIS_URL


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def test_get_on_the_create_route_is_405_with_allow(client) -> None:
    response = client.get("/api/v1/task/create")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.get_json()["code"] == 405


@pytest.mark.parametrize("query", ["cursor=&cursor=x", "uid=1&uid=2", "limit=5&limit=6",
                                   "status=failed&status=pending"])
def test_repeated_single_valued_parameters_are_400(client, query: str) -> None:
    name = query.split("=")[0]
    body = client.get(f"/api/v1/tasks?{query}").get_json()
    assert body["code"] == 400 and body["message"].startswith(f"{name}: given 2 times")
    search = client.get(f"/api/v1/search?{query}").get_json()
    assert search["code"] == 400


def test_documented_types_are_checked(client) -> None:
    assert client.get("/api/v1/tasks?uid=true").get_json()["code"] == 200  # uid is a string
    for bad in ("limit=ten", "limit=0", "status=done", "nope=1"):
        assert client.get(f"/api/v1/tasks?{bad}").get_json()["code"] == 400


@pytest.mark.parametrize("path", ["/api/v1/task/get/%0Aabc", "/api/v1/%0D%0A",
                                  "/api/v1/task/%00", "/%0A"])
def test_paths_the_framework_refuses_still_get_the_envelope(client, path: str) -> None:
    response = client.get(path)
    assert response.content_type == "application/json"
    assert response.get_json()["code"] == response.status_code
    assert response.status_code in (400, 404)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_document_links_create_to_the_task_routes(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    links = document["paths"]["/api/v1/task/create"]["post"]["responses"]["200"]["links"]
    assert {link["operationId"] for link in links.values()} == {"getTask", "retryTask"}
    assert all(link["parameters"] == {"task_id": "$response.body#/task_id"}
               for link in links.values())
    create = document["components"]["schemas"]["CreateTaskRequest"]["properties"]
    assert create["platform"]["enum"] == ["rpa", "miaobi"]
    assert create["env"]["enum"] == ["develop", "production"]


def test_the_create_reply_is_documented_with_its_warnings(client, app_env) -> None:
    """`data` of a create reply is `TaskCreated`, its `warnings` a list of `ServiceWarning`;
    a reply that carries a warning (TAGGER=gemini, no key) matches the document."""
    document = client.get("/api/v1/openapi.json").get_json()
    reply = document["paths"]["/api/v1/task/create"]["post"]["responses"]["200"]
    schema = reply["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/TaskCreatedReply"}
    schemas = document["components"]["schemas"]
    assert schemas["TaskCreatedReply"]["properties"]["data"] == {
        "$ref": "#/components/schemas/TaskCreated"}
    assert set(schemas["TaskCreated"]["properties"]) == {"status", "url", "task_url",
                                                          "warnings"}
    assert schemas["TaskCreated"]["properties"]["warnings"]["items"] == {
        "$ref": "#/components/schemas/ServiceWarning"}
    assert set(schemas["ServiceWarning"]["required"]) == {"code", "message"}

    app_env(TAGGER="gemini", GEMINI_BASE_URL="http://127.0.0.1:9")
    body = client.post("/api/v1/task/create", json={
        "url": "https://cdn.example.com/v.mp4", "platform": "rpa"}).get_json()
    [warning] = body["data"]["warnings"]
    assert warning["code"] == "no_keys"
    assert set(body["data"]) == set(schemas["TaskCreated"]["properties"])
    assert set(schemas["ServiceWarning"]["required"]) <= set(warning) == set(
        schemas["ServiceWarning"]["properties"])

def test_the_document_says_what_a_tag_read_on_screen_is(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    tag = document["components"]["schemas"]["Tag"]["properties"]
    assert tag["read"]["type"] == "boolean" and tag["read"]["default"] is False
    assert {"type": "string"} in tag["lang"]["anyOf"] and tag["lang"]["default"] is None
    assert tag["read"]["description"] and tag["lang"]["description"]


@pytest.mark.slow
def test_schemathesis_finds_nothing(mysql_db_url, redis_client, search_server,
                                    tmp_path) -> None:
    """No worker is running and private URLs are allowed: nothing leaves 127.0.0.1. The
    synchronous route is excluded (it would download whatever URL is generated); fresh
    seeds, for minutes, and that route with negative data: `make fuzz`."""
    env = stack_env(mysql_db_url, REDIS_URL, search_server, tmp_path, allow_private=True)
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer=False)
    try:
        run = subprocess.run(
            st_command(stack.api_url, 7, phases="coverage,fuzzing,stateful", max_examples=25),
            capture_output=True, text=True, timeout=300,
            cwd=tmp_path)  # its run cache (.schemathesis/) stays out of the repository
    finally:
        stack.stop()
    assert run.returncode == 0, run.stdout[-5000:]
    assert "Stateful" in run.stdout and "API Links" in run.stdout
