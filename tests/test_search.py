"""Search: TagIndex with the real elasticsearch client against osmem-server, indexing
after completion, the search API, the reaper's retries and scripts/reindex.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import functions_framework
import pytest

from scripts.stack import ROOT
from shared.app.tasks import create_task
from shared.pipeline.reaper import retry_indexing
from shared.pipeline.runner import handle_delivery
from shared.search.client import PlainJsonNode, build_search_client
from shared.search.index import TagIndex
from shared.search.query import SearchQuery
from shared.services import Services, get_services
from shared.tasks.models import CreateTaskRequest
from tests.media import caption_clip


def completed_task(services: Services, url: str, env: str = "develop", **fields):
    request = CreateTaskRequest.model_validate(
        {"url": url, "platform": "rpa", "env": env, **fields}, context={"platforms": ["rpa"]})
    task_id = create_task(services, request)[0].task_id
    handle_delivery(task_id, services.worker)
    return services.store.get(task_id)


@pytest.fixture
def indexed(sqlite_services: Services, search_server: str) -> Services:
    prefix = f"vtt-{uuid.uuid4().hex[:8]}"
    sqlite_services.settings.ES_URL = search_server
    client = build_search_client(search_server, compat_headers=False)
    sqlite_services.index = TagIndex(client, prefix)
    return sqlite_services


def test_plain_json_node_is_needed_for_opensearch_servers(search_server: str) -> None:
    from elasticsearch import ApiError

    assert build_search_client(search_server, compat_headers=False).transport.node_pool.get() \
        .__class__ is PlainJsonNode
    with pytest.raises(ApiError) as caught:
        build_search_client(search_server, compat_headers=True).index(index="x", document={"a": 1})
    assert caught.value.status_code in (400, 406)


def test_completed_tasks_are_indexed_and_found(indexed: Services, media_server) -> None:
    clip = completed_task(indexed, media_server.url("files/clip.mp4"), uid="u1")
    portrait = completed_task(indexed, media_server.url("files/portrait.mp4"),
                              env="production")
    assert clip.indexed_at is not None and clip.index_error is None
    indexed.index.refresh()
    index = indexed.index
    both = index.search(SearchQuery(tags=["有声"]))
    assert [h.task_id for h in both.hits] == [clip.task_id]
    assert index.search(SearchQuery(tags=["竖屏", "无声"])).hits[0].task_id == portrait.task_id
    assert index.search(SearchQuery(tags=["竖屏", "有声"])).total == 0
    anyof = index.search(SearchQuery(any_tags=["有声", "无声"]))
    assert {h.task_id for h in anyof.hits} == {clip.task_id, portrait.task_id}
    assert anyof.facets["短视频(≤15秒)"] == 2
    assert index.search(SearchQuery(env="production")).total == 1
    assert index.search(SearchQuery(uid="u1")).hits[0].url.endswith("clip.mp4")
    assert index.search(SearchQuery(q="横屏")).hits[0].task_id == clip.task_id
    assert index.search(SearchQuery(min_duration=1, max_duration=3)).total == 2
    assert index.search(SearchQuery(max_duration=1)).total == 0
    first = index.search(SearchQuery(limit=1))
    second = index.search(SearchQuery(limit=1, cursor=first.next_cursor))
    assert first.hits[0].task_id == portrait.task_id and second.hits[0].task_id == clip.task_id


def test_english_words_read_on_screen_are_found(indexed: Services, media_server,
                                                 media_dir) -> None:
    """Issue 33: `50%OFF-BUYNOW-FREESHIPPING` was one token, so `shipping` found nothing."""
    caption_clip(media_dir / "promo-en.mp4", [
        {"text": "50% OFF - BUY NOW - FREE SHIPPING", "size": 32, "start": 0, "end": 2}],
        seconds=2)
    task = completed_task(indexed, media_server.url("files/promo-en.mp4"), language="en")
    indexed.index.refresh()
    for words in ("shipping", "buy now", "free shipping"):
        assert [h.task_id for h in indexed.index.search(SearchQuery(q=words)).hits] == [
            task.task_id], words


@pytest.mark.parametrize(("text", "matches"), [
    ("tags:x AND", 0), ("x*", 0),
    ('"横屏"', 1), ("(横屏", 1), ("横屏 OR 竖屏", 0), ("横屏\\", 1),
])
def test_query_syntax_characters_are_plain_text(indexed: Services, media_server, text,
                                                matches) -> None:
    """No wildcard, grouping, field or boolean syntax: `x*` matches nothing, and
    `横屏 OR 竖屏` needs all three words (there is no 竖屏 or "OR" in the tags)."""
    completed_task(indexed, media_server.url("files/clip.mp4"))
    indexed.index.refresh()
    assert indexed.index.search(SearchQuery(q=text)).total == matches


@pytest.mark.parametrize("text", ["*", "(", "\\", '"', "[]{}~^", "。！"])
def test_a_query_of_only_punctuation_is_refused(text: str) -> None:
    """Issue 38: nothing to search for is a 400, not an empty answer."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="has no letters or digits"):
        SearchQuery(q=text)


