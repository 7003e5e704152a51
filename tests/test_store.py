"""TaskStore on SQLite and MariaDB: same code, same tests."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shared.config import load_settings
from shared.cursor import InvalidCursor
from shared.tasks.db import create_db_engine, migrate, utcnow
from shared.tasks.queries import TaskQueries
from shared.tasks.store import DuplicateIdempotencyKey, TaskStore


@pytest.fixture
def store(db_url: str) -> TaskStore:
    engine = create_db_engine(load_settings(DATABASE_URL=db_url))
    migrate(engine)
    yield TaskStore(engine)
    engine.dispose()


@pytest.fixture
def queries(store: TaskStore) -> TaskQueries:
    return TaskQueries(store.engine)


RESULT = {
    "tags": [], "dimensions": {}, "language": "zh", "provider": "local", "model": "m",
    "technical": {"duration_s": 1.0, "has_audio": False, "container": "mp4"},
}


def new_task(store: TaskStore, **fields) -> str:
    task_id = uuid.uuid4().hex
    values = {"url": "http://example.com/v.mp4", "platform": "rpa", "env": "develop",
              "dimensions": ["vision"], "language": "zh", **fields}
    store.insert(task_id, values)
    return task_id


def test_migrations_are_idempotent_and_create_the_table(store: TaskStore) -> None:
    migrate(store.engine)  # second run: nothing to do
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("video_tasks")}
    assert {"task_id", "tags", "timings", "lease_until", "idempotency_key",
            "video_sha256", "callback_url"} <= columns
    indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("video_tasks")}
    assert {"ix_video_tasks_status_created_at", "ix_video_tasks_uid"} <= indexes


def test_insert_and_get_round_trip_with_unicode(store: TaskStore) -> None:
    task_id = new_task(store, uid="用户😀", url="http://example.com/视频.mp4")
    task = store.get(task_id)
    assert task.status == "pending" and task.attempts == 0
    assert task.uid == "用户😀" and task.url.endswith("视频.mp4")
    assert task.dimensions == ["vision"]
    assert store.get(uuid.uuid4().hex) is None


def test_duplicate_idempotency_key_is_refused(store: TaskStore) -> None:
    new_task(store, idempotency_key="k1")
    with pytest.raises(DuplicateIdempotencyKey):
        new_task(store, idempotency_key="k1")
    assert store.get_by_idempotency_key("k1") is not None


def test_list_filters_and_cursor_pagination(store: TaskStore, queries: TaskQueries) -> None:
    ids = [new_task(store, platform="rpa" if i % 2 else "miaobi", uid=str(i % 3))
           for i in range(7)]
    page, cursor = queries.list(limit=3)
    assert [t.task_id for t in page] == ids[::-1][:3]
    seen = [t.task_id for t in page]
    while cursor:
        page, cursor = queries.list(limit=3, cursor=cursor)
        seen += [t.task_id for t in page]
    assert seen == ids[::-1]
    rpa, _ = queries.list(platform="rpa", limit=100)
    assert {t.task_id for t in rpa} == {ids[i] for i in range(7) if i % 2}
    uid0, _ = queries.list(uid="0", limit=100)
    assert {t.task_id for t in uid0} == {ids[0], ids[3], ids[6]}
    assert queries.list(status="failed")[0] == []


@pytest.mark.parametrize("cursor", ["x", "!!!", "djE6YWJj", "djI6MTA"])
def test_malformed_cursor_is_refused(queries: TaskQueries, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        queries.list(cursor=cursor)


def test_claim_is_exclusive_under_concurrency(store: TaskStore) -> None:
    task_id = new_task(store)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        outcomes.append(store.claim(task_id, lease_s=60, max_attempts=5).outcome)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("claimed") == 1
    assert set(outcomes) == {"claimed", "leased"}
    assert store.get(task_id).attempts == 1


def test_completed_task_is_never_claimed_again(store: TaskStore) -> None:
    task_id = new_task(store)
    claim = store.claim(task_id, 60, 5)
    assert store.complete(task_id, claim.task.attempts, result=RESULT, timings={"x": 1},
                          video={"size_bytes": 1})
    assert store.claim(task_id, 60, 5).outcome == "completed"


def test_expired_lease_is_taken_over_and_old_owner_is_fenced(store: TaskStore) -> None:
    task_id = new_task(store)
    first = store.claim(task_id, lease_s=-1, max_attempts=5)  # lease already expired
    second = store.claim(task_id, lease_s=60, max_attempts=5)
    assert second.outcome == "claimed" and second.task.attempts == 2
    assert not store.complete(task_id, first.task.attempts, result=RESULT, timings={}, video={})
    assert store.complete(task_id, 2, result=RESULT, timings={}, video={})


def test_attempts_limit_blocks_claims(store: TaskStore) -> None:
    task_id = new_task(store)
    for attempt in (1, 2):
        assert store.claim(task_id, 60, 2).outcome == "claimed"
        store.release(task_id, attempt, error_code="x", message="transient")
    assert store.claim(task_id, 60, 2).outcome == "exhausted"


def test_reap_requeues_or_fails_expired_tasks(store: TaskStore, queries: TaskQueries) -> None:
    keep = new_task(store)
    done = new_task(store)
    store.claim(keep, -1, 5)
    store.claim(done, -1, 1)
    expired = {t.task_id: t for t in queries.expired_leases(utcnow() + timedelta(seconds=1))}
    assert set(expired) == {keep, done}
    assert store.reap(expired[keep], max_attempts=5, message="lost") == "requeued"
    assert store.reap(expired[done], max_attempts=1, message="lost") == "failed"
    assert store.get(keep).status == "pending"
    assert store.get(done).error_code == "attempts_exhausted"
    assert store.reap(expired[keep], max_attempts=5, message="lost") == "skipped"


def test_reset_failed_only_touches_failed_tasks(store: TaskStore) -> None:
    task_id = new_task(store)
    assert not store.reset_failed(task_id)
    store.claim(task_id, 60, 5)
    store.fail(task_id, 1, error_code="video_unreadable", message="bad")
    failed = store.get(task_id)
    assert store.reset_failed(task_id)
    task = store.get(task_id)
    assert (task.status, task.attempts) == ("pending", 0)
    assert (task.error_code, task.message) == (None, None)
    store.restore_failed(failed)  # the re-queue could not be written
    task = store.get(task_id)
    assert (task.status, task.attempts, task.error_code, task.message) == (
        "failed", 1, "video_unreadable", "bad")
