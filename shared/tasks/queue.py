"""Task queues: the interface the api and worker use, and its Redis backend.

The Redis backend is the local stand-in for Cloud Tasks (DESIGN §6). Producers only call
`enqueue`; `scripts/consumer.py` uses the consumer half (`take`, `ack`, `retry_later`,
`dead_letter`, `promote_due`, `recover_in_flight`) to deliver ids to the worker over HTTP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import redis

from shared import keys
from shared.errors import ServiceUnavailable


@dataclass(frozen=True)
class QueueDepth:
    pending: int
    delayed: int
    in_flight: int
    failed: int


class TaskQueue(Protocol):
    """What the api and the worker need from a queue, whatever the backend."""

    def enqueue(self, task_id: str, *, url: str = "", delay_s: float = 0,
                generation: str = "0") -> None:
        """Deliver `task_id` to the worker (after `delay_s`). Raises ServiceUnavailable.
        `generation` tells deliveries of the same task apart (Cloud Tasks task names)."""

    def dead_letter(self, task_id: str) -> None:
        """Record that the task ran out of attempts."""

    def depth(self) -> QueueDepth | None:
        """Queue sizes, or None when the backend cannot tell."""


_ENQUEUE = """
redis.call('HSET', KEYS[1], 'status', 'queued', 'created_at', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'url', ARGV[2]) end
redis.call('HSETNX', KEYS[1], 'retry_count', 0)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
"""
"""Record task_info and queue the id (now, or on the delayed ZSet) in one round trip."""

_PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('LPUSH', KEYS[2], id)
end
return #due
"""
"""Move retries that are due from the delayed ZSet to the ready list, atomically."""


class RedisQueue:
    """`task_queue` / `task_queue_processing` / `task_queue_delayed` / `task_queue_failed`."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._enqueue = client.register_script(_ENQUEUE)
        self._promote = client.register_script(_PROMOTE_DUE)

    # --- producer side ---------------------------------------------------------

    def enqueue(self, task_id: str, *, url: str = "", delay_s: float = 0,
                generation: str = "0") -> None:
        now = time.time()
        due = now + delay_s if delay_s > 0 else 0
        try:
            self._enqueue(
                keys=[keys.task_info(task_id), keys.TASK_QUEUE, keys.TASK_QUEUE_DELAYED],
                args=[task_id, url, int(now), keys.TASK_INFO_TTL_S, due],
            )
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise ServiceUnavailable("redis", type(error).__name__) from error

    def dead_letter(self, task_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(keys.TASK_QUEUE_PROCESSING, 0, task_id)
        pipe.lrem(keys.TASK_QUEUE_FAILED, 0, task_id)
        pipe.rpush(keys.TASK_QUEUE_FAILED, task_id)
        pipe.hset(keys.task_info(task_id), "status", "failed")
        pipe.expire(keys.task_info(task_id), keys.TASK_INFO_TTL_S)
        pipe.execute()

    def depth(self) -> QueueDepth:
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(keys.TASK_QUEUE)
        pipe.zcard(keys.TASK_QUEUE_DELAYED)
        pipe.llen(keys.TASK_QUEUE_PROCESSING)
        pipe.llen(keys.TASK_QUEUE_FAILED)
        return QueueDepth(*pipe.execute())

    # --- consumer side ---------------------------------------------------------

    def take(self, timeout_s: float = 1.0) -> str | None:
        """Move the oldest ready id to the in-flight list (BLMOVE) and return it."""
        return self.redis.blmove(
            keys.TASK_QUEUE, keys.TASK_QUEUE_PROCESSING, timeout_s, "RIGHT", "LEFT"
        )

    def ack(self, task_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(keys.TASK_QUEUE_PROCESSING, 0, task_id)
        pipe.hset(keys.task_info(task_id), "status", "delivered")
        pipe.execute()

    def retry_later(self, task_id: str, delay_s: float) -> int:
        """Park an in-flight id until `delay_s` from now; returns its new retry count."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(keys.TASK_QUEUE_PROCESSING, 0, task_id)
        pipe.zadd(keys.TASK_QUEUE_DELAYED, {task_id: time.time() + delay_s})
        pipe.hincrby(keys.task_info(task_id), "retry_count", 1)
        pipe.hset(keys.task_info(task_id), "status", "retrying")
        pipe.expire(keys.task_info(task_id), keys.TASK_INFO_TTL_S)
        return pipe.execute()[2]

    def retry_count(self, task_id: str) -> int:
        return int(self.redis.hget(keys.task_info(task_id), "retry_count") or 0)

    def promote_due(self, batch: int = 100) -> int:
        """Delayed ids whose time has come go back on the ready list."""
        return int(self._promote(keys=[keys.TASK_QUEUE_DELAYED, keys.TASK_QUEUE], args=[
            time.time(), batch]))

    def recover_in_flight(self) -> int:
        """After a consumer crash: every in-flight id goes back on the ready list."""
        moved = 0
        while self.redis.lmove(keys.TASK_QUEUE_PROCESSING, keys.TASK_QUEUE, "RIGHT", "RIGHT"):
            moved += 1
        return moved
