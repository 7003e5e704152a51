"""Long videos in windows: above GEMINI_WINDOW_S a video is tagged part by part (Gemini's
`videoMetadata` start/end offsets over the same video), each part a pool request sized by
its own tokens, and the parts' answers merged into one result.

A part's answer is kept on the task row as soon as it is in (`windows`), so a worker that
dies half-way through a two-hour video redoes only the parts that are missing.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from shared.tagging import transcript
from shared.tagging.prompting import mmss, template
from shared.tagging.result import KeyMoment, Safety, SafetyJudgement, Tag, Usage, added

LEVELS = ("none", "low", "medium", "high")


def plan(duration_s: float, window_s: float) -> list[tuple[float, float]]:
    """[(start, end)] covering the video in equal parts of at most `window_s`; one part
    (the whole video) when it is not longer than that or its length is unknown."""
    if not duration_s or duration_s <= window_s:
        return [(0.0, duration_s or 0.0)]
    count = math.ceil(duration_s / window_s)
    size = duration_s / count
    return [(round(i * size, 3), round(duration_s if i == count - 1 else (i + 1) * size, 3))
            for i in range(count)]


def facts(window: tuple[float, float], language: str) -> str:
    """What the model is told about the part it sees (times stay the whole video's)."""
    return template("window", language).format(start=mmss(window[0]), end=mmss(window[1]))


def merge(parts: list[dict[str, Any]], windows: list[tuple[float, float]]) -> dict[str, Any]:
    """One answer from the parts' answers (each as `parse_output` gives it, plus `usage`):
    every tag at its best confidence, moments and transcript segments in order, one
    summary with each part's time range, the highest safety level per category, the
    parts' warnings, usage summed."""
    dimensions: dict[str, dict[str, dict[str, Tag]]] = {}
    for part in parts:
        for dim, fields in part["dimensions"].items():
            for field, tags in fields.items():
                best = dimensions.setdefault(dim, {}).setdefault(field, {})
                for tag in tags:
                    tag = Tag.model_validate(tag)
                    if tag.tag not in best or best[tag.tag].confidence < tag.confidence:
                        best[tag.tag] = tag
    placed = [in_window([KeyMoment.model_validate(m) for m in part["key_moments"]], window)
              for part, window in zip(parts, windows, strict=True)]
    moments = sorted((m for kept, _, _ in placed for m in kept),
                     key=lambda m: (m.start_s, m.end_s))
    warnings = _placement_warnings(placed, windows)
    summary = " ".join(f"[{mmss(window[0])}–{mmss(window[1])}] {part['summary']}"
                       for part, window in zip(parts, windows, strict=True) if part["summary"])
    segments, spoken = transcript.merged(parts)
    return {
        "transcript": segments, "spoken_language": spoken,
        "warnings": [*(w for part in parts for w in part.get("warnings") or []), *warnings],
        "dimensions": {dim: {field: sorted(tags.values(), key=lambda t: -t.confidence)
                             for field, tags in fields.items()}
                       for dim, fields in dimensions.items()},
        "key_moments": moments, "summary": summary, "safety": _worst(parts),
        "usage": functools.reduce(added, (Usage.model_validate(p["usage"]) for p in parts),
                                  Usage()),
    }


EDGE_S = 1.0
"""A part's moment may start or end this far outside the part (a scene that runs on)."""


def in_window(moments: list[KeyMoment], window: tuple[float, float]
              ) -> tuple[list[KeyMoment], int, int]:
    """(the part's moments on the whole video's clock, how many were shifted, how many
    dropped). The model is told the part's times but sometimes answers on the part's own
    clock (00:01 for a moment of the part 12:30–25:00): a moment that lies inside the part
    is kept; one that lies inside it only when read from the part's start is shifted by
    that start; one that fits neither reading is dropped."""
    start, end = window
    length = end - start

    def inside(m: KeyMoment, offset: float) -> bool:
        return (start - EDGE_S <= m.start_s + offset <= end + EDGE_S
                and m.end_s + offset <= end + EDGE_S)

    kept, shifted, dropped = [], 0, 0
    for moment in moments:
        if inside(moment, 0.0):
            kept.append(moment)
        elif start > 0 and moment.start_s <= length + EDGE_S and inside(moment, start):
            kept.append(moment.model_copy(update={"start_s": round(moment.start_s + start, 2),
                                                  "end_s": round(moment.end_s + start, 2)}))
            shifted += 1
        else:
            dropped += 1
    return kept, shifted, dropped


def _placement_warnings(placed: list[tuple[list[KeyMoment], int, int]],
                        windows: list[tuple[float, float]]) -> list[str]:
    warnings = []
    for (_, shifted, dropped), (start, end) in zip(placed, windows, strict=True):
        span = f"{mmss(start)}–{mmss(end)}"
        if shifted:
            warnings.append(f"part {span}: {shifted} key moment(s) answered on the part's "
                            f"own clock, moved by {mmss(start)}")
        if dropped:
            warnings.append(f"part {span}: {dropped} key moment(s) outside the part dropped")
    return warnings


def _worst(parts: list[dict[str, Any]]) -> Safety | None:
    judged = [Safety.model_validate(p["safety"]) for p in parts if p.get("safety")]
    if not judged:
        return None
    categories: dict[str, SafetyJudgement] = {}
    for safety in judged:
        for name, item in safety.categories.items():
            kept = categories.get(name)
            if kept is None or LEVELS.index(item.level) > LEVELS.index(kept.level):
                categories[name] = item
    return Safety(categories=categories,
                  gemini_ratings=[r for s in judged for r in s.gemini_ratings])
