"""Requests the served document forbids are refused (400 naming the parameter or field),
and the document and the server agree on what is allowed: what Schemathesis found with
fresh seeds (issue 29), each as a plain test."""

from __future__ import annotations

import json

import functions_framework
import jsonschema_rs
import pytest
import redis

from shared.services import get_services
from tests.helpers import queued_ids

VALID = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def task_count() -> int:
    return sum(get_services().queries.count_by_status().values())


def parameter_schema(client, path: str, name: str) -> dict:
    document = client.get("/api/v1/openapi.json").get_json()
    return next(p["schema"] for p in document["paths"][path]["get"]["parameters"]
                if p["name"] == name)


FILTERS = [
    ("/api/v1/tasks", "platform", "false"),
    ("/api/v1/tasks", "platform", ""),
    ("/api/v1/tasks", "platform", "RPA"),
    ("/api/v1/tasks", "status", "done"),
    ("/api/v1/tasks", "limit", "+5"),
    ("/api/v1/tasks", "limit", "1.0"),
    ("/api/v1/tasks", "limit", "5_0"),
    ("/api/v1/tasks", "limit", " 5"),
    ("/api/v1/tasks", "limit", "101"),
    ("/api/v1/tasks", "uid", "u" * 65),
    ("/api/v1/tasks", "cursor", "c" * 65),
    ("/api/v1/search", "platform", "false"),
    ("/api/v1/search", "env", "staging"),
    ("/api/v1/search", "min_duration", "inf"),
    ("/api/v1/search", "min_duration", "nan"),
    ("/api/v1/search", "max_duration", "1_0"),
    ("/api/v1/search", "max_duration", "-1"),
    ("/api/v1/search", "limit", "0"),
    ("/api/v1/search", "q", "q" * 501),
]


@pytest.mark.parametrize(("path", "name", "value"), FILTERS)
def test_each_filter_refuses_a_value_outside_the_document(client, path: str, name: str,
                                                          value: str) -> None:
    response = client.get(path, query_string={name: value})
    body = response.get_json()
    assert response.status_code == 400 == body["code"], body
    assert body["message"].startswith(f"{name}: "), body["message"]
    schema = parameter_schema(client, path, name)
    if "enum" in schema:  # the document refuses it too
        assert not jsonschema_rs.Draft202012Validator(schema).is_valid(value)


def test_filters_take_the_documented_values(client) -> None:
    assert parameter_schema(client, "/api/v1/tasks", "platform")["enum"] == ["rpa", "miaobi"]
    assert parameter_schema(client, "/api/v1/search", "env")["enum"] == ["develop", "production"]
    for query in ("platform=rpa", "platform=miaobi&status=failed&limit=100", "uid=x&limit=1"):
        assert client.get(f"/api/v1/tasks?{query}").status_code == 200


def test_stats_refuses_parameters_it_does_not_have(client) -> None:
    body = client.get("/api/v1/stats?platform=rpa").get_json()
    assert body["code"] == 400 and body["message"] == "platform: unknown parameter"
    assert client.get("/api/v1/stats").status_code == 200


def test_search_lists_are_one_comma_separated_string_in_the_document(client) -> None:
    """As sent: `tags=5` is the list ["5"], not a wrong type."""
    for name in ("tags", "any_tags"):
        assert parameter_schema(client, "/api/v1/search", name)["type"] == "string"
    assert client.get("/api/v1/search?tags=5&any_tags=a,b").get_json()["code"] == 501


def post(client, path: str, body: dict):
    response = client.post(path, data=json.dumps(body),
                           headers={"Content-Type": "application/json"})
    return response.status_code, response.get_json()["message"]


ROUTES = ["/api/v1/task/create", "/api/v1/vision_to_tag/google"]


@pytest.mark.parametrize("path", ROUTES)
def test_the_request_schemathesis_found_is_refused(client, redis_client: redis.Redis,
                                                   path: str) -> None:
    """`{"url": "HTtp://1*", "platform": "rpa", "Ð": [true]}` was a 200 and a task."""
    body = {"url": "HTtp://1*", "platform": "rpa", "Ð": [True]}
    assert post(client, path, body) == (400, "Ð: unknown field")
    del body["Ð"]
    status, message = post(client, path, body)
    assert status == 400 and message.startswith("url: host '1*' is not a valid host name")
    assert task_count() == 0 and len(queued_ids(redis_client)) == 0


