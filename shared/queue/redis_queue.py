"""RedisQueue: the local stand-in for Cloud Tasks (docs/architecture.md, "Queue").

Producers only call `enqueue`; the local consumer (`shared/queue/local_consumer.py`, run by
`scripts/consumer.py`) uses the consumer half (`take`, `ack`, `retry_later`, `dead_letter`,
`promote_due`, `recover_in_flight`) to deliver ids to the worker over HTTP.
"""

from __future__ import annotations

import time

import redis

from shared import keys
from shared.queue.base import QueueDepth
from shared.redis_conn import REDIS_DOWN, max_block_s, redis_outage

WAKE = "__wake__"
"""Pushed on the ready list when a delayed id becomes the earliest one, so a consumer
blocked until the previous earliest wakes up and re-times its sleep."""

LIVE_STATES = ("queued", "retrying", "delivering")
"""`task_info` states in which a delivery of the task still exists in Redis."""

_ENQUEUE = """
redis.call('HSET', KEYS[1], 'status', 'queued', 'created_at', ARGV[3], 'retry_count', 0,
           'generation', ARGV[6], 'planned', ARGV[7])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'url', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)
  if first[1] == ARGV[1] then redis.call('LPUSH', KEYS[2], ARGV[8]) end
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
"""
"""Record task_info (retry count reset) and queue the id, now or on the delayed ZSet."""

_PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('LPUSH', KEYS[2], id)
end
return #due
"""
"""Move retries that are due from the delayed ZSet to the ready list, atomically."""

_ACK = """
redis.call('LREM', KEYS[1], 0, ARGV[1])
if redis.call('HGET', KEYS[2], 'status') == 'delivering' then
  redis.call('HSET', KEYS[2], 'status', 'delivered')
end
return 1
"""
"""Done with a delivery; a newer delivery queued meanwhile (re-planned) stays live."""


class RedisQueue:
    """`task_queue` / `task_queue_processing` / `task_queue_delayed` / `task_queue_failed`."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._enqueue = client.register_script(_ENQUEUE)
        self._promote = client.register_script(_PROMOTE_DUE)
        self._ack = client.register_script(_ACK)
        self.max_block_s = max_block_s(client)

    # --- producer side ---------------------------------------------------------

    def enqueue(self, task_id: str, *, url: str = "", delay_s: float = 0,
                generation: str = "0", planned: bool = False) -> None:
        now = time.time()
        due = now + delay_s if delay_s > 0 else 0
        with redis_outage():
            self._enqueue(
                keys=[keys.task_info(task_id), keys.TASK_QUEUE, keys.TASK_QUEUE_DELAYED],
                args=[task_id, url, int(now), keys.TASK_INFO_TTL_S, repr(due), generation,
                      "1" if planned else "0", WAKE],
            )

    def enqueue_many(self, items: list[tuple[str, str]]) -> None:
        """One pipeline (MULTI/EXEC) for all of them: queued together or not at all."""
        now = int(time.time())
        with redis_outage():
            pipe = self.redis.pipeline(transaction=True)
            for task_id, url in items:
                self._enqueue(
                    keys=[keys.task_info(task_id), keys.TASK_QUEUE, keys.TASK_QUEUE_DELAYED],
                    args=[task_id, url, now, keys.TASK_INFO_TTL_S, "0", "0", "0", WAKE],
                    client=pipe,
                )
            pipe.execute()

    def dead_letter(self, task_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(keys.TASK_QUEUE_PROCESSING, 0, task_id)
        pipe.zrem(keys.TASK_QUEUE_DELAYED, task_id)
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

    def is_live(self, task_id: str, generation: str) -> bool | None:
        """Live while task_info says queued/retrying/delivering: lost after a flush."""
        try:
            return self.redis.hget(keys.task_info(task_id), "status") in LIVE_STATES
        except REDIS_DOWN:
            return None

    # --- consumer side ---------------------------------------------------------

    def take(self, timeout_s: float = 1.0) -> str | None:
        """Move the oldest ready id to the in-flight list (BLMOVE) and return it; None on
        timeout or a wake-up token. The wait is cut to `max_block_s`: a blocked read longer
        than the client's socket timeout would read as a hanging server."""
        task_id = self.redis.blmove(
            keys.TASK_QUEUE, keys.TASK_QUEUE_PROCESSING,
            max(0.001, min(timeout_s, self.max_block_s)), "RIGHT", "LEFT"
        )
        if task_id is None:
            return None
        if task_id == WAKE:
            self.redis.lrem(keys.TASK_QUEUE_PROCESSING, 0, WAKE)
            return None
        self.redis.hset(keys.task_info(task_id), "status", "delivering")
        return task_id

    def info(self, task_id: str) -> dict[str, str]:
        return self.redis.hgetall(keys.task_info(task_id))

    def ack(self, task_id: str) -> None:
        self._ack(keys=[keys.TASK_QUEUE_PROCESSING, keys.task_info(task_id)], args=[task_id])

    def retry_later(self, task_id: str, delay_s: float, *, count: bool = True,
                    planned: bool = False) -> int:
        """Park an in-flight id until `delay_s` from now; returns its retry count, which
        grows only with `count` (a worker that is restarting is not the task's fault).
        `planned`: the delivery then goes out without waiting for a key slot again (it
        was parked until the slot promised to it)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(keys.TASK_QUEUE_PROCESSING, 0, task_id)
        pipe.zadd(keys.TASK_QUEUE_DELAYED, {task_id: time.time() + delay_s})
        pipe.hincrby(keys.task_info(task_id), "retry_count", 1 if count else 0)
        pipe.hset(keys.task_info(task_id), "status", "retrying")
        if planned:
            pipe.hset(keys.task_info(task_id), "planned", "1")
        pipe.expire(keys.task_info(task_id), keys.TASK_INFO_TTL_S)
        pipe.zrange(keys.TASK_QUEUE_DELAYED, 0, 0)
        replies = pipe.execute()
        if replies[-1] == [task_id]:  # now the earliest: a consumer asleep re-times
            self.redis.lpush(keys.TASK_QUEUE, WAKE)
        return replies[2]

    def retry_count(self, task_id: str) -> int:
        return int(self.redis.hget(keys.task_info(task_id), "retry_count") or 0)

    def promote_due(self, batch: int = 100) -> int:
        """Delayed ids whose time has come go back on the ready list."""
        return int(self._promote(keys=[keys.TASK_QUEUE_DELAYED, keys.TASK_QUEUE], args=[
            repr(time.time()), batch]))

    def next_due_in(self) -> float | None:
        """Seconds until the earliest delayed id is due (None: nothing delayed)."""
        first = self.redis.zrange(keys.TASK_QUEUE_DELAYED, 0, 0, withscores=True)
        return max(0.0, first[0][1] - time.time()) if first else None

    def recover_in_flight(self, keep: frozenset[str] = frozenset()) -> int:
        """In-flight ids that no delivery is working on (a consumer crashed, or Redis
        failed mid-acknowledgement) go back on the ready list; `keep` are being delivered."""
        moved = 0
        for task_id in self.redis.lrange(keys.TASK_QUEUE_PROCESSING, 0, -1):
            if task_id in keep:
                continue
            pipe = self.redis.pipeline(transaction=True)
            pipe.lrem(keys.TASK_QUEUE_PROCESSING, 1, task_id)
            pipe.rpush(keys.TASK_QUEUE, task_id)
            pipe.execute()
            moved += 1
        return moved
