"""GET /api/v1/stats and the log format (JSON for Cloud Logging, text otherwise)."""

from __future__ import annotations

import io
import json
import logging

import functions_framework

from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.logs import JsonFormatter, TextFormatter, log_context, trace_fields
from shared.pipeline.runner import handle_delivery
from shared.services import get_services


def test_stats_match_what_happened(app_env, media_server, redis_client) -> None:
    import_accounts(redis_client, [AccountEntry(api_key="AIzaSySTATS0000000000001", daily_limit=50,
                                                minute_limit=5, username="u", password="pw",
                                                phone="", email="")])
    client = functions_framework.create_app("api", "main.py").test_client()
    ids = [client.post("/api/v1/task/create", json={"url": media_server.url(path),
                                                    "platform": "rpa"}).get_json()["task_id"]
           for path in ("files/clip.mp4", "status/404", "files/portrait.mp4")]
    services = get_services()
    for task_id in ids[:2]:
        handle_delivery(task_id, services.worker)
    for task_id in ids[:2]:  # what a consumer took to deliver them
        for name in (redis_keys.TASK_QUEUE, redis_keys.team_queue("default")):
            redis_client.lrem(name, 0, task_id)
    data = client.get("/api/v1/stats").get_json()["data"]
    assert data["tasks"] == {"pending": 1, "processing": 0, "waiting_batch": 0, "completed": 1,
                             "failed": 1}
    assert data["queue"] == {"pending": 1, "delayed": 0, "in_flight": 0, "failed": 0}
    assert (data["last_hour"]["completed"], data["last_hour"]["failed"]) == (1, 1)
    stages = data["last_hour"]["stages"]
    assert stages["downloading"]["count"] == 2 and stages["tagging"]["count"] == 1
    assert stages["probing"]["p50_ms"] <= stages["probing"]["p95_ms"]
    assert data["pool"]["capacity_left_today"] == 50 and data["search_enabled"] is False


def test_stats_when_redis_is_down(app_env) -> None:
    app_env(REDIS_URL="redis://127.0.0.1:1/0")
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.get("/api/v1/stats")
    assert response.status_code == 503
    assert response.get_json()["message"].startswith("redis is unavailable")


def capture(formatter: logging.Formatter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.logs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_json_lines_carry_context_and_trace(monkeypatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
    logger, stream = capture(JsonFormatter())
    trace = trace_fields("0123456789abcdef0123456789abcdef/42;o=1")
    with log_context(task_id="t1", **trace):
        logger.info("stage %s done", "probing", extra={"stage": "probing", "duration_ms": 12})
    entry = json.loads(stream.getvalue())
    assert entry["severity"] == "INFO" and entry["message"] == "stage probing done"
    assert (entry["task_id"], entry["stage"], entry["duration_ms"]) == ("t1", "probing", 12)
    assert entry["logging.googleapis.com/trace"] == \
        "projects/proj/traces/0123456789abcdef0123456789abcdef"
    assert entry["logging.googleapis.com/spanId"] == "42" and "time" in entry
    assert trace_fields("garbage") == {}


def test_text_lines_are_single_and_readable() -> None:
    logger, stream = capture(TextFormatter())
    with log_context(task_id="t2"):
        logger.info("hello", extra={"key_id": "abcd"})
    line = stream.getvalue().strip()
    assert "\n" not in line and line.endswith("hello [task_id=t2 key_id=abcd]")


def test_every_stage_leaves_one_line(sqlite_services, media_server, caplog) -> None:
    from shared.app.tasks import create_task
    from shared.tasks.models import CreateTaskRequest

    request = CreateTaskRequest.model_validate(
        {"url": media_server.url("files/clip.mp4"), "platform": "rpa"},
        context={"platforms": ["rpa"]})
    task_id = create_task(sqlite_services, request)[0].task_id
    with caplog.at_level(logging.INFO, logger="vision_to_tag.pipeline"):
        handle_delivery(task_id, sqlite_services.worker)
    stages = [r.stage for r in caplog.records if r.name == "vision_to_tag.pipeline"]
    assert stages == ["downloading", "probing", "extracting_frames", "tagging"]
    assert all(isinstance(r.duration_ms, int) for r in caplog.records
               if r.name == "vision_to_tag.pipeline")


def test_a_failed_task_is_logged_at_warning(sqlite_services, media_server, caplog) -> None:
    from shared.app.tasks import create_task
    from shared.pipeline.reaper import reap_stuck_tasks
    from shared.tasks.models import CreateTaskRequest

    request = CreateTaskRequest.model_validate(
        {"url": media_server.url("files/notes.txt"), "platform": "rpa"},
        context={"platforms": ["rpa"]})
    task_id = create_task(sqlite_services, request)[0].task_id
    lost_id = create_task(sqlite_services, request)[0].task_id
    sqlite_services.store.claim(lost_id, lease_s=-1, max_attempts=1)  # its worker died
    with caplog.at_level(logging.WARNING):
        assert handle_delivery(task_id, sqlite_services.worker).task_status == "failed"
        assert reap_stuck_tasks(sqlite_services.store, sqlite_services.queries,
                                sqlite_services.queue, max_attempts=1)["failed"] == 1
    failures = {r.task_id: r for r in caplog.records if r.getMessage().startswith("task failed")}
    assert set(failures) == {task_id, lost_id}
    assert all(r.levelno == logging.WARNING for r in failures.values())
    assert failures[task_id].error_code == "unsupported_format"
    assert failures[lost_id].error_code == "attempts_exhausted"