@pytest.mark.parametrize("path", ROUTES)
def test_unknown_fields_are_named(client, path: str) -> None:
    status, message = post(client, path, {**VALID, "dimension": "vision", "callback": "x"})
    assert (status, message) == (400, "dimension, callback: unknown fields")
    assert task_count() == 0


def test_the_original_spelling_dismensions_is_still_accepted(client) -> None:
    response = client.post("/api/v1/task/create", json={**VALID, "dismensions": "audio"})
    task_id = response.get_json()["task_id"]
    assert response.status_code == 200
    assert client.get(f"/api/v1/task/{task_id}").get_json()["data"]["dimensions"] == ["audio"]
    document = client.get("/api/v1/openapi.json").get_json()
    create = document["components"]["schemas"]["CreateTaskRequest"]
    assert create["additionalProperties"] is False
    assert create["properties"]["dismensions"]["deprecated"] is True


BAD_HOSTS = [
    ("http://cdn*.example.com/v.mp4", "character '*' not allowed"),
    ("http://cdn_1.example.com/v.mp4", "character '_' not allowed"),
    ("http://cdn..example.com/v.mp4", "empty label"),
    ("http://cdn.example.com./v.mp4", "no trailing dot"),
    ("http://视频.example.com/v.mp4", "IDNA form, xn--"),
]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(("url", "reason"), BAD_HOSTS)
def test_invalid_host_names_are_400(client, path: str, url: str, reason: str) -> None:
    status, message = post(client, path, {**VALID, "url": url})
    assert status == 400 and message.startswith("url: host ") and reason in message, message
    status, message = post(client, path, {**VALID, "callback_url": url})
    assert status == 400 and message.startswith("callback_url: host "), message
    assert task_count() == 0


@pytest.mark.parametrize("url", ["HTTP://CDN.Example.com/v.mp4", "hTTps://cdn.example.com/v",
                                 "http://xn--6qq79v.example.com/v.mp4",
                                 "https://cdn.example.com/视频/春节.mp4?标题=片段"])
def test_upper_case_schemes_idna_hosts_and_unicode_paths_are_accepted(client, url: str
                                                                      ) -> None:
    response = client.post("/api/v1/task/create", json={**VALID, "url": url})
    assert response.status_code == 200, response.get_json()
    task_id = response.get_json()["task_id"]
    assert client.get(f"/api/v1/task/{task_id}").get_json()["data"]["url"] == url
    pattern = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"][
        "CreateTaskRequest"]["properties"]["url"]["pattern"]
    assert jsonschema_rs.Draft202012Validator({"pattern": pattern}).is_valid(url)


def test_an_upper_case_scheme_is_downloaded_like_a_lower_case_one(sqlite_services,
                                                                  media_server) -> None:
    """Accepted by the document and the server, so the pipeline must handle it too."""
    from tests.test_intake import run

    url = media_server.url("files/clip.mp4").replace("http://", "HTTP://") + "#片段"
    reply, task = run(sqlite_services, url)
    assert task.status == "completed", (task.error_code, task.message)
    assert task.url == url


def test_the_synchronous_route_documents_platform_as_optional(client) -> None:
    """The server fills in the first platform, so the document must not require it
    (fresh-seed fuzzing sent a body without one: 'negative' data the server accepted)."""
    from shared.tasks.models import SyncTagRequest

    schema = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert "platform" not in schema["SyncTagRequest"]["required"]
    assert schema["SyncTagRequest"]["properties"]["platform"]["default"] == "rpa"
    assert "platform" in schema["CreateTaskRequest"]["required"]
    parsed = SyncTagRequest.model_validate({"url": VALID["url"]},
                                           context={"platforms": ["rpa", "miaobi"]})
    assert parsed.platform == "rpa"


def test_ids_with_a_trailing_newline_are_malformed_not_a_crash() -> None:
    """`^…$` in Python also matches before a final newline; the document's `$` does not."""
    from shared.tasks.models import task_id_forms

    assert task_id_forms("0" * 32 + "\n") is None
    assert task_id_forms("0" * 32) is not None
