"""The team usage ledger (issue 36) on SQLite and MariaDB: each completion adds its usage
to its team's UTC day in the same transaction, interactive and Batch mode alike."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from shared.tasks.gemini_jobs import GeminiJobStore
from shared.tasks.queries import TaskQueries
from shared.tasks.schema import team_days
from shared.tasks.store import TaskStore
from tests.test_rollups import FIELDS, result, store  # noqa: F401 - fixture


def new_task(tasks: TaskStore, team: str) -> str:
    task_id = str(uuid.uuid4())
    tasks.insert(task_id, {**FIELDS, "team": team})
    return task_id


def test_completions_add_to_their_teams_day(store: TaskStore) -> None:  # noqa: F811
    a, b, c = new_task(store, "news"), new_task(store, "news"), new_task(store, "sport")
    for task_id in (a, c):
        assert store.claim(task_id, 30, 5).outcome == "claimed"
        assert store.complete(task_id, 1, result=result(["x"], cost=0.25, tokens=1000),
                              timings={}, video={})
    assert store.claim(b, 30, 5).outcome == "claimed"
    assert store.wait_batch(b, 1, token="tok", key_id="k", model="m", timings={}, video={})
    assert GeminiJobStore(store.engine).finish_task(b, "tok", result=result(["y"], cost=0.5),
                                                    timings={})
    assert not GeminiJobStore(store.engine).finish_task(b, "tok", result=result(["y"]),
                                                        timings={})  # once
    news = TaskQueries(store.engine).team_days("news", 1)[-1]
    assert (news["tasks"], news["prompt_tokens"], news["cost_usd"]) == (2, 2000, 0.75)
    store.delete(a)
    with store.engine.connect() as conn:
        rows = {row.team: row.tasks for row in conn.execute(sa.select(team_days))}
    assert rows == {"news": 2, "sport": 1}
