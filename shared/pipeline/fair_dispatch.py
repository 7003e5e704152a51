"""Fair dispatch in the worker (issue 36): on Cloud Tasks, a delivery takes the key pool's
next slot only when that slot is near and no waiting team comes before its own by
weighted fair queuing (`shared/teams/fair.py`). Otherwise it is deferred: a new delivery,
due when the team's turn may come, carries the task (its row names it, as after a key
wait) and this one is acknowledged. Deferring claims nothing: no attempt is spent, the
row stays `pending`, and the task's lock makes sure only one delivery defers or runs it.
"""

from __future__ import annotations

import logging
import math
import random

from shared.errors import ServiceUnavailable, TransientError
from shared.pipeline.delivery import Delivery, again, done
from shared.pipeline.worker import Worker
from shared.queue.base import Redelivery, new_generation
from shared.tasks.models import Task, TaskStatus

log = logging.getLogger("vision_to_tag.worker")

FAIR_LEAD_S = 2.0
"""A delivery is let through this long before its slot: the download and the frames
overlap the wait, and it takes the key as the slot frees."""

HELD_RETRY_S = 1.0
"""A delivery held behind a team that comes first is back after about this long (half
to one and a half times, spread so a backlog does not come back all at once)."""

WAITING_GRACE_S = 5.0
"""A deferred team counts as waiting this long after its delivery is due back (Cloud
Tasks dispatches a due task within a second or two)."""


def fair_deferral(task_id: str, worker: Worker) -> tuple[Task, str, float] | None:
    """None: the delivery goes on. Otherwise (the task, why, seconds): defer it that long."""
    if worker.fair is None:
        return None
    task = worker.store.get(task_id)
    if task is None or task.status != TaskStatus.PENDING:
        return None  # the claim answers for it
    try:
        slot_in = worker.pool.promise_slot(peek=True)
    except TransientError:
        return None  # the task meets the pool's outage itself
    if slot_in is None:
        return None  # no usable key at all: the task fails or waits on its own
    near = slot_in <= FAIR_LEAD_S
    # held behind a team that comes first: back about a slot later; no slot near: back
    # between the slot and a rate window after it, so a backlog comes back spread out
    delay = (HELD_RETRY_S * random.uniform(0.5, 1.5) if near
             else slot_in - FAIR_LEAD_S + random.uniform(0, max(HELD_RETRY_S,
                                                                worker.fair.window_ms / 1000)))
    if worker.fair.admit(task.team, near, round((delay + WAITING_GRACE_S) * 1000)):
        try:
            worker.pool.promise_slot()  # the slot is this delivery's: the next one looks past it
        except TransientError:
            pass
        return None
    why = "a team ahead by fair share waits" if near else "the key pool has no slot yet"
    return task, why, delay


def fair_turn(task_id: str, worker: Worker) -> Delivery | None:
    """None: the delivery goes on to the claim. Otherwise it was deferred — not an error:
    the task waits its team's turn, carried by the delivery `defer` queued (when the queue
    is down, this delivery is delivered again instead)."""
    deferral = fair_deferral(task_id, worker)
    if deferral is None:
        return None
    task, why, delay_s = deferral
    due = defer(task, why, delay_s, worker)
    if due is None:
        return again(f"deferred ({why}); the queue is unavailable", max(1, math.ceil(delay_s)),
                     TaskStatus.PENDING)
    return done(f"deferred {due:.1f} s: {why}", TaskStatus.PENDING, due)


def defer(task: Task, why: str, delay_s: float, worker: Worker) -> float | None:
    """Queue the delivery that will carry the task in `delay_s` and name it on the row;
    the seconds it is due in, or None when the queue cannot be written (then this
    delivery is delivered again instead)."""
    generation = new_generation(Redelivery.FAIR_SHARE)
    try:
        worker.queue.enqueue(task.task_id, url=task.url, delay_s=delay_s,
                             generation=generation, team=task.team)
    except ServiceUnavailable:
        return None
    worker.store.mark_enqueued(task.task_id, generation, delay_s)
    log.info("deferred %.1f s: %s", delay_s, why, extra={"task_id": task.task_id})
    return max(0.0, math.ceil(delay_s * 1000) / 1000)
