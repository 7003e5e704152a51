"""TagIndex: completed tasks in Elasticsearch (or OpenSearch), searchable by tag and text.

One index per environment, `{ES_INDEX_PREFIX}-{env}`, created with its mapping on first
use. Chinese text uses the built-in `cjk` analyzer (overlapping bigrams): no plugin to
install, any two-character word matches, but a single character does not and word
boundaries are not known (see docs/decisions.md). Exact tags are `keyword`s, so filters
and facets use them as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from elasticsearch import Elasticsearch, helpers
from elasticsearch import exceptions as es_errors

from shared.cursor import InvalidCursor, decode_cursor, encode_cursor
from shared.errors import InvalidInput, ServiceUnavailable
from shared.search.query import SearchHit, SearchPage, SearchQuery
from shared.tasks.models import DEFAULT_ENVS, Task

log = logging.getLogger("vision_to_tag.search")

FACET_SIZE = 20
BULK_THREADS = 2
"""Bulk requests in flight at once while reindexing."""
TEXT = {"type": "text", "analyzer": "cjk"}
MAPPING = {
    "dynamic": False,
    "properties": {
        "task_id": {"type": "keyword"},
        "url": {"type": "keyword", "index": False},
        "tags": {"type": "keyword"},
        "tags_text": TEXT,
        "vision_tags": {"type": "keyword"},
        "audio_tags": {"type": "keyword"},
        "content_tags": {"type": "keyword"},
        "business_tags": {"type": "keyword"},
        "summary": TEXT,
        "platform": {"type": "keyword"},
        "uid": {"type": "keyword"},
        "env": {"type": "keyword"},
        "language": {"type": "keyword"},
        "duration_s": {"type": "float"},
        "orientation": {"type": "keyword"},
        "created_at": {"type": "date"},
    },
}


def document(task: Task) -> dict[str, Any]:
    result = task.result
    assert result is not None
    doc: dict[str, Any] = {
        "task_id": task.task_id, "url": task.url, "tags": result.tags,
        "tags_text": " ".join(result.tags), "summary": result.summary,
        "platform": task.platform, "uid": task.uid, "env": task.env,
        "language": result.language, "duration_s": result.technical.duration_s,
        "orientation": result.technical.orientation,
        "created_at": task.created_at.isoformat(),
    }
    for dim, groups in result.dimensions.items():
        doc[f"{dim}_tags"] = [tag.tag for group in groups.values() for tag in group]
    return doc


class TagIndex:
    def __init__(self, client: Elasticsearch, prefix: str,
                 envs: tuple[str, ...] = DEFAULT_ENVS) -> None:
        self.client = client
        self.prefix = prefix
        self.envs = tuple(envs)
        self._ready: set[str] = set()

    def index_name(self, env: str) -> str:
        return f"{self.prefix}-{env}"

    def ensure_index(self, env: str) -> str:
        """Create the index with its mapping unless it exists (idempotent)."""
        name = self.index_name(env)
        if name in self._ready:
            return name
        with _unavailable_as_503():
            if not self.client.indices.exists(index=name):
                try:
                    self.client.indices.create(index=name, mappings=MAPPING)
                except es_errors.BadRequestError as error:
                    if "already_exists" not in str(error):
                        raise
        self._ready.add(name)
        return name

    def index_task(self, task: Task) -> None:
        index = self.ensure_index(task.env)
        with _unavailable_as_503():
            self.client.index(index=index, id=task.task_id, document=document(task))

    def bulk_index(self, tasks: Iterable[Task], *, chunk_size: int = 500) -> list[str]:
        """Index many tasks; returns the ids that made it."""
        actions = [{"_index": self.ensure_index(task.env), "_id": task.task_id,
                    "_source": document(task)} for task in tasks if task.result]
        done: list[str] = []
        with _unavailable_as_503():
            for ok, item in helpers.parallel_bulk(self.client, actions, chunk_size=chunk_size,
                                                  thread_count=BULK_THREADS,
                                                  raise_on_error=False):
                if ok:
                    done.append(item["index"]["_id"])
        return done

    def refresh(self) -> None:
        with _unavailable_as_503():
            self.client.indices.refresh(index=f"{self.prefix}-*")

    def search(self, query: SearchQuery) -> SearchPage:
        envs = [query.env] if query.env else list(self.envs)
        indices = ",".join(self.index_name(env) for env in envs)
        filters: list[dict[str, Any]] = [{"term": {"tags": tag}} for tag in query.tags]
        if query.any_tags:
            filters.append({"terms": {"tags": query.any_tags}})
        for field in ("platform", "uid"):
            value = getattr(query, field)
            if value:
                filters.append({"term": {field: value}})
        if query.min_duration is not None or query.max_duration is not None:
            bounds = {"gte": query.min_duration, "lte": query.max_duration}
            filters.append({"range": {"duration_s": {k: v for k, v in bounds.items()
                                                      if v is not None}}})
        must = []
        if query.q:  # multi_match parses no query syntax: quotes, *, ( are plain text
            must.append({"multi_match": {"query": query.q, "operator": "and",
                                         "fields": ["tags_text^2", "summary"]}})
        body: dict[str, Any] = {
            "query": {"bool": {"filter": filters, "must": must}},
            "sort": [{"created_at": "desc"}, {"task_id": "asc"}],
            "size": query.limit,
            "aggs": {"top_tags": {"terms": {"field": "tags", "size": FACET_SIZE}}},
            "track_total_hits": True,
        }
        if query.cursor:
            try:
                body["search_after"] = decode_cursor(query.cursor, (int, float), str)
            except InvalidCursor as error:
                raise InvalidInput(str(error)) from None
        with _unavailable_as_503():
            answer = self.client.search(index=indices, ignore_unavailable=True,
                                        allow_no_indices=True, **body)
        hits = answer["hits"]["hits"]
        next_cursor = encode_cursor(hits[-1]["sort"]) if len(hits) == query.limit else None
        buckets = answer.get("aggregations", {}).get("top_tags", {}).get("buckets", [])
        return SearchPage(
            total=answer["hits"]["total"]["value"],
            hits=[SearchHit(**{k: v for k, v in hit["_source"].items()
                               if k in SearchHit.model_fields}) for hit in hits],
            facets={bucket["key"]: bucket["doc_count"] for bucket in buckets},
            next_cursor=next_cursor,
        )


class _unavailable_as_503:
    """Connection problems and server errors of the search cluster → ServiceUnavailable."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, es_errors.ConnectionError | es_errors.ConnectionTimeout):
            raise ServiceUnavailable("search", type(exc).__name__) from exc
        if isinstance(exc, es_errors.ApiError) and getattr(exc, "status_code", 0) >= 500:
            raise ServiceUnavailable("search", f"HTTP {exc.status_code}") from exc
        if isinstance(exc, helpers.BulkIndexError):
            raise ServiceUnavailable("search", "bulk errors") from exc
        return False
