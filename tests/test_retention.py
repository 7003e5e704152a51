"""Retention (issue 34, part 3): finished tasks past TASK_RETENTION_DAYS are archived to
`archive/YYYY/MM/DD.jsonl.gz` and deleted in chunks, with everything they left; the
rest stays; the rollups stay exact; a run killed between archive and delete archives
again (documented); retention of 0 or negative days is refused at start-up."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import timedelta
from pathlib import Path

import functions_framework
import pytest
import redis
import sqlalchemy as sa

from shared import redis_keys
from shared.app.retention import archive, archive_key, run_retention
from shared.config import ConfigError, load_settings
from shared.services import Services, get_services
from shared.storage import Storage, video_key
from shared.tasks.db import utcnow
from shared.tasks.removal import TaskRemoval
from shared.tasks.schema import video_tasks as t
from tests.test_delete import drift, redis_traces

FIELDS = {"url": "http://example.com/v.mp4", "platform": "rpa", "env": "develop",
          "dimensions": ["vision"], "language": "zh"}


def result(tags: list[str]) -> dict:
    return {"tags": tags, "dimensions": {}, "language": "zh", "provider": "local",
            "model": "m", "technical": {"duration_s": 1.0, "has_audio": False},
            "usage": {"requests": 1, "prompt_tokens": 10, "cost_usd": 0.001}}


def task(services: Services, status: str, age_days: float, tags=("猫",)) -> str:
    """A task in `status`, created `age_days` ago, with a stored video when finished."""
    store, task_id = services.store, str(uuid.uuid4())
    store.insert(task_id, dict(FIELDS))
    if status != "pending":
        store.claim(task_id, 60, 5)
    if status == "completed":
        store.complete(task_id, 1, result=result(list(tags)), timings={"tagging": 900},
                       video={})
    elif status == "failed":
        store.fail(task_id, 1, error_code="download_failed", message="404")
    created = utcnow() - timedelta(days=age_days)
    with store.engine.begin() as conn:  # created_at is no part of the rollups' share
        conn.execute(sa.update(t).where(t.c.task_id == task_id).values(created_at=created))
    if status in ("completed", "failed"):
        source = Path(services.settings.STORAGE_DIR).parent / "clip.bin"
        source.write_bytes(b"video")
        services.storage.put_file(video_key(created, task_id, "mp4"), source)
    return task_id


def existing(services: Services, task_ids: list[str]) -> set[str]:
    return {row["task_id"] for row in TaskRemoval(services.store.engine).purge_rows(task_ids)}


def archived(storage: Storage, key: str, tmp_path: Path) -> list[dict]:
    target = tmp_path / f"archive-{uuid.uuid4().hex}.gz"
    storage.get_file(key, target)
    with gzip.open(target, "rt") as handle:  # every member, one after the other
        return [json.loads(line) for line in handle]


def test_expired_finished_tasks_are_archived_and_deleted(services: Services, tmp_path: Path,
                                                         redis_client: redis.Redis) -> None:
    services.settings.TASK_RETENTION_DAYS = 30
    services.settings.RETENTION_CHUNK = 2  # several chunks
    old = [task(services, "completed", 40, ("猫", "狗")), task(services, "failed", 40),
           task(services, "completed", 40), task(services, "completed", 35)]
    kept = [task(services, "completed", 5), task(services, "pending", 60),
            task(services, "processing", 60)]
    report = run_retention(services)
    assert report["deleted"] == 4 and report["archived"] == 4 and report["chunks"] >= 2
    assert report["more"] is False
    assert existing(services, old) == set()
    assert existing(services, kept) == set(kept)
    assert all(f"/{task_id}/" not in obj.key for obj in services.storage.list("videos/")
               for task_id in old)
    assert not any(redis_traces(redis_client, task_id) for task_id in old)
    assert drift(services.store.engine).size() == 0  # the tags of the completed too
    day40 = (utcnow() - timedelta(days=40)).date()
    rows = archived(services.storage, archive_key(day40), tmp_path)
    assert sorted(row["task_id"] for row in rows) == sorted(old[:3])
    assert {row["status"] for row in rows} == {"completed", "failed"}
    first = next(row for row in rows if row["task_id"] == old[0])
    assert first["tags"]["tags"] == ["猫", "狗"] and first["created_at"].endswith("Z")
    oldest = TaskRemoval(services.store.engine).oldest_created_at()
    assert report["oldest_task_at"] == oldest.isoformat() + "Z"
    again = run_retention(services)  # nothing left to do; the archive is unchanged
    assert again["deleted"] == again["archived"] == 0
    assert len(archived(services.storage, archive_key(day40), tmp_path)) == 3


def test_a_run_killed_between_archive_and_delete(sqlite_services: Services,
                                                 tmp_path: Path) -> None:
    """Archive first, then delete: the re-run archives the rows again (readers keep one
    per task_id), never loses one."""
    services = sqlite_services
    services.settings.TASK_RETENTION_DAYS = 30
    old = [task(services, "completed", 31), task(services, "failed", 31)]
    rows = TaskRemoval(services.store.engine).expired("completed", utcnow() - timedelta(30))
    archive(services, rows)  # ... and the job was killed here
    assert run_retention(services)["deleted"] == 2
    lines = archived(services.storage, archive_key((utcnow() - timedelta(31)).date()),
                     tmp_path)
    assert len(lines) == 3
    assert {row["task_id"]: row for row in lines}.keys() == set(old)


def test_retention_off_deletes_nothing(sqlite_services: Services) -> None:
    old = task(sqlite_services, "completed", 4000)
    assert run_retention(sqlite_services) == {"enabled": False}
    sqlite_services.settings.TASK_RETENTION_DAYS = 30
    sqlite_services.settings.ARCHIVE_BEFORE_DELETE = False
    report = run_retention(sqlite_services)
    assert report["deleted"] == 1 and report["archived"] == 0
    assert existing(sqlite_services, [old]) == set()
    assert list(sqlite_services.storage.list("archive/")) == []


def test_one_run_at_a_time(sqlite_services: Services, redis_client: redis.Redis) -> None:
    sqlite_services.settings.TASK_RETENTION_DAYS = 1
    redis_client.set(redis_keys.RETENTION_LOCK, "someone", ex=60)
    assert "skipped" in run_retention(sqlite_services)
    redis_client.delete(redis_keys.RETENTION_LOCK)
    assert run_retention(sqlite_services)["deleted"] == 0


def test_a_run_out_of_time_says_there_is_more(sqlite_services: Services) -> None:
    sqlite_services.settings.TASK_RETENTION_DAYS = 1
    task(sqlite_services, "failed", 3)
    report = run_retention(sqlite_services, budget_s=0)
    assert report["more"] is True and report["deleted"] == 0
    assert run_retention(sqlite_services)["deleted"] == 1


def test_appending_to_an_archive(storage: Storage, tmp_path: Path) -> None:
    """Local folder and GCS (compose): members appended make one readable .gz."""
    key = "archive/2026/01/02.jsonl.gz"
    storage.append(key, gzip.compress(b'{"a":1}\n'))
    storage.append(key, gzip.compress(b'{"a":2}\n'))
    storage.append(key, gzip.compress(b'{"a":3}\n'))
    assert archived(storage, key, tmp_path) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert [obj.key for obj in storage.list("archive/")] == [key]  # no part left behind


@pytest.mark.parametrize("days", ["0", "-1", "-30", "soon"])
def test_a_retention_that_is_no_number_of_days_is_refused(days: str) -> None:
    with pytest.raises(ConfigError, match=f"TASK_RETENTION_DAYS='{days}'"):
        load_settings(TASK_RETENTION_DAYS=days)


def test_retention_is_off_unless_set() -> None:
    assert load_settings().TASK_RETENTION_DAYS is None
    assert load_settings(TASK_RETENTION_DAYS="").TASK_RETENTION_DAYS is None
    assert load_settings(TASK_RETENTION_DAYS="90").TASK_RETENTION_DAYS == 90


def test_the_cleanup_function_runs_it_and_the_stats_show_the_oldest(app_env) -> None:
    app_env(TASK_RETENTION_DAYS=30)
    services = get_services()
    old, kept = task(services, "completed", 45), task(services, "completed", 10)
    cleanup = functions_framework.create_app("cleanup", "main.py").test_client()
    dry = cleanup.get("/?scope=retention&dry_run=true").get_json()["data"]["retention"]
    assert dry == {"enabled": True, "skipped": "dry_run"}
    done = cleanup.get("/?scope=retention").get_json()["data"]["retention"]
    assert done["deleted"] == 1 and existing(services, [old]) == set()
    api = functions_framework.create_app("api", "main.py").test_client()
    retention = api.get("/api/v1/stats").get_json()["data"]["retention"]
    created = TaskRemoval(services.store.engine).purge_rows([kept])[0]["created_at"]
    assert retention == {"days": 30, "archive": True,
                         "oldest_task_at": created.isoformat() + "Z"}
    assert cleanup.get("/?scope=nothing").status_code == 400


@pytest.mark.parametrize("days", ["0", "-7"])
def test_the_job_refuses_to_start_with_no_days(tmp_path: Path, days: str) -> None:
    """Start-up stops with one line naming the setting: nothing is deleted."""
    import os
    import subprocess
    import sys

    from scripts.stack import ROOT

    env = {**os.environ, "TASK_RETENTION_DAYS": days, "STORAGE_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'tasks.db'}", "VAR_DIR": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "scripts/retention.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert f"TASK_RETENTION_DAYS='{days}'" in run.stderr
    assert not (tmp_path / "tasks.db").exists()


def test_retention_on_each_storage(sqlite_services: Services, storage: Storage,
                                   tmp_path: Path) -> None:
    """Local folder and GCS: the expired task's objects and archive; a kept task of the
    same day keeps its objects (the day is listed once, filtered by task)."""
    services = sqlite_services
    services.storage = storage
    services.settings.TASK_RETENTION_DAYS = 30
    old, kept = task(services, "completed", 40), task(services, "pending", 40)
    created = TaskRemoval(services.store.engine).purge_rows([kept])[0]["created_at"]
    source = tmp_path / "frame.jpg"
    source.write_bytes(b"jpeg")
    storage.put_file(video_key(created, kept, "mp4"), source)
    assert run_retention(services)["deleted"] == 1
    left = [obj.key for obj in storage.list("videos/")]
    assert left == [video_key(created, kept, "mp4")]
    rows = archived(storage, archive_key(created.date()), tmp_path)
    assert [row["task_id"] for row in rows] == [old]


def test_a_failing_retention_leaves_the_daily_run_its_other_parts(app_env) -> None:
    """The search cluster down: nothing is deleted (the rows wait for the next run), the
    reconciler and the video cleanup still answer."""
    from scripts.stack import free_port

    app_env(TASK_RETENTION_DAYS=30, ES_URL=f"http://127.0.0.1:{free_port()}")
    services = get_services()
    old = task(services, "completed", 45)
    cleanup = functions_framework.create_app("cleanup", "main.py").test_client()
    answer = cleanup.get("/")
    data = answer.get_json()["data"]
    assert answer.status_code == 200
    assert data["retention"] == {"enabled": True, "error": "ServiceUnavailable"}
    assert "stuck_tasks" in data and "videos" in data
    assert existing(services, [old]) == {old}
