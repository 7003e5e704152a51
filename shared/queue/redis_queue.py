"""RedisQueue: the local stand-in for Cloud Tasks (docs/architecture.md, "Queue").

Producers only call `enqueue`; a fresh id of a team (with FAIR_SHARE) waits on its team's
own list instead of the ready list, which keeps the ids that already waited (retries come
due, planned deliveries, recovered ones); `take` takes from the team with the fewest pool
slots in use for its weight (`take_fair.lua`). The local consumer
(`shared/queue/local_consumer.py`, run by `scripts/consumer.py`) uses the consumer half
(`take`, `ack`, `retry_later`, `dead_letter`, `promote_due`, `recover_in_flight`) to
deliver ids to the worker over HTTP.
"""

from __future__ import annotations

import time

import redis

from shared import redis_keys
from shared.lua import read_script
from shared.queue.base import QueueDepth
from shared.redis_conn import REDIS_DOWN, max_block_s, redis_outage
from shared.teams.fair import use_ms, with_share

WAKE = "__wake__"
"""Pushed on the ready list when a delayed id becomes the earliest one, so a consumer
blocked until the previous earliest wakes up and re-times its sleep."""
WAKE_SCAN = 1000
"""How far from the taking end `depth` looks for wake-up tokens."""

LIVE_STATES = ("queued", "retrying", "delivering")
"""`task_info` states in which a delivery of the task still exists in Redis."""


