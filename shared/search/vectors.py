"""Dense vectors in the passage index (issue 38): the field's mapping, the kNN query and
the fusion of the keyword and vector rankings.

Elasticsearch 8 and OpenSearch 2 store and search vectors under different names — ES a
`dense_vector` field and a top-level `knn` search option, OpenSearch a `knn_vector`
field (in an index created with `index.knn: true`) and a `knn` query — so the index asks
the server which it is (`GET /`, `version.distribution`) and takes the dialect here; the
client, the requests and the reading of the answers are the same for both. Hybrid ranking
is reciprocal rank fusion done here over the two answers, because ES's `rrf` retriever
needs a paid licence and OpenSearch's `hybrid` query a search pipeline: fusing ranks
needs neither, and is the same on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

FIELD = "embedding"
Dialect = Literal["elasticsearch", "opensearch"]
RRF_K = 60
"""Reciprocal rank fusion's constant (Cormack et al., and both engines' default)."""
CANDIDATES = 10
"""kNN candidates looked at per answer wanted (Elasticsearch's num_candidates)."""


def dialect_of(info: dict[str, Any]) -> Dialect:
    """The server's kind from its root answer (`GET /`)."""
    version = info.get("version") or {}
    return "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"


def field_mapping(dialect: Dialect, dimensions: int) -> dict[str, Any]:
    """The vector field, compared by cosine (Gemini's vectors are unit length)."""
    if dialect == "opensearch":
        return {"type": "knn_vector", "dimension": dimensions,
                "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene"}}
    return {"type": "dense_vector", "dims": dimensions, "index": True, "similarity": "cosine"}


def index_settings(dialect: Dialect) -> dict[str, Any] | None:
    """OpenSearch builds kNN graphs only in an index created with `index.knn`."""
    return {"index": {"knn": True}} if dialect == "opensearch" else None


def knn_body(dialect: Dialect, vector: list[float], k: int,
             filters: list[dict[str, Any]]) -> dict[str, Any]:
    """The `k` passages nearest `vector` among those the filters keep (filtered during
    the graph search, not after it, so `k` are found when `k` exist)."""
    kept = {"bool": {"filter": filters}}
    if dialect == "opensearch":
        return {"query": {"knn": {FIELD: {"vector": vector, "k": k, "filter": kept}}},
                "size": k}
    return {"knn": {"field": FIELD, "query_vector": vector, "k": k,
                    "num_candidates": max(100, k * CANDIDATES), "filter": kept}, "size": k}


def missing_body(size: int, after: str | None) -> dict[str, Any]:
    """Passages without a vector, in id order from `after` (a run pages through them once,
    so no refresh is needed between pages); the first page also counts them."""
    body: dict[str, Any] = {"query": {"bool": {"must_not": {"exists": {"field": FIELD}}}},
                            "size": size, "sort": [{"passage_id": "asc"}],
                            "_source": ["passage_id", "text"],
                            "track_total_hits": after is None}
    if after is not None:
        body["search_after"] = [after]
    return body


def fuse(rankings: Sequence[Sequence[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """Reciprocal rank fusion: a hit's score is the sum over the rankings of
    1 / (RRF_K + its rank there); best first, `limit` of them."""
    scores: dict[str, float] = {}
    hits: dict[str, dict[str, Any]] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit["_id"]] = scores.get(hit["_id"], 0.0) + 1.0 / (RRF_K + rank)
            hits.setdefault(hit["_id"], hit)
    best = sorted(scores, key=lambda key: (-scores[key], key))[:limit]
    return [{**hits[key], "_score": scores[key]} for key in best]
