"""Rollups (issue 34): the figures the stats and the dashboard read, kept up to date in
the transaction of every change of a task's status, so no read scans the task table or
parses a result.

The rollups are an aggregate of the task rows as they are now, and each change moves one
row's share: `shift(conn, before, after)` takes the share of the row it was out and puts
the share of the row it became in. A row's `Share` is its status (`task_counts`) and,
once finished, its minute with its usage (`task_minutes`, completed tasks only), its stage
timings as latency histograms (`stage_rollups`, per minute and per hour) and, completed,
its flat tags (`tag_hours`). Windowed figures are kept for their window only (KEEP,
STAGE_PERIODS); a share older than that is not written.

Because a change and its rollups commit together, a crash leaves no drift. Rows written
behind the store's back (a hand-made fix, a version without rollups during a rolling
deploy) do: `recount` repairs it, adding to each figure the difference between the
exact aggregate and the rollup, both read from one snapshot, so changes committed while
it runs are neither lost nor counted twice. Every write adds to rows in key order (one
statement per table, tables in a fixed order after the task row): concurrent
transitions wait for each other, never deadlock.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from shared.tasks.db import utcnow
from shared.tasks.models import TaskStatus
from shared.tasks.schema import (
    USAGE_COLUMNS,
    rollup_runs,
    stage_rollups,
    tag_hours,
    task_counts,
    task_minutes,
)
from shared.tasks.schema import video_tasks as t

FINISHED = (TaskStatus.COMPLETED, TaskStatus.FAILED)
COUNT_SHARDS = 8
"""Rows per status in `task_counts`: concurrent creates mostly add to different rows."""
KEEP = timedelta(days=2)
"""How long `task_minutes` and `tag_hours` rows are kept: today and the 24 h charts."""
READ_SPAN = timedelta(hours=25)
"""The longest span a read sums (today since midnight, the 24 h charts): what a recount
compares of the minutes, the hourly latency and the tags."""
STAGE_PERIODS = {60: timedelta(hours=2), 3600: timedelta(hours=26)}
"""Stage histograms: period (s) → how long its rows are kept (the last hour, the 24 h
chart; each with a margin)."""
BUCKETS_PER_DOUBLING = 4
"""Latency buckets grow by 2^(1/4) (19 %): a percentile is within ±9 % of the truth."""
MAX_TAG = 200
"""Characters of a tag the rollup keeps (`tag_hours.tag`)."""
MAX_STAGE = 32
UPSERT_CHUNK = 500
"""Rows per upsert statement (SQLite's limit on bound parameters)."""
RECOUNT = "recount"
"""The `rollup_runs` row of the periodic recount: counts, usage, the last hours' latency."""
REBUILD = "rebuild"
"""The `rollup_runs` row of the daily full recount (the 24 h latency and the tags too)."""
REBUILD_EVERY_S = 86_400

EPOCH = datetime(1970, 1, 1)
ZERO_USAGE = (0,) * len(USAGE_COLUMNS)


def floor_to(moment: datetime, period_s: int) -> datetime:
    """The start of the period (`period_s` seconds, from 1970) that holds `moment`."""
    seconds = (moment - EPOCH) // timedelta(seconds=1)
    return EPOCH + timedelta(seconds=seconds - seconds % period_s)


def bucket_of(ms: float) -> int:
    """Latency bucket: 0 for 0 ms, then BUCKETS_PER_DOUBLING buckets per doubling."""
    if ms <= 0:
        return 0
    return 1 + math.floor(BUCKETS_PER_DOUBLING * math.log2(ms))


def bucket_ms(bucket: int) -> int:
    """What a bucket stands for: the geometric middle of its bounds (exact below 4 ms)."""
    if bucket <= 0:
        return 0
    return round(2 ** ((bucket - 0.5) / BUCKETS_PER_DOUBLING))


def latency_summary(histogram: Mapping[int, int]) -> dict[str, int]:
    """Count, p50 and p95 (nearest rank) of a latency histogram (bucket → tasks)."""
    count = sum(histogram.values())
    return {"count": count, "p50_ms": _rank(histogram, count, 0.5),
            "p95_ms": _rank(histogram, count, 0.95)}


def _rank(histogram: Mapping[int, int], count: int, fraction: float) -> int:
    rank, seen = max(1, math.ceil(fraction * count)), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_ms(bucket)
    return 0


def usage_values(result: Mapping[str, Any] | None) -> dict[str, int]:
    """The usage columns of a result (`result.usage`; zeros where it has none)."""
    usage = (result or {}).get("usage") if isinstance(result, Mapping) else None
    usage = usage if isinstance(usage, Mapping) else {}
    values = {column: _whole(usage.get(column.removeprefix("usage_")))
              for column in USAGE_COLUMNS[:-1]}
    values["usage_cost_micro_usd"] = _whole(_number(usage.get("cost_usd")) * 1_000_000)
    return values


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _whole(value: Any) -> int:
    number = _number(value)
    return round(number) if math.isfinite(number) else 0


def flat_tags(result: Mapping[str, Any] | None) -> tuple[str, ...]:
    """A result's flat tags as the top tags count them: each once, cut to MAX_TAG."""
    tags = (result or {}).get("tags") if isinstance(result, Mapping) else None
    kept = {tag[:MAX_TAG] for tag in tags or [] if isinstance(tag, str) and tag}
    return tuple(sorted(kept))


@dataclass(frozen=True)
class Share:
    """What one task row adds to the rollups: its status, and once finished its end
    (`processed_end`), usage (columns, completed only), stage timings and flat tags."""

    status: str
    ended: datetime | None = None
    usage: tuple[int, ...] = ZERO_USAGE
    timings: Mapping[str, Any] | None = None
    tags: tuple[str, ...] = ()


SHARE_COLUMNS = (t.c.task_id, t.c.status, t.c.processed_end, t.c.timings,
                 *(t.c[name] for name in USAGE_COLUMNS))
"""The columns a stored row's share is read from (never the result)."""


def share_of(row: Mapping[str, Any]) -> Share:
    """The share of a stored row (no tags: they are only read from the result)."""
    timings = row["timings"] if isinstance(row["timings"], Mapping) else None
    return Share(status=row["status"], ended=row["processed_end"],
                 usage=tuple(int(row[name] or 0) for name in USAGE_COLUMNS), timings=timings)


def completed_share(result: Mapping[str, Any], timings: Mapping[str, Any] | None,
                    ended: datetime) -> Share:
    """The share of a task completing now with this result."""
    usage = usage_values(result)
    return Share(status=TaskStatus.COMPLETED, ended=ended,
                 usage=tuple(usage[name] for name in USAGE_COLUMNS), timings=timings,
                 tags=flat_tags(result))


def kept_from(now: datetime) -> dict[int, datetime]:
    """Stage histograms: period → its first start still kept."""
    return {period_s: floor_to(now - keep, period_s) for period_s, keep in STAGE_PERIODS.items()}


@dataclass
class Deltas:
    """What to add to each rollup row (negative: take out)."""

    counts: Counter[str] = field(default_factory=Counter)
    minutes: dict[tuple[datetime, str], list[int]] = field(default_factory=dict)
    stages: Counter[tuple[int, datetime, str, int]] = field(default_factory=Counter)
    tags: Counter[tuple[datetime, str]] = field(default_factory=Counter)

    def add(self, share: Share, sign: int, now: datetime) -> None:
        self.counts[share.status] += sign
        if share.status not in FINISHED or share.ended is None:
            return
        minute = floor_to(share.ended, 60)
        if minute >= floor_to(now - KEEP, 60):
            usage = share.usage if share.status == TaskStatus.COMPLETED else ZERO_USAGE
            self.add_minute(minute, share.status, [sign, *(sign * v for v in usage)])
        self.add_stages(share.ended, share.timings, sign, kept_from(now))
        hour = floor_to(share.ended, 3600)
        if share.status == TaskStatus.COMPLETED and hour >= floor_to(now - KEEP, 3600):
            for tag in share.tags:
                self.tags[(hour, tag)] += sign

    def add_stages(self, ended: datetime, timings: Mapping[str, Any] | None, sign: int,
                   firsts: Mapping[int, datetime]) -> None:
        """A finished task's stage timings into the histogram of each period (period →
        the first period start kept)."""
        for period_s, first in firsts.items():
            start = floor_to(ended, period_s)
            if start < first:
                continue
            for stage, ms in (timings or {}).items():
                if isinstance(ms, int | float) and not isinstance(ms, bool):
                    self.stages[(period_s, start, stage[:MAX_STAGE], bucket_of(ms))] += sign

    def add_minute(self, minute: datetime, status: str, values: list[int]) -> None:
        row = self.minutes.setdefault((minute, status), [0] * (1 + len(USAGE_COLUMNS)))
        for index, value in enumerate(values):
            row[index] += value

    def size(self) -> int:
        """How many figures change (non-zero entries)."""
        counters = (self.counts, self.stages, self.tags)
        return (sum(1 for counter in counters for n in counter.values() if n)
                + sum(1 for values in self.minutes.values() if any(values)))

    def minus(self, other: Deltas) -> Deltas:
        """self − other, figure by figure."""
        result = Deltas(counts=Counter(self.counts), stages=Counter(self.stages),
                        tags=Counter(self.tags))
        result.counts.subtract(other.counts)
        result.stages.subtract(other.stages)
        result.tags.subtract(other.tags)
        for key, values in self.minutes.items():
            result.add_minute(*key, values)
        for key, values in other.minutes.items():
            result.add_minute(*key, [-v for v in values])
        return result


def shift(conn: sa.Connection, before: Share | None, after: Share | None,
          now: datetime | None = None) -> None:
    """One row's change: `before`'s share out, `after`'s in (None: the row did not
    exist / no longer exists). Runs in the transaction of the row's change."""
    now = now or utcnow()
    deltas = Deltas()
    if before is not None:
        deltas.add(before, -1, now)
    if after is not None:
        deltas.add(after, 1, now)
    write(conn, deltas)


def moved(conn: sa.Connection, task_id: str, before: str, after: Share | str) -> None:
    """After a conditional UPDATE changed one task from status `before`: its rollups.
    `after` is the row's new share, or its new status; a finished status is read back
    (its timings are the row's, whoever wrote them)."""
    if isinstance(after, str):
        if after in FINISHED:
            row = conn.execute(sa.select(*SHARE_COLUMNS).where(t.c.task_id == task_id)
                               ).mappings().one()
            after = share_of(row)
        else:
            after = Share(after)
    shift(conn, Share(before), after)


def write(conn: sa.Connection, deltas: Deltas) -> None:
    """Add the deltas to the rollup tables: one statement per table, rows in key order,
    tables in a fixed order (no deadlock between concurrent writers)."""
    shard = random.randrange(COUNT_SHARDS)
    upsert(conn, task_counts, ("status", "shard"),
            [{"status": status, "shard": shard, "tasks": n}
             for status, n in deltas.counts.items() if n])
    upsert(conn, task_minutes, ("minute", "status"),
            [{"minute": minute, "status": status, "tasks": values[0],
              **dict(zip(USAGE_COLUMNS, values[1:], strict=True))}
             for (minute, status), values in deltas.minutes.items() if any(values)])
    upsert(conn, stage_rollups, ("period_s", "start", "stage", "bucket"),
            [{"period_s": p, "start": s, "stage": stage, "bucket": b, "tasks": n}
             for (p, s, stage, b), n in deltas.stages.items() if n])
    upsert(conn, tag_hours, ("hour", "tag"),
            [{"hour": hour, "tag": tag, "tasks": n} for (hour, tag), n in deltas.tags.items()
             if n])


def upsert(conn: sa.Connection, table: sa.Table, keys: tuple[str, ...],
            rows: list[dict[str, Any]]) -> None:
    """Add each row's numbers to the stored row with its key (inserted when none)."""
    if not rows:
        return
    rows.sort(key=lambda row: tuple(row[key] for key in keys))
    numbers = [name for name in rows[0] if name not in keys]
    for start in range(0, len(rows), UPSERT_CHUNK):
        chunk = rows[start:start + UPSERT_CHUNK]
        if conn.dialect.name == "mysql":
            insert = mysql.insert(table).values(chunk)
            statement = insert.on_duplicate_key_update(
                {name: table.c[name] + insert.inserted[name] for name in numbers})
        else:
            insert = sqlite.insert(table).values(chunk)
            statement = insert.on_conflict_do_update(
                index_elements=list(keys),
                set_={name: table.c[name] + insert.excluded[name] for name in numbers})
        conn.execute(statement)


# --- reads -------------------------------------------------------------------------------

def status_counts(conn: sa.Connection) -> dict[str, int]:
    """Tasks by status (every status that has tasks)."""
    rows = conn.execute(sa.select(task_counts.c.status, sa.func.sum(task_counts.c.tasks))
                        .group_by(task_counts.c.status))
    return {status: int(n) for status, n in rows if n}


def finished_totals(conn: sa.Connection, since: datetime) -> dict[str, dict[str, int]]:
    """Finished tasks since the minute of `since`, by status: `tasks` and the usage
    columns (zero for failed tasks)."""
    names = ("tasks", *USAGE_COLUMNS)
    query = (sa.select(task_minutes.c.status, *(sa.func.sum(task_minutes.c[n]) for n in names))
             .where(task_minutes.c.minute >= floor_to(since, 60))
             .group_by(task_minutes.c.status))
    return {row[0]: {name: int(value or 0) for name, value in zip(names, row[1:], strict=True)}
            for row in conn.execute(query)}


def per_minute(conn: sa.Connection, start: datetime, slots: int) -> dict[str, list[int]]:
    """Finished tasks per minute by status: `slots` minutes from the minute of `start`,
    oldest first. One row per status comes back (`offset:tasks` pairs joined by the
    database): the chart's 1,440 minutes are one string, not 2,880 rows."""
    first = floor_to(start, 60)
    offset = _minutes_between(conn, first, task_minutes.c.minute)
    pairs = sa.func.group_concat(sa.cast(offset, sa.String) + ":"
                                 + sa.cast(task_minutes.c.tasks, sa.String))
    query = (sa.select(task_minutes.c.status, pairs)
             .where(task_minutes.c.minute >= first,
                    task_minutes.c.minute < first + timedelta(minutes=slots))
             .group_by(task_minutes.c.status))
    series: dict[str, list[int]] = {}
    for status, joined in conn.execute(query):
        counts = series.setdefault(status, [0] * slots)
        for pair in (joined or "").split(","):
            slot, tasks = (int(part) for part in pair.split(":"))
            if 0 <= slot < slots:
                counts[slot] += tasks
    return series


def _minutes_between(conn: sa.Connection, first: datetime, column: Any) -> Any:
    """Whole minutes from `first` to `column` (a minute), in SQL."""
    if conn.dialect.name == "mysql":
        return sa.func.timestampdiff(sa.text("MINUTE"), first, column)
    return (sa.cast(sa.func.strftime("%s", column), sa.Integer)
            - sa.cast(sa.func.strftime("%s", first), sa.Integer)) // 60


def stage_histograms(conn: sa.Connection, period_s: int, since: datetime
                     ) -> dict[str, dict[int, int]]:
    """stage → latency histogram (bucket → tasks) over the periods from `since`'s."""
    s = stage_rollups
    query = (sa.select(s.c.stage, s.c.bucket, sa.func.sum(s.c.tasks))
             .where(s.c.period_s == period_s, s.c.start >= floor_to(since, period_s))
             .group_by(s.c.stage, s.c.bucket))
    histograms: dict[str, dict[int, int]] = {}
    for stage, bucket, n in conn.execute(query):
        if n:
            histograms.setdefault(stage, {})[int(bucket)] = int(n)
    return histograms


def top_tags(conn: sa.Connection, since: datetime, limit: int) -> list[tuple[str, int]]:
    """The most frequent flat tags of the tasks completed since `since`'s hour."""
    total = sa.func.sum(tag_hours.c.tasks).label("total")
    query = (sa.select(tag_hours.c.tag, total)
             .where(tag_hours.c.hour >= floor_to(since, 3600))
             .group_by(tag_hours.c.tag).having(total > 0)
             .order_by(total.desc(), tag_hours.c.tag).limit(limit))
    return [(tag, int(n)) for tag, n in conn.execute(query)]


# --- the exact recount -------------------------------------------------------------------

@dataclass(frozen=True)
class Windows:
    """Where a recount compares the rollups with the task rows: from each start on."""

    minutes: datetime
    stages: dict[int, datetime]
    tags: datetime | None
    """None: the tag rollup is left as it is."""

    @classmethod
    def at(cls, now: datetime, *, full: bool) -> Windows:
        """The counts, the minutes (usage) and the last hours' latency; `full`: the 24 h
        latency and the tags as well (they read a day of timings and results)."""
        spans = {60: STAGE_PERIODS[60], 3600: READ_SPAN} if full else {60: STAGE_PERIODS[60]}
        return cls(minutes=floor_to(now - READ_SPAN, 60),
                   stages={p: floor_to(now - span, p) for p, span in spans.items()},
                   tags=floor_to(now - READ_SPAN, 3600) if full else None)


def recount(conn: sa.Connection, now: datetime, *, full: bool = False) -> Deltas:
    """Repair the rollups from the task rows in this transaction; returns what was
    added. The rollups and the rows are read from one snapshot (MariaDB: the
    transaction's first read; SQLite: the caller holds the write lock), and the
    difference is added, never written over: changes committed meanwhile stay."""
    windows = Windows.at(now, full=full)
    stored = _stored(conn, windows)
    exact = _exact(conn, windows)
    difference = exact.minus(stored)
    _drop_zeros(difference)
    write(conn, difference)
    return difference


def _stored(conn: sa.Connection, windows: Windows) -> Deltas:
    stored = Deltas()
    for status, n in conn.execute(sa.select(task_counts.c.status, task_counts.c.tasks)):
        stored.counts[status] += int(n)
    names = ("tasks", *USAGE_COLUMNS)
    query = sa.select(task_minutes.c.minute, task_minutes.c.status,
                      *(task_minutes.c[n] for n in names)
                      ).where(task_minutes.c.minute >= windows.minutes)
    for minute, status, *values in conn.execute(query):
        stored.add_minute(minute, status, [int(v) for v in values])
    for period_s, start in windows.stages.items():
        s = stage_rollups
        query = sa.select(s.c.start, s.c.stage, s.c.bucket, s.c.tasks).where(
            s.c.period_s == period_s, s.c.start >= start)
        for begun, stage, bucket, n in conn.execute(query):
            stored.stages[(period_s, begun, stage, int(bucket))] += int(n)
    if windows.tags is not None:
        query = sa.select(tag_hours.c.hour, tag_hours.c.tag, tag_hours.c.tasks).where(
            tag_hours.c.hour >= windows.tags)
        for hour, tag, n in conn.execute(query):
            stored.tags[(hour, tag)] += int(n)
    return stored


def _exact(conn: sa.Connection, windows: Windows) -> Deltas:
    exact = Deltas()
    for status, n in conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status)):
        exact.counts[status] += int(n)
    _exact_minutes(conn, windows.minutes, exact)
    query = (sa.select(t.c.processed_end, t.c.timings)
             .where(t.c.status.in_(FINISHED),
                    t.c.processed_end >= min(windows.stages.values())))
    for ended, timings in conn.execute(query):
        if isinstance(timings, Mapping):
            exact.add_stages(ended, timings, 1, windows.stages)
    if windows.tags is not None:
        flat = sa.func.json_extract(t.c.tags, "$.tags")
        query = (sa.select(t.c.processed_end, flat)
                 .where(t.c.status == TaskStatus.COMPLETED, t.c.processed_end >= windows.tags,
                        sa.func.json_valid(t.c.tags) == 1))
        for ended, tags in conn.execute(query):
            hour = floor_to(ended, 3600)
            exact.tags.update((hour, tag) for tag in flat_tags({"tags": _json(tags)}))
    return exact


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str | bytes) else None
    except ValueError:
        return None


