"""The worker's fair gate (issue 36): on Cloud Tasks, whose queue cannot order deliveries
by team, the worker decides slot by slot which team's delivery takes the key pool's next
request slot — the waiting team with the fewest slots in use for its weight
(`fair_gate.lua`). The local queue orders its ids itself (`shared/queue/take_fair.lua`),
so it does not use this."""

from __future__ import annotations

import uuid

import redis

from shared import redis_keys
from shared.lua import read_script
from shared.redis_conn import redis_outage

USE_WINDOWS = 2
"""A team's recent use of the pool is counted over this many rate windows: the one in
progress and the one before. Over one alone, a backlog's whole window of requests —
started together, freed together — would count as nothing at the very moment it frees,
and a newcomer arriving then would only alternate with it."""


def use_ms(window_s: float) -> int:
    """How long a delivery let through counts in its team's recent use of the pool."""
    return int(USE_WINDOWS * window_s * 1000)


_SHARE = read_script(__file__, "share.lua")


def with_share(script: str) -> str:
    """A script with share.lua's functions defined first (`now_ms`, `team_share`,
    `goes_first`, `record_use`): the one fair-share rule, for the queue and the gate."""
    return _SHARE + script


_GATE = with_share(read_script(__file__, "fair_gate.lua"))


class FairGate:
    def __init__(self, client: redis.Redis, window_s: float = 60.0) -> None:
        self.client = client
        self.window_ms = int(window_s * 1000)
        self.use_ms = use_ms(window_s)
        self._gate = client.register_script(_GATE)

    def admit(self, team: str, slot_near: bool, waiting_ms: int) -> bool:
        """Whether the team's delivery takes the pool's next slot now. Not: the team counts
        as waiting for `waiting_ms` (its delivery is deferred and comes back before)."""
        with redis_outage():
            return int(self._gate(
                keys=[redis_keys.FAIR_WAITING],
                args=[team, "1" if slot_near else "0", max(1, int(waiting_ms)),
                      redis_keys.api_team_caps(""), redis_keys.FAIR_USE_PREFIX,
                      self.use_ms, uuid.uuid4().hex])) == 1

    def waiting(self) -> list[str]:
        """The teams that count as waiting now."""
        with redis_outage():
            seconds, _ = self.client.time()
            return list(self.client.zrangebyscore(redis_keys.FAIR_WAITING,
                                                  seconds * 1000, "+inf"))
