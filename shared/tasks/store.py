"""TaskStore: the task state machine over `video_tasks`, in SQLAlchemy Core — every
status change, and the reads of one task they rely on. Listings and stats are in
`queries.py`; callback and search-index bookkeeping in `followups.py`.

State changes are conditional updates, so two workers can never both own a task:
`claim` moves pending (or processing with an expired lease) to processing and bumps
`attempts`; the final writes check that the row is still processing with the same
`attempts` (a fencing token), so a worker whose lease was taken over cannot overwrite
the newer attempt.

Every change of status moves the task's share of the rollups in the same transaction
(`rollups.py`, issue 34), so the counts and figures the stats read never drift from the
rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from shared.errors import ErrorCode
from shared.redact import redact
from shared.tasks import rollups, team_usage
from shared.tasks.db import begin, connect, utcnow
from shared.tasks.models import Task, TaskStatus, out_of_attempts
from shared.tasks.rollups import SHARE_COLUMNS, Share, completed_share, share_of
from shared.tasks.schema import video_fingerprints
from shared.tasks.schema import video_tasks as t


class DuplicateIdempotencyKey(Exception):
    """Another task was created with the same Idempotency-Key."""


class UnreadableRow(Exception):
    """A stored row this version cannot read as a Task (written by another version, or
    changed by hand): the server's fault, never the caller's (500, logged with its id)."""

    def __init__(self, task_id: str, problem: str) -> None:
        super().__init__(f"task {task_id}: stored row cannot be read ({problem})")
        self.task_id = task_id
        self.problem = problem


class ClaimOutcome(StrEnum):
    """What a claim found."""

    CLAIMED = "claimed"
    """This caller owns the task now (attempt spent, lease taken)."""
    MISSING = "missing"
    COMPLETED = "completed"
    FAILED = "failed"
    LEASED = "leased"
    """Another worker's lease is live."""
    EXHAUSTED = "exhausted"
    """No attempts left."""


