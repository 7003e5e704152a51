"""Teams own their records (issue 36, part 2): a task, a batch, an export row, a search hit,
subtitles, frames and a cached result belong to the team whose key created them; another
team gets 404 for their ids (as for an unknown id) and never sees them in a list; an admin
key sees every team's, each with its `team`."""

from __future__ import annotations

import uuid

import functions_framework
import pytest

from shared.pipeline.runner import handle_delivery
from shared.search.index import document
from shared.search.query import SearchQuery
from shared.services import get_services
from shared.teams.keys import KeyStore, parse_scopes
from tests.test_teams import PEPPER, bearer


@pytest.fixture
def api(app_env, redis_client):
    app_env(API_KEY_PEPPER=PEPPER, API_TOKENS="the-admin-token")
    return functions_framework.create_app("api", "main.py").test_client()


@pytest.fixture
def keys(api, redis_client) -> dict[str, dict[str, str]]:
    """Headers of news' and sport's keys (submit + read), and of the admin token."""
    store = KeyStore(redis_client, PEPPER)
    return {"news": bearer(store.create("news", parse_scopes("submit,read"))),
            "sport": bearer(store.create("sport", parse_scopes("submit,read"))),
            "admin": bearer("the-admin-token")}


def run(task_id: str) -> None:
    """The worker takes the task (what Cloud Tasks or the local queue would deliver)."""
    services = get_services()
    handle_delivery(task_id, services.worker)


