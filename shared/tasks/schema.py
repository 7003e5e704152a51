"""The `video_tasks` table (docs/architecture.md, "Schema") as SQLAlchemy Core metadata.

Alembic migrations in `shared/tasks/migrations/` create and upgrade it; this module is
what the code queries against. Keep both in step when a column is added.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""SQLite only auto-increments INTEGER PRIMARY KEY; MySQL gets BIGINT."""

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
"""Naive UTC timestamps with microseconds on MySQL too."""

USAGE_COLUMNS = ("usage_requests", "usage_prompt_tokens", "usage_cached_tokens",
                 "usage_output_tokens", "usage_thinking_tokens", "usage_batch_requests",
                 "usage_cost_micro_usd")
"""A completed task's `result.usage` as columns (migration 0009), so the rollups' recount
sums them in SQL instead of parsing every result; the cost in millionths of a dollar
(exact sums; results round it to 6 decimals)."""

READ_INDEXES: dict[str, tuple[str, ...]] = {
    "ix_video_tasks_status_id": ("status", "id"),
    "ix_video_tasks_platform_id": ("platform", "id"),
    "ix_video_tasks_created_at": ("created_at",),
    "ix_video_tasks_platform_created_at": ("platform", "created_at"),
    "ix_video_tasks_uid_created_at": ("uid", "created_at"),
    "ix_video_tasks_env_created_at": ("env", "created_at"),
    "ix_video_tasks_status_lease_until": ("status", "lease_until"),
    "ix_video_tasks_status_processed_end": ("status", "processed_end", *USAGE_COLUMNS),
    "ix_video_tasks_team_id": ("team", "id"),
    "ix_video_tasks_team_status": ("team", "status"),
    "ix_video_tasks_team_created_at": ("team", "created_at"),
}
"""Migration 0009 (issue 34): an index for every filter of the list (newest first: by
id) and of the export (oldest first: by created_at, id), for the reconciler's expired
leases, and for the rollups' recount of finished tasks (covering: their usage is summed
from the index alone); migration 0010 (issue 36): a team's list and export.
tests/test_read_plans.py reads the plans."""

