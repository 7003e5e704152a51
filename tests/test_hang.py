"""A dependency that hangs (a Cloud SQL failover, a network partition: the server stops
answering, nothing refuses), with real processes: the local stack on a private MariaDB and
a private redis-server, one of them SIGSTOPped for HANG_S with tasks mid-pipeline.

During the hang every API call answers within 10 s and /healthz within 3 s; after SIGCONT
every task completes and api, worker and consumer are still the processes that started.
The servers are this test's own (never the shared ones on 3306/6379)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from scripts.stack import LocalStack, free_port
from tests.helpers import RedisServer, wait_for
from tests.test_faults import FAST_CONSUMER, all_finished, create, unfinished

pytestmark = pytest.mark.slow

HANG_S = 20
API_BOUND_S = 10
HEALTH_BOUND_S = 3
SBIN = "/usr/sbin:/usr/local/sbin"


class MariaDB:
    """A private mariadbd on 127.0.0.1 (own data folder, no grant tables), to be stopped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.admin_url = f"mysql+pymysql://root@127.0.0.1:{self.port}/"
        self.process: subprocess.Popen | None = None

    def start(self) -> MariaDB:
        path = f"{os.environ.get('PATH', '')}:{SBIN}"
        install = shutil.which("mariadb-install-db", path=path)
        server = shutil.which("mariadbd", path=path) or shutil.which("mysqld", path=path)
        assert install and server, "MariaDB server binaries are needed (scripts/ensure_services.sh)"
        data = self.folder / "data"
        subprocess.run([install, "--no-defaults", f"--datadir={data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self.process = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--socket={self.folder}/s.sock",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
             "--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
             f"--pid-file={self.folder}/mariadbd.pid"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "error.log", "wb"))
        wait_for(self._answers, timeout_s=60, interval_s=0.2)
        return self

    def _answers(self) -> bool:
        engine = sa.create_engine(self.admin_url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1")).scalar() == 1
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()

    def fresh_database(self, name: str) -> str:
        engine = sa.create_engine(self.admin_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        engine.dispose()
        return f"{self.admin_url}{name}?charset=utf8mb4"

    def stop(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def private_mariadb(tmp_path_factory):
    server = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def private_redis():
    server = RedisServer(free_port()).start()
    yield server
    server.kill()


def calls(api: str, task_id: str) -> dict[str, tuple[str, str]]:
    return {"create": ("POST", f"{api}/api/v1/task/create"),
            "get": ("GET", f"{api}/api/v1/task/{task_id}"),
            "list": ("GET", f"{api}/api/v1/tasks"),
            "stats": ("GET", f"{api}/api/v1/stats"),
            "accounts": ("GET", f"{api}/api/v1/accounts"),
            "healthz": ("GET", f"{api}/healthz")}


def measure(api: str, task_id: str, video_url: str) -> dict[str, tuple[int, float, str]]:
    """Every call at once: name -> (status, seconds, Retry-After)."""
    answers: dict[str, tuple[int, float, str]] = {}

    def one(name: str, method: str, url: str) -> None:
        started = time.monotonic()
        response = requests.request(method, url, timeout=60, json={
            "url": video_url, "platform": "rpa"} if method == "POST" else None)
        answers[name] = (response.status_code, time.monotonic() - started,
                         response.headers.get("Retry-After", ""))

    threads = [threading.Thread(target=one, args=(name, *call))
               for name, call in calls(api, task_id).items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.parametrize("hung", ["mariadb", "redis"])
def test_a_hanging_dependency_is_answered_in_bounded_time_and_loses_nothing(
        hung, private_mariadb, private_redis, media_server, tmp_path) -> None:
    db_url = private_mariadb.fresh_database(f"vtt_hang_{hung}")
    env = {"DATABASE_URL": db_url, "REDIS_URL": private_redis.url,
           "STORAGE_DIR": str(tmp_path / "storage"), "ALLOW_PRIVATE_URLS": "true",
           "API_TOKENS": "", "WORKER_TOKEN": "", "TASK_TIMEOUT_S": "10",
           "RECONCILE_GRACE_S": "2", "RESULT_CACHE": "false", "MAX_ATTEMPTS": "10"}
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=FAST_CONSUMER)
    pids = {name: process.pid for name, process in stack.processes.items()}
    video = media_server.url("slow/1/clip.mp4")
    try:
        ids = [create(stack, video) for _ in range(6)]
        wait_for(lambda: any(t["status"] == "processing" for t in all_states(stack, ids)),
                 timeout_s=30, interval_s=0.1)
        pid = private_mariadb.process.pid if hung == "mariadb" else private_redis.process.pid
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            rounds = [measure(stack.api_url, ids[0], video)]
            rounds.append(measure(stack.api_url, ids[0], video))
            hang_left = HANG_S - (time.monotonic() - stopped)
            assert hang_left > 0, "both rounds ran inside the hang"
            time.sleep(hang_left)
        finally:
            os.kill(pid, signal.SIGCONT)
        for number, answers in enumerate(rounds, 1):
            print(f"\n{hung} hang, round {number}: " + ", ".join(
                f"{name} {status} in {seconds:.2f} s" for name, (status, seconds, _)
                in answers.items()))
        for answers in rounds:
            for name, (status, seconds, retry_after) in answers.items():
                assert status in (200, 503), (name, status)
                assert seconds < (HEALTH_BOUND_S if name == "healthz" else API_BOUND_S), \
                    (name, seconds)
                assert status == 200 or retry_after, (name, "503 without Retry-After")
            assert answers["create"][0] == 503 and answers["healthz"][0] == 503
        tasks = wait_for(all_finished(stack, ids), timeout_s=120, interval_s=0.5,
                         describe=unfinished(stack, ids))
        assert [t["status"] for t in tasks.values()] == ["completed"] * len(ids)
        print(f"{hung} hang: attempts per task {[t['attempts'] for t in tasks.values()]}")
        for name, process in stack.processes.items():  # nobody died or was restarted
            assert process.poll() is None and process.pid == pids[name], name
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:  # the creates answered 503 left no row behind
            assert conn.execute(sa.text("SELECT COUNT(*) FROM video_tasks")).scalar() == len(ids)
        engine.dispose()
    finally:
        stack.stop()


def all_states(stack: LocalStack, ids: list[str]) -> list[dict]:
    return [requests.get(f"{stack.api_url}/api/v1/task/{task_id}", timeout=10).json()["data"]
            for task_id in ids]
