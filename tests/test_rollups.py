"""The rollups the stats and the dashboard read (issue 34), on SQLite and MariaDB: every
change of status moves them in its own transaction, so they always equal an exact
recount of the rows; rows changed behind the store's back drift, and the periodic
recount repairs that without losing changes committed while it runs."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shared.config import load_settings
from shared.errors import ErrorCode
from shared.tasks import rollups
from shared.tasks.batches import BatchStore
from shared.tasks.db import create_db_engine, migrate, utcnow
from shared.tasks.gemini_jobs import GeminiJobStore
from shared.tasks.queries import TaskQueries
from shared.tasks.rollups import floor_to
from shared.tasks.schema import rollup_runs, stage_rollups, tag_hours, task_minutes
from shared.tasks.schema import video_tasks as t
from shared.tasks.store import TaskStore, pending_row


@pytest.fixture
def store(db_url: str) -> TaskStore:
    engine = create_db_engine(load_settings(DATABASE_URL=db_url))
    migrate(engine)
    yield TaskStore(engine)
    engine.dispose()


@pytest.fixture
def queries(store: TaskStore) -> TaskQueries:
    return TaskQueries(store.engine)


FIELDS = {"url": "http://example.com/v.mp4", "platform": "rpa", "env": "develop",
          "dimensions": ["vision"], "language": "zh"}


def result(tags: list[str], cost: float = 0.001234, tokens: int = 1000) -> dict:
    return {"tags": tags, "dimensions": {}, "language": "zh", "provider": "gemini",
            "model": "m", "technical": {"duration_s": 1.0, "has_audio": False},
            "usage": {"requests": 1, "prompt_tokens": tokens, "cached_tokens": 10,
                      "output_tokens": 200, "thinking_tokens": 5, "cost_usd": cost,
                      "batch_requests": 0}}


def new_task(store: TaskStore) -> str:
    task_id = str(uuid.uuid4())
    store.insert(task_id, dict(FIELDS))
    return task_id


def drift(engine: sa.Engine) -> rollups.Deltas:
    """What an exact recount would add to the rollups now (rolled back)."""
    with engine.connect() as conn:
        transaction = conn.begin()
        difference = rollups.recount(conn, utcnow(), full=True)
        transaction.rollback()
    return difference


def assert_exact(store: TaskStore, queries: TaskQueries) -> None:
    difference = drift(store.engine)
    assert difference.size() == 0, difference
    assert figures_of_rows(store.engine) == figures_read(queries)


def figures_of_rows(engine: sa.Engine) -> dict:
    """The stats' counts and usage, and the charts' top tags, computed here from every
    row (no rollup code involved)."""
    now = utcnow()
    since = floor_to(now, 60) - timedelta(minutes=59)
    hours_from = floor_to(now, 3600) - timedelta(hours=23)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.status, t.c.processed_end, t.c.tags)).all()
    finished = Counter(status for status, ended, _ in rows
                       if status in ("completed", "failed") and ended and ended >= since)
    usage = Counter()
    tags = Counter()
    for status, ended, stored in rows:
        if status == "completed" and ended and ended >= since:
            usage.update({name: value for name, value in stored["usage"].items()
                          if name != "cost_usd"})
            usage["cost_micro_usd"] += round(stored["usage"]["cost_usd"] * 1_000_000)
        if status == "completed" and ended and ended >= hours_from:
            tags.update(set(stored["tags"]))
    return {"counts": dict(Counter(status for status, _, _ in rows)),
            "finished": dict(finished), "usage": {k: v for k, v in usage.items() if v},
            "tags": dict(tags)}


def figures_read(queries: TaskQueries) -> dict:
    now = utcnow()
    totals = queries.finished_totals(now - timedelta(minutes=59))
    completed = totals.get("completed", {})
    usage = {name.removeprefix("usage_"): n for name, n in completed.items()
             if name.startswith("usage_") and n}
    return {"counts": queries.status_counts(),
            "finished": {status: v["tasks"] for status, v in totals.items() if v["tasks"]},
            "usage": usage,
            "tags": dict(queries.top_tags(now - timedelta(hours=23), 1000))}


def test_every_change_of_status_keeps_the_rollups_exact(store: TaskStore,
                                                         queries: TaskQueries) -> None:
    """Each transition of the state machine, one after the other, checked after each."""
    started = utcnow()  # the totals are read from this minute on: the test may cross one
    jobs = GeminiJobStore(store.engine)
    a, b, c, d, e, f = (new_task(store) for _ in range(6))
    assert store.claim(a, 30, 5).outcome == "claimed"
    assert store.complete(a, 1, result=result(["cat", "dog", "Cat"]),
                          timings={"downloading": 120, "tagging": 2400}, video={})
    assert store.claim(b, 30, 5).outcome == "claimed"
    assert store.fail(b, 1, error_code=ErrorCode.DOWNLOAD_FAILED, message="404",
                      timings={"downloading": 30})
    assert store.claim(c, 30, 5).outcome == "claimed"
    assert store.release(c, 1, error_code=ErrorCode.TRANSIENT_ERROR, message="later",
                         timings={"downloading": 7})
    assert store.claim(d, 30, 5).outcome == "claimed"
    assert store.wait_batch(d, 1, token="tok", key_id="k", model="m",
                            timings={"probing": 3}, video={})
    assert jobs.finish_task(d, "tok", result=result(["dog"], cost=0.5), timings={"tagging": 9})
    assert store.claim(e, -1, 1).outcome == "claimed"  # a lease that has run out
    assert store.reap(store.get(e), max_attempts=1, message="worker lost") == "failed"
    assert store.claim(f, -1, 5).outcome == "claimed"
    assert store.claim(f, -1, 5).outcome == "claimed"  # taken over: still processing
    assert store.reap(store.get(f), max_attempts=5, message="worker lost") == "requeued"
    assert store.reset_failed(b) and store.reset_failed(e)
    store.restore_failed(store.get(b).model_copy(update={"attempts": 1}))
    assert store.fail_pending(c, error_code=ErrorCode.ATTEMPTS_EXHAUSTED, message="none left")
    store.delete(f)
    g = new_task(store)
    assert store.claim(g, 30, 5).outcome == "claimed"
    assert store.wait_batch(g, 1, token="t2", key_id="k", model="m", timings={}, video={})
    assert jobs.fall_back(g, "t2", generation="x", message="too long",
                          error_code=ErrorCode.BATCH_WAIT_EXCEEDED)
    assert store.claim(g, 30, 5).outcome == "claimed"
    assert store.wait_batch(g, 1, token="t3", key_id="k", model="m", timings={"probing": 1},
                            video={})
    assert jobs.fail_task(g, "t3", error_code=ErrorCode.GEMINI_BATCH_ITEM_FAILED, message="x")
    assert_exact(store, queries)
    assert figures_read(queries)["counts"] == {"completed": 2, "failed": 3, "pending": 1}
    assert figures_read(queries)["tags"] == {"cat": 1, "Cat": 1, "dog": 2}
    assert queries.finished_totals(started)["completed"]["usage_cost_micro_usd"] == 501234


def test_each_step_alone_is_exact(store: TaskStore, queries: TaskQueries) -> None:
    """The same, checked after every single write (a transition that forgot its
    rollups shows up at its own step)."""
    task_id = new_task(store)
    assert_exact(store, queries)
    for step in (lambda: store.claim(task_id, 30, 5),
                 lambda: store.fail(task_id, 1, error_code=ErrorCode.DOWNLOAD_FAILED,
                                    message="x", timings={"downloading": 1500}),
                 lambda: store.reset_failed(task_id),
                 lambda: store.claim(task_id, 30, 5),
                 lambda: store.complete(task_id, 1, result=result(["a", "b"]),
                                        timings={"tagging": 800}, video={})):
        assert step()
        assert_exact(store, queries)


def test_a_batch_written_and_discarded(store: TaskStore, queries: TaskQueries) -> None:
    batches = BatchStore(store.engine)
    batches.begin("b1", name="n", total=3, callback_url=None, idempotency_key=None,
                  request_sha256="x")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    batches.add_chunk("b1", [pending_row(i, dict(FIELDS), utcnow()) for i in ids],
                      [{"item_index": n, "task_id": i} for n, i in enumerate(ids)])
    assert queries.status_counts() == {"pending": 3}
    assert_exact(store, queries)
    batches.discard("b1")
    assert queries.status_counts() == {}
    assert_exact(store, queries)


def test_the_recount_repairs_rows_changed_behind_the_stores_back(store: TaskStore,
                                                                  queries: TaskQueries) -> None:
    done = new_task(store)
    store.claim(done, 30, 5)
    store.complete(done, 1, result=result(["x"]), timings={"tagging": 10}, video={})
    other = new_task(store)
    with store.engine.begin() as conn:  # a hand-made fix and a row from an old version
        conn.execute(sa.update(t).where(t.c.task_id == other).values(
            status="failed", processed_end=utcnow(), timings={"downloading": 5}))
        conn.execute(sa.insert(t), {**pending_row(str(uuid.uuid4()), dict(FIELDS), utcnow()),
                                    "status": "completed", "processed_end": utcnow(),
                                    "tags": result(["y"]), "timings": {"tagging": 20},
                                    **rollups.usage_values(result(["y"]))})
    assert drift(store.engine).size() > 0
    assert queries.status_counts() == {"completed": 1, "pending": 1}
    outcome = store.recount_rollups()
    assert outcome["repaired"] > 0 and outcome["full"] == 1  # after the migration: in full
    assert_exact(store, queries)
    assert queries.status_counts() == {"completed": 2, "failed": 1}
    assert store.recount_rollups(900) is None  # done a moment ago
    assert store.recount_rollups()["repaired"] == 0


def test_the_recount_runs_once_per_interval(store: TaskStore) -> None:
    """In full after the migration, then every `every_s`; in full again once a day or
    when asked."""
    assert store.recount_rollups(900)["full"] == 1
    assert store.recount_rollups(900) is None
    assert store.recount_rollups(0)["full"] == 0
    with store.engine.begin() as conn:
        rollups.mark_stale(conn)
    assert store.recount_rollups(900)["full"] == 1
    with store.engine.begin() as conn:
        conn.execute(sa.update(rollup_runs).where(rollup_runs.c.name == rollups.REBUILD)
                     .values(done_at=utcnow() - timedelta(days=1, seconds=1)))
    assert store.recount_rollups(900)["full"] == 1
    assert store.recount_rollups(0)["full"] == 0


def test_shares_older_than_the_windows_are_not_kept(store: TaskStore,
                                                    queries: TaskQueries) -> None:
    """A week-old failure retried: nothing to take out of a pruned minute (no negative
    row); rollup rows past their window are pruned."""
    task_id = new_task(store)
    old = utcnow() - timedelta(days=7)
    with store.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.task_id == task_id).values(
            status="failed", processed_end=old, timings={"downloading": 5}))
        conn.execute(sa.insert(task_minutes).values(
            minute=floor_to(old, 60), status="failed", tasks=1,
            **{name: 0 for name in rollups.USAGE_COLUMNS}))
        conn.execute(sa.insert(tag_hours).values(hour=floor_to(old, 3600), tag="z", tasks=1))
    store.recount_rollups()
    assert store.reset_failed(task_id)
    with store.engine.connect() as conn:
        for table in (task_minutes, stage_rollups, tag_hours):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    assert_exact(store, queries)


def test_changes_committed_during_a_recount_are_kept(mysql_db_url: str) -> None:
    """Workers keep changing tasks while the rollups drift and are recounted over and
    over: at the end the rollups equal the rows (nothing lost, nothing counted twice)."""
    engine = create_db_engine(load_settings(DATABASE_URL=mysql_db_url))
    migrate(engine)
    store, queries = TaskStore(engine), TaskQueries(engine)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while not stop.is_set():
                task_id = new_task(store)
                store.claim(task_id, 30, 5)
                store.complete(task_id, 1, result=result(["w"]), timings={"t": 3}, video={})
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(15):
            with engine.begin() as conn:  # drift: a row inserted behind the store's back
                conn.execute(sa.insert(t), pending_row(str(uuid.uuid4()), dict(FIELDS), utcnow()))
            store.recount_rollups()
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert not errors, errors
    store.recount_rollups()  # the last drift, inserted after the last recount's snapshot
    assert_exact(store, queries)
    assert queries.status_counts()["pending"] == 15
    engine.dispose()


def test_the_charts_read_each_minute_in_its_slot(store: TaskStore, queries: TaskQueries) -> None:
    """Finished tasks land in the slot of their minute, oldest first (one string per
    status from the database, on both)."""
    now = utcnow()
    start = floor_to(now, 60) - timedelta(minutes=1439)
    for minutes_ago, status in ((0, "completed"), (0, "completed"), (1, "failed"),
                                (1439, "completed"), (1440, "completed")):
        task_id = new_task(store)
        store.claim(task_id, 30, 5)
        if status == "completed":
            store.complete(task_id, 1, result=result(["t"]), timings={}, video={})
        else:
            store.fail(task_id, 1, error_code=ErrorCode.DOWNLOAD_FAILED, message="x")
        with store.engine.begin() as conn:  # moved back in time, rollups rebuilt after
            conn.execute(sa.update(t).where(t.c.task_id == task_id).values(
                processed_end=now - timedelta(minutes=minutes_ago)))
    store.recount_rollups()
    series = queries.chart_figures(start, 1440, now, 20)["per_minute"]
    assert series["completed"][-1] == 2 and series["completed"][0] == 1
    assert series["failed"][-2] == 1 and sum(series["failed"]) == 1
    assert sum(series["completed"]) == 3  # the one 1,440 minutes ago is outside
