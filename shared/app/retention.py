"""The retention job (issue 34): finished tasks created more than TASK_RETENTION_DAYS
ago are deleted by the cleanup function, each as DELETE /api/v1/task/{id} deletes one
(`deletion.py`) — after being appended to `archive/YYYY/MM/DD.jsonl.gz` in storage (the
day the task was created) when ARCHIVE_BEFORE_DELETE is on.

It works in chunks of RETENTION_CHUNK tasks, oldest first: one short read on the
(status, created_at) index, the archive, the traces outside the database, then one
short transaction that deletes the rows and takes their share out of the rollups. No
lock is held between chunks, so creates and workers never wait for more than one chunk's
delete (docs/benchmarks.md, "Retention"). One run at a time (a Redis lock); a run stops
after RETENTION_BUDGET_S and the next one goes on where it stopped.

Archive first, delete second: a run killed between the two archives those rows again on
the next run — an archive may hold a task twice (same `task_id`, same content); readers
keep one per `task_id`. The other order could lose a task that was never archived.
Each chunk adds one gzip member per day to the day's file; a file of concatenated
members is one valid gzip stream (`gzip -dc`, Python's `gzip.open` read them all)."""

from __future__ import annotations

import gzip
import json
import logging
import time
from datetime import date, datetime, timedelta
from typing import Any

from redis.exceptions import LockError

from shared import redis_keys
from shared.app.context import Services
from shared.app.deletion import purge_outside, removal
from shared.redis_conn import REDIS_DOWN, redis_outage
from shared.tasks.db import utcnow
from shared.tasks.removal import FINISHED, PURGE_COLUMNS

log = logging.getLogger("vision_to_tag.cleanup")

RETENTION_BUDGET_S = 240.0
"""A run stops starting chunks after this long (the cleanup function's time limit is
longer); what is left waits for the next run."""
ARCHIVE_LEVEL = 6
"""gzip's default (9) costs about twice the CPU for a few per cent smaller files."""
PURGE_NAMES = tuple(column.name for column in PURGE_COLUMNS)


def archive_key(day: date) -> str:
    return f"archive/{day:%Y/%m/%d}.jsonl.gz"


def run_retention(services: Services, *, now: datetime | None = None,
                  budget_s: float = RETENTION_BUDGET_S) -> dict[str, Any]:
    """Delete (and archive) the expired finished tasks; what it did, and the oldest task
    kept. `{"enabled": false}` when TASK_RETENTION_DAYS is not set."""
    settings = services.settings
    if settings.housekeeping.TASK_RETENTION_DAYS is None:
        return {"enabled": False}
    cutoff = (now or utcnow()) - timedelta(days=settings.housekeeping.TASK_RETENTION_DAYS)
    with redis_outage():
        lock = services.redis.lock(redis_keys.RETENTION_LOCK, timeout=budget_s + 120,
                                   blocking=False)
        if not lock.acquire():
            return {"enabled": True, "skipped": "another retention run is in progress"}
    try:
        report = _expire(services, cutoff, time.monotonic() + budget_s)
    finally:
        _release(lock)
    oldest = removal(services).oldest_created_at()
    return {"enabled": True, "cutoff": cutoff.isoformat() + "Z", **report,
            "oldest_task_at": oldest.isoformat() + "Z" if oldest else None}


def _release(lock: Any) -> None:
    """A lock that ran out (a run past its budget) or Redis gone: it expires anyway."""
    try:
        lock.release()
    except (LockError, *REDIS_DOWN) as error:
        log.warning("retention lock not released: %s", type(error).__name__)


def _expire(services: Services, cutoff: datetime, deadline: float) -> dict[str, Any]:
    """Chunk after chunk, each status in turn, until none is left or time is up."""
    remover, chunk = removal(services), services.settings.housekeeping.RETENTION_CHUNK
    done = {"deleted": 0, "archived": 0, "chunks": 0, "more": False}
    for status in FINISHED:
        while True:
            if time.monotonic() >= deadline:
                done["more"] = True
                return done
            rows = remover.expired(status, cutoff, chunk)
            if not rows:
                break
            if services.settings.housekeeping.ARCHIVE_BEFORE_DELETE:
                done["archived"] += archive(services, rows)
            purge_outside(services, [{name: row[name] for name in PURGE_NAMES}
                                     for row in rows])
            deleted = remover.delete([row["task_id"] for row in rows], only=FINISHED)
            done["deleted"] += len(deleted)
            done["chunks"] += 1
            if len(rows) < chunk or not deleted:
                break
    return done


def archive(services: Services, rows: list[dict[str, Any]]) -> int:
    """Append the rows, one JSON line each, to their creation day's archive: one gzip
    member per day per chunk. Returns how many rows were written."""
    by_day: dict[date, list[bytes]] = {}
    for row in rows:
        line = json.dumps(row, default=_plain, ensure_ascii=False, separators=(",", ":"))
        by_day.setdefault(row["created_at"].date(), []).append(line.encode() + b"\n")
    for day, lines in sorted(by_day.items()):
        services.storage.append(archive_key(day), gzip.compress(
            b"".join(lines), compresslevel=ARCHIVE_LEVEL, mtime=0))
    return len(rows)


def _plain(value: Any) -> Any:
    """Timestamps as ISO 8601 UTC (the columns store naive UTC)."""
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON")
