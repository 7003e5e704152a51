"""Alembic environment: runs on a connection handed in by `shared.tasks.db.migrate`,
or on DATABASE_URL from the settings when called as `alembic upgrade head`."""

from alembic import context

from shared.tasks.schema import metadata

connection = context.config.attributes.get("connection")


def run(conn) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    from shared.config import get_settings
    from shared.tasks.db import create_db_engine

    engine = create_db_engine(get_settings())
    with engine.connect() as conn:
        run(conn)
