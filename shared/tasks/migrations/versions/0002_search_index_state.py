"""Search index state: when a completed task reached the index, or why it did not.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.add_column(sa.Column("indexed_at", Timestamp))
        batch.add_column(sa.Column("index_error", sa.String(512)))
    op.create_index("ix_video_tasks_status_indexed_at", "video_tasks", ["status", "indexed_at"])


def downgrade() -> None:
    op.drop_index("ix_video_tasks_status_indexed_at", "video_tasks")
    with op.batch_alter_table("video_tasks") as batch:
        batch.drop_column("index_error")
        batch.drop_column("indexed_at")
