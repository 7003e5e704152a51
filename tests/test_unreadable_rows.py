"""A stored row this version cannot read (issue 34) is the server's fault, never the
caller's: 500 for that task with its id in the log; a list still answers 200 and shows
the row as unreadable, never hides it; the reconciler goes on with the other rows."""

from __future__ import annotations

import logging
import uuid

import functions_framework
import pytest
import sqlalchemy as sa

from shared.services import get_services
from shared.tasks.db import utcnow
from shared.tasks.schema import video_tasks as t

FIELDS = {"url": "http://example.com/v.mp4", "platform": "rpa", "env": "develop",
          "dimensions": ["vision"], "language": "zh"}

DAMAGE = {
    "a timing with a fraction": ({"status": "failed", "timings": {"downloading": 12.5}},
                                 "timings.downloading"),
    "a completed row whose result lacks its fields": (
        {"status": "completed", "tags": {"tags": ["cat"]}}, "result.dimensions"),
    "a status this version does not know": ({"status": "archived"}, "status"),
}


def stored(values: dict) -> str:
    """A task written by the store, then changed behind its back."""
    store = get_services().store
    task_id = str(uuid.uuid4())
    store.insert(task_id, dict(FIELDS))
    with store.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.task_id == task_id).values(
            processed_end=utcnow(), **values))
    return task_id


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


@pytest.mark.parametrize("damage", DAMAGE)
def test_reading_an_unreadable_task_is_500_and_logged(client, damage: str, caplog) -> None:
    values, field = DAMAGE[damage]
    task_id = stored(values)
    with caplog.at_level(logging.ERROR, logger="vision_to_tag.api"):
        response = client.get(f"/api/v1/task/{task_id}")
    assert response.status_code == 500, response.get_json()
    assert task_id in response.get_json()["message"]
    logged = [r for r in caplog.records if getattr(r, "task_id", None) == task_id]
    assert logged and field in logged[0].getMessage()
    assert client.post(f"/api/v1/task/{task_id}/retry").status_code == 500


def test_a_list_shows_unreadable_rows_among_the_others(client, caplog) -> None:
    fine = stored({})
    broken = {stored(values): field for values, field in DAMAGE.values()}
    with caplog.at_level(logging.ERROR, logger="vision_to_tag.tasks"):
        response = client.get("/api/v1/tasks?limit=10")
    assert response.status_code == 200, response.get_json()
    tasks = {task["task_id"]: task for task in response.get_json()["data"]["tasks"]}
    assert set(tasks) == {fine, *broken}
    assert "unreadable" not in tasks[fine]
    for task_id, field in broken.items():
        shown = tasks[task_id]
        assert shown["unreadable"] is True and shown["problem"].startswith(field)
        assert shown["url"] == FIELDS["url"] and shown["created_at"].endswith("Z")
    assert {getattr(r, "task_id", None) for r in caplog.records} >= set(broken)
    assert client.get("/api/v1/tasks?status=failed").status_code == 200


def test_the_reconciler_goes_on_past_an_unreadable_row(app_env, caplog) -> None:
    services = get_services()
    lost = [stored({"status": "processing", "attempts": 1, "lease_until": utcnow()})
            for _ in range(2)]
    with services.store.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.task_id == lost[0]).values(
            timings={"downloading": 0.5}))
    with caplog.at_level(logging.ERROR, logger="vision_to_tag.tasks"):
        found = services.queries.expired_leases()
    assert [task.task_id for task in found] == [lost[1]]
    assert any(getattr(r, "task_id", None) == lost[0] for r in caplog.records)
