"""RedisQueue on the real Redis server and on the embedded one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from shared import redis_keys
from shared.errors import ServiceUnavailable
from shared.queue.redis_queue import RedisQueue
from shared.redis_conn import connect as connect_redis


def test_enqueue_take_ack(any_redis: redis.Redis) -> None:
    queue = RedisQueue(any_redis)
    queue.enqueue("a" * 32, url="http://x/1.mp4")
    queue.enqueue("b" * 32)
    info = any_redis.hgetall(redis_keys.task_info("a" * 32))
    assert info["url"] == "http://x/1.mp4" and info["retry_count"] == "0"
    assert 0 < any_redis.ttl(redis_keys.task_info("a" * 32)) <= redis_keys.TASK_INFO_TTL_S
    assert queue.take(0.1) == "a" * 32  # oldest first
    assert any_redis.lrange(redis_keys.TASK_QUEUE_PROCESSING, 0, -1) == ["a" * 32]
    queue.ack("a" * 32)
    assert queue.depth().in_flight == 0 and queue.depth().pending == 1


def test_retry_later_then_promote_when_due(any_redis: redis.Redis) -> None:
    queue = RedisQueue(any_redis)
    queue.enqueue("c" * 32)
    assert queue.take(0.1) == "c" * 32
    assert queue.retry_later("c" * 32, 0.3) == 1
    assert queue.promote_due() == 0
    assert queue.take(0.1) is None
    time.sleep(0.35)
    assert queue.promote_due() == 1
    assert queue.take(0.1) == "c" * 32
    assert queue.retry_count("c" * 32) == 1


def test_delayed_enqueue_waits(any_redis: redis.Redis) -> None:
    queue = RedisQueue(any_redis)
    queue.enqueue("d" * 32, delay_s=60)
    assert queue.depth().delayed == 1 and queue.promote_due() == 0


def test_dead_letter_and_recover_in_flight(any_redis: redis.Redis) -> None:
    queue = RedisQueue(any_redis)
    for ch in "ef":
        queue.enqueue(ch * 32)
        queue.take(0.1)
    queue.dead_letter("e" * 32)
    assert any_redis.lrange(redis_keys.TASK_QUEUE_FAILED, 0, -1) == ["e" * 32]
    assert queue.recover_in_flight() == 1
    assert queue.depth() == queue.depth().__class__(pending=1, delayed=0, in_flight=0, failed=1)


def test_enqueue_on_dead_redis_is_service_unavailable() -> None:
    queue = RedisQueue(connect_redis("redis://127.0.0.1:1/0", Path("unused")))
    with pytest.raises(ServiceUnavailable):
        queue.enqueue("a" * 32)