class ReapOutcome(StrEnum):
    """What resolving an expired lease did."""

    REQUEUED = "requeued"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Someone else moved the task first (a heartbeat, another reaper)."""


@dataclass(frozen=True)
class Claim:
    """What `claim` found: `task` is set when this caller now owns the task."""

    outcome: ClaimOutcome
    task: Task | None = None


class TaskStore:
    """The task table behind one engine (MySQL or SQLite; same code, same tests)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, task_id: str) -> Task | None:
        with connect(self.engine) as conn:
            row = conn.execute(sa.select(t).where(t.c.task_id == task_id)).mappings().first()
        return to_task(row) if row else None

    def find(self, task_ids: tuple[str, ...]) -> Task | None:
        """The task stored under any of these ids (one task's dashed and hex forms)."""
        with connect(self.engine) as conn:
            row = conn.execute(sa.select(t).where(t.c.task_id.in_(task_ids))).mappings().first()
        return to_task(row) if row else None

    def get_by_idempotency_key(self, key: str) -> Task | None:
        with connect(self.engine) as conn:
            row = conn.execute(sa.select(t).where(t.c.idempotency_key == key)).mappings().first()
        return to_task(row) if row else None

    def ping(self) -> None:
        with connect(self.engine) as conn:
            conn.execute(sa.text("SELECT 1"))

    # --- writes --------------------------------------------------------------

    def insert(self, task_id: str, fields: dict[str, Any]) -> Task:
        """Insert a pending task; DuplicateIdempotencyKey when the key was used already."""
        values = pending_row(task_id, fields, utcnow())
        try:
            with begin(self.engine) as conn:
                conn.execute(sa.insert(t), values)
                rollups.shift(conn, None, Share(TaskStatus.PENDING))
        except IntegrityError as error:
            if fields.get("idempotency_key"):
                raise DuplicateIdempotencyKey(fields["idempotency_key"]) from error
            raise
        return Task.model_validate(values)

    def delete(self, task_id: str) -> None:
        with begin(self.engine) as conn:
            row = conn.execute(sa.select(*SHARE_COLUMNS).where(t.c.task_id == task_id)
                               .with_for_update()).mappings().first()
            if row is not None:
                conn.execute(sa.delete(t).where(t.c.task_id == task_id))
                conn.execute(sa.delete(video_fingerprints)
                             .where(video_fingerprints.c.task_id == task_id))
                rollups.shift(conn, share_of(row), None)

    def claim(self, task_id: str, lease_s: float, max_attempts: int) -> Claim:
        """Take ownership: pending, or processing with an expired lease, and attempts left."""
        now = utcnow()
        update = (
            sa.update(t)
            .where(t.c.task_id == task_id, ~out_of_attempts(t.c.attempts, max_attempts))
            .values(
                status=TaskStatus.PROCESSING,
                stage=None,
                attempts=t.c.attempts + 1,
                lease_until=now + timedelta(seconds=lease_s),
                next_attempt_at=None,
                processed_start=now,
                processed_end=None,
                updated_at=now,
            )
        )
        with begin(self.engine) as conn:
            claimed = conn.execute(update.where(t.c.status == TaskStatus.PENDING)).rowcount == 1
            if claimed:
                rollups.moved(conn, task_id, TaskStatus.PENDING, TaskStatus.PROCESSING)
            else:  # a lease that ran out: taken over, the status stays
                claimed = conn.execute(update.where(t.c.status == TaskStatus.PROCESSING,
                                                    t.c.lease_until < now)).rowcount == 1
        task = self.get(task_id)
        if task is None:
            return Claim(ClaimOutcome.MISSING)
        if claimed:
            return Claim(ClaimOutcome.CLAIMED, task)
        if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
            return Claim(ClaimOutcome(task.status), task)
        if out_of_attempts(task.attempts, max_attempts):
            return Claim(ClaimOutcome.EXHAUSTED, task)
        return Claim(ClaimOutcome.LEASED, task)

    def renew(self, task_id: str, attempt: int, lease_s: float) -> bool:
        """The worker's heartbeat: push the lease forward while this attempt owns the task."""
        return self._update_owned(task_id, attempt,
                                  lease_until=utcnow() + timedelta(seconds=lease_s))

    def set_stage(self, task_id: str, attempt: int, stage: str) -> bool:
        return self._update_owned(task_id, attempt, stage=stage)

    def record_source(
        self, task_id: str, attempt: int, *, storage_uri: str, video_sha256: str, size_bytes: int
    ) -> bool:
        """Remember the stored video, so a retry reuses it instead of downloading again."""
        return self._update_owned(task_id, attempt, storage_uri=storage_uri,
                                  video_sha256=video_sha256, size_bytes=size_bytes)

    def record_windows(self, task_id: str, attempt: int, windows: dict[str, Any]) -> bool:
        """Keep the parts of a long video answered so far: a later delivery asks only for
        the missing ones."""
        return self._update_owned(task_id, attempt, windows=windows)

    def complete(
        self, task_id: str, attempt: int, *, result: dict[str, Any], timings: dict[str, int],
        video: dict[str, Any],
    ) -> bool:
        now = utcnow()
        return self._update_owned(
            task_id, attempt, status=TaskStatus.COMPLETED, stage=None, tags=result, timings=timings,
            message=None, error_code=None, lease_until=None, processed_end=now,
            waiting_since=None, windows=None, **rollups.usage_values(result), **video,
            moved_to=completed_share(result, timings, now),
        )

    def fail(
        self, task_id: str, attempt: int, *, error_code: ErrorCode, message: str,
        timings: dict[str, int] | None = None,
    ) -> bool:
        return self._update_owned(
            task_id, attempt, status=TaskStatus.FAILED, error_code=error_code, message=message,
            timings=timings, lease_until=None, processed_end=utcnow(), waiting_since=None,
            moved_to=TaskStatus.FAILED,
        )

    def release(
        self, task_id: str, attempt: int, *, error_code: ErrorCode, message: str,
        retry_in_s: float = 0, timings: dict[str, int] | None = None,
        refund_attempt: bool = False, waiting_for_key: bool = False, delivery: str | None = None,
    ) -> bool:
        """Back to pending after a transient error; the queue delivers it again in
        `retry_in_s`. `refund_attempt` gives the attempt back (the task did not fail: it
        waits, or was handed over); `waiting_for_key` remembers since when the task waits
        for a Gemini key (bounded by MAX_QUOTA_WAIT_S)."""
        now = utcnow()
        values: dict[str, Any] = {
            "status": TaskStatus.PENDING, "error_code": error_code, "message": message,
            "timings": timings, "lease_until": None, "processed_end": now,
            "next_attempt_at": now + timedelta(seconds=retry_in_s),
        }
        if delivery is not None:  # the planned delivery's name, written with the row
            values["delivery"] = delivery
        if refund_attempt:
            values["attempts"] = t.c.attempts - 1
        values["waiting_since"] = (sa.func.coalesce(t.c.waiting_since, now)
                                   if waiting_for_key else None)
        return self._update_owned(task_id, attempt, **values, moved_to=TaskStatus.PENDING)

    def wait_batch(self, task_id: str, attempt: int, *, token: str, key_id: str, model: str,
                   timings: dict[str, int], video: dict[str, Any]) -> bool:
        """Batch mode: the prepared request waits for a Gemini batch job (issue 27). The
        attempt is given back (nothing failed); `batch_since` keeps the first wait's start
        (BATCH_MAX_WAIT_S counts from it); `token` fences the job's answer."""
        now = utcnow()
        return self._update_owned(
            task_id, attempt, status=TaskStatus.WAITING_BATCH, stage="waiting_batch",
            attempts=t.c.attempts - 1, batch_token=token, batch_key=key_id, batch_model=model,
            batch_job=None, batch_since=sa.func.coalesce(t.c.batch_since, now),
            lease_until=None, next_attempt_at=None, waiting_since=None, timings=timings,
            message=None, error_code=None, **video, moved_to=TaskStatus.WAITING_BATCH)

    def mark_enqueued(self, task_id: str, generation: str, delay_s: float = 0) -> bool:
        """Record the delivery that now carries a pending task (the reconciler checks it)."""
        now = utcnow()
        update = (
            sa.update(t)
            .where(t.c.task_id == task_id, t.c.status == TaskStatus.PENDING)
            .values(delivery=generation, next_attempt_at=now + timedelta(seconds=delay_s),
                    updated_at=now)
        )
        with begin(self.engine) as conn:
            return conn.execute(update).rowcount == 1

    def reap(self, task: Task, *, max_attempts: int, message: str,
             generation: str = "") -> ReapOutcome:
        """Resolve a task whose lease expired."""
        now = utcnow()
        values: dict[str, Any]
        if out_of_attempts(task.attempts, max_attempts):
            values = {"status": TaskStatus.FAILED, "error_code": ErrorCode.ATTEMPTS_EXHAUSTED,
                      "processed_end": now}
        else:
            values = {"status": TaskStatus.PENDING, "error_code": ErrorCode.WORKER_LOST,
                      "next_attempt_at": now, "delivery": generation}
        update = (
            sa.update(t)
            .where(
                t.c.task_id == task.task_id,
                t.c.status == TaskStatus.PROCESSING,
                t.c.attempts == task.attempts,
                t.c.lease_until < now,
            )
            .values(**values, message=redact(message), lease_until=None, updated_at=now)
        )
        with begin(self.engine) as conn:
            if conn.execute(update).rowcount != 1:
                return ReapOutcome.SKIPPED
            rollups.moved(conn, task.task_id, TaskStatus.PROCESSING, values["status"])
        if values["status"] == TaskStatus.PENDING:
            return ReapOutcome.REQUEUED
        return ReapOutcome.FAILED

    def fail_pending(self, task_id: str, *, error_code: ErrorCode, message: str) -> bool:
        """Fail a pending task that can no longer be claimed (no attempts left)."""
        now = utcnow()
        update = (
            sa.update(t)
            .where(t.c.task_id == task_id, t.c.status == TaskStatus.PENDING)
            .values(status=TaskStatus.FAILED, error_code=error_code, message=redact(message),
                    processed_end=now, updated_at=now, waiting_since=None)
        )
        with begin(self.engine) as conn:
            if conn.execute(update).rowcount != 1:
                return False
            rollups.moved(conn, task_id, TaskStatus.PENDING, TaskStatus.FAILED)
        return True

    def reset_failed(self, task_id: str) -> bool:
        """A failed task back to pending with fresh attempts (the retry route); the old
        error goes, so a pending task does not show why its previous run failed."""
        update = (
            sa.update(t)
            .where(t.c.task_id == task_id, t.c.status == TaskStatus.FAILED)
            .values(status=TaskStatus.PENDING, attempts=0, stage=None, lease_until=None,
                    next_attempt_at=utcnow(), waiting_since=None, batch_since=None,
                    error_code=None, message=None, updated_at=utcnow())
        )
        failed = (sa.select(*SHARE_COLUMNS)
                  .where(t.c.task_id == task_id, t.c.status == TaskStatus.FAILED)
                  .with_for_update())
        with begin(self.engine) as conn:
            row = conn.execute(failed).mappings().first()
            if row is None or conn.execute(update).rowcount != 1:
                return False
            rollups.shift(conn, share_of(row), Share(TaskStatus.PENDING))
        return True

    def restore_failed(self, task: Task) -> None:
        """Undo `reset_failed` when the re-queue could not be written."""
        update = (
            sa.update(t)
            .where(t.c.task_id == task.task_id, t.c.status == TaskStatus.PENDING)
            .values(status=TaskStatus.FAILED, attempts=task.attempts,
                    error_code=task.error_code, message=task.message, updated_at=utcnow())
        )
        with begin(self.engine) as conn:
            if conn.execute(update).rowcount == 1:
                rollups.moved(conn, task.task_id, TaskStatus.PENDING, TaskStatus.FAILED)

    def recount_rollups(self, every_s: float = 0) -> dict[str, int] | None:
        """The rollups' exact recount and pruning (`rollups.py`), when `every_s` passed
        since the last one — in full (the 24 h latency and the tags too) once a day or
        when asked (`rollups.mark_stale`); None when not due or another process runs it.
        Returns how many figures it repaired and how many old rollup rows it deleted."""
        now = utcnow()
        with begin(self.engine) as conn:
            full = rollups.rebuild_due(conn, now)
            if not rollups.claim_run(conn, rollups.RECOUNT, now, 0 if full else every_s):
                return None
            full = full and rollups.claim_run(conn, rollups.REBUILD, now, 0)
            repaired = rollups.recount(conn, now, full=full)
        with begin(self.engine) as conn:
            pruned = rollups.prune(conn, now)
        return {"repaired": repaired.size(), "pruned": pruned, "full": int(full)}

    # --- helpers -------------------------------------------------------------

    def _update_owned(self, task_id: str, attempt: int, *, moved_to: Share | str | None = None,
                      **values: Any) -> bool:
        """A write of the attempt that owns the task; `moved_to`: the status (or the
        share) it leaves the task in, when it ends the processing."""
        _redact_values(values)
        update = (
            sa.update(t)
            .where(t.c.task_id == task_id, t.c.status == TaskStatus.PROCESSING,
                   t.c.attempts == attempt)
            .values(**values, updated_at=utcnow())
        )
        with begin(self.engine) as conn:
            if conn.execute(update).rowcount != 1:
                return False
            if moved_to is not None:
                rollups.moved(conn, task_id, TaskStatus.PROCESSING, moved_to)
                if isinstance(moved_to, Share) and moved_to.status == TaskStatus.COMPLETED:
                    team_usage.record(conn, task_id, moved_to)
        return True


