"""What GET /api/v1/search takes and answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from shared.settings.types import split_commas
from shared.tasks.models import (
    QueryFloat,
    QueryInt,
    check_platform,
    envs_of,
)

CommaList = Annotated[list[str], WithJsonSchema({"type": "string"})]
"""A list given as one comma-separated query value: in the document a string, which is
what is sent (an array there would read `tags=5` as a wrong type)."""


MAX_Q = 500
"""Characters of `q`: a sentence or two of what was said."""


class SearchQuery(BaseModel):
    """Query string of GET /api/v1/search."""

    model_config = ConfigDict(extra="forbid")

    tags: CommaList = Field(default="", validate_default=True,
                            description="all must match (comma-separated)")
    any_tags: CommaList = Field(default="", validate_default=True,
                                description="at least one must match (comma-separated)")
    kind: Literal["tasks", "moments"] = Field(
        default="tasks", description="`tasks`: matching tasks, newest first, with facets; "
        "`moments`: the passages (summary, key moments, on-screen text, transcript "
        "segments) that best match `q` (BM25), each with its task and times")
    q: str | None = Field(default=None, validate_default=True, min_length=1, max_length=MAX_Q,
                          description="free text: with `kind=tasks` over tags and summary, "
                          "with `kind=moments` over every passage (needed there)")
    mode: Literal["keyword", "semantic", "hybrid"] | None = Field(
        default=None, validate_default=True,
        description="`kind=moments`: `keyword` (BM25), `semantic` (kNN over Gemini "
        "embeddings) or `hybrid` (both, reciprocal rank fusion); semantic and hybrid need "
        "SEMANTIC_SEARCH=true. Default: hybrid when semantic search is on, else keyword")
    platform: str | None = Field(default=None, description="one of PLATFORMS")
    env: str | None = Field(default=None, description="one of ENVS (default: all)")
    uid: str | None = Field(default=None, max_length=64)
    min_duration: QueryFloat | None = Field(default=None, ge=0)
    max_duration: QueryFloat | None = Field(default=None, ge=0)
    limit: QueryInt = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=512)

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_platform(value, info)

    @field_validator("env")
    @classmethod
    def _known_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in envs_of(info):
            allowed = ", ".join(envs_of(info))
            raise ValueError(f"unknown env {value[:64]!r} (allowed: {allowed})")
        return value

    @field_validator("q")
    @classmethod
    def _words(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Something to search for: a query of only spaces and punctuation matches no
        word, so it is refused rather than answered with nothing."""
        if value is None and info.data.get("kind") == "moments":
            raise ValueError("is required with kind=moments (the words to find)")
        if value is not None and not any(char.isalnum() for char in value):
            raise ValueError("has no letters or digits to search for")
        return value

    @field_validator("mode")
    @classmethod
    def _semantic_on(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Vectors exist only with SEMANTIC_SEARCH=true (passed in the context)."""
        semantic = bool((info.context or {}).get("semantic"))
        if info.data.get("kind") != "moments":
            if value not in (None, "keyword"):
                raise ValueError("only kind=moments is ranked by meaning")
            return value
        if value is None:
            return "hybrid" if semantic else "keyword"
        if value != "keyword" and not semantic:
            raise ValueError(f"{value} needs SEMANTIC_SEARCH=true (semantic search is off "
                             "on this service; use mode=keyword)")
        return value

    @field_validator("cursor")
    @classmethod
    def _paged(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("kind") == "moments":
            raise ValueError("moments are not paged (ask for the best `limit`, up to 100)")
        return value

    @field_validator("tags", "any_tags", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_commas(value)


class SearchHit(BaseModel):
    task_id: str
    url: str
    platform: str | None = None
    env: str | None = None
    uid: str | None = None
    tags: list[str] = []
    summary: str = ""
    duration_s: float | None = None
    created_at: str | None = None


class SearchMoment(BaseModel):
    """A passage that matched, where it is in its video."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    task_id: str
    start_s: float
    end_s: float
    text: str
    kind: Literal["summary", "moment", "text", "transcript"]
    """Which part of the result it comes from."""
    score: float
    """Relevance (higher is better; comparable within one answer only): BM25 for
    `keyword`, the vector similarity for `semantic`, the fused reciprocal ranks for
    `hybrid`."""


class SearchPage(BaseModel):
    total: int
    hits: list[SearchHit]
    facets: dict[str, int]
    next_cursor: str | None = None
    moments: list[SearchMoment] = []
    """`kind=moments`: the best passages, best first (`hits` and `facets` then empty;
    `total` is then the number of moments answered)."""
    mode: Literal["keyword", "semantic", "hybrid"] | None = None
    """`kind=moments`: how they were ranked."""
    warnings: list[str] = []
    """E.g. a hybrid search answered by keyword only (no embedding quota left, or a
    search server without kNN)."""
