"""BatchStore: the `batches` and `batch_items` tables — writing a batch (its tasks in one
transaction per chunk), reading it with its items' progress, and finishing it exactly
once.

A batch is written `creating`, then its chunks (each: the tasks and their items, one
transaction), then — after its tasks are queued — `open`. It becomes `finished` (with
`finished_at`) by one conditional UPDATE that also checks that no item is unfinished:
however many workers end the last items at the same moment, exactly one sees its UPDATE
change the row and sends the batch callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shared.cursor import decode_cursor, encode_cursor
from shared.redact import redact
from shared.tasks import rollups
from shared.tasks.batch_models import Batch, ItemError, ItemOutcome, Progress
from shared.tasks.db import begin, connect, utcnow
from shared.tasks.export import EXPORT_CHUNK
from shared.tasks.models import TaskStatus
from shared.tasks.schema import batch_items as bi
from shared.tasks.schema import batches as b
from shared.tasks.schema import video_tasks as t

UNFINISHED = (TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.WAITING_BATCH)
FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED)


class DuplicateBatchKey(Exception):
    """Another batch was created with the same Idempotency-Key."""


class BatchStore:
    """Batches behind one engine (MySQL or SQLite)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # --- writes --------------------------------------------------------------

    def begin(self, batch_id: str, *, name: str, total: int, callback_url: str | None,
              idempotency_key: str | None, request_sha256: str,
              team: str = "default") -> None:
        """The batch row, `creating`; DuplicateBatchKey when the key was used already."""
        now = utcnow()
        try:
            with begin(self.engine) as conn:
                conn.execute(sa.insert(b).values(
                    batch_id=batch_id, team=team, name=name, state="creating", total=total,
                    accepted=0,
                    rejected=0, callback_url=callback_url, idempotency_key=idempotency_key,
                    request_sha256=request_sha256, created_at=now, updated_at=now))
        except IntegrityError as error:
            if idempotency_key:
                raise DuplicateBatchKey(idempotency_key) from error
            raise

    def add_chunk(self, batch_id: str, tasks: list[dict[str, Any]],
                  items: list[dict[str, Any]]) -> None:
        """One chunk of the batch in one transaction: its new task rows (pending, as
        `TaskStore.insert` writes them) and its items (task_id or error)."""
        with begin(self.engine) as conn:
            if tasks:
                conn.execute(sa.insert(t), tasks)
                rollups.created(conn, len(tasks))
            conn.execute(sa.insert(bi), [{**item, "batch_id": batch_id} for item in items])

    def open(self, batch_id: str, *, accepted: int, rejected: int) -> None:
        """Every task is queued: the batch is visible as `open`. With nothing accepted it
        is finished at once (nothing will run; no callback)."""
        now = utcnow()
        values: dict[str, Any] = {"state": "open", "accepted": accepted, "rejected": rejected,
                                  "updated_at": now}
        if accepted == 0:
            values.update(state="finished", finished_at=now)
        with begin(self.engine) as conn:
            conn.execute(sa.update(b).where(b.c.batch_id == batch_id).values(**values))

    def discard(self, batch_id: str) -> None:
        """Undo a batch whose tasks could not be queued: tasks, items, the batch."""
        mine = sa.select(bi.c.task_id).where(bi.c.batch_id == batch_id,
                                             bi.c.task_id.is_not(None))
        with begin(self.engine) as conn:
            task_ids = [row[0] for row in conn.execute(mine)]
            for start in range(0, len(task_ids), 500):
                some = t.c.task_id.in_(task_ids[start:start + 500])
                rows = conn.execute(sa.select(*rollups.SHARE_COLUMNS).where(some)
                                    .with_for_update()).mappings().all()
                conn.execute(sa.delete(t).where(some))
                rollups.removed(conn, rows)
            conn.execute(sa.delete(bi).where(bi.c.batch_id == batch_id))
            conn.execute(sa.delete(b).where(b.c.batch_id == batch_id))

    def finish_for_task(self, task_id: str) -> list[str]:
        """After `task_id` ended: the batches this call finished (the conditional UPDATE
        that changed the row), so their callback is sent exactly once."""
        with connect(self.engine) as conn:
            batch_ids = [row[0] for row in conn.execute(
                sa.select(bi.c.batch_id).where(bi.c.task_id == task_id))]
        return [batch_id for batch_id in batch_ids if self._finish(batch_id)]

    def finish_stale(self, limit: int = 100) -> list[str]:
        """Open batches whose items have all finished but that nobody finished (the
        worker could not reach the database then): the reconciler's sweep."""
        query = (sa.select(b.c.batch_id)
                 .where(b.c.state == "open", b.c.finished_at.is_(None),
                        ~sa.exists(self._unfinished(b.c.batch_id)))
                 .order_by(b.c.id).limit(limit))
        with connect(self.engine) as conn:
            batch_ids = [row[0] for row in conn.execute(query)]
        return [batch_id for batch_id in batch_ids if self._finish(batch_id)]

    def _unfinished(self, batch_id: Any) -> sa.Select:
        return (sa.select(bi.c.id).select_from(bi.join(t, t.c.task_id == bi.c.task_id))
                .where(bi.c.batch_id == batch_id, t.c.status.in_(UNFINISHED)).limit(1))

    def _finish(self, batch_id: str) -> bool:
        """The one conditional UPDATE that finishes a batch: True for the caller whose
        UPDATE changed the row (exactly one, however many try at once)."""
        now = utcnow()
        update = (sa.update(b)
                  .where(b.c.batch_id == batch_id, b.c.state == "open",
                         b.c.finished_at.is_(None), ~sa.exists(self._unfinished(batch_id)))
                  .values(state="finished", finished_at=now, updated_at=now))
        with begin(self.engine) as conn:
            return conn.execute(update).rowcount == 1

    def record_callback(self, batch_id: str, *, status: str, attempts: int,
                        error: str | None) -> None:
        with begin(self.engine) as conn:
            conn.execute(sa.update(b).where(b.c.batch_id == batch_id).values(
                callback_status=status, callback_attempts=attempts,
                callback_error=redact(error)[:512] if error else None))

    # --- reads ---------------------------------------------------------------

    def row(self, batch_id: str) -> dict[str, Any] | None:
        with connect(self.engine) as conn:
            row = conn.execute(sa.select(b).where(b.c.batch_id == batch_id)).mappings().first()
        return dict(row) if row else None

    def row_by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        with connect(self.engine) as conn:
            row = conn.execute(sa.select(b).where(b.c.idempotency_key == key)).mappings().first()
        return dict(row) if row else None

    def get(self, batch_id: str) -> Batch | None:
        row = self.row(batch_id)
        if row is None:
            return None
        return self._shown([row])[0]

    def items(self, batch_id: str) -> list[ItemOutcome]:
        query = sa.select(bi).where(bi.c.batch_id == batch_id).order_by(bi.c.item_index)
        with connect(self.engine) as conn:
            rows = conn.execute(query).mappings().all()
        return [ItemOutcome(index=row["item_index"], task_id=row["task_id"],
                            error=None if row["task_id"] else ItemError(
                                field=row["error_field"] or "item",
                                reason=row["error_reason"] or ""))
                for row in rows]

    def list(self, *, limit: int = 20, cursor: str | None = None, team: str | None = None
             ) -> tuple[list[Batch], str | None]:
        """Newest first, of `team` (None: every team's); InvalidCursor for a cursor this
        did not make."""
        query = sa.select(b).order_by(b.c.id.desc()).limit(limit + 1)
        if team is not None:
            query = query.where(b.c.team == team)
        if cursor:
            query = query.where(b.c.id < decode_cursor(cursor, int)[0])
        with connect(self.engine) as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        next_cursor = encode_cursor([rows[limit - 1]["id"]]) if len(rows) > limit else None
        return self._shown(rows[:limit]), next_cursor

    def unfinished_ahead(self, batch_id: str) -> tuple[int, int]:
        """(this batch's unfinished items, unfinished tasks queued up to its last one):
        what must run before the batch is done."""
        last = sa.select(sa.func.max(t.c.id)).select_from(
            bi.join(t, t.c.task_id == bi.c.task_id)).where(bi.c.batch_id == batch_id)
        mine = (sa.select(sa.func.count()).select_from(bi.join(t, t.c.task_id == bi.c.task_id))
                .where(bi.c.batch_id == batch_id, t.c.status.in_(UNFINISHED)))
        with connect(self.engine) as conn:
            last_id = conn.execute(last).scalar()
            if last_id is None:
                return 0, 0
            left = conn.execute(mine).scalar_one()
            ahead = conn.execute(sa.select(sa.func.count()).where(
                t.c.status.in_(UNFINISHED), t.c.id <= last_id)).scalar_one()
        return left, ahead

    def task_rows(self, batch_id: str, columns: list[sa.Column], chunk: int = EXPORT_CHUNK
                  ) -> Iterator[list[dict[str, Any]]]:
        """The batch's tasks in item order, `chunk` at a time (keyset on the item index:
        each chunk is one short query, nothing held open between them)."""
        after = -1
        while True:
            query = (sa.select(bi.c.item_index, *columns)
                     .select_from(bi.join(t, t.c.task_id == bi.c.task_id))
                     .where(bi.c.batch_id == batch_id, bi.c.item_index > after)
                     .order_by(bi.c.item_index).limit(chunk))
            with connect(self.engine) as conn:
                rows = [dict(row) for row in conn.execute(query).mappings()]
            if not rows:
                return
            after = rows[-1]["item_index"]
            yield rows

    # --- helpers -------------------------------------------------------------

    def _shown(self, rows: list[dict[str, Any]]) -> list[Batch]:
        """Batch rows with their items' counts by status and first start (one query)."""
        if not rows:
            return []
        ids = [row["batch_id"] for row in rows]
        query = (sa.select(bi.c.batch_id, t.c.status, sa.func.count(),
                           sa.func.min(t.c.processed_start))
                 .select_from(bi.join(t, t.c.task_id == bi.c.task_id))
                 .where(bi.c.batch_id.in_(ids))
                 .group_by(bi.c.batch_id, t.c.status))
        counts: dict[str, dict[str, int]] = {batch_id: {} for batch_id in ids}
        started: dict[str, datetime] = {}
        with connect(self.engine) as conn:
            for batch_id, status, count, first in conn.execute(query):
                counts[batch_id][status] = count
                if first is not None and (batch_id not in started or first < started[batch_id]):
                    started[batch_id] = first
        shown = []
        for row in rows:
            by_status = {status: counts[row["batch_id"]].get(status, 0) for status in TaskStatus}
            finished = sum(by_status[status] for status in FINISHED)
            shown.append(Batch(
                batch_id=row["batch_id"], team=row["team"], name=row["name"],
                state=shown_state(row),
                total=row["total"], accepted=row["accepted"], rejected=row["rejected"],
                counts=by_status, progress=Progress(finished=finished, total=row["accepted"]),
                created_at=row["created_at"], started_at=started.get(row["batch_id"]),
                finished_at=row["finished_at"], callback_url=row["callback_url"],
                callback_status=row["callback_status"],
                callback_attempts=row["callback_attempts"],
                callback_error=redact(row["callback_error"]) if row["callback_error"] else None,
            ))
        return shown


def shown_state(row: dict[str, Any]) -> str:
    """`finished` once `finished_at` is set: batches finished before the state was written
    (issue 33) still say `open` in their row."""
    return "finished" if row["finished_at"] is not None else row["state"]