def test_search_down_never_fails_the_task_and_is_retried(indexed: Services, media_server,
                                                         search_server: str) -> None:
    working = indexed.index
    indexed.index = TagIndex(build_search_client("http://127.0.0.1:1", compat_headers=False),
                             working.prefix)
    task = completed_task(indexed, media_server.url("files/clip.mp4"))
    assert task.status == "completed" and task.indexed_at is None
    assert "Unavailable" in task.index_error
    assert retry_indexing(indexed.followups, indexed.index) == 0  # still down
    indexed.index = working
    assert retry_indexing(indexed.followups, working) == 0  # too recent: the worker may be on it
    import sqlalchemy as sa

    from shared.tasks.schema import video_tasks

    with indexed.store.engine.begin() as conn:
        conn.execute(sa.update(video_tasks).values(updated_at=sa.func.datetime("now", "-1 day")))
    assert retry_indexing(indexed.followups, working) == 1
    working.refresh()
    assert working.search(SearchQuery(tags=["有声"])).total == 1
    assert indexed.store.get(task.task_id).indexed_at is not None


@pytest.fixture
def search_client(app_env, search_server):
    app_env(ES_URL=search_server, ES_COMPAT_HEADERS="false",
            ES_INDEX_PREFIX=f"vtt-{uuid.uuid4().hex[:8]}")
    return functions_framework.create_app("api", "main.py").test_client()


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=1000", "limit"), ("limit=x", "limit"),
    ("env=staging", "env"), ("cursor=%%%", "cursor"), ("cursor=WzEsMl0", "cursor"),
    ("min_duration=-1", "min_duration"), ("colour=red", "colour"),
])
def test_bad_search_queries(search_client, query: str, field: str) -> None:
    response = search_client.get(f"/api/v1/search?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["message"].startswith(field)


def test_search_api_end_to_end(search_client, media_server) -> None:
    services = get_services()
    task = completed_task(services, media_server.url("files/clip.mp4"))
    services.index.refresh()
    body = search_client.get("/api/v1/search?tags=横屏,有声&q=720p").get_json()
    assert body["code"] == 200 and body["data"]["total"] == 0  # 320x240 is SD, not 720p
    body = search_client.get("/api/v1/search?tags=横屏,有声").get_json()["data"]
    assert body["hits"][0]["task_id"] == task.task_id and body["facets"]["横屏"] == 1
    assert body["hits"][0]["summary"]


def test_no_es_url_is_501_and_the_api_stays_up(app_env) -> None:
    """Not configured is 501 (retrying cannot help); configured but down stays 503."""
    client = functions_framework.create_app("api", "main.py").test_client()
    response = client.get("/api/v1/search?tags=a")
    assert response.status_code == 501 and "ES_URL" in response.get_json()["message"]
    assert client.get("/healthz").status_code == 200
    app_env(ES_URL="http://127.0.0.1:1", ES_COMPAT_HEADERS="false")
    down = functions_framework.create_app("api", "main.py").test_client()
    assert down.get("/api/v1/search?tags=a").status_code == 503


def test_reindex_script_rebuilds_from_the_store(indexed: Services, media_server, tmp_path):
    for _ in range(3):
        completed_task(indexed, media_server.url("files/clip.mp4"))
    fresh_prefix = f"vtt-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": indexed.settings.DATABASE_URL,
           "REDIS_URL": indexed.settings.REDIS_URL, "ES_URL": indexed.settings.ES_URL,
           "ES_COMPAT_HEADERS": "false", "ES_INDEX_PREFIX": fresh_prefix}
    run = subprocess.run([sys.executable, "scripts/reindex.py", "--env", "develop",
                          "--batch", "2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "indexed 2/3" in run.stdout and "done: 3 of 3" in run.stdout
    rebuilt = TagIndex(build_search_client(indexed.settings.ES_URL, compat_headers=False),
                       fresh_prefix)
    assert rebuilt.search(SearchQuery(tags=["横屏"])).total == 3
    bad = subprocess.run([sys.executable, "scripts/reindex.py", "--since", "last week"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "is not a date" in bad.stderr
