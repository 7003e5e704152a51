"""TaskQueries: reads over many tasks — listings, the result cache, the rollups the stats
and the dashboard read, what the reconciler looks at. Nothing here changes a task (that is
`TaskStore`). Every read is served by an index or a rollup (issue 34): none grows with the
table's history (tests/test_read_plans.py reads MariaDB's plans)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared.cursor import decode_cursor, encode_cursor
from shared.tasks import rollups, team_usage
from shared.tasks.db import connect, utcnow
from shared.tasks.export import EXPORT_CHUNK
from shared.tasks.models import Task, TaskStatus, UnreadableTask
from shared.tasks.schema import video_tasks as t
from shared.tasks.store import UnreadableRow, to_task

UNFINISHED_STATUSES = (TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.WAITING_BATCH)

log = logging.getLogger("vision_to_tag.tasks")


class TaskQueries:
    """Read-only questions about the task table behind one engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def list(
        self,
        *,
        status: str | None = None,
        platform: str | None = None,
        uid: str | None = None,
        team: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Task | UnreadableTask], str | None]:
        """Newest first; returns the page and the cursor of the next one (None at the end).
        A row this version cannot read is listed as unreadable (and logged), never hidden."""
        query = sa.select(t).order_by(t.c.id.desc()).limit(limit + 1)
        if status:
            query = query.where(t.c.status == status)
        if platform:
            query = query.where(t.c.platform == platform)
        if uid:
            query = query.where(t.c.uid == uid)
        if team is not None:
            query = query.where(t.c.team == team)
        if cursor:
            query = query.where(t.c.id < decode_cursor(cursor, int)[0])
        with connect(self.engine) as conn:
            rows = conn.execute(query).mappings().all()
        next_cursor = encode_cursor([rows[limit - 1]["id"]]) if len(rows) > limit else None
        return [listed(row) for row in rows[:limit]], next_cursor

    def find_result(self, video_sha256: str, *, team: str | None, dimensions: list[str],
                    language: str, provider: str, model: str, prompt_version: str
                    ) -> dict[str, Any] | None:
        """A stored result for the same video, question and model (the result cache), of
        `team`'s tasks (None: any team's)."""
        query = (
            sa.select(t.c.tags)
            .where(t.c.video_sha256 == video_sha256, t.c.status == TaskStatus.COMPLETED,
                   *(() if team is None else (t.c.team == team,)))
            .order_by(t.c.id.desc())
            .limit(50)
        )
        with connect(self.engine) as conn:
            for (tags,) in conn.execute(query):
                if same_question(tags, dimensions=dimensions, language=language,
                                 provider=provider, model=model,
                                 prompt_version=prompt_version):
                    return tags
        return None

    def stats_figures(self, last_hour_from: datetime, today_from: datetime) -> dict[str, Any]:
        """What GET /api/v1/stats reads of the tasks, from the rollups in one connection:
        `counts` by status, finished tasks and their usage since `last_hour_from` and
        `today_from` (by status), and the stage latency histograms of the last hour."""
        with connect(self.engine) as conn:
            return {"counts": rollups.status_counts(conn),
                    "last_hour": rollups.finished_totals(conn, last_hour_from),
                    "today": rollups.finished_totals(conn, today_from),
                    "stages": rollups.stage_histograms(conn, 60, last_hour_from)}

    def chart_figures(self, minutes_from: datetime, slots: int, hours_from: datetime,
                      top: int) -> dict[str, Any]:
        """What the 24 h charts read, from the rollups in one connection: finished tasks
        per minute by status (`slots` minutes), the stage latency histograms and the `top`
        tags of the hours from `hours_from`'s."""
        with connect(self.engine) as conn:
            return {"per_minute": rollups.per_minute(conn, minutes_from, slots),
                    "stages": rollups.stage_histograms(conn, 3600, hours_from),
                    "top_tags": rollups.top_tags(conn, hours_from, top)}

    def status_counts(self) -> dict[str, int]:
        """Tasks by status, from the rollup (`count_by_status` counts the rows)."""
        with connect(self.engine) as conn:
            return rollups.status_counts(conn)

    def finished_totals(self, since: datetime) -> dict[str, dict[str, int]]:
        """Tasks finished since the minute of `since` by status, with their usage."""
        with connect(self.engine) as conn:
            return rollups.finished_totals(conn, since)

    def unfinished_of(self, team: str) -> int:
        """The team's tasks not finished yet (its tasks in flight)."""
        query = sa.select(sa.func.count()).select_from(t).where(
            t.c.team == team, t.c.status.in_(UNFINISHED_STATUSES))
        with connect(self.engine) as conn:
            return conn.execute(query).scalar_one()

    def team_days(self, team: str, days: int) -> list[dict[str, Any]]:
        """The team's usage for its last `days` UTC days, today last."""
        with connect(self.engine) as conn:
            return team_usage.days(conn, team, utcnow().date(), days)

    def top_tags(self, since: datetime, limit: int) -> list[tuple[str, int]]:
        with connect(self.engine) as conn:
            return rollups.top_tags(conn, since, limit)

    def count_by_status(self) -> dict[str, int]:
        """Tasks by status, counted over the rows (tests and tools; a full scan)."""
        with connect(self.engine) as conn:
            rows = conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))
            return {status: count for status, count in rows}

    def expired_leases(self, now: datetime | None = None, limit: int = 100) -> list[Task]:
        """Processing tasks whose worker stopped renewing (crashed, killed, timed out)."""
        query = (
            sa.select(t)
            .where(t.c.status == TaskStatus.PROCESSING, t.c.lease_until < (now or utcnow()))
            .limit(limit)
        )
        with connect(self.engine) as conn:
            return readable(conn.execute(query).mappings())

    def overdue_pending(self, grace_s: float, now: datetime | None = None,
                        limit: int = 200) -> list[Task]:
        """Pending tasks whose delivery should have arrived more than `grace_s` ago."""
        cutoff = (now or utcnow()) - timedelta(seconds=grace_s)
        due = sa.or_(t.c.next_attempt_at < cutoff,
                     sa.and_(t.c.next_attempt_at.is_(None), t.c.updated_at < cutoff))
        query = (sa.select(t).where(t.c.status == TaskStatus.PENDING, due)
                 .order_by(t.c.id).limit(limit))
        with connect(self.engine) as conn:
            return readable(conn.execute(query).mappings())

    def iter_completed(self, *, env: str | None = None, since: datetime | None = None,
                       batch: int = 500) -> Iterator[list[Task]]:
        """Completed tasks in id order, a batch at a time (keyset pagination)."""
        last_id = 0
        while True:
            query = sa.select(t).where(t.c.status == TaskStatus.COMPLETED, t.c.id > last_id)
            if env:
                query = query.where(t.c.env == env)
            if since:
                query = query.where(t.c.created_at >= since)
            with connect(self.engine) as conn:
                rows = conn.execute(query.order_by(t.c.id).limit(batch)).mappings().all()
            if not rows:
                return
            last_id = rows[-1]["id"]
            yield [to_task(row) for row in rows]

    def count_completed(self, *, env: str | None = None, since: datetime | None = None) -> int:
        query = sa.select(sa.func.count()).where(t.c.status == TaskStatus.COMPLETED)
        if env:
            query = query.where(t.c.env == env)
        if since:
            query = query.where(t.c.created_at >= since)
        with connect(self.engine) as conn:
            return conn.execute(query).scalar_one()

    def export_rows(self, columns: list[sa.Column], *, status: str | None = None,
                    platform: str | None = None, uid: str | None = None,
                    env: str | None = None, team: str | None = None,
                    since: datetime | None = None,
                    until: datetime | None = None, chunk: int = EXPORT_CHUNK
                    ) -> Iterator[list[dict[str, Any]]]:
        """Tasks matching the filters, oldest first (created_at, then id), `chunk` at a
        time: keyset pagination on an index that starts at `since` (one short query per
        chunk, nothing held open while the caller writes)."""
        query = sa.select(*columns, t.c.created_at.label("_created_at"), t.c.id.label("_id"))
        for column, value in ((t.c.status, status), (t.c.platform, platform),
                              (t.c.uid, uid), (t.c.env, env), (t.c.team, team)):
            if value is not None:
                query = query.where(column == value)
        if until is not None:
            query = query.where(t.c.created_at < until)
        if team is not None:  # MariaDB 10.11 picks `ref` on team alone here, walking the
            # team's rows from its oldest; with this index named it reads a range from since
            query = query.with_hint(t, "FORCE INDEX (ix_video_tasks_team_created_at)",
                                    dialect_name="mysql")
        after: tuple[datetime, int] | None = None
        while True:
            page = query.where(*_after(after, since))
            with connect(self.engine) as conn:
                rows = [dict(row) for row in conn.execute(
                    page.order_by(t.c.created_at, t.c.id).limit(chunk)).mappings()]
            if not rows:
                return
            after = (rows[-1]["_created_at"], rows[-1]["_id"])
            yield [{k: v for k, v in row.items() if k not in ("_created_at", "_id")}
                   for row in rows]


