"""What the task search and the moment search share: the task filters, and the search
cluster's failures turned into outages."""

from __future__ import annotations

from typing import Any

from elasticsearch import exceptions as es_errors
from elasticsearch import helpers

from shared.errors import ServiceUnavailable
from shared.search.query import SearchQuery
from shared.teams.keys import DEFAULT_TEAM


def task_filters(query: SearchQuery, team: str | None) -> list[dict[str, Any]]:
    """The task filters (team, tags, platform, uid, duration): a task and its passages
    carry the same fields, so one set of filters serves both searches. A document indexed
    before teams has no `team`: it is the default team's."""
    filters: list[dict[str, Any]] = [{"term": {"tags": tag}} for tag in query.tags]
    if team == DEFAULT_TEAM:
        filters.append({"bool": {"should": [
            {"term": {"team": team}}, {"bool": {"must_not": {"exists": {"field": "team"}}}}],
            "minimum_should_match": 1}})
    elif team is not None:
        filters.append({"term": {"team": team}})
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
    return filters


class unavailable_as_503:
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
