"""GeminiJobStore: Gemini Batch API jobs (`gemini_jobs`) and the transitions of the tasks
that wait for them (status `waiting_batch`, issue 27).

The task row stays the source of truth: a waiting task names its job (`batch_job`, null
until the collector submits it) and carries a fencing token (`batch_token`, new each time
the task is prepared). Every write that ends a wait is conditional on `status =
waiting_batch AND batch_token = <the token the job carried>`, so a job's late answer for a
task that fell back to interactive, or was prepared again, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared.errors import ErrorCode
from shared.redact import redact
from shared.tasks import rollups, team_usage
from shared.tasks.db import begin, connect, utcnow
from shared.tasks.models import TaskStatus
from shared.tasks.schema import gemini_jobs as j
from shared.tasks.schema import video_tasks as t

JOB_CREATING = "creating"
JOB_SUBMITTED = "submitted"
ENDED = ("succeeded", "failed", "cancelled", "expired")


@dataclass(frozen=True)
class Waiting:
    """A task waiting for a batch job, as the collector groups it."""

    task_id: str
    token: str
    key_id: str
    model: str
    created_at: datetime
    batch_since: datetime | None


@dataclass(frozen=True)
class GeminiJob:
    job_id: str
    name: str | None
    key_id: str
    model: str
    state: str
    items: list[tuple[str, str]]
    input_file: str | None
    error: str | None
    created_at: datetime
    ended_at: datetime | None

    @property
    def display_name(self) -> str:
        """What the job is called at Gemini: how a job created just before a crash is
        found again."""
        return f"vtt-{self.job_id}"

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "name": self.name, "model": self.model,
                "state": self.state, "tasks": len(self.items),
                "input": "file" if self.input_file else "inline", "error": self.error,
                "created_at": self.created_at.isoformat() + "Z",
                "ended_at": self.ended_at.isoformat() + "Z" if self.ended_at else None}


WAITING = (t.c.task_id, t.c.batch_token, t.c.batch_key, t.c.batch_model, t.c.created_at,
           t.c.batch_since)


class GeminiJobStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # --- waiting tasks -----------------------------------------------------------------

    def unassigned(self, limit: int) -> list[Waiting]:
        """Waiting tasks no job carries yet, longest waiting first."""
        query = (sa.select(*WAITING)
                 .where(t.c.status == TaskStatus.WAITING_BATCH, t.c.batch_job.is_(None))
                 .order_by(t.c.batch_since, t.c.id).limit(limit))
        with connect(self.engine) as conn:
            return [Waiting(*row) for row in conn.execute(query)]

    def overdue(self, max_wait_s: float, limit: int = 500) -> list[Waiting]:
        """Waiting tasks whose first wait began more than `max_wait_s` ago."""
        since = utcnow() - timedelta(seconds=max_wait_s)
        query = (sa.select(*WAITING)
                 .where(t.c.status == TaskStatus.WAITING_BATCH, t.c.batch_since < since)
                 .limit(limit))
        with connect(self.engine) as conn:
            return [Waiting(*row) for row in conn.execute(query)]

    def finish_task(self, task_id: str, token: str, *, result: dict[str, Any],
                    timings: dict[str, int]) -> bool:
        now = utcnow()
        return self._update_waiting(
            task_id, token, rollups.completed_share(result, timings, now),
            status=TaskStatus.COMPLETED, stage=None, tags=result, timings=timings,
            message=None, error_code=None, processed_end=now, batch_job=None,
            batch_token=None, **rollups.usage_values(result))

    def fail_task(self, task_id: str, token: str, *, error_code: ErrorCode, message: str) -> bool:
        return self._update_waiting(
            task_id, token, TaskStatus.FAILED, status=TaskStatus.FAILED, stage=None,
            error_code=error_code, message=redact(message), processed_end=utcnow(),
            batch_job=None, batch_token=None)

    def fall_back(self, task_id: str, token: str, *, generation: str, message: str,
                  error_code: ErrorCode) -> bool:
        """Back to pending as an interactive task (its next delivery is `generation`)."""
        now = utcnow()
        return self._update_waiting(
            task_id, token, TaskStatus.PENDING, status=TaskStatus.PENDING, stage=None,
            mode="interactive", next_attempt_at=now, delivery=generation,
            message=redact(message), error_code=error_code, batch_job=None, batch_token=None)

    def _update_waiting(self, task_id: str, token: str, moved_to: rollups.Share | str,
                        **values: Any) -> bool:
        """The end of a wait, fenced on its token, with the task's rollups."""
        update = (sa.update(t)
                  .where(t.c.task_id == task_id, t.c.status == TaskStatus.WAITING_BATCH,
                         t.c.batch_token == token)
                  .values(**values, updated_at=utcnow()))
        with begin(self.engine) as conn:
            if conn.execute(update).rowcount != 1:
                return False
            rollups.moved(conn, task_id, TaskStatus.WAITING_BATCH, moved_to)
            if isinstance(moved_to, rollups.Share) and moved_to.status == TaskStatus.COMPLETED:
                team_usage.record(conn, task_id, moved_to)
        return True

    # --- jobs ------------------------------------------------------------------------

    def create(self, job_id: str, key_id: str, model: str,
               candidates: list[Waiting]) -> GeminiJob | None:
        """Record a job (state `creating`) and give it the candidates no other job took,
        in one transaction: recorded before Gemini hears of it, so a crash after the
        creation call finds it again by its display name. None when it got no task."""
        now = utcnow()
        ids = [w.task_id for w in candidates]
        with begin(self.engine) as conn:
            conn.execute(sa.update(t).where(
                t.c.task_id.in_(ids), t.c.status == TaskStatus.WAITING_BATCH,
                t.c.batch_job.is_(None)).values(batch_job=job_id))
            taken = [(row.task_id, row.batch_token) for row in conn.execute(
                sa.select(t.c.task_id, t.c.batch_token).where(t.c.batch_job == job_id,
                                                             t.c.task_id.in_(ids)))]
            if not taken:
                return None
            conn.execute(sa.insert(j).values(
                job_id=job_id, key_id=key_id, model=model, state=JOB_CREATING,
                items=[list(item) for item in taken], total=len(taken), created_at=now,
                updated_at=now))
        return self.get(job_id)

    def get(self, job_id: str) -> GeminiJob | None:
        with connect(self.engine) as conn:
            row = conn.execute(sa.select(j).where(j.c.job_id == job_id)).mappings().first()
        return _job(row) if row else None

    def in_states(self, states: tuple[str, ...]) -> list[GeminiJob]:
        with connect(self.engine) as conn:
            rows = conn.execute(sa.select(j).where(j.c.state.in_(states))
                                .order_by(j.c.id)).mappings().all()
        return [_job(row) for row in rows]

    def recent(self, limit: int = 20) -> list[GeminiJob]:
        with connect(self.engine) as conn:
            rows = conn.execute(sa.select(j).order_by(j.c.id.desc()).limit(limit)
                                ).mappings().all()
        return [_job(row) for row in rows]

    def counts(self) -> dict[str, int]:
        with connect(self.engine) as conn:
            rows = conn.execute(sa.select(j.c.state, sa.func.count()).group_by(j.c.state))
            return {state: count for state, count in rows}

    def set_input_file(self, job_id: str, name: str) -> None:
        self._update_job(job_id, input_file=name)

    def submitted(self, job_id: str, name: str) -> None:
        self._update_job(job_id, name=name, state=JOB_SUBMITTED)

    def end(self, job_id: str, state: str, error: str | None = None) -> bool:
        """The job's end, once (the conditional UPDATE that moves it out of its running
        states); its waiting tasks go back to waiting for the next job."""
        now = utcnow()
        with begin(self.engine) as conn:
            ended = conn.execute(sa.update(j).where(
                j.c.job_id == job_id, j.c.state.in_((JOB_CREATING, JOB_SUBMITTED))).values(
                state=state, error=redact(error)[:500] if error else None, ended_at=now,
                updated_at=now)).rowcount == 1
            conn.execute(sa.update(t).where(
                t.c.batch_job == job_id, t.c.status == TaskStatus.WAITING_BATCH).values(
                batch_job=None, updated_at=now))
        return ended

    def _update_job(self, job_id: str, **values: Any) -> None:
        with begin(self.engine) as conn:
            conn.execute(sa.update(j).where(j.c.job_id == job_id)
                         .values(**values, updated_at=utcnow()))


def _job(row: Any) -> GeminiJob:
    return GeminiJob(job_id=row["job_id"], name=row["name"], key_id=row["key_id"],
                     model=row["model"], state=row["state"],
                     items=[(item[0], item[1]) for item in row["items"] or []],
                     input_file=row["input_file"], error=row["error"],
                     created_at=row["created_at"], ended_at=row["ended_at"])
