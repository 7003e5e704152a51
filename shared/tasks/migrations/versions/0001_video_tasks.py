"""Create video_tasks (the original schema, extended; docs/architecture.md).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    op.create_table(
        "video_tasks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("uid", sa.String(64)),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("env", sa.String(16), nullable=False),
        sa.Column("dimensions", sa.JSON, nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
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
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("processed_start", Timestamp),
        sa.Column("processed_end", Timestamp),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("task_id", name="uq_video_tasks_task_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_video_tasks_idempotency_key"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_index("ix_video_tasks_status_created_at", "video_tasks", ["status", "created_at"])
    op.create_index("ix_video_tasks_uid", "video_tasks", ["uid"])
    op.create_index("ix_video_tasks_video_sha256", "video_tasks", ["video_sha256"])


def downgrade() -> None:
    op.drop_table("video_tasks")
