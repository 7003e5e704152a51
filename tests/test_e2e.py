"""End to end with real processes: functions-framework for `api` and `process_task`, the
consumer, MariaDB, Redis, and a video served from 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from scripts.stack import ROOT, LocalStack
from tests.conftest import REDIS_URL
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


def test_stack_tags_videos_and_retries_transient_failures(
    mysql_db_url, redis_client, media_server, tmp_path
) -> None:
    env = {"DATABASE_URL": mysql_db_url, "REDIS_URL": REDIS_URL, "API_TOKENS": "t0k",
           "WORKER_TOKEN": "w0rk", "STORAGE_DIR": str(tmp_path / "storage"),
           "ALLOW_PRIVATE_URLS": "true", "LOG_FORMAT": "json"}
    auth = {"Authorization": "Bearer t0k"}
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=["--min-backoff", "0.2", "--reap-interval", "1"])
    try:
        ids = {}
        for name, path in [("ok", "files/clip.mp4"), ("flaky", "flaky/1/clip.mp4"),
                           ("gone", "status/404")]:
            created = requests.post(f"{stack.api_url}/api/v1/task/create", headers=auth,
                                    json={"url": media_server.url(path), "platform": "rpa"},
                                    timeout=10).json()
            assert created["code"] == 200, created
            ids[name] = created["task_id"]

        def finished() -> dict | None:
            tasks = {name: requests.get(f"{stack.api_url}/api/v1/task/{tid}", headers=auth,
                                        timeout=10).json()["data"] for name, tid in ids.items()}
            done = all(t["status"] in ("completed", "failed") for t in tasks.values())
            return tasks if done else None

        tasks = wait_for(finished, timeout_s=60, interval_s=0.3)
    finally:
        stack.stop()
    assert tasks["ok"]["status"] == "completed" and "横屏" in tasks["ok"]["result"]["tags"]
    assert tasks["flaky"]["status"] == "completed" and tasks["flaky"]["attempts"] == 2
    assert tasks["gone"]["status"] == "failed"
    assert tasks["gone"]["error_code"] == "download_failed"
    worker_log = (tmp_path / "logs" / "worker.log").read_text()
    lines = [json.loads(line) for line in worker_log.splitlines() if line.startswith("{")]
    assert any(line.get("task_id") == ids["ok"] for line in lines)
    assert "t0k" not in worker_log and "w0rk" not in worker_log


@pytest.mark.serial  # times itself against a real limit, or uses the checkout's var/
def test_readme_demo_command_tags_the_sample_video() -> None:
    """The README's first command (after install): embedded defaults end to end; with
    --json the whole task on stdout, the headline on stderr."""
    run = subprocess.run([sys.executable, "scripts/demo.py", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=180,
                         env={"PATH": str(ROOT / ".venv" / "bin") + ":/usr/bin:/bin",
                              "HOME": str(ROOT / "var"), "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert ": completed in " in run.stderr and "\ntop tags: " in run.stderr
    task = json.loads(run.stdout)
    assert task["status"] == "completed" and task["result"]["provider"] == "local"
    assert task["result"]["technical"]["orientation"] == "portrait"


def test_vtt_submit_tags_a_csv_through_the_stack(mysql_db_url, redis_client, media_server,
                                                 receiver_factory, tmp_path) -> None:
    """The console script against the running stack: a CSV becomes a batch, the worker
    tags it, the batch calls back once, and the results file has one row per line."""
    receiver = receiver_factory([], path="/task-done")
    batch_receiver = receiver_factory([], path="/batch-done")
    env = {"DATABASE_URL": mysql_db_url, "REDIS_URL": REDIS_URL, "API_TOKENS": "t0k",
           "STORAGE_DIR": str(tmp_path / "storage"), "ALLOW_PRIVATE_URLS": "true"}
    source = tmp_path / "videos.jsonl"
    source.write_text("\n".join(json.dumps(item) for item in [
        {"url": media_server.url("files/clip.mp4"), "callback_url": receiver.url},
        {"url": media_server.url("files/portrait.mp4"), "dimensions": "vision"},
        {"url": media_server.url("status/404")}]) + "\n")
    out = tmp_path / "results.csv"
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=["--min-backoff", "0.2"])
    try:
        run = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "vtt-submit"), str(source), "--api", stack.api_url,
             "--token", "t0k", "--out", str(out), "--poll-s", "0.5",
             "--callback-url", batch_receiver.url],
            capture_output=True, text=True, timeout=120)
    finally:
        stack.stop()
    assert run.returncode == 3, run.stderr  # the 404 video failed
    assert "completed=2" in run.stderr and "failed=1" in run.stderr
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [(row["line"], row["status"]) for row in rows] == [
        ("1", "completed"), ("2", "completed"), ("3", "failed")]
    assert "横屏" in rows[0]["tags"] and rows[2]["error_code"] == "download_failed"
    assert rows[1]["tags_vision"] and not rows[1]["tags_audio"]
    assert len(receiver.received) == 1  # the task callback of line 1
    assert len(batch_receiver.received) == 1  # the batch's, once
    batch = json.loads(batch_receiver.received[0][1])["data"]
    assert batch["counts"]["completed"] == 2 and batch["progress"]["finished"] == 3