video_tasks = sa.Table(
    "video_tasks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(64), nullable=False, unique=True),
    sa.Column("uid", sa.String(64)),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("env", sa.String(16), nullable=False),
    sa.Column("dimensions", sa.JSON, nullable=False),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("vocabulary", sa.JSON),
    sa.Column("windows", sa.JSON),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("stage", sa.String(32)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message", sa.Text),
    sa.Column("error_code", sa.String(64)),
    sa.Column("tags", sa.JSON),
    sa.Column("video_sha256", sa.String(64)),
    sa.Column("storage_uri", sa.String(1024)),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("duration_s", sa.Float),
    sa.Column("timings", sa.JSON),
    sa.Column("lease_until", Timestamp),
    sa.Column("callback_url", sa.String(2048)),
    sa.Column("callback_status", sa.String(16)),
    sa.Column("callback_attempts", sa.Integer),
    sa.Column("callback_error", sa.String(512)),
    sa.Column("idempotency_key", sa.String(128), unique=True),
    sa.Column("processed_start", Timestamp),
    sa.Column("processed_end", Timestamp),
    sa.Column("indexed_at", Timestamp),
    sa.Column("index_error", sa.String(512)),
    sa.Column("next_attempt_at", Timestamp),
    sa.Column("delivery", sa.String(64)),
    sa.Column("waiting_since", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False, server_default="interactive"),
    sa.Column("batch_token", sa.String(32)),
    sa.Column("batch_job", sa.String(64)),
    sa.Column("batch_key", sa.String(32)),
    sa.Column("batch_model", sa.String(64)),
    sa.Column("batch_since", Timestamp),
    sa.Column("translate_to", sa.String(8)),
    *(sa.Column(name, sa.BigInteger) for name in USAGE_COLUMNS),
    sa.Column("team", sa.String(32), nullable=False, server_default="default"),
    sa.Column("reuse", sa.String(8)),
    sa.Index("ix_video_tasks_status_created_at", "status", "created_at"),
    sa.Index("ix_video_tasks_uid", "uid"),
    sa.Index("ix_video_tasks_video_sha256", "video_sha256"),
    sa.Index("ix_video_tasks_status_indexed_at", "status", "indexed_at"),
    sa.Index("ix_video_tasks_status_next_attempt_at", "status", "next_attempt_at"),
    *(sa.Index(name, *columns) for name, columns in READ_INDEXES.items()),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("callback_url", sa.String(2048)),
    sa.Column("callback_status", sa.String(16)),
    sa.Column("callback_attempts", sa.Integer),
    sa.Column("callback_error", sa.String(512)),
    sa.Column("idempotency_key", sa.String(128), unique=True),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("finished_at", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("team", sa.String(32), nullable=False, server_default="default"),
    sa.Index("ix_batches_created_at", "created_at"),
    sa.Index("ix_batches_team_id", "team", "id"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""A batch of items created in one call (`state`: creating → open → finished; `finished`
and `finished_at` are set once, by the one conditional UPDATE that sees every item
finished)."""

batch_items = sa.Table(
    "batch_items",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(64), nullable=False),
    sa.Column("item_index", sa.Integer, nullable=False),
    sa.Column("task_id", sa.String(64)),
    sa.Column("error_field", sa.String(64)),
    sa.Column("error_reason", sa.String(512)),
    sa.Index("ux_batch_items_batch_id_item_index", "batch_id", "item_index", unique=True),
    sa.Index("ix_batch_items_task_id", "task_id"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""Every item of a batch in request order: its task, or why it was refused."""

gemini_jobs = sa.Table(
    "gemini_jobs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(128)),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("items", sa.JSON, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("input_file", sa.String(128)),
    sa.Column("error", sa.String(512)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp),
    sa.Index("ix_gemini_jobs_state", "state"),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""Gemini Batch API jobs (issue 27): `job_id` is ours (the display name is `vtt-{job_id}`),
`name` Gemini's (`batches/…`, set once created); `items` the [task_id, token] pairs it
carries; `state`: creating → submitted → ended (`succeeded` | `failed` | `cancelled` |
`expired`)."""

TagText = sa.String(200).with_variant(mysql.VARCHAR(200, collation="utf8mb4_bin"), "mysql")
"""A tag as the rollups key it: compared byte for byte (`Cat` and `cat` are two tags, as
in the results), at most 200 characters (longer ones are cut)."""

task_counts = sa.Table(
    "task_counts",
    metadata,
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""Tasks by status (issue 34), moved in the transaction of every change of status; the
sum over `shard` is the count (concurrent creates add to different rows)."""

task_minutes = sa.Table(
    "task_minutes",
    metadata,
    sa.Column("minute", Timestamp, primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in USAGE_COLUMNS),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""Finished tasks (completed, failed) by the minute of their `processed_end`, with the
usage of the completed ones: throughput, last hour, today."""

team_days = sa.Table(
    "team_days",
    metadata,
    sa.Column("team", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in USAGE_COLUMNS),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""A ledger of what each team's completed tasks used, by the UTC day they completed
(migration 0010, issue 36): added to in the completion's transaction, never taken from
(deleting a task does not give back what it cost)."""

stage_rollups = sa.Table(
    "stage_rollups",
    metadata,
    sa.Column("period_s", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("start", Timestamp, primary_key=True),
    sa.Column("stage", sa.String(32), primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""Stage latency of finished tasks as histograms: per minute (`period_s` 60: the last
hour) and per hour (3600: the 24 h chart); `bucket` is the latency's bucket
(`rollups.bucket_of`)."""

tag_hours = sa.Table(
    "tag_hours",
    metadata,
    sa.Column("hour", Timestamp, primary_key=True),
    sa.Column("tag", TagText, primary_key=True),
    sa.Column("tasks", sa.BigInteger, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""How many tasks completed in each hour carried each flat tag: the top tags chart."""

rollup_runs = sa.Table(
    "rollup_runs",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("done_at", Timestamp),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""When the periodic jobs over the rollups last ran (`recount`); `done_at` null: due now
(after the migration, or when an operator asks for a rebuild)."""

Blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql")

video_fingerprints = sa.Table(
    "video_fingerprints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(64), nullable=False, unique=True),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("data", Blob, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_unicode_ci",
)
"""A video's fingerprint (migration 0011, issue 40: `shared/video/fingerprint.py`), one
per task; `id` is what the Redis band index (`reuse_index:*`) holds. Deleting the task
deletes it; a stale index entry finds no row and is skipped."""