def _after(after: tuple[datetime, int] | None, since: datetime | None) -> list[Any]:
    """Rows past the last one read (created_at, id), from `since` on."""
    if after is None:
        return [] if since is None else [t.c.created_at >= since]
    created_at, last_id = after
    return [t.c.created_at >= created_at,
            sa.or_(t.c.created_at > created_at, t.c.id > last_id)]


def readable(rows: Iterable[Any]) -> list[Task]:
    """The tasks of these rows; a row this version cannot read is logged and left out
    (the reconciler's scans: one such row must not stop the sweep)."""
    tasks = []
    for row in rows:
        try:
            tasks.append(to_task(row))
        except UnreadableRow as error:
            log.error("%s; skipped", error, extra={"task_id": error.task_id})
    return tasks


def same_question(tags: Any, *, dimensions: list[str], language: str, provider: str,
                  model: str, prompt_version: str) -> bool:
    """Whether a stored result answers the same question with the same model: what makes
    it reusable for another video (the exact cache, a near-duplicate)."""
    return (isinstance(tags, dict)
            and sorted(tags.get("dimensions", {})) == sorted(dimensions)
            and tags.get("language") == language
            and tags.get("provider") == provider and tags.get("model") == model
            and tags.get("prompt_version", "") == prompt_version)


def listed(row: Any) -> Task | UnreadableTask:
    """A listed row: the task, or what can be shown of a row this version cannot read."""
    try:
        return to_task(row)
    except UnreadableRow as error:
        log.error("%s", error, extra={"task_id": error.task_id})
        return UnreadableTask(task_id=error.task_id, status=str(row["status"]),
                              url=str(row["url"]), platform=str(row["platform"]),
                              created_at=row["created_at"], problem=error.problem)
