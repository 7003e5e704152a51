"""The embedding fill job (issue 38), as `cleanup?scope=embeddings` and the reindex
script run it: passages without a vector get one, until the quota or the run's limit."""

from __future__ import annotations

from shared.app.context import Services
from shared.search.fill import fill_embeddings


def embeddings_job(services: Services, max_passages: int | None = None) -> dict[str, object]:
    """`{"enabled": false}` when semantic search is off (nothing to do). At most
    `max_passages` (default EMBEDDING_MAX_PER_RUN: the reindex script asks for all)."""
    index = services.index
    if index is None or index.embedder is None:
        return {"enabled": False}
    report = fill_embeddings(index, max_passages or services.settings.search.EMBEDDING_MAX_PER_RUN)
    return {"enabled": True, **report.as_dict()}
