"""For users of the original service: dashed task ids, ids in either form and any case,
tasks created before the change, `env` values from settings."""

from __future__ import annotations

import uuid

import functions_framework
import pytest
import sqlalchemy as sa

from shared.services import get_services
from shared.tasks.schema import video_tasks
from shared.tasks.store import utcnow

VALID = {"url": "https://cdn.example.com/video.mp4", "platform": "rpa"}


@pytest.fixture
def client(app_env):
    return functions_framework.create_app("api", "main.py").test_client()


def test_new_ids_are_canonical_dashed_uuids(client) -> None:
    task_id = client.post("/api/v1/task/create", json=VALID).get_json()["task_id"]
    assert str(uuid.UUID(task_id)) == task_id


def test_every_form_of_an_id_answers_the_same_task(client) -> None:
    task_id = client.post("/api/v1/task/create", json=VALID).get_json()["task_id"]
    value = uuid.UUID(task_id)
    for form in (task_id, value.hex, task_id.upper(), value.hex.upper()):
        for route in (f"/api/v1/task/{form}", f"/api/v1/task/get/{form}"):
            body = client.get(route).get_json()
            assert body["code"] == 200 and body["data"]["task_id"] == task_id, route


def test_tasks_created_before_the_change_keep_their_hex_id(client) -> None:
    """No migration rewrites ids: lookups try both forms; the queue, Redis keys, storage
    and search keep using the id as it was stored."""
    old_id = uuid.uuid4().hex
    now = utcnow()
    with get_services().store.engine.begin() as conn:
        conn.execute(sa.insert(video_tasks).values(
            task_id=old_id, url=VALID["url"], platform="rpa", env="develop",
            dimensions=["vision"], language="zh", status="failed", attempts=5,
            error_code="attempts_exhausted", created_at=now, updated_at=now))
    dashed = str(uuid.UUID(old_id))
    assert client.get(f"/api/v1/task/{dashed}").get_json()["data"]["task_id"] == old_id
    retried = client.post(f"/api/v1/task/{dashed.upper()}/retry").get_json()
    assert retried["code"] == 200 and retried["task_id"] == old_id
    assert get_services().queue.is_live(old_id, "") is True  # queued under the stored form


def test_unknown_well_formed_ids_are_404_and_malformed_ones_400(client) -> None:
    for unknown in (str(uuid.uuid4()), uuid.uuid4().hex, str(uuid.uuid4()).upper()):
        assert client.get(f"/api/v1/task/{unknown}").status_code == 404
        assert client.post(f"/api/v1/task/{unknown}/retry").status_code == 404
    for bad in ("550e8400-e29b-41d4-a716", "g" * 32, "550e8400e29b41d4a716446655440000aa",
                "x" * 5000, "..%2F..%2Fetc%2Fpasswd", "..", "{550e8400-e29b-41d4-a716-"
                "446655440000}", "550e8400-e29b41d4-a716-446655440000"):
        for route in (f"/api/v1/task/{bad}", f"/api/v1/task/get/{bad}"):
            body = client.get(route).get_json()
            assert body["code"] == 400 and body["message"].startswith("task_id: malformed"), (
                route[:60], body)
        assert client.post(f"/api/v1/task/{bad}/retry").status_code == 400


def test_env_values_come_from_settings(app_env) -> None:
    app_env(ENVS="staging,prod")
    client = functions_framework.create_app("api", "main.py").test_client()
    default = client.post("/api/v1/task/create", json=VALID).get_json()
    assert default["code"] == 200
    assert client.get(f"/api/v1/task/{default['task_id']}").get_json()["data"]["env"] == "staging"
    chosen = client.post("/api/v1/task/create", json={**VALID, "env": "prod"}).get_json()
    assert chosen["code"] == 200
    count = sum(get_services().queries.count_by_status().values())
    for bad in ("develop", "", "x" * 500, 7):
        body = client.post("/api/v1/task/create", json={**VALID, "env": bad}).get_json()
        assert body["code"] == 400 and body["message"].startswith("env: "), body
    assert "allowed: staging, prod" in client.post(
        "/api/v1/task/create", json={**VALID, "env": "develop"}).get_json()["message"]
    assert sum(get_services().queries.count_by_status().values()) == count


@pytest.mark.parametrize("value", ["", "Prod", "a b", "x" * 17, "-lead"])
def test_bad_envs_setting_stops_start_up(value: str) -> None:
    from shared.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(ENVS=value)
    assert "ENVS" in str(caught.value)
