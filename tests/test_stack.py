"""`python main.py`: the local stack, supervised, with the daily cache cleanup."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from scripts.stack import ROOT, free_port, next_daily
from tests.conftest import REDIS_URL
from tests.helpers import wait_for

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_next_daily_is_today_or_tomorrow_in_the_zone() -> None:
    at = dt_time(3, 0)
    before = datetime(2026, 3, 1, 2, 59, tzinfo=SHANGHAI)
    after = datetime(2026, 3, 1, 3, 0, 1, tzinfo=SHANGHAI)
    assert next_daily(before, at) == datetime(2026, 3, 1, 3, 0, tzinfo=SHANGHAI)
    assert next_daily(after, at) == datetime(2026, 3, 2, 3, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("value", ["3am", "25:00", "03:61", ""])
def test_bad_cleanup_time_stops_start_up(value: str) -> None:
    from shared.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(CLEANUP_AT=value)
    assert "CLEANUP_AT" in str(caught.value)


def test_a_log_past_its_size_is_rotated_keeping_a_few_backups(tmp_path) -> None:
    from shared.logs import RotatingFile

    log = RotatingFile(tmp_path / "api.log", max_bytes=100, backups=2)
    lines = [f"line {n:02d} {'x' * 20}\n".encode() for n in range(20)]  # 29 bytes each
    for line in lines:
        log.write(line)
    log.close()
    log.write(b"after close\n")  # a late line of a child nobody waited for: dropped
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["api.log", "api.log.1", "api.log.2"]  # the oldest went
    kept = [(tmp_path / name).read_bytes() for name in ("api.log.2", "api.log.1", "api.log")]
    assert all(0 < len(text) <= 100 for text in kept)
    assert b"".join(kept) == b"".join(lines[-len(b"".join(kept).splitlines()):])  # whole
    assert kept[-1].endswith(lines[-1])


def test_the_stack_writes_each_childs_output_to_a_rotated_log(tmp_path) -> None:
    from scripts.stack import LocalStack

    stack = LocalStack(log_dir=tmp_path, log_max_mb=1 / 1024, log_backups=3)  # 1 KB
    stack.commands = {"chatty": [sys.executable, "-c",
                                 "for n in range(300): print(f'line {n:03d}', 'x' * 40)"]}
    stack.restart("chatty")
    assert stack.processes["chatty"].wait(10) == 0
    stack.stop()
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["chatty.log", "chatty.log.1", "chatty.log.2", "chatty.log.3"]
    sizes = [(tmp_path / name).stat().st_size for name in names]
    assert all(size <= 1024 for size in sizes), sizes
    text = b"".join((tmp_path / name).read_bytes() for name in reversed(names)).decode()
    numbers = [int(line.split()[1]) for line in text.splitlines()]
    assert numbers == list(range(numbers[0], 300)) and numbers[0] > 0  # in order, the tail


def _pids(output: Path, name: str) -> list[int]:
    return [int(pid) for pid in re.findall(rf"{name} started \(pid (\d+)\)",
                                           output.read_text())]


@pytest.mark.serial  # times itself against a real limit, or uses the checkout's var/
@pytest.mark.slow
def test_python_main_runs_supervises_cleans_and_stops(redis_client, mysql_db_url,
                                                      media_server, tmp_path) -> None:
    storage = tmp_path / "storage"
    old = storage / "videos/2020/01/02/old-task/source.mp4"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x" * 1000)
    cleanup_at = (datetime.now(SHANGHAI) + timedelta(seconds=12)).strftime("%H:%M:%S")
    api_port = free_port()
    env = {**os.environ, "DATABASE_URL": mysql_db_url, "REDIS_URL": REDIS_URL,
           "STORAGE_DIR": str(storage), "ALLOW_PRIVATE_URLS": "true", "API_TOKENS": "",
           "CLEANUP_AT": cleanup_at, "CLEANUP_TZ": "Asia/Shanghai"}
    output = tmp_path / "stack.out"
    with open(output, "wb") as out:
        stack = subprocess.Popen([sys.executable, "main.py", "--api-port", str(api_port),
                                  "--worker-port", str(free_port())], cwd=ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_for(lambda: _pids(output, "consumer"), timeout_s=60)
        assert requests.get(f"{api}/healthz", timeout=5).status_code == 200

        def tag() -> dict:
            task_id = requests.post(f"{api}/api/v1/task/create", timeout=10, json={
                "url": media_server.url("files/clip.mp4"), "platform": "rpa"}).json()["task_id"]
            return wait_for(lambda: (t := requests.get(f"{api}/api/v1/task/{task_id}",
                                                       timeout=5).json()["data"])["status"]
                            == "completed" and t, timeout_s=40, interval_s=0.3)

        assert tag()["result"]["tags"]
        for child in ("worker", "consumer"):  # a child dies: the stack starts it again
            os.killpg(_pids(output, child)[-1], signal.SIGKILL)
            wait_for(lambda c=child: len(_pids(output, c)) == 2, timeout_s=30)
            assert tag()["status"] == "completed"
        wait_for(lambda: "cache cleanup finished with code 0" in output.read_text(),
                 timeout_s=30)
        assert not old.exists()  # the scheduled cleanup ran when its time came
        started = time.monotonic()
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(30) == 0 and time.monotonic() - started < 30
    finally:
        if stack.poll() is None:
            stack.kill()
            _kill_children(output)  # a failed run leaves no stack working on the test's db
    text = output.read_text()
    assert "worker exited with code -9" in text and "stack stopped" in text
    assert "stack: warning:" not in text  # the offline tagger needs no key
    for child in ("api", "worker", "consumer"):
        for pid in _pids(output, child):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # every child is gone


def _kill_children(output: Path) -> None:
    for child in ("api", "worker", "consumer"):
        for pid in _pids(output, child):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
def test_gemini_with_no_key_says_so_at_start_up(redis_client, mysql_db_url, tmp_path) -> None:
    """TAGGER=gemini and an empty pool: one line says that every task will wait and how to
    import the keys, instead of a stack that starts silently and never tags."""
    env = {**os.environ, "DATABASE_URL": mysql_db_url, "REDIS_URL": REDIS_URL,
           "STORAGE_DIR": str(tmp_path / "storage"), "API_TOKENS": "", "TAGGER": "gemini",
           "GEMINI_BASE_URL": "http://127.0.0.1:9"}
    output = tmp_path / "stack.out"
    with open(output, "wb") as out:
        stack = subprocess.Popen([sys.executable, "main.py", "--api-port", str(free_port()),
                                  "--worker-port", str(free_port())], cwd=ROOT, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _pids(output, "consumer"), timeout_s=60)
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(30) == 0
    finally:
        if stack.poll() is None:
            stack.kill()
    lines = [line for line in output.read_text().splitlines() if "stack: warning:" in line]
    assert len(lines) == 1, output.read_text()
    assert "TAGGER=gemini but the key pool holds no key" in lines[0]
    assert lines[0].endswith("Run: python scripts/import_accounts.py --file google_accounts.json")
    assert "python scripts/import_accounts.py --file google_accounts.json" in (
        ROOT / "README.md").read_text()
