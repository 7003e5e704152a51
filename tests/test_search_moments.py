"""Search in words (issue 38): each task's summary, key moments, on-screen text and
transcript segments are passages with their times; `GET /api/v1/search?kind=moments&q=`
ranks them (BM25) and answers moments — against osmem-server through the real client."""

# ruff: noqa: F811 - fixtures come from test_search

from __future__ import annotations

import uuid

import pytest

from shared.app.tasks import task_fields
from shared.search.query import SearchQuery
from shared.services import Services, get_services
from shared.tagging.result import KeyMoment, Tag, TagResult, Technical, TranscriptSegment
from shared.tasks.models import CreateTaskRequest
from tests.test_search import indexed, search_client  # noqa: F401

SAID = [
    (0.1, 2.8, "A", "大家好，欢迎来到今天的节目", "Hello everyone, welcome to the show"),
    (3.1, 5.8, "B", "这款保温杯的续航和保温时间都很长", "This flask keeps drinks hot for long"),
    (6.1, 8.8, "A", "the battery lasts two full days on one charge", None),
]


def spoken_result(said=SAID, summary: str = "开箱评测一款保温杯") -> TagResult:
    return TagResult(
        tags=["保温杯", "开箱"], summary=summary,
        dimensions={"content": {"on_screen_text": [Tag(tag="限时优惠 全场五折", confidence=0.9,
                                                       read=True)]}},
        key_moments=[KeyMoment(start_s=4, end_s=6, description="展示杯盖单手打开")],
        technical=Technical(duration_s=9.0, has_audio=True, container="mp4"),
        language="zh", provider="gemini", model="m", spoken_language="zh",
        transcript=[TranscriptSegment(start_s=a, end_s=b, speaker=who, text=text,
                                      translation=translation)
                    for a, b, who, text, translation in said])


def stored_task(services: Services, result: TagResult, platform: str = "rpa",
                env: str = "develop"):
    request = CreateTaskRequest.model_validate(
        {"url": f"https://cdn.example.com/{uuid.uuid4().hex}.mp4", "platform": platform,
         "env": env}, context={"platforms": ["rpa", "miaobi"]})
    task_id = services.store.insert(str(uuid.uuid4()), task_fields(request)).task_id
    claim = services.store.claim(task_id, 30, 5)
    services.store.complete(task_id, claim.task.attempts, result=result.model_dump(mode="json"),
                            timings={}, video={"duration_s": 9.0})
    return services.store.get(task_id)


def moments(services: Services, q: str, **filters) -> list:
    return services.index.search(SearchQuery(kind="moments", q=q, **filters)).moments


def test_what_was_said_is_found_with_its_time(indexed: Services) -> None:
    task = stored_task(indexed, spoken_result())
    other = stored_task(indexed, spoken_result(said=[], summary="城市夜景延时摄影"),
                        platform="miaobi")
    indexed.index.index_task(task)
    indexed.index.index_task(other)
    indexed.index.refresh()
    best = moments(indexed, "续航")[0]
    assert (best.task_id, best.start_s, best.end_s, best.kind) == (task.task_id, 3.1, 5.8,
                                                                   "transcript")
    assert best.text == "这款保温杯的续航和保温时间都很长" and best.score > 0
    assert moments(indexed, "battery two days")[0].start_s == 6.1
    assert moments(indexed, "welcome show")[0].start_s == 0.1  # through the translation
    assert moments(indexed, "杯盖")[0].kind == "moment"
    assert moments(indexed, "五折")[0].kind == "text"
    assert moments(indexed, "夜景")[0].task_id == other.task_id
    assert moments(indexed, "夜景", platform="rpa") == []
    assert moments(indexed, "保温杯", tags=["开箱"], limit=2)[0].task_id == task.task_id
    scores = [m.score for m in moments(indexed, "保温杯 续航")]
    assert scores == sorted(scores, reverse=True) and len(scores) >= 2


def test_tag_and_facet_search_is_unchanged(indexed: Services) -> None:
    task = stored_task(indexed, spoken_result())
    indexed.index.index_task(task)
    indexed.index.refresh()
    page = indexed.index.search(SearchQuery(tags=["保温杯"]))
    assert [h.task_id for h in page.hits] == [task.task_id] and page.moments == []
    assert page.facets == {"保温杯": 1, "开箱": 1}


def test_a_rerun_replaces_the_passages(indexed: Services) -> None:
    task = stored_task(indexed, spoken_result())
    indexed.index.index_task(task)
    task.result.transcript = task.result.transcript[:1]
    indexed.index.index_task(task)
    indexed.index.refresh()
    assert moments(indexed, "续航") == []
    assert moments(indexed, "大家好")[0].task_id == task.task_id


def test_bulk_indexing_writes_the_passages(indexed: Services) -> None:
    tasks = [stored_task(indexed, spoken_result()) for _ in range(3)]
    assert sorted(indexed.index.bulk_index(tasks, chunk_size=2)) == sorted(
        t.task_id for t in tasks)
    indexed.index.refresh()
    found = indexed.index.search(SearchQuery(kind="moments", q="续航"))
    assert found.total == 3 and {m.task_id for m in found.moments} == {t.task_id for t in tasks}


@pytest.mark.parametrize(("query", "says"), [
    ("q=", "q: "),
    ("q=" + "a" * 501, "q: "),
    ("q=%21%3F%20%E3%80%82%E2%80%A6", "q: has no letters or digits to search for"),
    ("kind=moments", "q: is required with kind=moments"),
    ("kind=moments&q=abc&cursor=x", "cursor: moments are not paged"),
    ("kind=scenes&q=abc", "kind: "),
])
def test_bad_moment_queries(search_client, query: str, says: str) -> None:
    response = search_client.get(f"/api/v1/search?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["message"].startswith(says), response.get_json()


def test_moments_through_the_api(search_client) -> None:
    services = get_services()
    task = stored_task(services, spoken_result())
    services.index.index_task(task)
    services.index.refresh()
    body = search_client.get("/api/v1/search?kind=moments&q=%E7%BB%AD%E8%88%AA").get_json()
    assert body["code"] == 200, body
    first = body["data"]["moments"][0]
    assert set(first) == {"task_id", "start_s", "end_s", "text", "score", "kind"}
    assert (first["task_id"], first["start_s"]) == (task.task_id, 3.1)
    assert body["data"]["hits"] == [] and body["data"]["total"] >= 1
    assert search_client.get("/api/v1/search?q=" + "好" * 500).status_code == 200
