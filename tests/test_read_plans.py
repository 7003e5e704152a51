"""Every read the API, the dashboard and the reconciler make is served by an index or a
rollup (issue 34), on a table of the benchmark's mix in MariaDB: the server's own plan
for each statement the code sends shows no full scan of the task table and, for the
listings and the export, no sort of the rows they filter; and the rows the server
actually reads (its handler counters) stay within a small multiple of the rows it
answers, so no read grows with the table's history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from benchmarks.scale import fill
from shared.config import load_settings
from shared.tasks.db import create_db_engine, migrate, utcnow
from shared.tasks.export import EXPORT_COLUMNS
from shared.tasks.followups import Followups
from shared.tasks.queries import TaskQueries
from shared.tasks.store import TaskStore
from tests.conftest import empty_tables

ROWS = 6_000


@pytest.fixture(scope="module")
def engine(mysql_url: str) -> Iterator[sa.Engine]:
    """One connection (StaticPool), so its session counters count every read."""
    filled = create_db_engine(load_settings(DATABASE_URL=mysql_url), read_timeout_s=120)
    migrate(filled)
    empty_tables(filled)
    fill(filled, ROWS)
    TaskStore(filled).recount_rollups()
    filled.dispose()
    engine = sa.create_engine(mysql_url, poolclass=sa.pool.StaticPool)
    yield engine
    empty_tables(engine)
    engine.dispose()


def statements(engine: sa.Engine, read: Callable[[], object]) -> list[tuple[str, object]]:
    """The SELECTs `read` sends (with their parameters)."""
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "video_tasks" in statement:
            sent.append((statement, parameters))
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        result = read()
        if hasattr(result, "__next__"):
            list(result)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return sent


HANDLER_READS = ("SELECT SUM(VARIABLE_VALUE) FROM information_schema.SESSION_STATUS "
                 "WHERE VARIABLE_NAME LIKE 'HANDLER_READ%%'")


def rows_read_and_answered(engine: sa.Engine, read: Callable[[], object]) -> tuple[int, int]:
    """Rows the server read for `read` (its handler counters, less what asking for them
    costs) and rows it answered."""
    answered = [0]

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "video_tasks" in statement:
            answered[0] += max(cursor.rowcount, 0)
    with engine.connect() as conn:
        before = int(conn.exec_driver_sql(HANDLER_READS).scalar())
        cost = int(conn.exec_driver_sql(HANDLER_READS).scalar()) - before
    sa.event.listen(engine, "after_cursor_execute", count)
    try:
        result = read()
        if hasattr(result, "__next__"):
            list(result)
    finally:
        sa.event.remove(engine, "after_cursor_execute", count)
    with engine.connect() as conn:
        after = int(conn.exec_driver_sql(HANDLER_READS).scalar())
    return after - before - 2 * cost, answered[0]


def plans(engine: sa.Engine, sent: list[tuple[str, object]]) -> list[dict]:
    with engine.connect() as conn:
        return [dict(row._mapping) for statement, parameters in sent
                for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]


def reads(engine: sa.Engine) -> dict[str, Callable[[], object]]:
    queries, hour_ago = TaskQueries(engine), utcnow() - timedelta(hours=1)
    with engine.connect() as conn:
        task_id, uid = conn.execute(sa.text(
            "SELECT task_id, uid FROM video_tasks ORDER BY id DESC LIMIT 1")).one()
    _, cursor = queries.list(limit=20)
    export = {"since": {"since": hour_ago}, "until": {"until": hour_ago},
              "status": {"status": "failed"}, "platform": {"platform": "miaobi"},
              "uid": {"uid": uid}, "env": {"env": "develop"},
              "status+since": {"status": "failed", "since": hour_ago},
              "nothing": {}}
    found: dict[str, Callable[[], object]] = {
        "get": lambda: TaskStore(engine).get(task_id),
        "list newest": lambda: queries.list(),
        "list page 2": lambda: queries.list(cursor=cursor),
        "list by uid": lambda: queries.list(uid=uid),
        "list by platform": lambda: queries.list(platform="miaobi"),
        "list of a team": lambda: queries.list(team="default"),
        "export of a team": lambda: queries.export_rows(EXPORT_COLUMNS, chunk=200,
                                                        team="default", since=hour_ago),
        "expired leases": lambda: queries.expired_leases(),
        "overdue pending": lambda: queries.overdue_pending(60),
        "not indexed": lambda: Followups(engine).not_indexed(),
    }
    for status in ("pending", "processing", "waiting_batch", "completed", "failed"):
        found[f"list {status}"] = lambda status=status: queries.list(status=status)
    for name, filters in export.items():
        found[f"export by {name}"] = (
            lambda filters=filters: queries.export_rows(EXPORT_COLUMNS, chunk=200, **filters))
    return found


UNSORTED = ("list", "export")
"""Reads whose rows come in index order: a sort would read every matching row first."""


def test_no_read_scans_the_task_table(engine: sa.Engine) -> None:
    problems = []
    for name, read in reads(engine).items():
        sent = statements(engine, read)
        assert sent, name
        for plan in plans(engine, sent):
            if plan["table"] != "video_tasks":
                continue
            if plan["type"] == "ALL" or not plan["key"]:
                problems.append(f"{name}: full scan {plan}")
            elif name.startswith(UNSORTED) and "filesort" in (plan["Extra"] or ""):
                problems.append(f"{name}: sorts what it filters {plan}")
    assert problems == []


def test_no_read_reads_much_more_than_it_answers(engine: sa.Engine) -> None:
    """A walk of an index in the answer's order that skips most rows (an export since the
    last hour walking the primary key from the oldest task) shows here."""
    too_many = {}
    for name, read in reads(engine).items():
        read_rows, answered = rows_read_and_answered(engine, read)
        if read_rows > 3 * answered + 100:
            too_many[name] = (read_rows, answered)
    assert too_many == {}


def test_the_stats_and_charts_read_no_task_row(engine: sa.Engine) -> None:
    """They read the rollup tables only."""
    queries, now = TaskQueries(engine), utcnow()
    assert statements(engine, lambda: queries.stats_figures(now - timedelta(hours=1),
                                                            now - timedelta(hours=5))) == []
    assert statements(engine, lambda: queries.chart_figures(now - timedelta(days=1), 1440,
                                                            now - timedelta(hours=23), 20)) == []
