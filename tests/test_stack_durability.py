"""`python main.py` on the embedded defaults, as a user runs it: what it was given survives a
stop, a SIGKILL of its Redis and unreadable Redis files; a stop at any moment of start-up
stops everything; a process started while the database or Redis is down waits for it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from scripts.stack import ROOT, LocalStack, free_port
from shared.redis_conn import AOF_FILE, RDB_FILE, embedded_running
from tests.helpers import RedisServer, TcpForward, wait_for

pytestmark = pytest.mark.slow

KEYS = [f"AIzaSyDURABLE{n:027d}" for n in range(2)]


class Stack:
    """`python main.py` in its own VAR_DIR (SQLite, embedded Redis, local folder)."""

    def __init__(self, var_dir: Path, **env: str) -> None:
        self.var_dir = var_dir
        self.api_port, self.worker_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.env = {**os.environ, "VAR_DIR": str(var_dir), "REDIS_URL": "",
                    "DATABASE_URL": f"sqlite:///{var_dir / 'vision_to_tag.db'}",
                    "STORAGE_DIR": str(var_dir / "storage"), "ALLOW_PRIVATE_URLS": "true",
                    "API_TOKENS": "", "WORKER_TOKEN": "", "PYTHONPATH": str(ROOT),
                    "RESULT_CACHE": "false", **env}
        self.output = var_dir.parent / "stack.out"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> Stack:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.mark = self.output.stat().st_size if self.output.exists() else 0
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "main.py", "--api-port", str(self.api_port),
                 "--worker-port", str(self.worker_port)],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        if wait:
            wait_for(lambda: "consumer started" in self.text(), timeout_s=60,
                     describe=self.text)
        return self

    def text(self) -> str:
        """What this run printed."""
        return self.output.read_bytes()[self.mark:].decode(errors="replace")

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        self.process = None
        return code

    def get(self, path: str) -> dict:
        return requests.get(f"{self.api}{path}", timeout=10).json()

    def create(self, media_url: str) -> str:
        body = requests.post(f"{self.api}/api/v1/task/create", timeout=10,
                             json={"url": media_url, "platform": "rpa"}).json()
        assert body["code"] == 200, body
        return body["task_id"]

    def statuses(self, ids: list[str]) -> dict[str, str]:
        with sqlite3.connect(self.var_dir / "vision_to_tag.db") as db:
            rows = db.execute(f"SELECT task_id, status FROM video_tasks WHERE task_id IN "
                              f"({','.join('?' * len(ids))})", ids).fetchall()
        return dict(rows)

    def all_finished(self, ids: list[str]) -> bool:
        return all(s in ("completed", "failed") for s in self.statuses(ids).values())

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "var")
    yield stack
    stack.kill()
    redis_dir = stack.var_dir / "redis"
    if embedded_running(redis_dir):
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from shared.redis_conn import stop_embedded_server as s; "
                        "s(Path(sys.argv[1]))", str(redis_dir)], cwd=ROOT, check=False)


def import_keys(stack: Stack, tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"api_key": key} for key in KEYS]))
    subprocess.run([sys.executable, "scripts/import_accounts.py", "--file", str(accounts)],
                   cwd=ROOT, env=stack.env, check=True, capture_output=True, timeout=60)


def test_a_restart_keeps_keys_their_state_and_the_queued_tasks(stack: Stack, tmp_path,
                                                               media_server) -> None:
    """Keys imported, one disabled, tasks planned for a retry; SIGTERM; start again. The
    reconciler is held off (an hour's grace), so a task that completes after the restart
    was delivered from the saved delayed queue, not re-queued from the database."""
    stack.env["RECONCILE_GRACE_S"] = "3600"
    stack.start()
    import_keys(stack, tmp_path)
    accounts = stack.get("/api/v1/accounts")["data"]["accounts"]
    disabled = accounts[0]["key_id"]
    assert requests.post(f"{stack.api}/api/v1/accounts/{disabled}/disable",
                         timeout=10).status_code == 200
    before = {a["key_id"]: a["status"]
              for a in stack.get("/api/v1/accounts")["data"]["accounts"]}
    history = stack.get(f"/api/v1/accounts/{disabled}/history")["data"]
    # each download answers 503 once: the tasks wait in the delayed queue for their retry
    paths = [f"flaky/1/clip.mp4/{n}" for n in range(6)]
    ids = [stack.create(media_server.url(path)) for path in paths]
    wait_for(lambda: all(media_server.hits[f"/{path}"] == 1 for path in paths), timeout_s=30)
    assert stack.stop() == 0
    assert set(stack.statuses(ids).values()) == {"pending"}

    stack.start()
    after = {a["key_id"]: a["status"]
             for a in stack.get("/api/v1/accounts")["data"]["accounts"]}
    assert after == before and after[disabled] == "disabled"
    assert stack.get(f"/api/v1/accounts/{disabled}/history")["data"] == history
    wait_for(lambda: stack.all_finished(ids), timeout_s=120, describe=lambda: stack.statuses(ids))
    assert set(stack.statuses(ids).values()) == {"completed"}
    assert stack.stop() == 0


def test_sigkill_of_the_embedded_redis_mid_run_loses_no_task(stack: Stack, media_server) -> None:
    stack.env.update(RECONCILE_GRACE_S="2", TASK_TIMEOUT_S="6")
    stack.start()
    ids = [stack.create(media_server.url("files/clip.mp4")) for _ in range(8)]
    time.sleep(1.0)  # deliveries under way
    os.kill(int((stack.var_dir / "redis" / "redis.pid").read_text()), signal.SIGKILL)
    wait_for(lambda: "embedded redis had stopped; started it again" in stack.text(),
             timeout_s=30, describe=stack.text)
    wait_for(lambda: stack.all_finished(ids), timeout_s=150, describe=lambda: stack.statuses(ids))
    assert set(stack.statuses(ids).values()) == {"completed"}
    assert stack.stop() == 0


def test_unreadable_redis_files_start_empty_and_the_reconciler_requeues(stack: Stack,
                                                                        media_server) -> None:
    stack.env.update(RECONCILE_GRACE_S="2")
    stack.start()
    ids = [stack.create(media_server.url("files/clip.mp4")) for _ in range(8)]
    assert stack.stop() == 0
    for name in (AOF_FILE, RDB_FILE):
        (stack.var_dir / "redis" / name).write_bytes(b"\x00garbage, not a redis file\n" * 8)

    stack.start()
    text = stack.text()
    assert "could not read" in text and "started from nothing" in text
    wait_for(lambda: stack.all_finished(ids), timeout_s=150, describe=lambda: stack.statuses(ids))
    assert set(stack.statuses(ids).values()) == {"completed"}
    assert stack.stop() == 0


@pytest.mark.parametrize("after", ["api.log", "worker.log", "consumer.log"])
def test_a_stop_during_start_up_stops_everything(stack: Stack, after: str) -> None:
    """SIGTERM as soon as a child is spawned (before the supervisor runs): every child and
    the embedded Redis the stack started are stopped, the ports are free again."""
    stack.start(wait=False)
    logs = stack.var_dir / "logs"
    wait_for(lambda: (logs / after).exists(), timeout_s=60, interval_s=0.02)
    assert stack.stop() == 0
    for port in (stack.api_port, stack.worker_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    assert not embedded_running(stack.var_dir / "redis")
    assert "Traceback" not in stack.text()


@contextmanager
def started_later(service: str, mysql_url: str) -> Iterator[tuple[dict[str, str], callable]]:
    """Settings that point at `service` before it answers, and a function that makes it
    answer (a forwarder to MariaDB; a fresh redis-server)."""
    port = free_port()
    if service == "database":
        forward = TcpForward(port, 3306)
        url = mysql_url.replace("127.0.0.1:3306", f"127.0.0.1:{port}")
        try:
            yield {"DATABASE_URL": url}, forward.start
        finally:
            forward.stop()
        return
    server = RedisServer(port)
    try:
        yield {"REDIS_URL": server.url}, server.start
    finally:
        server.kill()


@pytest.mark.parametrize("service", ["database", "redis"])
def test_a_consumer_started_while_a_dependency_is_down_waits_then_works(
        service: str, mysql_db_url: str, redis_client, media_server, tmp_path) -> None:
    from tests.conftest import REDIS_URL

    with started_later(service, mysql_db_url) as (env, bring_up):
        stack = LocalStack(env={"DATABASE_URL": mysql_db_url, "REDIS_URL": REDIS_URL,
                                "STORAGE_DIR": str(tmp_path / "storage"),
                                "ALLOW_PRIVATE_URLS": "true", "API_TOKENS": "",
                                "WORKER_TOKEN": "", "PYTHONPATH": str(ROOT),
                                "VAR_DIR": str(tmp_path / "var"), **env},
                           log_dir=tmp_path / "logs")
        stack.start()
        try:
            log = tmp_path / "logs" / "consumer.log"
            wait_for(lambda: "waiting for it" in log.read_text(), timeout_s=30,
                     describe=log.read_text)
            time.sleep(2)
            assert stack.processes["consumer"].poll() is None  # still there, waiting
            assert log.read_text().count("waiting for it") == 1  # said once
            bring_up()
            wait_for(lambda: "answering again; starting" in log.read_text(), timeout_s=30,
                     describe=log.read_text)
            task_id = requests.post(f"{stack.api_url}/api/v1/task/create", timeout=10, json={
                "url": media_server.url("files/clip.mp4"), "platform": "rpa"}).json()["task_id"]
            wait_for(lambda: requests.get(f"{stack.api_url}/api/v1/task/{task_id}", timeout=10)
                     .json()["data"]["status"] == "completed", timeout_s=60)
            assert "Traceback" not in log.read_text()
        finally:
            stack.stop()
