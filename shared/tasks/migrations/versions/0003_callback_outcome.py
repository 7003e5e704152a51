"""Completion callback outcome: delivered / failed, attempts, last error.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.add_column(sa.Column("callback_status", sa.String(16)))
        batch.add_column(sa.Column("callback_attempts", sa.Integer))
        batch.add_column(sa.Column("callback_error", sa.String(512)))


def downgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.drop_column("callback_error")
        batch.drop_column("callback_attempts")
        batch.drop_column("callback_status")
