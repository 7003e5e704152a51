"""Semantic search (issue 38): passages embedded by Gemini through the key pool (the
stand-in answers batchEmbedContents with hashed bag-of-words vectors), stored in the
passage index by the fill job, `mode=keyword|semantic|hybrid` on GET /api/v1/search —
against osmem-server through the real client. osmem stores `knn_vector` fields but runs
no kNN query (docs/decisions.md "Semantic search"): what needs one is checked to be
refused in words, never answered as if it had ranked."""

# ruff: noqa: F811 - fixtures come from test_search

from __future__ import annotations

import math
import time
import uuid

import pytest
import redis

from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool
from shared.search import vectors
from shared.search.embeddings import DIMENSIONS, EmbeddingConfig, GeminiEmbedder, QuotaExhausted
from shared.search.fill import fill_embeddings
from shared.search.query import SearchQuery
from shared.services import Services, get_services
from tests.gemini_standin import GeminiStandIn, vector_of
from tests.test_search import indexed, search_client  # noqa: F401
from tests.test_search_moments import spoken_result, stored_task

KEYS = [f"AIzaSyEMBED{n:029d}" for n in range(3)]
MODEL = "gemini-embedding-001"


@pytest.fixture
def pool(redis_client: redis.Redis) -> AccountPool:
    import_accounts(redis_client, [AccountEntry(api_key=key, daily_limit=1000, minute_limit=100)
                                   for key in KEYS])
    return AccountPool(redis_client)


@pytest.fixture
def semantic(indexed: Services, pool: AccountPool, standin: GeminiStandIn) -> Services:
    """The search index with an embedder talking to the stand-in, 2 texts a call."""
    indexed.index.embedder = GeminiEmbedder(pool, EmbeddingConfig(
        endpoint=standin.base_url, batch=2, timeout_s=5))
    return indexed


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def stored_vectors(services: Services) -> dict[str, tuple[str, list[float] | None]]:
    """passage id → (text, its vector as the index holds it)."""
    index = services.index
    answer = index.client.search(index=index.passage_index("develop"), size=100,
                                 query={"match_all": {}})
    return {hit["_id"]: (hit["_source"]["text"], hit["_source"].get(vectors.FIELD))
            for hit in answer["hits"]["hits"]}


def embed_calls(standin: GeminiStandIn) -> list:
    return [r for r in standin.requests if r.path.endswith(":batchEmbedContents")]


def test_the_embedding_call_is_gemini_batch_embed_contents(pool, standin) -> None:
    embedder = GeminiEmbedder(pool, EmbeddingConfig(endpoint=standin.base_url, batch=2))
    found = embedder.embed(["保温杯 续航", "battery lasts two days", "夜景"], "RETRIEVAL_QUERY")
    calls = embed_calls(standin)
    assert [c.path for c in calls] == [f"/v1beta/models/{MODEL}:batchEmbedContents"] * 2
    first = calls[0].body["requests"][0]
    assert first == {"model": f"models/{MODEL}", "content": {"parts": [{"text": "保温杯 续航"}]},
                     "taskType": "RETRIEVAL_QUERY", "outputDimensionality": DIMENSIONS}
    assert calls[0].api_key in KEYS and all(KEYS[0] not in str(c.body) for c in calls)
    assert len(found) == 3 and all(len(v) == DIMENSIONS for v in found)
    assert all(abs(math.sqrt(cosine(v, v)) - 1) < 1e-6 for v in found)
    assert cosine(found[1], vector_of("two days lasts battery", DIMENSIONS)) > 0.99  # order
    models = [p["models"] for p in pool.stats()["projects"]]
    assert sum(m[MODEL]["used_today"] for m in models if MODEL in m) == 2  # its own windows
    assert sum(m["gemini-2.5-flash"]["used_today"] for m in models) == 0


