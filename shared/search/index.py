"""TagIndex: completed tasks in Elasticsearch (or OpenSearch), searchable by tag and text.

One index per environment, `{ES_INDEX_PREFIX}-{env}`, created with its mapping on first
use, and beside it `{ES_INDEX_PREFIX}-passages-{env}`: each task's timed passages
(`passages.py`), which `kind=moments` ranks. Chinese text uses the built-in `cjk`
analyzer (overlapping bigrams): no plugin to install, any two-character word matches,
but a single character does not and word boundaries are not known (see
docs/decisions.md). Exact tags are `keyword`s, so filters and facets use them as they are.
With semantic search on (an `embedder`), passages also hold a vector (`vectors.py`),
filled in the background (`fill.py`), and moments are ranked by keyword, by kNN or by
both fused (`mode`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from elasticsearch import Elasticsearch, helpers
from elasticsearch import exceptions as es_errors

from shared.cursor import InvalidCursor, decode_cursor, encode_cursor
from shared.errors import InvalidInput
from shared.search import passages, vectors
from shared.search.embeddings import GeminiEmbedder
from shared.search.filters import task_filters, unavailable_as_503
from shared.search.moments import rank as rank_moments
from shared.search.query import SearchHit, SearchPage, SearchQuery
from shared.tasks.models import DEFAULT_ENVS, Task

log = logging.getLogger("vision_to_tag.search")

FACET_SIZE = 20
BULK_THREADS = 2
"""Bulk requests in flight at once while reindexing."""
TEXT = {"type": "text", "analyzer": "cjk"}
TEAM_FIELD = {"type": "keyword"}
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
        "team": {"type": "keyword"},
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
        "task_id": task.task_id, "team": task.team, "url": task.url, "tags": result.tags,
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
                 envs: tuple[str, ...] = DEFAULT_ENVS,
                 embedder: GeminiEmbedder | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.envs = tuple(envs)
        self.embedder = embedder
        """Set when SEMANTIC_SEARCH is on: passages get vectors, queries may use them."""
        self._ready: set[str] = set()
        self._dialect: vectors.Dialect | None = None

    @property
    def dialect(self) -> vectors.Dialect:
        """Elasticsearch or OpenSearch, asked once (their vectors are named differently)."""
        if self._dialect is None:
            with unavailable_as_503():
                self._dialect = vectors.dialect_of(dict(self.client.info()))
        return self._dialect

    def _passage_mapping(self) -> dict[str, Any]:
        if self.embedder is None:
            return passages.PASSAGE_MAPPING
        field = vectors.field_mapping(self.dialect, self.embedder.config.dimensions)
        return {**passages.PASSAGE_MAPPING, "properties": {
            **passages.PASSAGE_MAPPING["properties"], vectors.FIELD: field}}

    def index_name(self, env: str) -> str:
        return f"{self.prefix}-{env}"

    def passage_index(self, env: str) -> str:
        return f"{self.prefix}-passages-{env}"

    def ensure_index(self, env: str, *, of_passages: bool = False) -> str:
        """Create the index with its mapping unless it exists (idempotent)."""
        name = self.passage_index(env) if of_passages else self.index_name(env)
        if name in self._ready:
            return name
        mapping = self._passage_mapping() if of_passages else MAPPING
        with unavailable_as_503():
            if self.client.indices.exists(index=name):  # made before teams (issue 36),
                self.client.indices.put_mapping(  # or before semantic search (issue 38)
                    index=name, properties={k: v for k, v in mapping["properties"].items()
                                            if k in ("team", vectors.FIELD)})
            else:
                settings = vectors.index_settings(self.dialect) \
                    if of_passages and self.embedder else None
                try:
                    self.client.indices.create(index=name, mappings=mapping,
                                               settings=settings)
                except es_errors.BadRequestError as error:
                    if "already_exists" not in str(error):
                        raise
        self._ready.add(name)
        return name

    def index_task(self, task: Task) -> None:
        """The task's document, then its passages (the old ones of a rerun removed)."""
        index = self.ensure_index(task.env)
        with unavailable_as_503():
            self.client.index(index=index, id=task.task_id, document=document(task))
        self._replace_passages([task])

    def bulk_index(self, tasks: Iterable[Task], *, chunk_size: int = 500) -> list[str]:
        """Index many tasks and their passages; returns the ids that made it (a task
        whose passages failed is not among them: it is indexed again later)."""
        tasks = [task for task in tasks if task.result]
        actions = [{"_index": self.ensure_index(task.env), "_id": task.task_id,
                    "_source": document(task)} for task in tasks]
        done = set(self._bulk(actions, chunk_size))
        failed = self._replace_passages([t for t in tasks if t.task_id in done], chunk_size)
        return [task.task_id for task in tasks if task.task_id in done - failed]

    def _bulk(self, actions: list[dict[str, Any]], chunk_size: int = 500) -> list[str]:
        """The ids of the documents indexed."""
        done: list[str] = []
        with unavailable_as_503():
            for ok, item in helpers.parallel_bulk(self.client, actions, chunk_size=chunk_size,
                                                  thread_count=BULK_THREADS,
                                                  raise_on_error=False):
                if ok:
                    done.append(item["index"]["_id"])
        return done

    def _replace_passages(self, tasks: list[Task], chunk_size: int = 500) -> set[str]:
        """Every task's passages as its result has them now; the ids of the tasks some
        of whose passages did not make it."""
        by_env: dict[str, list[Task]] = {}
        for task in tasks:
            by_env.setdefault(task.env, []).append(task)
        failed: set[str] = set()
        for env, group in by_env.items():
            index = self.ensure_index(env, of_passages=True)
            with unavailable_as_503():
                self.client.delete_by_query(
                    index=index, refresh=False, conflicts="proceed",
                    query={"terms": {"task_id": [task.task_id for task in group]}})
            docs = [doc for task in group for doc in passages.passages(task)]
            indexed = set(self._bulk([{"_index": index, "_id": doc["passage_id"],
                                       "_source": doc} for doc in docs], chunk_size))
            failed |= {doc["task_id"] for doc in docs if doc["passage_id"] not in indexed}
        return failed

    def remove(self, task_ids: list[str]) -> None:
        """Delete these tasks' documents and passages from every index of this prefix
        (deleted tasks, issue 34); ids not indexed are fine."""
        if not task_ids:
            return
        with unavailable_as_503():
            self.client.delete_by_query(
                index=f"{self.prefix}-*", query={"terms": {"task_id": task_ids}},
                conflicts="proceed", refresh=True, ignore_unavailable=True,
                allow_no_indices=True)

    def refresh(self) -> None:
        with unavailable_as_503():
            self.client.indices.refresh(index=f"{self.prefix}-*")

    def search(self, query: SearchQuery, team: str | None = None) -> SearchPage:
        """Tasks (or, `kind=moments`, passages) of `team` (None: every team's)."""
        if query.kind == "moments":
            return self.moments(query, team)
        envs = [query.env] if query.env else list(self.envs)
        indices = ",".join(self.index_name(env) for env in envs)
        filters = task_filters(query, team)
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
        with unavailable_as_503():
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

    def moments(self, query: SearchQuery, team: str | None = None) -> SearchPage:
        """The passages that best match `query.q` (`moments.py`)."""
        return rank_moments(self, query, team)

