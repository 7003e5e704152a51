"""The faults production sees, with real processes: functions-framework for `api` and
`process_task`, the consumer, a private redis-server that is killed and restarted,
MariaDB, the Gemini stand-in and videos served from 127.0.0.1.

A task is never lost, stranded or paid for twice: every test ends with every task
finished, with no operator action (the cleanup function is never called)."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

from scripts.stack import LocalStack, free_port
from shared.accounts.importer import AccountEntry, import_accounts
from tests.gemini_standin import GeminiStandIn
from tests.helpers import RedisServer, wait_for
from tests.test_cloudtasks import QUEUE, tasks_emulator  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

KEYS = [f"AIzaSyFAULTS{n:028d}" for n in range(3)]
TASK_TIMEOUT_S = 3


@pytest.fixture
def private_redis():
    server = RedisServer(free_port()).start()
    yield server
    server.kill()


def seed_keys(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    import_accounts(client, [AccountEntry(api_key=key, daily_limit=10_000, minute_limit=1000,
                                          username=f"u{n}", password="pw", phone="", email="")
                             for n, key in enumerate(KEYS)])
    client.close()


def stack_env(mysql_db_url: str, redis_url: str, tmp_path, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": mysql_db_url, "REDIS_URL": redis_url,
            "STORAGE_DIR": str(tmp_path / "storage"), "ALLOW_PRIVATE_URLS": "true",
            "API_TOKENS": "", "WORKER_TOKEN": "", "TASK_TIMEOUT_S": str(TASK_TIMEOUT_S),
            "RECONCILE_GRACE_S": "2", "RESULT_CACHE": "false", **extra}


def gemini_env(standin: GeminiStandIn) -> dict[str, str]:
    return {"TAGGER": "gemini", "GEMINI_BASE_URL": standin.base_url}


FAST_CONSUMER = ["--min-backoff", "0.2", "--max-backoff", "2", "--reap-interval", "1"]


def create(stack: LocalStack, url: str) -> str:
    body = requests.post(f"{stack.api_url}/api/v1/task/create", timeout=10,
                         json={"url": url, "platform": "rpa"}).json()
    assert body["code"] == 200, body
    return body["task_id"]


def statuses(stack: LocalStack, ids: list[str]) -> dict[str, dict]:
    return {task_id: requests.get(f"{stack.api_url}/api/v1/task/{task_id}", timeout=10)
            .json()["data"] for task_id in ids}


def all_finished(stack: LocalStack, ids: list[str]):
    def check():
        tasks = statuses(stack, ids)
        return tasks if all(t["status"] in ("completed", "failed") for t in tasks.values()) \
            else None
    return check


def unfinished(stack: LocalStack, ids: list[str]):
    """What a timed-out wait reports: the tasks still open, with their state."""
    def describe() -> str:
        return "; ".join(f"{task_id} {t['status']}/{t.get('stage')} attempts={t.get('attempts')}"
                         for task_id, t in statuses(stack, ids).items()
                         if t["status"] not in ("completed", "failed"))
    return describe


def test_sigkill_storm_loses_nothing(mysql_db_url, private_redis, standin, media_server,
                                     tmp_path) -> None:
    """The worker's whole process group is SIGKILLed 10–20 times over 30 tasks, mid-download
    and mid-tagging, and started again each time: 30/30 complete, none lost."""
    seed_keys(private_redis.url)
    for key in KEYS:
        standin.behaviours[key] = "slow"
    standin.slow_s = 0.8
    env = stack_env(mysql_db_url, private_redis.url, tmp_path, MAX_ATTEMPTS="10",
                    **gemini_env(standin))
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=FAST_CONSUMER)
    try:
        ids = [create(stack, media_server.url("slow/0.5/clip.mp4")) for _ in range(30)]
        killed_in: set[str] = set()
        rng = random.Random(11)
        kills = 0
        # 10 kills at least; more (up to 20) until one has landed mid-download and one
        # mid-tagging: under a loaded box the sampled stages drift.
        while kills < 10 or (kills < 20 and not {"downloading", "tagging"} <= killed_in):
            kills += 1
            time.sleep(rng.uniform(0.8, 2.0))
            killed_in |= {t["stage"] for t in statuses(stack, ids).values()
                          if t["status"] == "processing" and t["stage"]}
            stack.kill("worker")
            stack.restart("worker")
        last_restart = time.monotonic()
        tasks = wait_for(all_finished(stack, ids), timeout_s=TASK_TIMEOUT_S + 60,
                         interval_s=0.5, describe=unfinished(stack, ids))
        assert time.monotonic() - last_restart <= TASK_TIMEOUT_S + 60
    finally:
        stack.stop()
    assert [t["status"] for t in tasks.values()].count("completed") == 30
    assert {"downloading", "tagging"} <= killed_in, killed_in


def test_cloud_tasks_redelivery_after_a_crash_is_503_then_completes(
        mysql_db_url, redis_client, tasks_emulator, media_server, tmp_path) -> None:  # noqa: F811
    from tests.conftest import REDIS_URL

    env = stack_env(mysql_db_url, REDIS_URL, tmp_path, QUEUE="cloudtasks",
                    CLOUD_TASKS_QUEUE=QUEUE, CLOUD_TASKS_EMULATOR_HOST=tasks_emulator)
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer=False)  # Cloud Tasks (the emulator) delivers; no reaper runs
    try:
        task_id = create(stack, media_server.url("hang-once/clip.mp4"))
        wait_for(lambda: statuses(stack, [task_id])[task_id]["stage"] == "downloading")
        wait_for(lambda: media_server.hits["/hang-once/clip.mp4"] == 1)  # request is out
        stack.kill("worker")  # mid-download
        stack.restart("worker")
        redelivery = requests.post(stack.worker_url, json={"task_id": task_id}, timeout=10,
                                   headers={"X-CloudTasks-TaskName": "redelivery"})
        assert redelivery.status_code == 503
        assert 1 <= int(redelivery.headers["Retry-After"]) <= TASK_TIMEOUT_S
        task = wait_for(lambda: (t := statuses(stack, [task_id])[task_id])["status"]
                        == "completed" and t, timeout_s=TASK_TIMEOUT_S + 30)
    finally:
        stack.stop()
    assert task["attempts"] == 2 and task["result"]["tags"]


def test_redis_restarted_empty_while_tasks_are_queued(mysql_db_url, private_redis,
                                                      media_server, tmp_path) -> None:
    env = stack_env(mysql_db_url, private_redis.url, tmp_path)
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer=False, consumer_args=FAST_CONSUMER)
    try:
        ids = [create(stack, media_server.url("files/clip.mp4")) for _ in range(3)]
        private_redis.kill()
        private_redis.start()  # empty: every queued delivery is gone
        stack.restart("consumer")
        tasks = wait_for(all_finished(stack, ids), timeout_s=30, interval_s=0.3,
                         describe=unfinished(stack, ids))
    finally:
        stack.stop()
    assert all(t["status"] == "completed" for t in tasks.values())


def test_consumer_carries_on_through_redis_and_worker_outages(
        mysql_db_url, private_redis, media_server, tmp_path) -> None:
    env = stack_env(mysql_db_url, private_redis.url, tmp_path)
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=FAST_CONSUMER)
    consumer = stack.processes["consumer"]
    try:
        private_redis.kill()
        time.sleep(10)
        assert consumer.poll() is None  # still running through a 10 s Redis outage
        private_redis.start()
        first = create(stack, media_server.url("files/clip.mp4"))
        wait_for(all_finished(stack, [first]), timeout_s=30, interval_s=0.3,
                         describe=unfinished(stack, [first]))
        stack.kill("worker")
        second = create(stack, media_server.url("files/clip.mp4"))
        time.sleep(10)
        assert consumer.poll() is None  # and through a 10 s worker outage
        stack.restart("worker")
        tasks = wait_for(all_finished(stack, [first, second]), timeout_s=30, interval_s=0.3,
                         describe=unfinished(stack, [first, second]))
    finally:
        stack.stop()
    assert all(t["status"] == "completed" for t in tasks.values())
    assert tasks[second]["attempts"] == 1  # refused connections spent nothing


def test_gemini_slower_than_the_lease_is_paid_once(mysql_db_url, private_redis, standin,
                                                   media_server, tmp_path) -> None:
    """The call outlasts TASK_TIMEOUT_S and the consumer's own request timeout: the
    redeliveries find the lease renewed and wait; one paid call, one attempt."""
    seed_keys(private_redis.url)
    for key in KEYS:
        standin.behaviours[key] = "slow"
    standin.slow_s = 3 * TASK_TIMEOUT_S
    env = stack_env(mysql_db_url, private_redis.url, tmp_path, **gemini_env(standin))
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=[*FAST_CONSUMER, "--request-timeout", "2"])
    try:
        task_id = create(stack, media_server.url("files/clip.mp4"))
        task = wait_for(lambda: (t := statuses(stack, [task_id])[task_id])["status"]
                        in ("completed", "failed") and t, timeout_s=60, interval_s=0.3)
    finally:
        stack.stop()
    assert task["status"] == "completed" and task["attempts"] == 1
    assert len(standin.generate_calls()) == 1


def test_ten_concurrent_deliveries_run_the_pipeline_once(
        mysql_db_url, private_redis, standin, media_server, tmp_path) -> None:
    seed_keys(private_redis.url)
    for key in KEYS:
        standin.behaviours[key] = "slow"
    standin.slow_s = 1.0
    env = stack_env(mysql_db_url, private_redis.url, tmp_path, **gemini_env(standin))
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer=False)
    try:
        task_id = create(stack, media_server.url("files/clip.mp4"))
        answers: list[requests.Response] = []
        threads = [threading.Thread(target=lambda: answers.append(requests.post(
            stack.worker_url, json={"task_id": task_id}, timeout=30,
            headers={"X-CloudTasks-TaskName": "dup"}))) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = statuses(stack, [task_id])[task_id]
    finally:
        stack.stop()
    codes = sorted(answer.status_code for answer in answers)
    completed = [a for a in answers if a.json()["message"] == "completed"]
    assert len(completed) == 1 and set(codes) <= {200, 503}
    assert all("Retry-After" in a.headers for a in answers if a.status_code == 503)
    assert final["status"] == "completed" and final["attempts"] == 1
    assert len(standin.generate_calls()) == 1
    assert media_server.hits["/files/clip.mp4"] == 1