def test_a_429_cools_the_key_and_no_key_left_is_quota_exhausted(pool, standin) -> None:
    standin.embed_refusal, standin.embed_accepted_calls = "minute", 0
    embedder = GeminiEmbedder(pool, EmbeddingConfig(endpoint=standin.base_url))
    with pytest.raises(QuotaExhausted) as caught:
        embedder.embed(["续航"])
    assert caught.value.retry_after_s > 0 and not any(k in str(caught.value) for k in KEYS)
    assert len({c.api_key for c in embed_calls(standin)}) == len(KEYS)  # each key tried once
    standin.embed_refusal = None
    calls = len(embed_calls(standin))
    with pytest.raises(QuotaExhausted):  # the keys' projects wait out Gemini's retryDelay
        embedder.embed(["续航"])
    assert len(embed_calls(standin)) == calls


def test_the_fill_job_stores_every_passage_vector(semantic: Services, standin) -> None:
    tasks = [stored_task(semantic, spoken_result()) for _ in range(2)]
    semantic.index.bulk_index(tasks)  # indexing does not wait for embeddings
    semantic.index.refresh()
    assert embed_calls(standin) == []
    assert all(vector is None for _, vector in stored_vectors(semantic).values())
    report = fill_embeddings(semantic.index, 1000)
    semantic.index.refresh()
    stored = stored_vectors(semantic)
    assert report.embedded == report.missing_before == len(stored) >= 10
    assert report.stopped is None and report.cost_usd > 0
    for text, vector in stored.values():
        assert vector is not None and cosine(vector, vector_of(text, DIMENSIONS)) > 0.999
    assert fill_embeddings(semantic.index, 1000).embedded == 0  # nothing twice


def test_quota_exhausted_mid_fill_stops_and_resumes_later(semantic: Services, standin) -> None:
    semantic.index.index_task(stored_task(semantic, spoken_result()))
    semantic.index.refresh()
    standin.embed_refusal, standin.embed_accepted_calls = "minute", 1
    standin.embed_retry_delay_s = 1.0
    first = fill_embeddings(semantic.index, 1000)
    assert (first.embedded, first.stopped) == (2, "quota") and first.retry_after_s > 0
    semantic.index.refresh()
    found = semantic.index.search(SearchQuery(kind="moments", q="续航")).moments
    assert found and found[0].start_s == 3.1  # keyword search keeps answering
    assert fill_embeddings(semantic.index, 1000).stopped == "quota"  # still cooling
    standin.embed_refusal = None
    time.sleep(1.2)
    second = fill_embeddings(semantic.index, 1000)
    semantic.index.refresh()
    assert second.stopped is None and second.embedded == first.missing_before - 2
    assert all(v is not None for _, v in stored_vectors(semantic).values())


def test_a_run_stops_at_its_limit_and_the_next_goes_on(semantic: Services) -> None:
    semantic.index.index_task(stored_task(semantic, spoken_result()))
    semantic.index.refresh()
    first = fill_embeddings(semantic.index, 3)
    semantic.index.refresh()
    assert (first.embedded, first.stopped) == (3, "limit")
    assert fill_embeddings(semantic.index, 1000).embedded == first.missing_before - 3


def test_the_stand_in_vectors_rank_the_passage_that_shares_meaning(semantic: Services) -> None:
    """What the kNN search ranks by: the query's vector is nearest the passage it shares
    words with, in another order and with none of the BM25 match's exact phrase. (The
    ranking is computed here over the stored vectors: osmem runs no kNN query.)"""
    semantic.index.index_task(stored_task(semantic, spoken_result()))
    semantic.index.refresh()
    fill_embeddings(semantic.index, 1000)
    semantic.index.refresh()
    query = semantic.index.embedder.embed(["charge: two days, the battery"], "RETRIEVAL_QUERY")[0]
    stored = stored_vectors(semantic).values()
    best = max(stored, key=lambda item: cosine(query, item[1]))
    assert best[0] == "the battery lasts two full days on one charge"


