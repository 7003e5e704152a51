"""The embedding fill job (issue 38): passages are indexed without waiting for Gemini;
this job, run every few minutes (`cleanup?scope=embeddings`) and after a reindex, finds
the passages without a vector and gives them one, `EMBEDDING_BATCH` texts a call.

When the embedding model's quota runs out mid-run it stops where it is — what it wrote is
kept — and answers when a key frees; the next run starts over from the passages still
without a vector, so nothing is embedded twice and nothing is skipped. Until then search
finds those passages by their words.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from elasticsearch import helpers

from shared.search import vectors
from shared.search.embeddings import QuotaExhausted
from shared.search.filters import unavailable_as_503
from shared.search.index import TagIndex

log = logging.getLogger("vision_to_tag.search")


@dataclass
class FillReport:
    embedded: int = 0
    missing_before: int = 0
    """Passages without a vector when the run started (all envs)."""
    cost_usd: float = 0.0
    stopped: str | None = None
    """Why the run ended early: `quota` (it goes on when a key frees) or `limit`."""
    retry_after_s: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "cost_usd": round(self.cost_usd, 6)}


def fill_embeddings(index: TagIndex, max_passages: int) -> FillReport:
    """Vectors for up to `max_passages` passages that have none, env by env."""
    report = FillReport()
    if index.embedder is None:
        return report
    for env in index.envs:
        name = index.ensure_index(env, of_passages=True)
        try:
            _fill_env(index, name, max_passages, report)
        except QuotaExhausted as exhausted:
            report.stopped, report.retry_after_s = "quota", exhausted.retry_after_s
            log.warning("embedding fill stopped after %d passages: %s", report.embedded,
                        exhausted)
            break
        if report.stopped:
            break
    return report


def _fill_env(index: TagIndex, name: str, max_passages: int, report: FillReport) -> None:
    """Page through the env's passages without a vector, embedding each page."""
    assert index.embedder is not None
    size, after = index.embedder.config.batch, None
    while True:
        with unavailable_as_503():
            answer = index.client.search(index=name, **vectors.missing_body(size, after))
        if after is None:
            report.missing_before += answer["hits"]["total"]["value"]
        hits = answer["hits"]["hits"][:max(0, max_passages - report.embedded)]
        if not hits:
            if answer["hits"]["hits"]:
                report.stopped = "limit"
            return
        texts = [hit["_source"]["text"] for hit in hits]
        found = index.embedder.embed(texts)
        actions = [{"_op_type": "update", "_index": name, "_id": hit["_id"],
                    "doc": {vectors.FIELD: vector}}
                   for hit, vector in zip(hits, found, strict=True)]
        with unavailable_as_503():
            written, _ = helpers.bulk(index.client, actions, raise_on_error=False)
        report.embedded += written
        report.cost_usd += index.embedder.cost_usd(texts)
        after = hits[-1]["sort"][0]
