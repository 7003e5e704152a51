"""Batches: `batches` (one row per create call) and `batch_items` (its items in order).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table(
        "batches",
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
        **TABLE_OPTIONS,
    )
    op.create_index("ix_batches_created_at", "batches", ["created_at"])
    op.create_table(
        "batch_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("item_index", sa.Integer, nullable=False),
        sa.Column("task_id", sa.String(64)),
        sa.Column("error_field", sa.String(64)),
        sa.Column("error_reason", sa.String(512)),
        **TABLE_OPTIONS,
    )
    op.create_index("ux_batch_items_batch_id_item_index", "batch_items",
                    ["batch_id", "item_index"], unique=True)
    op.create_index("ix_batch_items_task_id", "batch_items", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_batch_items_task_id", table_name="batch_items")
    op.drop_index("ux_batch_items_batch_id_item_index", table_name="batch_items")
    op.drop_table("batch_items")
    op.drop_index("ix_batches_created_at", table_name="batches")
    op.drop_table("batches")
