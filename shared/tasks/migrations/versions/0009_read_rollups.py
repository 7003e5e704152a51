"""Reads that do not grow with history (issue 34): usage columns on `video_tasks`, an
index for every filter of the list and the export, and the rollup tables the stats and
the dashboard read (`task_counts`, `task_minutes`, `stage_rollups`, `tag_hours`,
`rollup_runs`).

The counts by status are filled here, exactly (one GROUP BY); the usage columns of the
tasks completed in the rollups' window (BACKFILL_DAYS) are read from their results in
chunks of BACKFILL_CHUNK rows; the windowed rollups are left to the first (full) recount,
which `rollup_runs` marks as due now.

Revision ID: 0009
Revises: 0008
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
TagText = sa.String(200).with_variant(mysql.VARCHAR(200, collation="utf8mb4_bin"), "mysql")
TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}

USAGE = {"usage_requests": "requests", "usage_prompt_tokens": "prompt_tokens",
         "usage_cached_tokens": "cached_tokens", "usage_output_tokens": "output_tokens",
         "usage_thinking_tokens": "thinking_tokens", "usage_batch_requests": "batch_requests"}
"""Usage column → its field in `result.usage` (the cost is the seventh, in micro-USD)."""
COST_COLUMN = "usage_cost_micro_usd"

INDEXES = {
    "ix_video_tasks_status_id": ["status", "id"],
    "ix_video_tasks_platform_id": ["platform", "id"],
    "ix_video_tasks_created_at": ["created_at"],
    "ix_video_tasks_platform_created_at": ["platform", "created_at"],
    "ix_video_tasks_uid_created_at": ["uid", "created_at"],
    "ix_video_tasks_env_created_at": ["env", "created_at"],
    "ix_video_tasks_status_lease_until": ["status", "lease_until"],
    "ix_video_tasks_status_processed_end": ["status", "processed_end", *USAGE, COST_COLUMN],
}

BACKFILL_DAYS = 2
"""The rollups' longest window (today, the 24 h charts) with a margin: older results are
never summed, so their usage stays in the JSON only."""
BACKFILL_CHUNK = 1000


def upgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        for name in (*USAGE, COST_COLUMN):
            batch.add_column(sa.Column(name, sa.BigInteger))
    _create_indexes()
    _create_rollup_tables()
    bind = op.get_bind()
    bind.execute(sa.text(
        "INSERT INTO task_counts (status, shard, tasks) "
        "SELECT status, 0, COUNT(*) FROM video_tasks GROUP BY status"))
    bind.execute(sa.text("INSERT INTO rollup_runs (name, done_at) "
                         "VALUES ('recount', NULL), ('rebuild', NULL)"))
    _backfill_usage(bind)


def _create_indexes() -> None:
    """On MariaDB in one online ALTER (one pass over the table, writes go on meanwhile);
    one by one on SQLite."""
    if op.get_bind().dialect.name != "mysql":
        for name, columns in INDEXES.items():
            op.create_index(name, "video_tasks", columns)
        return
    added = ", ".join(f"ADD INDEX {name} ({', '.join(columns)})"
                      for name, columns in INDEXES.items())
    op.execute(f"ALTER TABLE video_tasks {added}, ALGORITHM=INPLACE, LOCK=NONE")


def _create_rollup_tables() -> None:
    op.create_table(
        "task_counts",
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tasks", sa.BigInteger, nullable=False),
        **TABLE_OPTIONS)
    op.create_table(
        "task_minutes",
        sa.Column("minute", Timestamp, primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("tasks", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in (*USAGE, COST_COLUMN)),
        **TABLE_OPTIONS)
    op.create_table(
        "stage_rollups",
        sa.Column("period_s", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("start", Timestamp, primary_key=True),
        sa.Column("stage", sa.String(32), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tasks", sa.BigInteger, nullable=False),
        **TABLE_OPTIONS)
    op.create_table(
        "tag_hours",
        sa.Column("hour", Timestamp, primary_key=True),
        sa.Column("tag", TagText, primary_key=True),
        sa.Column("tasks", sa.BigInteger, nullable=False),
        **TABLE_OPTIONS)
    op.create_table(
        "rollup_runs",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("done_at", Timestamp),
        **TABLE_OPTIONS)


def _backfill_usage(bind: sa.Connection) -> None:
    """The usage columns of the results completed in the last BACKFILL_DAYS, from the
    JSON, BACKFILL_CHUNK rows per UPDATE (bounded locks on a live table)."""
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=BACKFILL_DAYS)
    ids = [row[0] for row in bind.execute(sa.text(
        "SELECT id FROM video_tasks WHERE status = 'completed' AND processed_end >= :since"),
        {"since": since})]
    mariadb = bind.dialect.name == "mysql"
    integer = "SIGNED" if mariadb else "INTEGER"
    extract = "JSON_VALUE(tags, '$.usage.{}')" if mariadb else "json_extract(tags, '$.usage.{}')"
    sets = [f"{column} = COALESCE(CAST({extract.format(field)} AS {integer}), 0)"
            for column, field in USAGE.items()]
    sets.append(f"{COST_COLUMN} = COALESCE(CAST(ROUND({extract.format('cost_usd')} "
                f"* 1000000) AS {integer}), 0)")
    for start in range(0, len(ids), BACKFILL_CHUNK):
        chunk = ids[start:start + BACKFILL_CHUNK]
        bind.execute(sa.text(f"UPDATE video_tasks SET {', '.join(sets)} "
                             f"WHERE id IN ({', '.join(str(int(i)) for i in chunk)})"))


def downgrade() -> None:
    for table in ("rollup_runs", "tag_hours", "stage_rollups", "task_minutes", "task_counts"):
        op.drop_table(table)
    for name in INDEXES:
        op.drop_index(name, table_name="video_tasks")
    with op.batch_alter_table("video_tasks") as batch:
        for name in (COST_COLUMN, *reversed(USAGE)):
            batch.drop_column(name)
