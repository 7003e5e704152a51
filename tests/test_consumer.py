"""The local Cloud Tasks stand-in, against a scripted worker on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import redis

from shared import redis_keys
from shared.queue.local_consumer import Consumer, ConsumerConfig, backoff_delay
from shared.queue.redis_queue import RedisQueue
from tests.conftest import REDIS_URL
from tests.helpers import wait_for


def make_consumer(redis_client, worker, **config) -> Consumer:
    return Consumer(RedisQueue(redis_client), ConsumerConfig(worker_url=worker.url, **config))


TASK = "a" * 32


def test_delivery_shape_and_ack(redis_client: redis.Redis, receiver_factory) -> None:
    worker = receiver_factory([(200, {})])
    consumer = make_consumer(redis_client, worker, worker_token="tok")
    consumer.queue.enqueue(TASK)
    consumer.queue.take(0.1)
    assert consumer.deliver(TASK) == "ack"
    headers, raw = worker.received[0]
    body = json.loads(raw)
    assert body == {"task_id": TASK}
    assert headers["X-CloudTasks-TaskName"] == TASK
    assert headers["X-CloudTasks-TaskRetryCount"] == "0" and headers["X-Worker-Token"] == "tok"
    assert redis_client.llen(redis_keys.TASK_QUEUE_PROCESSING) == 0


def test_retry_after_is_honoured(redis_client: redis.Redis, receiver_factory) -> None:
    worker = receiver_factory([(503, {"Retry-After": "42"})])
    consumer = make_consumer(redis_client, worker)
    consumer.queue.enqueue(TASK)
    consumer.queue.take(0.1)
    before = time.time()
    assert consumer.deliver(TASK) == "retry"
    due = redis_client.zscore(redis_keys.TASK_QUEUE_DELAYED, TASK)
    assert before + 41 <= due <= time.time() + 42
    # the worker asked for later: not a failed delivery, the retry budget is untouched
    assert redis_client.hget(redis_keys.task_info(TASK), "retry_count") == "0"


def test_backoff_is_exponential_with_jitter() -> None:
    config = ConsumerConfig(worker_url="http://127.0.0.1:9/", min_backoff_s=1, max_backoff_s=60)
    for retry, ceiling in [(0, 1), (3, 8), (10, 60)]:
        delays = {backoff_delay(retry, config) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1


def test_gives_up_after_max_retries(redis_client: redis.Redis, receiver_factory) -> None:
    worker = receiver_factory([(500, {})] * 10)
    consumer = make_consumer(redis_client, worker, max_retries=2, min_backoff_s=0.01)
    consumer.queue.enqueue(TASK)
    outcomes = []
    for _ in range(3):
        redis_client.delete(redis_keys.TASK_QUEUE_DELAYED)
        outcomes.append(consumer.deliver(TASK))
    assert outcomes == ["retry", "retry", "dead"]
    assert redis_client.lrange(redis_keys.TASK_QUEUE_FAILED, 0, -1) == [TASK]
    assert [h["X-CloudTasks-TaskRetryCount"] for h, _ in worker.received] == ["0", "1", "2"]


def test_unreachable_worker_is_retried_without_spending_retries(
        redis_client: redis.Redis) -> None:
    """A refused connection (the worker restarting) is not a failed delivery."""
    consumer = Consumer(RedisQueue(redis_client),
                        ConsumerConfig(worker_url="http://127.0.0.1:9/", min_backoff_s=0.01))
    consumer.queue.enqueue(TASK)
    for _ in range(3):
        assert consumer.deliver(TASK) == "wait"
    assert consumer.queue.retry_count(TASK) == 0
    assert redis_client.zscore(redis_keys.TASK_QUEUE_DELAYED, TASK) is not None


def test_run_loop_delivers_recovers_and_stops(redis_client: redis.Redis, receiver_factory) -> None:
    worker = receiver_factory([(503, {"Retry-After": "0.2"})])
    queue = RedisQueue(redis_client)
    # left over by a crashed consumer
    redis_client.lpush(redis_keys.TASK_QUEUE_PROCESSING, "b" * 32)
    queue.enqueue(TASK)
    reaps = []
    consumer = Consumer(queue, ConsumerConfig(worker_url=worker.url, reap_interval_s=0.2),
                        reaper=lambda: reaps.append(1) or {"requeued": 0})
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        wait_for(lambda: len(worker.received) >= 3)
    finally:
        consumer.stop()
        thread.join(10)
    assert not thread.is_alive()
    delivered = [json.loads(raw)["task_id"] for _, raw in worker.received]
    assert set(delivered) == {TASK, "b" * 32}  # the crashed consumer's id was recovered
    assert delivered.count(delivered[0]) == 2  # the one answered 503 came back after 0.2 s
    assert reaps and queue.depth().in_flight == 0


def test_sigterm_stops_cleanly_after_in_flight_delivery(
    redis_client: redis.Redis, receiver_factory, tmp_path
) -> None:
    worker = receiver_factory([(200, {})], delay_s=1.5)
    RedisQueue(redis_client).enqueue(TASK)
    env = {**os.environ, "REDIS_URL": REDIS_URL, "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
           "STORAGE_DIR": str(tmp_path / "s")}
    process = subprocess.Popen(
        [sys.executable, "scripts/consumer.py", "--worker-url", worker.url, "--reap-interval", "0"],
        env=env,
    )
    wait_for(lambda: worker.received)
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert redis_client.llen(redis_keys.TASK_QUEUE_PROCESSING) == 0  # in-flight one was acked
    assert redis_client.hget(redis_keys.task_info(TASK), "status") == "delivered"


def test_a_gated_fresh_id_is_parked_and_a_due_retry_still_goes(
        redis_client: redis.Redis, receiver_factory) -> None:
    """Fresh ids that must wait for a promised key slot wait parked as planned deliveries,
    not in a delivery slot: with one slot, a retry already due is delivered at once."""
    worker = receiver_factory([(200, {})] * 3)
    promised = iter([30.0, 30.0])
    consumer = Consumer(RedisQueue(redis_client),
                        ConsumerConfig(worker_url=worker.url, concurrency=1),
                        gate=lambda: next(promised))
    fresh = ["f" * 32, "e" * 32]
    for task_id in fresh:
        consumer.queue.enqueue(task_id)
    consumer.queue.enqueue(TASK, delay_s=0.2, planned=True)  # a retry with its own slot
    runner = threading.Thread(target=consumer.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: len(worker.received) == 1, timeout_s=10)
        assert json.loads(worker.received[0][1]) == {"task_id": TASK}
        for task_id in fresh:  # parked until 0.5 s before their slot, planned, not counted
            due = redis_client.zscore(redis_keys.TASK_QUEUE_DELAYED, task_id)
            assert due is not None and due > time.time() + 25
            info = redis_client.hgetall(redis_keys.task_info(task_id))
            assert info["planned"] == "1" and info["retry_count"] == "0"
    finally:
        consumer.stop()
        runner.join(10)
