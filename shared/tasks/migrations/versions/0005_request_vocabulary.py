"""A caller's own vocabulary per task, and the parts of a long video already answered
(issue 23).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.add_column(sa.Column("vocabulary", sa.JSON))
        batch.add_column(sa.Column("windows", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("video_tasks") as batch:
        batch.drop_column("windows")
        batch.drop_column("vocabulary")
