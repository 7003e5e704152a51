"""A team's caps (issue 36): at most `max_per_day` tasks created per UTC day and
`max_in_flight` unfinished at once. Set with `vtt-keys caps`; none by default. The day's
count is a Redis counter taken before the tasks are written (INCRBY, given back when over);
the tasks in flight are counted in the database, where they are. The same hash holds the
team's `weight`: its share of the key pool when teams compete for it (docs/decisions.md,
"Fair share across teams"); 1 unless set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from shared import redis_keys
from shared.errors import InvalidInput, OverCap
from shared.redis_conn import redis_outage

CAP_NAMES = ("max_per_day", "max_in_flight")
WEIGHT = "weight"
"""The field of a team's share of the pool; read by the queue's Lua scripts too."""
DEFAULT_WEIGHT = 1.0
MAX_WEIGHT = 1000.0
"""A weight is at most this: a larger ratio would leave every other team a share that
rounds to nothing."""
IN_FLIGHT_RETRY_S = 60
"""What a team over `max_in_flight` is told to wait: about a task's time."""


@dataclass(frozen=True)
class TeamCaps:
    max_per_day: int | None = None
    max_in_flight: int | None = None
    weight: float = DEFAULT_WEIGHT


def check_cap(name: str, value: int | None) -> int | None:
    """A cap is a whole number ≥ 1, or None (no cap). 0 is refused: revoke the team's
    keys to stop it."""
    if value is not None and value < 1:
        raise InvalidInput(f"{name}: {value}; a cap is at least 1 (none: no cap; to stop a "
                           "team, revoke its keys)")
    return value


def check_weight(value: object) -> float:
    """A weight is a number > 0 and ≤ MAX_WEIGHT (1 = an equal share)."""
    if isinstance(value, bool):
        raise InvalidInput(f"weight: {value!r}; a number > 0 (1: an equal share)")
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"weight: {value!r} is not a number; a number > 0 (1: an equal "
                           "share)") from None
    if not 0 < weight <= MAX_WEIGHT:  # NaN fails this too
        raise InvalidInput(f"weight: {value!r}; a number > 0 and ≤ {MAX_WEIGHT:g} (1: an "
                           "equal share; to stop a team, revoke its keys)")
    return weight


class CapStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, team: str) -> TeamCaps:
        with redis_outage():
            stored = self.client.hgetall(redis_keys.api_team_caps(team))
        return TeamCaps(**{name: int(stored[name]) for name in CAP_NAMES if name in stored},
                        weight=float(stored.get(WEIGHT, DEFAULT_WEIGHT)))

    def set(self, team: str, caps: TeamCaps) -> None:
        name = redis_keys.api_team_caps(team)
        values = {cap: getattr(caps, cap) for cap in CAP_NAMES}
        for cap, value in values.items():
            check_cap(cap, value)
        weight = check_weight(caps.weight)
        with redis_outage():
            pipe = self.client.pipeline()
            pipe.delete(name)
            kept: dict[str, float] = {cap: value for cap, value in values.items()
                                      if value is not None}
            if weight != DEFAULT_WEIGHT:
                kept[WEIGHT] = weight
            if kept:
                pipe.hset(name, mapping=kept)
            pipe.execute()

    def take_today(self, team: str, count: int, cap: int, now: datetime) -> None:
        """Count `count` new tasks against today's cap, or OverCap (nothing counted)."""
        day = now.astimezone(UTC).date()
        name = redis_keys.api_team_created(team, day.isoformat())
        with redis_outage():
            pipe = self.client.pipeline()
            pipe.incrby(name, count)
            pipe.expire(name, 2 * 86400)
            total = pipe.execute()[0]
            if total <= cap:
                return
            self.client.decrby(name, count)
        midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        raise OverCap(f"team: {team} reached its max_per_day ({cap} tasks created today, "
                      f"{total - count} so far); it resets at 00:00 UTC",
                      retry_after_s=max(1.0, (midnight - now).total_seconds()))

    def give_back_today(self, team: str, count: int, now: datetime) -> None:
        """Tasks counted by `take_today` that were not created after all."""
        day = now.astimezone(UTC).date().isoformat()
        with redis_outage():
            self.client.decrby(redis_keys.api_team_created(team, day), count)


def check_in_flight(team: str, unfinished: int, count: int, cap: int) -> None:
    if unfinished + count > cap:
        raise OverCap(f"team: {team} has {unfinished} tasks in flight and its max_in_flight "
                      f"is {cap}; wait for some to finish", retry_after_s=IN_FLIGHT_RETRY_S)
