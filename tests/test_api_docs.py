"""The API as a reader and a client generator see it: a valid OpenAPI document whose every
operation has its own id and group, every error reply one schema (with the field when the
error is about one), and `/docs`, the document rendered by a vendored Swagger UI."""

from __future__ import annotations

import uuid

import functions_framework
import pytest
from openapi_spec_validator import validate

from functions.openapi import GROUPS
from scripts.stack import ROOT
from tests.test_dashboard import ARGS, CHROMIUM, serving

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorEnvelope"}


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


@pytest.fixture
def document(client) -> dict:
    return client.get("/api/v1/openapi.json").get_json()


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, operation) for path, item in document["paths"].items()
            for method, operation in item.items()]


def test_the_document_is_valid_openapi(document) -> None:
    validate(document)


def test_every_operation_has_its_own_id_and_a_group(document) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    groups = {group for _, group in GROUPS} | {"operations"}
    for path, method, operation in operations(document):
        assert operation["tags"] and set(operation["tags"]) <= groups, (method, path)
    by_group = {operation["tags"][0] for _, _, operation in operations(document)}
    assert {"tasks", "batches", "search", "keys", "operations"} <= by_group


def test_every_json_reply_names_its_data_model(document) -> None:
    """No 200 reply is the bare envelope: a generated client gets a class for each."""
    schemas = document["components"]["schemas"]
    for path, method, operation in operations(document):
        content = operation["responses"]["200"].get("content", {})
        if "application/json" not in content or path == "/api/v1/openapi.json":
            continue
        name = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        data = schemas[name]["properties"]["data"]
        assert "$ref" in data, (method, path, name)


def test_every_error_reply_is_the_error_schema(document) -> None:
    schema = document["components"]["schemas"]["ErrorEnvelope"]
    assert {"code", "message", "field"} <= set(schema["properties"])
    for path, method, operation in operations(document):
        for status, answer in operation["responses"].items():
            if int(status) >= 400 and status != "503" or status == "503" and (
                    path != "/healthz"):
                assert answer["content"]["application/json"]["schema"] == ERROR_SCHEMA, (
                    method, path, status)


def test_an_error_about_one_field_names_it(client) -> None:
    bad_url = client.post("/api/v1/task/create", json={"url": "ftp://x", "platform": "rpa"})
    assert bad_url.status_code == 400
    assert bad_url.get_json()["field"] == "url"
    assert bad_url.get_json()["message"].startswith("url: ")
    unknown = client.get(f"/api/v1/task/{uuid.uuid4()}").get_json()
    assert unknown["code"] == 404 and unknown["field"] == "task_id"
    not_json = client.post("/api/v1/task/create", data="x", content_type="text/plain")
    assert not_json.status_code == 415 and not_json.get_json()["field"] == "Content-Type"


def test_an_error_about_no_field_has_none(client, app_env) -> None:
    app_env(API_TOKENS="t")
    body = client.get("/api/v1/tasks", headers={"Authorization": "Bearer wrong"}).get_json()
    assert body["code"] == 401 and body["field"] == "Authorization"
    assert "field" not in client.get("/api/v1/tasks", headers={
        "Authorization": "Bearer t"}).get_json()  # a success has no field


def test_docs_page_needs_no_token_and_fetches_nothing_from_elsewhere(client, app_env) -> None:
    app_env(API_TOKENS="secret-token")
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # no CDN
    for asset in ("docs/docs.js", "docs/vendor/swaggerui.bundle.js",
                  "docs/vendor/swaggerui.css"):
        assert asset in html
        served = client.get(f"/{asset}")
        assert served.status_code == 200 and served.headers["Content-Security-Policy"] == csp
    assert client.get("/docs/vendor/other.js").status_code == 404
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert 'href="docs"' in dashboard  # linked from the dashboard


@pytest.mark.slow
def test_docs_page_renders_the_document_offline_at_390_and_1440(app_env) -> None:
    """Chromium (no network beyond 127.0.0.1) renders every operation, in its groups,
    with no script or style refused by the page's CSP."""
    from playwright.sync_api import sync_playwright

    app_env(API_TOKENS="secret-token")
    client = functions_framework.create_app("api", "main.py").test_client()
    count = len(operations(client.get("/api/v1/openapi.json").get_json()))
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with serving() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for width in (390, 1440):
            page = browser.new_page(viewport={"width": width, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m, p=problems: m.type == "error" and p.append(m.text))
            page.on("requestfailed", lambda r, p=problems: p.append(f"failed: {r.url}"))
            page.goto(f"{url}/docs")
            page.wait_for_selector(".opblock", timeout=20_000)
            assert page.locator(".opblock").count() == count
            groups = page.locator(".opblock-tag").all_inner_texts()
            assert {"tasks", "batches", "keys", "operations"} <= {
                g.split("\n")[0].strip() for g in groups}
            assert problems == []
            page.screenshot(path=str(artifacts / f"docs-{width}.png"))
        browser.close()
