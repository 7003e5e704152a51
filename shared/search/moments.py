"""Moment search (`kind=moments`): a task's timed passages ranked by their words (BM25),
by the nearness of their vectors to the query's (kNN), or both fused (reciprocal rank
fusion), under the same task filters as the task search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from elasticsearch import exceptions as es_errors

from shared.errors import NotConfigured, ServiceUnavailable
from shared.search import passages, vectors
from shared.search.embeddings import QuotaExhausted
from shared.search.filters import task_filters, unavailable_as_503
from shared.search.query import SearchMoment, SearchPage, SearchQuery

if TYPE_CHECKING:
    from shared.search.index import TagIndex

MOMENT_FIELDS = ["task_id", "start_s", "end_s", "text", "kind"]
FUSION_DEPTH = 50
"""Hybrid: each ranking's best this many passages are fused."""


class _NoKnn(Exception):
    """The search server refused the kNN search (a server without kNN, such as the
    osmem-server stand-in, or an index made before semantic search on OpenSearch)."""

    def __init__(self, error: Any) -> None:
        reason = error.get("reason") if isinstance(error, dict) else None
        if isinstance(error, dict) and isinstance(error.get("error"), dict):
            reason = error["error"].get("reason")
        super().__init__(f"the search server refused the kNN search ({str(reason)[:200]})")


def _refusal(why: Exception) -> Exception:
    """mode=semantic cannot fall back: the caller asked for vectors."""
    if isinstance(why, QuotaExhausted):
        return ServiceUnavailable("embeddings", f"{why}; try again in "
                                                f"{why.retry_after_s:.0f} s or use mode=keyword")
    return NotConfigured(f"mode: {why}; use mode=keyword")


def rank(index: TagIndex, query: SearchQuery, team: str | None = None) -> SearchPage:
    """The passages that best match `query.q` under the task filters: by BM25
    (`keyword`), by the nearness of their vectors to the query's (`semantic`), or both
    fused (`hybrid`; a passage still without a vector is found by its words)."""
    envs = [query.env] if query.env else list(index.envs)
    indices = ",".join(index.passage_index(env) for env in envs)
    filters = task_filters(query, team)
    keyword: dict[str, Any] = {
        "query": {"bool": {"filter": filters, "must": [passages.match(query.q)]}},
        "size": query.limit, "track_total_hits": False, "_source": MOMENT_FIELDS}
    mode, warnings = query.mode or "keyword", []
    if mode == "keyword":
        hits = _by_words(index, indices, keyword, query.q)
    else:
        try:
            hits = _ranked(index, indices, query, filters, keyword)
        except (QuotaExhausted, _NoKnn) as why:
            if mode == "semantic":
                raise _refusal(why) from None
            warnings.append(f"ranked by keyword only: {why}")
            mode, hits = "keyword", _by_words(index, indices, keyword, query.q)
    found = [SearchMoment(**passages.moment_of(hit)) for hit in hits]
    return SearchPage(total=len(found), hits=[], facets={}, moments=found, mode=mode,
                      warnings=warnings)


def _ranked(index: TagIndex, indices: str, query: SearchQuery, filters: list[dict[str, Any]],
            keyword: dict[str, Any]) -> list[dict[str, Any]]:
    """kNN alone, or fused with BM25 (both asked in one msearch)."""
    assert index.embedder is not None and query.q
    vector = index.embedder.embed([query.q], task="RETRIEVAL_QUERY")[0]
    depth = max(query.limit, FUSION_DEPTH) if query.mode == "hybrid" else query.limit
    knn = {**vectors.knn_body(index.dialect, vector, depth, filters),
           "_source": MOMENT_FIELDS}
    if query.mode == "semantic":
        return _search(index, indices, knn)
    head = {"index": indices, "ignore_unavailable": True, "allow_no_indices": True}
    with unavailable_as_503():
        answers = index.client.msearch(searches=[head, {**keyword, "size": depth},
                                                head, knn])["responses"]
    if "error" in answers[0]:  # the keyword half: the cluster's problem, not kNN's
        raise ServiceUnavailable("search", f"HTTP {answers[0].get('status', '?')}")
    if "error" in answers[1]:
        raise _NoKnn(answers[1]["error"])
    return vectors.fuse([a["hits"]["hits"] for a in answers], query.limit)


def _by_words(index: TagIndex, indices: str, keyword: dict[str, Any],
              q: str | None) -> list[dict[str, Any]]:
    """Passages holding every word first: when there are `size` of them, that is the
    answer (scoring only those is what keeps a query of frequent words fast); when
    fewer, the passages holding any word, ranked as before (docs/decisions.md)."""
    assert q
    every = {**keyword, "query": {"bool": {**keyword["query"]["bool"],
                                           "must": [passages.match(q, every_word=True)]}}}
    hits = _search(index, indices, every)
    return hits if len(hits) >= keyword["size"] else _search(index, indices, keyword)


def _search(index: TagIndex, indices: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with unavailable_as_503():
        try:
            answer = index.client.search(index=indices, ignore_unavailable=True,
                                        allow_no_indices=True, **body)
        except es_errors.BadRequestError as error:
            if "knn" in body or "knn" in body.get("query", {}):
                raise _NoKnn(error.body) from None
            raise
    return answer["hits"]["hits"]
