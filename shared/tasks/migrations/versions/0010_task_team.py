"""Teams own their tasks and batches (issue 36): a `team` column on `video_tasks` and
`batches` (every existing row belongs to the default team, the one API_TOKENS act for),
with the indexes a team's list (newest first, by id) and export (by created_at) read;
and `team_days`, the ledger of each team's usage per day, filled here from the completed
tasks (their usage columns where migration 0009 backfilled them; tasks only before).

On MariaDB one online ALTER per table (writes go on meanwhile; a column with a constant
default is instant there).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TASK_INDEXES = {"ix_video_tasks_team_id": ("team", "id"),
                "ix_video_tasks_team_status": ("team", "status"),
                "ix_video_tasks_team_created_at": ("team", "created_at")}
BATCH_INDEXES = {"ix_batches_team_id": ("team", "id")}
USAGE = ("usage_requests", "usage_prompt_tokens", "usage_cached_tokens",
         "usage_output_tokens", "usage_thinking_tokens", "usage_batch_requests",
         "usage_cost_micro_usd")


def upgrade() -> None:
    for table, indexes in (("video_tasks", TASK_INDEXES), ("batches", BATCH_INDEXES)):
        if op.get_bind().dialect.name == "mysql":
            added = ", ".join(f"ADD INDEX {name} ({', '.join(columns)})"
                              for name, columns in indexes.items())
            op.execute(f"ALTER TABLE {table} ADD COLUMN team VARCHAR(32) NOT NULL "
                       f"DEFAULT 'default', {added}, ALGORITHM=INPLACE, LOCK=NONE")
            continue
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("team", sa.String(32), nullable=False,
                                       server_default="default"))
        for name, columns in indexes.items():
            op.create_index(name, table, list(columns))
    op.create_table(
        "team_days",
        sa.Column("team", sa.String(32), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("tasks", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in USAGE),
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_unicode_ci")
    sums = ", ".join(f"COALESCE(SUM({name}), 0)" for name in USAGE)
    op.execute(f"INSERT INTO team_days (team, day, tasks, {', '.join(USAGE)}) "
               f"SELECT team, DATE(processed_end), COUNT(*), {sums} FROM video_tasks "
               f"WHERE status = 'completed' AND processed_end IS NOT NULL "
               f"GROUP BY team, DATE(processed_end)")


def downgrade() -> None:
    op.drop_table("team_days")
    for table, indexes in (("video_tasks", TASK_INDEXES), ("batches", BATCH_INDEXES)):
        for name in indexes:
            op.drop_index(name, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("team")