def _exact_minutes(conn: sa.Connection, since: datetime, exact: Deltas) -> None:
    """Finished tasks per minute and status, summed by the database."""
    if conn.dialect.name == "mysql":
        minute = sa.func.date_format(t.c.processed_end, "%Y-%m-%d %H:%i:00")
    else:
        minute = sa.func.strftime("%Y-%m-%d %H:%M:00", t.c.processed_end)
    completed = t.c.status == TaskStatus.COMPLETED
    usage = [sa.func.sum(sa.case((completed, sa.func.coalesce(t.c[name], 0)), else_=0))
             for name in USAGE_COLUMNS]
    query = (sa.select(minute.label("minute"), t.c.status, sa.func.count(), *usage)
             .where(t.c.status.in_(FINISHED), t.c.processed_end >= since)
             .group_by(sa.text("minute"), t.c.status))
    for text, status, *values in conn.execute(query):
        exact.add_minute(datetime.fromisoformat(str(text)), status, [int(v) for v in values])


def _drop_zeros(deltas: Deltas) -> None:
    for counter in (deltas.counts, deltas.stages, deltas.tags):
        for key in [key for key, n in counter.items() if not n]:
            del counter[key]
    for key in [key for key, values in deltas.minutes.items() if not any(values)]:
        del deltas.minutes[key]


