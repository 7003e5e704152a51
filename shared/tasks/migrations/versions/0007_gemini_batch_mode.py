"""Gemini Batch mode (issue 27): a task's `mode` and where it waits for a batch job, and
the `gemini_jobs` table.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.add_column(sa.Column("mode", sa.String(16), nullable=False,
                                   server_default="interactive"))
        batch.add_column(sa.Column("batch_token", sa.String(32)))
        batch.add_column(sa.Column("batch_job", sa.String(64)))
        batch.add_column(sa.Column("batch_key", sa.String(32)))
        batch.add_column(sa.Column("batch_model", sa.String(64)))
        batch.add_column(sa.Column("batch_since", Timestamp))
    op.create_table(
        "gemini_jobs",
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
        **TABLE_OPTIONS,
    )
    op.create_index("ix_gemini_jobs_state", "gemini_jobs", ["state"])


def downgrade() -> None:
    op.drop_index("ix_gemini_jobs_state", table_name="gemini_jobs")
    op.drop_table("gemini_jobs")
    with op.batch_alter_table("video_tasks") as batch:
        for name in ("batch_since", "batch_model", "batch_key", "batch_job", "batch_token",
                     "mode"):
            batch.drop_column(name)