class RedisQueue:
    """`task_queue` / `task_queue_processing` / `task_queue_delayed` / `task_queue_failed`."""

    def __init__(self, client: redis.Redis, fair: bool = False,
                 window_s: float = 60.0) -> None:
        self.redis = client
        self.fair = fair
        """Fresh ids of a team go on the team's list (FAIR_SHARE); off: one FIFO list."""
        self.use_ms = use_ms(window_s)
        """How long an id taken counts in its team's recent use of the pool."""
        self._enqueue = client.register_script(read_script(__file__, "enqueue.lua"))
        self._take_fair = client.register_script(with_share(read_script(__file__,
                                                                        "take_fair.lua")))
        self._promote = client.register_script(read_script(__file__, "promote_due.lua"))
        self._ack = client.register_script(read_script(__file__, "ack.lua"))
        self.max_block_s = max_block_s(client)

    # --- producer side ---------------------------------------------------------

    def enqueue(self, task_id: str, *, url: str = "", delay_s: float = 0,
                generation: str = "0", planned: bool = False, team: str = "") -> None:
        now = time.time()
        due = now + delay_s if delay_s > 0 else 0
        with redis_outage():
            self._enqueue(
                keys=_enqueue_keys(task_id, team),
                args=[task_id, url, int(now), redis_keys.TASK_INFO_TTL_S, repr(due), generation,
                      "1" if planned else "0", WAKE, team if self.fair else ""],
            )

    def enqueue_many(self, items: list[tuple[str, str]], team: str = "") -> None:
        """One pipeline (MULTI/EXEC) for all of them: queued together or not at all."""
        now = int(time.time())
        with redis_outage():
            pipe = self.redis.pipeline(transaction=True)
            for task_id, url in items:
                self._enqueue(
                    keys=_enqueue_keys(task_id, team),
                    args=[task_id, url, now, redis_keys.TASK_INFO_TTL_S, "0", "0", "0", WAKE,
                          team if self.fair else ""],
                    client=pipe,
                )
            pipe.execute()


    def dead_letter(self, task_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(redis_keys.TASK_QUEUE_PROCESSING, 0, task_id)
        pipe.zrem(redis_keys.TASK_QUEUE_DELAYED, task_id)
        pipe.lrem(redis_keys.TASK_QUEUE_FAILED, 0, task_id)
        pipe.rpush(redis_keys.TASK_QUEUE_FAILED, task_id)
        pipe.hset(redis_keys.task_info(task_id), "status", "failed")
        pipe.expire(redis_keys.task_info(task_id), redis_keys.TASK_INFO_TTL_S)
        pipe.execute()

    def forget(self, task_ids: list[str]) -> None:
        """One task: out of every list. Many (the retention job's finished tasks): out of
        the lists their `task_info` says they are in (and the dead letters), so a long
        backlog is not scanned once per task."""
        if not task_ids:
            return
        with redis_outage():
            pipe = self.redis.pipeline(transaction=False)
            for task_id in task_ids:
                pipe.hmget(redis_keys.task_info(task_id), "status", "team")
            infos = pipe.execute()
            pipe = self.redis.pipeline(transaction=True)
            for task_id, (state, team) in zip(task_ids, infos, strict=True):
                for name in _lists_of(state, len(task_ids) > 1):
                    pipe.lrem(name, 0, task_id)
                if team and (state == "queued" or len(task_ids) == 1):
                    pipe.lrem(redis_keys.team_queue(team), 0, task_id)
                pipe.delete(redis_keys.task_info(task_id), redis_keys.task_lock(task_id))
            pipe.zrem(redis_keys.TASK_QUEUE_DELAYED, *task_ids)
            pipe.execute()

    def depth(self) -> QueueDepth:
        """Ids waiting, due later, being delivered, given up on; a wake-up token on the
        ready list is no task (it sits near the end a consumer takes from: the last
        WAKE_SCAN entries are looked at)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(redis_keys.TASK_QUEUE)
        pipe.lpos(redis_keys.TASK_QUEUE, WAKE, rank=-1, count=0, maxlen=WAKE_SCAN)
        pipe.zcard(redis_keys.TASK_QUEUE_DELAYED)
        pipe.llen(redis_keys.TASK_QUEUE_PROCESSING)
        pipe.llen(redis_keys.TASK_QUEUE_FAILED)
        ready, wakes, *rest = pipe.execute()
        return QueueDepth(ready - len(wakes or []) + _waiting_on_teams(self.redis), *rest)

    def is_live(self, task_id: str, generation: str) -> bool | None:
        """Live while task_info says queued/retrying/delivering: lost after a flush."""
        try:
            return self.redis.hget(redis_keys.task_info(task_id), "status") in LIVE_STATES
        except REDIS_DOWN:
            return None

    # --- consumer side ---------------------------------------------------------

    def take(self, timeout_s: float = 1.0, fresh: bool = True) -> str | None:
        """Move the oldest ready id to the in-flight list (BLMOVE) and return it; None on
        timeout or a wake-up token. The ready list goes first (ids that already waited);
        then, with `fresh`, the teams' lists by fair share; only then does it block. The wait
        is cut to `max_block_s`: a blocked read longer than the client's socket timeout
        would read as a hanging server."""
        # the teams' lists are read with FAIR_SHARE off too: ids queued while it was on
        # are still delivered after a switch
        task_id = self.redis.lmove(redis_keys.TASK_QUEUE, redis_keys.TASK_QUEUE_PROCESSING,
                                   "RIGHT", "LEFT")
        if task_id is not None and task_id != WAKE:
            return _delivering(self.redis, task_id)
        if task_id == WAKE:  # the teams' lists are looked at now anyway
            _delivering(self.redis, WAKE)
        if fresh:
            taken = self._take_fair(
                keys=[redis_keys.TASK_QUEUE_TEAMS, redis_keys.TASK_QUEUE_PROCESSING],
                args=[redis_keys.TEAM_QUEUE_PREFIX, redis_keys.TEAM_USE_PREFIX,
                      redis_keys.api_team_caps(""), redis_keys.task_info(""), self.use_ms])
            if taken:
                return taken
        task_id = self.redis.blmove(
            redis_keys.TASK_QUEUE, redis_keys.TASK_QUEUE_PROCESSING,
            max(0.001, min(timeout_s, self.max_block_s)), "RIGHT", "LEFT"
        )
        if task_id is None:
            return None
        return _delivering(self.redis, task_id)

    def info(self, task_id: str) -> dict[str, str]:
        return self.redis.hgetall(redis_keys.task_info(task_id))

    def ack(self, task_id: str) -> None:
        self._ack(keys=[redis_keys.TASK_QUEUE_PROCESSING, redis_keys.task_info(task_id)],
                  args=[task_id])

    def retry_later(self, task_id: str, delay_s: float, *, count: bool = True,
                    planned: bool = False) -> int:
        """Park an in-flight id until `delay_s` from now; returns its retry count, which
        grows only with `count` (a worker that is restarting is not the task's fault).
        `planned`: the delivery then goes out without waiting for a key slot again (it
        was parked until the slot promised to it)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(redis_keys.TASK_QUEUE_PROCESSING, 0, task_id)
        pipe.zadd(redis_keys.TASK_QUEUE_DELAYED, {task_id: time.time() + delay_s})
        pipe.hincrby(redis_keys.task_info(task_id), "retry_count", 1 if count else 0)
        pipe.hset(redis_keys.task_info(task_id), "status", "retrying")
        if planned:
            pipe.hset(redis_keys.task_info(task_id), "planned", "1")
        pipe.expire(redis_keys.task_info(task_id), redis_keys.TASK_INFO_TTL_S)
        pipe.zrange(redis_keys.TASK_QUEUE_DELAYED, 0, 0)
        replies = pipe.execute()
        if replies[-1] == [task_id]:  # now the earliest: a consumer asleep re-times
            self.redis.lpush(redis_keys.TASK_QUEUE, WAKE)
        return replies[2]

    def retry_count(self, task_id: str) -> int:
        return int(self.redis.hget(redis_keys.task_info(task_id), "retry_count") or 0)

    def promote_due(self, batch: int = 100) -> int:
        """Delayed ids whose time has come go back on the ready list."""
        return int(self._promote(keys=[redis_keys.TASK_QUEUE_DELAYED, redis_keys.TASK_QUEUE], args=[
            repr(time.time()), batch]))

    def next_due_in(self) -> float | None:
        """Seconds until the earliest delayed id is due (None: nothing delayed)."""
        first = self.redis.zrange(redis_keys.TASK_QUEUE_DELAYED, 0, 0, withscores=True)
        return max(0.0, first[0][1] - time.time()) if first else None

    def recover_in_flight(self, keep: frozenset[str] = frozenset()) -> int:
        """In-flight ids that no delivery is working on (a consumer crashed, or Redis
        failed mid-acknowledgement) go back on the ready list; `keep` are being delivered."""
        moved = 0
        for task_id in self.redis.lrange(redis_keys.TASK_QUEUE_PROCESSING, 0, -1):
            if task_id in keep:
                continue
            pipe = self.redis.pipeline(transaction=True)
            pipe.lrem(redis_keys.TASK_QUEUE_PROCESSING, 1, task_id)
            pipe.rpush(redis_keys.TASK_QUEUE, task_id)
            pipe.execute()
            moved += 1
        return moved


def _lists_of(state: str | None, bulk: bool) -> tuple[str, ...]:
    """The lists a task may sit in, from its `task_info` status (every list when the
    caller forgets one task, or the status says it is live)."""
    if not bulk or state in LIVE_STATES:
        return (redis_keys.TASK_QUEUE, redis_keys.TASK_QUEUE_PROCESSING,
                redis_keys.TASK_QUEUE_FAILED)
    return (redis_keys.TASK_QUEUE_FAILED,)


def _enqueue_keys(task_id: str, team: str) -> list[str]:
    return [redis_keys.task_info(task_id), redis_keys.TASK_QUEUE,
            redis_keys.TASK_QUEUE_DELAYED, redis_keys.team_queue(team or "-"),
            redis_keys.TASK_QUEUE_TEAMS]


def _delivering(client: redis.Redis, task_id: str) -> str | None:
    """An id taken is being delivered; a wake-up token taken is dropped (None)."""
    if task_id == WAKE:
        client.lrem(redis_keys.TASK_QUEUE_PROCESSING, 0, WAKE)
        return None
    client.hset(redis_keys.task_info(task_id), "status", "delivering")
    return task_id


def _waiting_on_teams(client: redis.Redis) -> int:
    """Fresh ids waiting on the teams' lists (FAIR_SHARE)."""
    teams = client.smembers(redis_keys.TASK_QUEUE_TEAMS)
    if not teams:
        return 0
    pipe = client.pipeline(transaction=False)
    for team in teams:
        pipe.llen(redis_keys.team_queue(team))
    return sum(pipe.execute())