def prune(conn: sa.Connection, now: datetime) -> int:
    """Delete the rollup rows older than their windows; returns how many."""
    deleted = conn.execute(sa.delete(task_minutes).where(
        task_minutes.c.minute < floor_to(now - KEEP, 60))).rowcount
    deleted += conn.execute(sa.delete(tag_hours).where(
        tag_hours.c.hour < floor_to(now - KEEP, 3600))).rowcount
    for period_s, keep in STAGE_PERIODS.items():
        deleted += conn.execute(sa.delete(stage_rollups).where(
            stage_rollups.c.period_s == period_s,
            stage_rollups.c.start < floor_to(now - keep, period_s))).rowcount
    return deleted


def last_run(conn: sa.Connection, name: str) -> tuple[bool, datetime | None]:
    """(known, done_at) of job `name` (RECOUNT, REBUILD); done_at None: due now."""
    r = rollup_runs
    seen = conn.execute(sa.select(r.c.done_at).where(r.c.name == name)).first()
    return (seen is not None, seen[0] if seen else None)


def claim_run(conn: sa.Connection, name: str, now: datetime, every_s: float) -> bool:
    """Whether this transaction runs job `name` now: its last run is `every_s` old or
    was never done. The conditional UPDATE of `rollup_runs` that says so also holds off
    any other process (and, on SQLite, every writer) until commit."""
    r = rollup_runs
    known, last = last_run(conn, name)
    if not known:
        conn.execute(sa.insert(r).values(name=name, done_at=None))
    if last is not None and (now - last).total_seconds() < every_s:
        return False
    claimed = conn.execute(sa.update(r).where(
        r.c.name == name, r.c.done_at.is_not_distinct_from(last)).values(done_at=now))
    return claimed.rowcount == 1


def rebuild_due(conn: sa.Connection, now: datetime) -> bool:
    """Whether the daily full recount is due (or was asked for)."""
    _, last = last_run(conn, REBUILD)
    return last is None or (now - last).total_seconds() >= REBUILD_EVERY_S


def mark_stale(conn: sa.Connection) -> None:
    """Ask for a full rebuild (the 24 h latency and the tags too) at the next sweep."""
    conn.execute(sa.update(rollup_runs).where(rollup_runs.c.name.in_((RECOUNT, REBUILD)))
                 .values(done_at=None))


def created(conn: sa.Connection, tasks: int) -> None:
    """`tasks` new pending tasks, inserted in this transaction."""
    write(conn, Deltas(counts=Counter({TaskStatus.PENDING: tasks})))


def removed(conn: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """These stored rows (SHARE_COLUMNS) are deleted in this transaction."""
    deltas, now = Deltas(), utcnow()
    for row in rows:
        deltas.add(share_of(row), -1, now)
    write(conn, deltas)
