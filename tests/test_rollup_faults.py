"""The stats' rollups through crashes (issue 34), with real processes: the local stack
on a private MariaDB and a private Redis, the Gemini stand-in, workers SIGKILLed
mid-task, Redis restarted empty and MariaDB SIGKILLed and started again on its data.
Once every task has finished, the counts and usage GET /api/v1/stats answers equal an
exact recount of the rows, and the rollups have not drifted at all."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from scripts.stack import LocalStack, free_port
from shared.tasks.db import utcnow
from tests.helpers import MariaDBServer, wait_for
from tests.test_faults import (  # noqa: F401 - private_redis is a fixture
    FAST_CONSUMER,
    KEYS,
    TASK_TIMEOUT_S,
    all_finished,
    create,
    gemini_env,
    private_redis,
    seed_keys,
    stack_env,
    unfinished,
)
from tests.test_rollups import drift

pytestmark = pytest.mark.slow

USAGE = ("requests", "prompt_tokens", "cached_tokens", "output_tokens", "thinking_tokens",
         "cost_usd", "batch_requests")


@pytest.fixture
def private_mariadb(tmp_path) -> Iterator[MariaDBServer]:
    server = MariaDBServer(free_port(), tmp_path / "mariadb").start()
    admin = sa.create_engine(server.admin_url)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE DATABASE vtt CHARACTER SET utf8mb4"))
    admin.dispose()
    yield server
    server.kill()


def recount(database_url: str) -> dict:
    """The stats' counts and usage, counted here over every row."""
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT status, processed_end, tags FROM video_tasks")).all()
    engine.dispose()
    now = utcnow()
    hour_from = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    day_from = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = Counter(status for status, _, _ in rows)
    figures = {"tasks": {s: counts.get(s, 0) for s in
                         ("pending", "processing", "waiting_batch", "completed", "failed")},
               "last_hour": {"completed": 0, "failed": 0}}
    for name, since in (("last_hour", hour_from), ("today", day_from)):
        usage = dict.fromkeys(USAGE, 0)
        for status, ended, result in rows:
            if status == "completed" and ended >= since:
                for field in USAGE:
                    usage[field] += json.loads(result)["usage"][field]
            if name == "last_hour" and status in ("completed", "failed") and ended >= since:
                figures["last_hour"][status] += 1
        usage["cost_usd"] = round(usage["cost_usd"], 6)
        figures[f"usage_{name}"] = usage
    return figures


def answered(stats: dict) -> dict:
    return {"tasks": stats["tasks"],
            "last_hour": {key: stats["last_hour"][key] for key in ("completed", "failed")},
            "usage_last_hour": stats["usage"]["last_hour"],
            "usage_today": stats["usage"]["today"]}


def crash(what: str, stack: LocalStack, mariadb: MariaDBServer, redis_server) -> None:
    if what == "worker":
        stack.kill("worker")
        stack.restart("worker")
    elif what == "redis":  # back empty: the queue and the key pool are gone
        redis_server.kill()
        redis_server.start()
        seed_keys(redis_server.url)
    else:
        mariadb.kill()
        time.sleep(1)
        mariadb.start()


def test_stats_equal_an_exact_recount_after_crashes(private_mariadb, private_redis, standin,  # noqa: F811
                                                    media_server, tmp_path) -> None:
    seed_keys(private_redis.url)
    for key in KEYS:
        standin.behaviours[key] = "slow"
    standin.slow_s = 0.8
    database_url = private_mariadb.url("vtt")
    env = stack_env(database_url, private_redis.url, tmp_path, MAX_ATTEMPTS="10",
                    **gemini_env(standin))
    stack = LocalStack(env, log_dir=tmp_path / "logs")
    stack.start(consumer_args=FAST_CONSUMER)
    try:
        ids = [create(stack, media_server.url("slow/0.5/clip.mp4")) for _ in range(16)]
        ids += [create(stack, media_server.url("status/404")) for _ in range(4)]
        rng = random.Random(34)
        for what in ("worker", "worker", "redis", "worker", "mariadb", "worker"):
            time.sleep(rng.uniform(0.8, 2.0))
            crash(what, stack, private_mariadb, private_redis)
        wait_for(all_finished(stack, ids), timeout_s=TASK_TIMEOUT_S + 90, interval_s=0.5,
                 describe=unfinished(stack, ids))
        stats = requests.get(f"{stack.api_url}/api/v1/stats", timeout=10).json()["data"]
    finally:
        stack.stop()
    exact = recount(database_url)
    assert answered(stats) == exact
    assert exact["tasks"]["completed"] == 16 and exact["tasks"]["failed"] == 4
    assert exact["usage_today"]["requests"] >= 16 and exact["usage_today"]["prompt_tokens"] > 0
    engine = sa.create_engine(database_url)
    assert drift(engine).size() == 0  # stage latency and tags too
    engine.dispose()
