"""The search index (Elasticsearch or OpenSearch); no URL, no search."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from shared.settings.types import http_url


class SearchSettings(BaseModel):
    ES_URL: str = ""
    ES_INDEX_PREFIX: str = "vision-to-tag"
    ES_COMPAT_HEADERS: bool = True
    ES_TIMEOUT_S: float = Field(default=10, gt=0, le=300)

    @field_validator("ES_URL")
    @classmethod
    def _http_search(cls, value: str) -> str:
        return http_url(value, "search disabled")
