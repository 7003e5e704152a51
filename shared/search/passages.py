"""Passages: the timed pieces of a result that `GET /api/v1/search?kind=moments` ranks
(issue 38) — the summary, each key moment, the on-screen text and each transcript
segment, with their times, in `{ES_INDEX_PREFIX}-passages-{env}` beside the task index.

Each passage carries its task's filter fields (tags, platform, uid, duration), so the
task search's filters apply to moments unchanged. Ranked by BM25 over `text` and
`translation`, analysed like the task index (`cjk`: Chinese bigrams, English words).
"""

from __future__ import annotations

from typing import Any

from shared.tagging.result import TagResult
from shared.tasks.models import Task

TEXT = {"type": "text", "analyzer": "cjk"}
PASSAGE_MAPPING = {
    "dynamic": False,
    "properties": {
        "passage_id": {"type": "keyword"},
        "task_id": {"type": "keyword"},
        "kind": {"type": "keyword"},
        "start_s": {"type": "float"},
        "end_s": {"type": "float"},
        "text": TEXT,
        "translation": TEXT,
        "speaker": {"type": "keyword"},
        "language": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "platform": {"type": "keyword"},
        "team": {"type": "keyword"},
        "uid": {"type": "keyword"},
        "duration_s": {"type": "float"},
        "created_at": {"type": "date"},
    },
}
MAX_PASSAGE_CHARS = 4000
"""A passage's text beyond this is not indexed (a summary is far shorter)."""
TEXT_BOOST = 2
"""What was said or shown outweighs its translation."""


def passages(task: Task) -> list[dict[str, Any]]:
    """The task's passages as documents, numbered in a stable order (their ids)."""
    result = task.result
    if result is None:
        return []
    shared = {"task_id": task.task_id, "team": task.team, "tags": result.tags,
              "platform": task.platform,
              "uid": task.uid, "language": result.language,
              "duration_s": result.technical.duration_s,
              "created_at": task.created_at.isoformat()}
    found = [{**shared, **piece, "passage_id": f"{task.task_id}-{n:04d}",
              "text": piece["text"][:MAX_PASSAGE_CHARS]}
             for n, piece in enumerate(_pieces(result)) if piece["text"].strip()]
    return found


def _pieces(result: TagResult) -> list[dict[str, Any]]:
    """(kind, times, text) of every passage of a result."""
    whole = {"start_s": 0.0, "end_s": result.technical.duration_s}
    pieces = [{"kind": "summary", **whole, "text": result.summary}]
    for moment in result.key_moments:
        words = moment.description or " / ".join(moment.tags)
        pieces.append({"kind": "text" if moment.source == "text" else "moment",
                       "start_s": moment.start_s, "end_s": moment.end_s, "text": words})
    read = [t.tag for t in result.dimensions.get("content", {}).get("on_screen_text", [])]
    if read and not any(m.source == "text" for m in result.key_moments):
        pieces.append({"kind": "text", **whole, "text": " / ".join(read)})
    for segment in result.transcript:
        pieces.append({"kind": "transcript", "start_s": segment.start_s,
                       "end_s": segment.end_s, "text": segment.text,
                       "translation": segment.translation, "speaker": segment.speaker})
    return pieces


def match(q: str, every_word: bool = False) -> dict[str, Any]:
    """BM25 over what was said or shown and its translation; any word may match (or, with
    `every_word`, all must), more matching words rank higher (`multi_match` parses no
    query syntax)."""
    found: dict[str, Any] = {"query": q, "type": "most_fields",
                             "fields": [f"text^{TEXT_BOOST}", "translation"]}
    if every_word:
        found["minimum_should_match"] = "100%"
    return {"multi_match": found}


def moment_of(hit: dict[str, Any]) -> dict[str, Any]:
    """A search hit as a moment of the answer."""
    source = hit["_source"]
    return {"task_id": source["task_id"], "start_s": source["start_s"],
            "end_s": source["end_s"], "text": source["text"], "kind": source["kind"],
            "score": round(float(hit.get("_score") or 0.0), 4)}
