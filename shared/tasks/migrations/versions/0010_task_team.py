"""Teams own their tasks and batches (issue 36): a `team` column on `video_tasks` and
`batches` (every existing row belongs to the default team, the one API_TOKENS act for),
with the indexes a team's list (newest first, by id) and export (by created_at) read.

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
                "ix_video_tasks_team_created_at": ("team", "created_at")}
BATCH_INDEXES = {"ix_batches_team_id": ("team", "id")}


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


def downgrade() -> None:
    for table, indexes in (("video_tasks", TASK_INDEXES), ("batches", BATCH_INDEXES)):
        for name in indexes:
            op.drop_index(name, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("team")
