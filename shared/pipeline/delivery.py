"""What a delivery's answer tells the queue (`Delivery`), shared by the runner and the fair
dispatch; `functions/worker.py` turns it into HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeliveryKind(StrEnum):
    """What the queue should do with the delivery it made."""

    DONE = "done"
    """Finished: the task ended, waits for a batch job, or its next try is already queued."""
    RETRY_AFTER = "retry_after"
    """Deliver it again after `retry_after_s` (held by a live worker, or a service down)."""
    DROP = "drop"
    """No such task: acknowledged and dropped (no retry could ever fix it)."""


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery; `message` and `task_status` are for the log and the
    reply's body. `retry_after_s` is when to deliver again (RETRY_AFTER), or when the
    planned next try is due (DONE after a release)."""

    kind: DeliveryKind
    message: str
    task_status: str | None = None
    retry_after_s: float | None = None


def done(message: str, task_status: str | None = None,
          retry_after_s: float | None = None) -> Delivery:
    return Delivery(DeliveryKind.DONE, message, task_status, retry_after_s)


def again(message: str, retry_after_s: float, task_status: str | None = None) -> Delivery:
    return Delivery(DeliveryKind.RETRY_AFTER, message, task_status, retry_after_s)
