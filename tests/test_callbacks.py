"""Completion callbacks: signed final JSON, retried on 5xx/timeouts only, outcome stored."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import functions_framework
import pytest

from shared.app.tasks import create_task
from shared.pipeline.callbacks import sign, task_body
from shared.pipeline.runner import handle_delivery
from shared.services import Services
from shared.tasks.models import CreateTaskRequest


@pytest.fixture
def callback_services(sqlite_services: Services) -> Services:
    sqlite_services.settings.CALLBACK_SECRET = "cb-secret"
    sqlite_services.settings.CALLBACK_TIMEOUT_S = 1
    sqlite_services.settings.CALLBACK_MAX_ATTEMPTS = 3
    return sqlite_services


def run(services: Services, url: str, callback_url: str):
    request = CreateTaskRequest.model_validate(
        {"url": url, "platform": "rpa", "callback_url": callback_url},
        context={"platforms": ["rpa"]})
    task_id = create_task(services, request)[0].task_id
    handle_delivery(task_id, services.worker)
    return services.store.get(task_id)


def test_500_then_200_is_retried_then_delivered(callback_services, media_server,
                                                receiver_factory) -> None:
    receiver = receiver_factory([500, 200], path="/hook")
    task = run(callback_services, media_server.url("files/clip.mp4"), receiver.url)
    assert (task.status, task.callback_status, task.callback_attempts) == (
        "completed", "delivered", 2)
    headers, body = receiver.received[-1]
    assert headers["X-Task-Id"] == task.task_id
    expected = "sha256=" + hmac.new(b"cb-secret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature"], expected)
    sent = json.loads(body)
    assert sent["code"] == 200 and sent["task_id"] == task.task_id
    assert sent["data"]["status"] == "completed" and sent["data"]["result"]["tags"]


def test_404_is_not_retried(callback_services, media_server, receiver_factory) -> None:
    receiver = receiver_factory([404], path="/hook")
    task = run(callback_services, media_server.url("files/clip.mp4"), receiver.url)
    assert (task.status, task.callback_status, task.callback_attempts) == (
        "completed", "failed", 1)
    assert "404" in task.callback_error and len(receiver.received) == 1


@pytest.mark.serial  # times itself against a real limit, or uses the checkout's var/
def test_hanging_receiver_is_bounded(callback_services, media_server, receiver_factory):
    receiver = receiver_factory(["hang", "hang", "hang"], path="/hook")
    started = time.monotonic()
    task = run(callback_services, media_server.url("files/clip.mp4"), receiver.url)
    assert time.monotonic() - started < 8  # 3 × 1 s timeouts + 0.5 s + 1 s backoff
    assert (task.status, task.callback_status, task.callback_attempts) == (
        "completed", "failed", 3)
    assert "after 3 attempts" in task.callback_error


def test_failed_task_is_called_back_too(callback_services, media_server, receiver_factory):
    receiver = receiver_factory([200], path="/hook")
    task = run(callback_services, media_server.url("status/404"), receiver.url)
    assert task.status == "failed" and task.callback_status == "delivered"
    assert json.loads(receiver.received[0][1])["data"]["error_code"] == "download_failed"


def test_callback_target_is_checked_at_delivery(callback_services, media_server,
                                                receiver_factory) -> None:
    from shared.video.safety import UrlPolicy

    """Allowed at create (DNS may change later); refused when the callback is delivered."""
    receiver = receiver_factory([200], path="/hook")
    request = CreateTaskRequest.model_validate(
        {"url": media_server.url("files/clip.mp4"), "platform": "rpa",
         "callback_url": receiver.url}, context={"platforms": ["rpa"]})
    task_id = create_task(callback_services, request)[0].task_id
    port = media_server.httpd.server_address[1]
    callback_services.url_policy = UrlPolicy(allowlist=frozenset({f"127.0.0.1:{port}"}))
    handle_delivery(task_id, callback_services.worker)
    task = callback_services.store.get(task_id)
    assert task.status == "completed"
    assert task.callback_status == "failed" and "not resolve to a public" in task.callback_error
    assert receiver.received == []


def test_signature_helpers_match_the_documented_recipe() -> None:
    body = b'{"code":200}'
    assert sign(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


def test_callback_shape_equals_get_task(app_env, media_server, receiver_factory) -> None:
    app_env(CALLBACK_SECRET="s")
    from shared.services import get_services

    client = functions_framework.create_app("api", "main.py").test_client()
    receiver = receiver_factory([200], path="/hook")
    task_id = client.post("/api/v1/task/create", json={
        "url": media_server.url("files/clip.mp4"), "platform": "rpa",
        "callback_url": receiver.url}).get_json()["task_id"]
    services = get_services()
    handle_delivery(task_id, services.worker)
    got = client.get(f"/api/v1/task/{task_id}").get_json()
    sent = json.loads(receiver.received[0][1])
    for volatile in ("callback_status", "callback_attempts", "callback_error", "updated_at",
                     "indexed_at"):
        got["data"].pop(volatile), sent["data"].pop(volatile)
    assert sent == got
    assert json.loads(task_body(services.store.get(task_id)))["data"]["callback_status"] \
        == "delivered"
