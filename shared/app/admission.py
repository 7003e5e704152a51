"""Whether a team may create `count` more tasks now (issue 36): its caps, if it has any.
Create, the synchronous route and batches ask before writing; over a cap is 429 with
Retry-After and the cap's name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from shared.app.context import Services
from shared.teams.caps import CapStore, check_in_flight

T = TypeVar("T")


def admit(services: Services, team: str, count: int) -> Callable[[], None]:
    """Count the tasks against the team's caps, or OverCap; returns what gives the count
    back when the tasks are not created after all."""
    store = CapStore(services.redis)
    caps = store.get(team)
    if caps.max_in_flight is not None:
        check_in_flight(team, services.queries.unfinished_of(team), count, caps.max_in_flight)
    if caps.max_per_day is None:
        return lambda: None
    now = datetime.now(UTC)
    store.take_today(team, count, caps.max_per_day, now)
    return lambda: store.give_back_today(team, count, now)


def admitted(services: Services, team: str, count: int,
             write: Callable[[], tuple[T, bool]]) -> tuple[T, bool]:
    """Run `write` (which answers (value, created)) counted against the team's caps: the
    count is given back when it fails, or when it answers an earlier creation (a replayed
    Idempotency-Key) instead of a new one."""
    give_back = admit(services, team, count)
    try:
        value, created = write()
    except BaseException:
        give_back()
        raise
    if not created:
        give_back()
    return value, created