def test_osmem_refuses_the_knn_search_in_words(semantic: Services) -> None:
    semantic.index.index_task(stored_task(semantic, spoken_result()))
    semantic.index.refresh()
    fill_embeddings(semantic.index, 1000)
    context = {"semantic": True}
    from shared.errors import NotConfigured

    with pytest.raises(NotConfigured) as caught:
        semantic.index.search(SearchQuery.model_validate(
            {"kind": "moments", "q": "battery", "mode": "semantic"}, context=context))
    assert str(caught.value).startswith("mode: the search server refused the kNN search")
    page = semantic.index.search(SearchQuery.model_validate(
        {"kind": "moments", "q": "battery two days"}, context=context))
    assert page.mode == "keyword" and page.moments[0].start_s == 6.1
    assert page.warnings[0].startswith("ranked by keyword only: the search server refused")


def test_knn_bodies_for_each_server() -> None:
    filters = [{"term": {"platform": "rpa"}}]
    opensearch = vectors.knn_body("opensearch", [0.1, 0.2], 5, filters)
    assert opensearch == {"query": {"knn": {"embedding": {
        "vector": [0.1, 0.2], "k": 5, "filter": {"bool": {"filter": filters}}}}}, "size": 5}
    elastic = vectors.knn_body("elasticsearch", [0.1, 0.2], 5, filters)
    assert elastic["knn"]["num_candidates"] == 100 and elastic["knn"]["k"] == 5
    assert vectors.dialect_of({"version": {"distribution": "opensearch"}}) == "opensearch"
    assert vectors.dialect_of({"version": {"number": "8.15.0"}}) == "elasticsearch"
    assert vectors.field_mapping("elasticsearch", 768)["type"] == "dense_vector"
    assert vectors.field_mapping("opensearch", 768)["type"] == "knn_vector"


def test_reciprocal_rank_fusion() -> None:
    keyword = [{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]
    knn = [{"_id": "c"}, {"_id": "d"}]
    fused = vectors.fuse([keyword, knn], 3)
    assert [h["_id"] for h in fused] == ["c", "a", "b"]  # c: in both lists
    assert fused[0]["_score"] == pytest.approx(1 / 63 + 1 / 61)


@pytest.mark.parametrize(("query", "says"), [
    ("kind=moments&q=abc&mode=semantic", "mode: semantic needs SEMANTIC_SEARCH=true"),
    ("kind=moments&q=abc&mode=hybrid", "mode: hybrid needs SEMANTIC_SEARCH=true"),
    ("kind=moments&q=abc&mode=vector", "mode: "),
    ("q=abc&mode=semantic", "mode: only kind=moments is ranked by meaning"),
])
def test_bad_modes(search_client, query: str, says: str) -> None:
    response = search_client.get(f"/api/v1/search?{query}")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["message"].startswith(says), response.get_json()


def test_modes_through_the_api(app_env, search_server, standin, redis_client) -> None:
    import functions_framework

    import_accounts(redis_client, [AccountEntry(api_key=key) for key in KEYS])
    app_env(ES_URL=search_server, ES_COMPAT_HEADERS="false", SEMANTIC_SEARCH="true",
            GEMINI_BASE_URL=standin.base_url, ES_INDEX_PREFIX=f"vtt-{uuid.uuid4().hex[:8]}")
    client = functions_framework.create_app("api", "main.py").test_client()
    services = get_services()
    services.index.index_task(stored_task(services, spoken_result()))
    services.index.refresh()
    keyword = client.get("/api/v1/search?kind=moments&q=battery&mode=keyword").get_json()
    assert keyword["data"]["mode"] == "keyword" and keyword["data"]["moments"][0]["start_s"] == 6.1
    hybrid = client.get("/api/v1/search?kind=moments&q=battery").get_json()["data"]
    assert hybrid["mode"] == "keyword" and hybrid["warnings"]  # osmem: no kNN, said so
    semantic = client.get("/api/v1/search?kind=moments&q=battery&mode=semantic")
    assert semantic.status_code == 501
    assert "kNN" in semantic.get_json()["message"]
    cleanup = functions_framework.create_app("cleanup", "main.py").test_client()
    job = cleanup.post("/?scope=embeddings").get_json()["data"]["embeddings"]
    assert job["enabled"] and job["embedded"] == job["missing_before"] >= 5
    assert standin.embedded_texts == job["embedded"] + 2  # and the two queries above
