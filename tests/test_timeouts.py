"""Every dependency call has a time limit: a MySQL or Redis that accepts connections and
never answers is an outage (503 + Retry-After, nothing written) within the API's bounds,
like one that refuses; a limit of 0 or below stops start-up naming the variable."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import functions_framework
import pytest
import redis

from shared.app import tasks
from shared.config import ConfigError, load_settings
from shared.errors import ServiceUnavailable
from shared.queue.redis_queue import RedisQueue
from shared.redis_conn import RedisLimits, stop_embedded_server
from shared.redis_conn import connect as connect_redis
from shared.services import build_services, get_services
from shared.tasks.models import CreateTaskRequest

ROOT = Path(__file__).resolve().parent.parent
VALID = {"url": "https://example.com/video.mp4", "platform": "rpa"}
API_BOUND_S = 10
HEALTH_BOUND_S = 3

TIMEOUT_SETTINGS = [
    "DB_CONNECT_TIMEOUT_S", "DB_READ_TIMEOUT_S", "DB_WRITE_TIMEOUT_S", "DB_POOL_TIMEOUT_S",
    "DB_POOL_RECYCLE_S", "DB_MIGRATION_TIMEOUT_S", "SQLITE_BUSY_TIMEOUT_S",
    "REDIS_CONNECT_TIMEOUT_S", "REDIS_SOCKET_TIMEOUT_S", "REDIS_HEALTH_CHECK_INTERVAL_S",
    "GCS_TIMEOUT_S", "GCS_RETRY_DEADLINE_S", "ES_TIMEOUT_S", "CLOUD_TASKS_TIMEOUT_S",
    "HEALTH_TIMEOUT_S", "CALLBACK_TIMEOUT_S",
]


class Blackhole:
    """A port on 127.0.0.1 that accepts connections (the kernel's backlog) and never reads
    or answers: a server that hangs, as a partition or a stopped process looks."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    hole.close()


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.parametrize("value", ["0", "-1"])
@pytest.mark.parametrize("name", TIMEOUT_SETTINGS)
def test_a_time_limit_of_zero_or_below_is_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**{name: value})
    assert f"{name}={value!r}" in str(caught.value) and "greater than 0" in str(caught.value)