def created(api, headers: dict[str, str], url: str, **extra) -> str:
    answer = api.post("/api/v1/task/create", json={"url": url, "platform": "rpa", **extra},
                      headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["task_id"]


def test_another_teams_task_is_not_found_anywhere(api, keys, media_server) -> None:
    url = media_server.url("files/clip.mp4")
    news = created(api, keys["news"], url, dimensions=["vision", "audio"])
    run(news)
    mine = api.get(f"/api/v1/task/{news}", headers=keys["news"]).get_json()
    assert mine["data"]["status"] == "completed" and mine["data"]["team"] == "news"
    unknown = api.get(f"/api/v1/task/{uuid.uuid4()}", headers=keys["sport"]).get_json()
    for path in (f"/api/v1/task/{news}", f"/api/v1/task/get/{news}",
                 f"/api/v1/task/{news}/subtitles.vtt", f"/api/v1/task/{news}/frames/0"):
        refused = api.get(path, headers=keys["sport"])
        assert refused.status_code == 404, path
        assert refused.get_json()["message"].split(" ")[:3] == \
            unknown["message"].split(" ")[:3]  # said as of an unknown id
    assert api.post(f"/api/v1/task/{news}/retry", headers=keys["sport"]).status_code == 404
    assert api.get(f"/api/v1/task/{news}/frames/0", headers=keys["news"]).status_code == 200

    listed = api.get("/api/v1/tasks", headers=keys["sport"]).get_json()["data"]["tasks"]
    assert listed == []
    exported = api.get("/api/v1/tasks/export?format=jsonl", headers=keys["sport"])
    assert exported.status_code == 200 and news not in exported.get_data(as_text=True)
    assert news in api.get("/api/v1/tasks/export?format=jsonl",
                           headers=keys["news"]).get_data(as_text=True)
    seen_by_admin = api.get("/api/v1/tasks", headers=keys["admin"]).get_json()["data"]["tasks"]
    assert [(t["task_id"], t["team"]) for t in seen_by_admin] == [(news, "news")]


def test_another_teams_batch_is_not_found(api, keys, media_server) -> None:
    body = {"name": "news of the day", "items": [
        {"url": media_server.url("files/clip.mp4"), "platform": "rpa"}]}
    answer = api.post("/api/v1/batches", json=body, headers=keys["news"]).get_json()
    batch_id = answer["data"]["batch"]["batch_id"]
    assert answer["data"]["batch"]["team"] == "news"
    for path in (f"/api/v1/batches/{batch_id}", f"/api/v1/batches/{batch_id}/results"):
        assert api.get(path, headers=keys["sport"]).status_code == 404, path
        assert api.get(path, headers=keys["news"]).status_code == 200, path
    assert api.get("/api/v1/batches", headers=keys["sport"]).get_json()["data"]["batches"] == []
    task_id = answer["data"]["items"][0]["task_id"]
    assert api.get(f"/api/v1/task/{task_id}", headers=keys["news"]).get_json()["data"][
        "team"] == "news"  # the batch's tasks are the team's too
    admin = api.get("/api/v1/batches", headers=keys["admin"]).get_json()["data"]["batches"]
    assert [b["team"] for b in admin] == ["news"]


def test_an_idempotency_key_never_answers_another_teams_task(api, keys) -> None:
    body = {"url": "https://cdn.example.com/v.mp4", "platform": "rpa"}
    first = api.post("/api/v1/task/create", json=body,
                     headers={**keys["news"], "Idempotency-Key": "k-1"})
    assert first.status_code == 200
    other = api.post("/api/v1/task/create", json=body,
                     headers={**keys["sport"], "Idempotency-Key": "k-1"})
    assert other.status_code == 409 and first.get_json()["task_id"] not in other.get_data(
        as_text=True)
    again = api.post("/api/v1/task/create", json=body,
                     headers={**keys["news"], "Idempotency-Key": "k-1"})
    assert again.get_json()["task_id"] == first.get_json()["task_id"]


@pytest.mark.parametrize("shared", [False, True])
def test_the_result_cache_stays_within_a_team_unless_shared(api, app_env, keys, media_server,
                                                            shared: bool) -> None:
    app_env(SHARE_RESULT_CACHE=str(shared).lower())
    url = media_server.url("files/clip.mp4")
    news = created(api, keys["news"], url)
    run(news)
    again = created(api, keys["news"], url)
    sport = created(api, keys["sport"], url)
    run(again)
    run(sport)
    result = {task_id: api.get(f"/api/v1/task/{task_id}", headers=keys["admin"]).get_json()[
        "data"]["result"] for task_id in (news, again, sport)}
    assert not result[news]["cached"] and result[again]["cached"]
    assert result[sport]["cached"] is shared  # only the result is reused, never the task
    assert api.get(f"/api/v1/task/{news}", headers=keys["sport"]).status_code == 404


def test_search_finds_only_the_teams_own(api, app_env, keys, media_server,
                                         search_server) -> None:
    app_env(ES_URL=search_server, ES_COMPAT_HEADERS="false",
            ES_INDEX_PREFIX=f"vtt-{uuid.uuid4().hex[:8]}")
    url = media_server.url("files/clip.mp4")
    by_team = {team: created(api, keys[team], url) for team in ("news", "sport")}
    for task_id in by_team.values():
        run(task_id)
    services = get_services()
    legacy = services.store.get(by_team["news"]).model_copy(
        update={"task_id": str(uuid.uuid4()), "team": "default"})
    old = document(legacy)  # a document written before teams has no `team`
    del old["team"]
    services.index.client.index(index=services.index.index_name(legacy.env),
                                id=legacy.task_id, document=old)
    services.index.refresh()
    for team, task_id in by_team.items():
        hits = api.get("/api/v1/search", headers=keys[team]).get_json()["data"]["hits"]
        assert [hit["task_id"] for hit in hits] == [task_id], team
        moments = api.get("/api/v1/search?kind=moments&q=video", headers=keys[team])
        assert moments.status_code == 200
        assert {m["task_id"] for m in moments.get_json()["data"]["moments"]} <= {task_id}
    everything = api.get("/api/v1/search", headers=keys["admin"]).get_json()["data"]
    assert everything["total"] == 3
    default_team = services.index.search(SearchQuery(), "default")
    assert [hit.task_id for hit in default_team.hits] == [legacy.task_id]
