"""The search index (Elasticsearch or OpenSearch; no URL, no search) and semantic search:
passages embedded by Gemini and ranked by kNN as well (issue 38)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.settings.types import http_url


class SearchSettings(BaseModel):
    ES_URL: str = ""
    ES_INDEX_PREFIX: str = "vision-to-tag"
    ES_COMPAT_HEADERS: bool = True
    ES_TIMEOUT_S: float = Field(default=10, gt=0, le=300)
    SEMANTIC_SEARCH: bool = False
    EMBEDDING_MODEL: str = "gemini-embedding-001"
    EMBEDDING_TIMEOUT_S: float = Field(default=30, gt=0, le=300)
    EMBEDDING_BATCH: int = Field(default=100, ge=1, le=100)
    """Texts per batchEmbedContents call (Google's ceiling is 100)."""
    EMBEDDING_MAX_PER_RUN: int = Field(default=5000, ge=1, le=1_000_000)
    """Passages one run of the fill job embeds at most (the next run goes on)."""
    EMBEDDING_PRICE_PER_M: float = Field(default=0.15, ge=0)
    """USD per million input tokens of EMBEDDING_MODEL (Google's list price)."""

    @field_validator("ES_URL")
    @classmethod
    def _http_search(cls, value: str) -> str:
        return http_url(value, "search disabled")

    @model_validator(mode="after")
    def _vectors_need_an_index(self) -> SearchSettings:
        if self.SEMANTIC_SEARCH and not self.ES_URL:
            raise ValueError("SEMANTIC_SEARCH=true needs ES_URL (the vectors live in the "
                             "search index)")
        return self