def pending_row(task_id: str, fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The row of a new task, waiting for its first delivery (single creates and batches)."""
    return {
        **fields,
        "task_id": task_id,
        "status": TaskStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "next_attempt_at": now,
        "delivery": "0",
    }


UPSTREAM_TEXT = ("message", "callback_error", "index_error")
"""Columns that can hold text from elsewhere (Gemini, video hosts, callback receivers,
the search cluster): redacted when written and when read."""


def _redact_values(values: dict[str, Any]) -> None:
    for name in UPSTREAM_TEXT:
        if isinstance(values.get(name), str):
            values[name] = redact(values[name])


def to_task(row: Any) -> Task:
    """The task a stored row holds; UnreadableRow when it does not fit the model."""
    data = dict(row)
    data["result"] = data.pop("tags")
    for name in UPSTREAM_TEXT:  # rows written before redaction existed
        if data.get(name):
            data[name] = redact(data[name])
    try:
        return Task.model_validate(data)
    except ValidationError as error:
        raise UnreadableRow(str(data.get("task_id")), describe_problem(error)) from None


def describe_problem(error: ValidationError) -> str:
    """The first thing a row got wrong, as `field: reason` (no stored value quoted)."""
    first = error.errors(include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "row"
    return f"{where}: {first['msg']}"