def test_a_bad_time_limit_stops_start_up_naming_the_variable() -> None:
    env = {**os.environ, "REDIS_SOCKET_TIMEOUT_S": "0"}
    done = subprocess.run([sys.executable, "main.py", "--api-port", "1"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "invalid configuration: REDIS_SOCKET_TIMEOUT_S='0': Input should be greater " \
           "than 0" in done.stderr


@pytest.mark.slow  # waits out the real time limits (~12 s)
def test_a_database_that_never_answers_is_503_within_the_bounds(app_env, blackhole) -> None:
    app_env(DATABASE_URL=f"mysql+pymysql://root@127.0.0.1:{blackhole.port}/nothing")
    client = functions_framework.create_app("api", "main.py").test_client()
    health, seconds = timed(lambda: client.get("/healthz"))
    assert health.status_code == 503 and seconds < HEALTH_BOUND_S
    for call in (lambda: client.post("/api/v1/task/create", json=VALID),
                 lambda: client.get(f"/api/v1/task/{'a' * 32}"),
                 lambda: client.get("/api/v1/tasks")):
        response, seconds = timed(call)
        assert response.status_code == 503, response.get_json()
        assert response.headers["Retry-After"] and seconds < API_BOUND_S
        assert "unavailable" in response.get_json()["message"]


@pytest.mark.slow  # waits out the real time limits (~12 s)
def test_a_redis_that_never_answers_is_503_and_leaves_nothing(app_env, blackhole) -> None:
    app_env(REDIS_URL=f"redis://127.0.0.1:{blackhole.port}/0")
    client = functions_framework.create_app("api", "main.py").test_client()
    create, seconds = timed(lambda: client.post("/api/v1/task/create", json=VALID))
    assert create.status_code == 503 and "redis" in create.get_json()["message"]
    assert create.headers["Retry-After"] and seconds < API_BOUND_S
    assert sum(get_services().queries.count_by_status().values()) == 0  # nothing half-written
    for path in ("/api/v1/accounts", "/api/v1/stats"):
        response, seconds = timed(lambda p=path: client.get(p))
        assert response.status_code == 503 and seconds < API_BOUND_S, path
    health, seconds = timed(lambda: client.get("/healthz"))
    assert health.status_code == 503 and seconds < HEALTH_BOUND_S
    assert health.get_json()["data"]["database"] == "ok"
    assert health.get_json()["data"]["redis"].startswith("error")


def test_a_redis_timeout_is_not_retried(blackhole, tmp_path) -> None:
    client = connect_redis(f"redis://127.0.0.1:{blackhole.port}/0", tmp_path,
                           RedisLimits(connect_s=1, socket_s=0.5))
    with pytest.raises(redis.TimeoutError):
        client.ping()
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.get("x")
    assert time.monotonic() - started < 1.0  # one socket timeout, not three


def test_the_blocking_queue_read_stays_inside_the_socket_timeout(redis_client) -> None:
    from tests.conftest import REDIS_URL

    client = connect_redis(REDIS_URL, Path("unused"), RedisLimits(socket_s=0.6))
    queue = RedisQueue(client)
    assert queue.max_block_s == pytest.approx(0.3)
    taken, seconds = timed(lambda: queue.take(timeout_s=5))
    assert taken is None and seconds < 0.6
    queue.enqueue("abc")
    assert queue.take(timeout_s=5) == "abc"


def test_sqlite_busy_is_503_after_its_limit(make_settings, redis_client, tmp_path) -> None:
    services = build_services(make_settings(SQLITE_BUSY_TIMEOUT_S=0.5))
    writer = sqlite3.connect(tmp_path / "tasks.db")
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        request = CreateTaskRequest.model_validate(
            {**VALID, "url": "http://127.0.0.1:9/v.mp4"},
            context={"platforms": ["rpa"], "envs": ["develop", "production"]})
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="database"):
            tasks.create_task(services, request, None)
        assert time.monotonic() - started < 3
    finally:
        writer.rollback()
        writer.close()
    assert sum(services.queries.count_by_status().values()) == 0
    services.store.engine.dispose()


def test_a_hanging_embedded_redis_times_out_and_recovers(tmp_path) -> None:
    folder = tmp_path / "redis"
    client = connect_redis("", folder, RedisLimits(socket_s=0.5))
    pid = int((folder / "redis.pid").read_text())
    try:
        assert client.set("k", "v")
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.get("k")
        assert time.monotonic() - started < 1.5
        os.kill(pid, signal.SIGCONT)
        assert client.get("k") == "v"
    finally:
        os.kill(pid, signal.SIGCONT)
        stop_embedded_server(folder)


class HangingStorage:
    """Storage whose writes time out: the backing service is down mid-task."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def put_file(self, *args, **kwargs):
        raise ServiceUnavailable("storage", "ReadTimeout")

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_an_outage_mid_task_gives_the_attempt_back(sqlite_services, media_server) -> None:
    from shared.pipeline.runner import DeliveryKind, handle_delivery

    services = sqlite_services
    request = CreateTaskRequest.model_validate(
        {"url": media_server.url("files/clip.mp4"), "platform": "rpa"},
        context={"platforms": ["rpa"], "envs": ["develop", "production"]})
    task_id = tasks.create_task(services, request, None)[0].task_id
    healthy = services.storage
    services.storage = HangingStorage(healthy)
    reply = handle_delivery(task_id, services.worker)
    task = services.store.get(task_id)
    assert reply.kind == DeliveryKind.DONE and reply.retry_after_s >= 1
    assert (task.status, task.attempts, task.error_code) == ("pending", 0,
                                                             "service_unavailable")
    services.storage = healthy
    assert handle_delivery(task_id, services.worker).task_status == "completed"
    assert services.store.get(task_id).attempts == 1
