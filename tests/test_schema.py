"""The SQLAlchemy schema the code queries and the Alembic migrations agree."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.config import load_settings
from shared.tasks.db import create_db_engine, migrate
from shared.tasks.schema import metadata


def test_migrations_build_exactly_the_schema(db_url: str) -> None:
    engine = create_db_engine(load_settings(DATABASE_URL=db_url))
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = [d for d in compare_metadata(context, metadata)
                       if not _is_alembic_version(d)]
    engine.dispose()
    assert differences == []


def _is_alembic_version(difference) -> bool:
    table = difference[1] if isinstance(difference, tuple) and len(difference) > 1 else None
    return isinstance(table, sa.Table) and table.name == "alembic_version"
