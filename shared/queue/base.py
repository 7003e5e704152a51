"""What the api and the worker need from a task queue, whatever the backend: Redis
(`redis_queue.py`, local) or Cloud Tasks (`cloudtasks.py`, production)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class QueueDepth:
    pending: int
    delayed: int
    in_flight: int
    failed: int


class TaskQueue(Protocol):
    """What the api and the worker need from a queue, whatever the backend."""

    def enqueue(self, task_id: str, *, url: str = "", delay_s: float = 0,
                generation: str = "0", planned: bool = False, team: str = "") -> None:
        """Deliver `task_id` to the worker (after `delay_s`). Raises ServiceUnavailable.
        `generation` tells deliveries of the same task apart (Cloud Tasks task names);
        `planned` marks a delivery timed to a key slot the pool promised (not gated again);
        `team` is whose task it is (the fair share; "" = none)."""

    def enqueue_many(self, items: list[tuple[str, str]], team: str = "") -> None:
        """Deliver each (task_id, url) now, in one round trip where the backend allows
        (a batch). Raises ServiceUnavailable; then the caller takes back every row."""

    def dead_letter(self, task_id: str) -> None:
        """Record that the task ran out of attempts."""

    def forget(self, task_ids: list[str]) -> None:
        """Remove every trace of these (deleted) tasks the queue keeps: entries, info,
        lease locks. A delivery already on its way finds no task and is acknowledged."""

    def depth(self) -> QueueDepth | None:
        """Queue sizes, or None when the backend cannot tell."""

    def is_live(self, task_id: str, generation: str) -> bool | None:
        """Whether a delivery of the task is still in the queue (None: cannot tell)."""


class Redelivery(StrEnum):
    """Why a task is queued again: the first letter of its delivery's name, so a queue
    entry says who planned it."""

    SYNC_HANDOFF = "s"
    """The synchronous API's timeout handed the task to the queue."""
    RETRY_ROUTE = "r"
    """POST /api/v1/task/{id}/retry."""
    TRANSIENT = "t"
    """A transient error's planned retry."""
    KEY_WAIT = "w"
    """Waiting for a Gemini key slot (or another shared wait)."""
    LEASE_EXPIRED = "l"
    """The reconciler re-queued a task whose worker was lost."""
    RECONCILED = "c"
    """The reconciler found a pending task whose delivery the queue no longer holds."""
    BATCH = "b"
    """Gemini Batch mode gave the task back to interactive tagging."""
    FAIR_SHARE = "f"
    """The worker's fair gate deferred it: its team is ahead of a waiting team's share."""


def new_generation(kind: Redelivery) -> str:
    """A fresh delivery name suffix: Cloud Tasks refuses a reused name for about an hour."""
    return f"{kind}{time.time_ns() // 1_000:x}"
