"""One local stack per folder: a second `python main.py`, or one whose port is taken, exits
at once with one line naming what runs (pid, port); SIGTERM says what it waits for and
stops the embedded Redis the stack started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import sqlalchemy as sa

from scripts.stack import ROOT, free_port
from shared.config import VAR_DIR
from shared.redis_conn import embedded_running
from tests.helpers import wait_for


def run_main(env: dict[str, str], *args: str, out=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


def test_a_port_in_use_stops_start_up_naming_its_owner(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        stack = run_main({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
                         "--api-port", str(port), "--worker-port", str(free_port()))
        output, _ = stack.communicate(timeout=30)
    lines = output.decode().strip().splitlines()
    assert stack.returncode == 1 and time.monotonic() - started < 10
    assert len(lines) == 1 and re.fullmatch(
        rf"stack: port {port} \(api\) is already in use by pid {os.getpid()} \(.*python.*\); "
        r"stop it or pass --api-port", lines[0]), lines
    assert not (tmp_path / "x.db").exists()  # nothing was started


@pytest.mark.slow
def test_second_stack_exits_at_once_and_sigterm_finishes_the_task(media_server,
                                                                   tmp_path) -> None:
    redis_was_running = embedded_running(VAR_DIR / "redis")
    database = tmp_path / "tasks.db"
    env = {"DATABASE_URL": f"sqlite:///{database}", "REDIS_URL": "",
           "STORAGE_DIR": str(tmp_path / "storage"), "ALLOW_PRIVATE_URLS": "true",
           "API_TOKENS": "", "WORKER_TOKEN": ""}
    api_port, worker_port = free_port(), free_port()
    output = tmp_path / "first.out"
    with open(output, "wb") as out:
        first = run_main(env, "--api-port", str(api_port), "--worker-port", str(worker_port),
                         out=out)
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_for(lambda: "consumer started" in output.read_text(), timeout_s=60)
        started = time.monotonic()
        second = run_main(env, "--api-port", str(free_port()), "--worker-port",
                          str(free_port()))
        said, _ = second.communicate(timeout=30)
        assert second.returncode == 1 and time.monotonic() - started < 10
        assert said.decode().strip().splitlines() == [
            f"stack: a local stack is already running in {VAR_DIR} (pid {first.pid}, api on "
            f"127.0.0.1:{api_port}, worker on 127.0.0.1:{worker_port}); "
            f"stop it first (kill {first.pid})"]

        task_id = requests.post(f"{api}/api/v1/task/create", timeout=10, json={
            "url": media_server.url("slow/3/clip.mp4"), "platform": "rpa"}).json()["task_id"]
        wait_for(lambda: requests.get(f"{api}/api/v1/task/{task_id}", timeout=5)
                 .json()["data"]["stage"] == "downloading", timeout_s=30, interval_s=0.1)
        first.send_signal(signal.SIGTERM)
        assert first.wait(40) == 0
    finally:
        if first.poll() is None:
            first.kill()
    text = output.read_text()
    assert "stopping: finishing 1 task, up to 30 s" in text and "stack stopped" in text
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM video_tasks WHERE task_id = :t"),
                              {"t": task_id}).scalar()
    engine.dispose()
    assert status == "completed"  # the stop waited for the task in flight
    if not redis_was_running:  # the stack started the embedded Redis: it stops it too
        assert "embedded redis stopped" in text
    assert embedded_running(VAR_DIR / "redis") == redis_was_running
