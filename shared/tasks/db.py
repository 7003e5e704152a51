"""Database engine and schema migrations (SQLite embedded default, MySQL in production)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from shared.config import ROOT
from shared.errors import unavailable_on
from shared.settings.database import DatabaseSettings

MIGRATIONS_DIR = ROOT / "shared" / "tasks" / "migrations"
MYSQL_MIGRATION_LOCK = "vision_to_tag_migrate"
"""MySQL named lock held while migrating, so concurrent cold starts upgrade once."""


DATABASE_DOWN = (OperationalError, InterfaceError)
"""What SQLAlchemy raises for a lost or refused database connection."""


def database_outage():
    """`with database_outage():` turns the database being down into
    ServiceUnavailable("database")."""
    return unavailable_on("database", *DATABASE_DOWN)


def utcnow() -> datetime:
    """Naive UTC, the form every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


@contextlib.contextmanager
def connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for reads; the database being down is ServiceUnavailable."""
    with database_outage(), engine.connect() as conn:
        yield conn


@contextlib.contextmanager
def begin(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction, committed on exit; the database being down is ServiceUnavailable."""
    with database_outage(), engine.begin() as conn:
        yield conn


@contextlib.contextmanager
def begin_without_gaps(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that locks only the rows it reads for update (MySQL: READ
    COMMITTED, no gap locks): deleting old rows by id never makes a concurrent INSERT of
    a new row wait for the gap beside one of them (issue 34, retention)."""
    with database_outage(), engine.connect() as conn:
        if conn.dialect.name == "mysql":
            conn = conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin():
            yield conn


def create_db_engine(settings: DatabaseSettings, *, read_timeout_s: float | None = None
                     ) -> sa.Engine:
    """One pooled engine per process; pool size from DB_POOL_SIZE. Every wait has a limit
    (docs/decisions.md, "Time limits"): a database that stops answering is an outage
    within DB_POOL_TIMEOUT_S + 2 x DB_READ_TIMEOUT_S (pre-ping, then the reconnect's
    handshake), not a request that hangs. `read_timeout_s` overrides the read limit (the
    migrations' engine)."""
    url = make_url(settings.DATABASE_URL)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        busy_s = settings.SQLITE_BUSY_TIMEOUT_S
        engine = sa.create_engine(url, connect_args={"timeout": busy_s,
                                                     "check_same_thread": False})
        sa.event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_s=busy_s))
        return engine
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return sa.create_engine(
        url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_POOL_SIZE,
        pool_timeout=settings.DB_POOL_TIMEOUT_S,
        pool_pre_ping=settings.DB_POOL_PRE_PING,
        pool_recycle=settings.DB_POOL_RECYCLE_S,
        connect_args={"connect_timeout": settings.DB_CONNECT_TIMEOUT_S,
                      "read_timeout": read_timeout_s or settings.DB_READ_TIMEOUT_S,
                      "write_timeout": settings.DB_WRITE_TIMEOUT_S},
    )


def _sqlite_pragmas(dbapi_connection, _record, busy_s: float) -> None:
    """WAL lets the api read while the worker writes; busy_timeout waits for a writer, at
    most SQLITE_BUSY_TIMEOUT_S (then "database is locked": an outage, 503)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")
    cursor.close()


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision`; safe to call from many processes at once."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database_outage(), _migration_lock(engine), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    if engine.dialect.name == "mysql":
        with engine.connect() as lock_conn:
            lock_conn.execute(sa.text("SELECT GET_LOCK(:n, 60)"), {"n": MYSQL_MIGRATION_LOCK})
            try:
                yield
            finally:
                lock_conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": MYSQL_MIGRATION_LOCK})
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield
