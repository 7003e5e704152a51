"""Delivery state: when the current delivery is due, its generation, quota wait start.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.add_column(sa.Column("next_attempt_at", Timestamp))
        batch.add_column(sa.Column("delivery", sa.String(64)))
        batch.add_column(sa.Column("waiting_since", Timestamp))
        batch.create_index("ix_video_tasks_status_next_attempt_at",
                           ["status", "next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.drop_index("ix_video_tasks_status_next_attempt_at")
        batch.drop_column("waiting_since")
        batch.drop_column("delivery")
        batch.drop_column("next_attempt_at")
