"""Prompts, the response schema and the normalisation of what the model answers.

The prompt text lives in `prompts/` as one file per block and language. The prompt
version is a hash of those files, so editing a prompt changes the version, which is part
of the result and of the result-cache key (an old answer is never reused for a new prompt).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from shared.tagging import transcript
from shared.tagging.result import (
    SAFETY_CATEGORIES,
    SUBCATEGORIES,
    KeyMoment,
    Safety,
    SafetyJudgement,
    Tag,
    flatten_tags,
)
from shared.tagging.taxonomy import Taxonomy

PROMPTS = Path(__file__).resolve().parent / "prompts"
MAX_KEY_MOMENTS = 8
MAX_TAGS_PER_LIST = 20
LANGUAGE_NAMES = {"zh": {"zh": "中文", "en": "英文"}, "en": {"zh": "Chinese", "en": "English"}}
"""`translate_to` as the prompt names it, by prompt language."""
ORIENTATION_WORDS = {
    "zh": {"portrait": "竖屏", "landscape": "横屏", "square": "方形画面", None: "画面未知"},
    "en": {"portrait": "portrait", "landscape": "landscape", "square": "square",
           None: "unknown frame"},
}


@cache
def template(name: str, language: str) -> str:
    return (PROMPTS / f"{name}.{language}.txt").read_text(encoding="utf-8").strip()


@lru_cache(maxsize=1)
def prompt_version() -> str:
    """`p-` + 10 hex of the prompt files' contents."""
    digest = hashlib.sha256()
    for path in sorted(PROMPTS.glob("*.txt")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"p-{digest.hexdigest()[:10]}"


def mmss(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def system_instruction(language: str) -> str:
    return template("system", language)


def vocabulary(dimensions: list[str], language: str, taxonomy: Taxonomy | None) -> str:
    """The preferred tags of each field, for the instructions (constant per dimensions)."""
    if taxonomy is None:
        return ""
    lead = "优先使用这些标准标签：" if language == "zh" else "Prefer these canonical tags:"
    lines = [f"- {dim}.{sub}: " + ", ".join(field.canonical.get(language, ()))
             for (dim, sub), field in taxonomy.fields.items()
             if dim in dimensions and field.canonical.get(language)]
    return "\n".join([lead, *lines]) if lines else ""


def user_prompt(dimensions: list[str], language: str, duration_s: float,
                orientation: str | None, frames_mode: bool,
                taxonomy: Taxonomy | None = None, *, transcribe: bool = False,
                translate_to: str | None = None) -> tuple[str, str]:
    """(instructions, facts). The instructions depend only on the dimensions, the
    language and whether speech is transcribed (and translated), so they go before the
    video and are byte-identical across such tasks (Gemini's implicit cache reuses a
    common prefix); the facts about this video go after it."""
    blocks = "\n\n".join(template(dim, language) for dim in dimensions)
    instructions = template("request", language).format(
        blocks=blocks,
        input_note=template("frames_note", language) if frames_mode else "",
    ).strip()
    words = vocabulary(dimensions, language, taxonomy)
    if words:
        instructions += "\n\n" + words
    if transcribe:
        instructions += "\n\n" + template("transcript", language)
        if translate_to:
            instructions += "\n" + template("translate", language).format(
                target=LANGUAGE_NAMES[language][translate_to])
    facts = template("facts", language).format(
        duration=mmss(duration_s),
        orientation=ORIENTATION_WORDS[language].get(orientation, orientation),
    ).strip()
    return instructions, facts


TAG_LIST = {
    "type": "ARRAY",
    "items": {
        "type": "OBJECT",
        "properties": {"tag": {"type": "STRING"}, "confidence": {"type": "NUMBER"}},
        "required": ["tag", "confidence"],
    },
}


def response_schema(dimensions: list[str], language: str = "zh",
                    taxonomy: Taxonomy | None = None, *, transcribe: bool = False,
                    translate_to: str | None = None) -> dict[str, Any]:
    """Only the requested dimensions: Gemini rejects very large schemas. A closed field of
    the vocabulary takes only its canonical tags (an enum). With `transcribe`, the
    transcript comes last (`propertyOrdering`), so an answer cut off at the output limit
    loses only its last segments (`transcript.salvage`)."""

    def tag_list(dim: str, sub: str) -> dict[str, Any]:
        allowed = taxonomy.enum(dim, sub, language) if taxonomy else None
        if not allowed:
            return TAG_LIST
        item = TAG_LIST["items"]
        return {**TAG_LIST, "items": {**item, "properties": {
            **item["properties"], "tag": {"type": "STRING", "enum": allowed}}}}

    properties: dict[str, Any] = {
        dim: {"type": "OBJECT",
              "properties": {sub: tag_list(dim, sub) for sub in SUBCATEGORIES[dim]},
              "required": list(SUBCATEGORIES[dim])}
        for dim in dimensions
    }
    properties["key_moments"] = {
        "type": "ARRAY",
        "items": {
            "type": "OBJECT",
            "properties": {"start": {"type": "STRING"}, "end": {"type": "STRING"},
                           "description": {"type": "STRING"},
                           "tags": {"type": "ARRAY", "items": {"type": "STRING"}}},
            "required": ["start", "end", "description"],
        },
    }
    properties["summary"] = {"type": "STRING"}
    properties["safety"] = {
        "type": "OBJECT",
        "properties": {category: {
            "type": "OBJECT",
            "properties": {"level": {"type": "STRING", "enum": list(SAFETY_LEVELS)},
                           "at": {"type": "STRING"}},
            "required": ["level"]} for category in SAFETY_CATEGORIES},
        "required": list(SAFETY_CATEGORIES),
    }
    required = [*dimensions, "key_moments", "summary", "safety"]
    if transcribe:
        properties.update(transcript.schema(translate_to))
        required += list(transcript.TRANSCRIPT_KEYS)
    return {"type": "OBJECT", "properties": properties, "required": required,
            "propertyOrdering": list(properties)}


SAFETY_LEVELS = ("none", "low", "medium", "high")


class ModelOutputError(ValueError):
    """The model's text is not the JSON object the schema asked for; `truncated` when the
    text ends inside the JSON (an answer cut off, not a wrong one)."""

    def __init__(self, message: str, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


def parse_output(text: str, dimensions: list[str], *, cut_transcript: bool = False
                 ) -> dict[str, Any]:
    """Normalise the model's JSON: clamp confidences, drop empty and duplicate tags, key
    moments and transcript segments in seconds (fitted to the video later: `moments.fit`,
    `transcript.fit`), the flat `tags` list by confidence, the model's safety judgement.
    `cut_transcript`: the answer was cut off at the output limit (and is not asked
    again): cut inside its transcript, it keeps the whole segments (with a warning in
    `warnings`) instead of failing."""
    body = _strip_fences(text or "")
    warnings: list[str] = []
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(body.rstrip()) - 1
        saved = transcript.salvage(body) if cut_transcript else None
        if saved is None:
            raise ModelOutputError(f"model output is not JSON: {error}",
                                   truncated=truncated) from None
        data, kept = saved
        warnings.append(f"transcript cut off at the output limit: kept its first {kept} "
                        "whole segment(s)")
    parsed = _normalised(data, dimensions)
    parsed["warnings"] = warnings
    return parsed


def _normalised(data: Any, dimensions: list[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ModelOutputError("model output is not a JSON object")
    result_dims = {dim: {sub: _tags(_get(data, dim, sub)) for sub in SUBCATEGORIES[dim]}
                   for dim in dimensions}
    moments = [m for m in (_moment(raw) for raw in _list(data.get("key_moments")))
               if m is not None]
    summary = data.get("summary") if isinstance(data.get("summary"), str) else ""
    segments = transcript.parse(data.get("transcript"), seconds_of)
    return {"dimensions": result_dims, "tags": flatten_tags(result_dims),
            "key_moments": moments, "summary": summary.strip(),
            "safety": _safety(data.get("safety")), "transcript": segments,
            "spoken_language": transcript.language_of(data.get("spoken_language"))
            if segments else None}


def _safety(raw: Any) -> Safety | None:
    if not isinstance(raw, dict):
        return None
    categories = {}
    for category in SAFETY_CATEGORIES:
        item = raw.get(category)
        item = item if isinstance(item, dict) else {}
        level = item.get("level") if item.get("level") in SAFETY_LEVELS else "none"
        at = seconds_of(item.get("at")) if level != "none" else None
        categories[category] = SafetyJudgement(level=level, at_s=at)
    return Safety(categories=categories)


def _strip_fences(text: str) -> str:
    match = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.DOTALL)
    return match.group(1) if match else text


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _get(data: dict[str, Any], dim: str, sub: str) -> list[Any]:
    block = data.get(dim)
    return _list(block.get(sub)) if isinstance(block, dict) else []


def _tags(raw: list[Any]) -> list[Tag]:
    best: dict[str, float] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("tag"), str):
            continue
        name = item["tag"].strip().lstrip("#").strip()
        confidence = item.get("confidence")
        if not name or isinstance(confidence, bool) or not isinstance(confidence, int | float):
            continue
        if math.isnan(confidence):
            continue
        best[name] = max(best.get(name, 0.0), min(1.0, max(0.0, float(confidence))))
    ordered = sorted(best.items(), key=lambda pair: -pair[1])[:MAX_TAGS_PER_LIST]
    return [Tag(tag=name, confidence=round(conf, 3)) for name, conf in ordered]


def seconds_of(value: Any) -> float | None:
    """`MM:SS`, `HH:MM:SS`, `M:SS.s` or a number of seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    parts = value.strip().split(":")
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        return None
    if not 1 <= len(numbers) <= 3 or any(n < 0 for n in numbers):
        return None
    total = 0.0
    for number in numbers:
        total = total * 60 + number
    return total


def _moment(raw: Any) -> KeyMoment | None:
    if not isinstance(raw, dict):
        return None
    start, end = seconds_of(raw.get("start")), seconds_of(raw.get("end"))
    if start is None:
        return None
    tags = [t.strip() for t in _list(raw.get("tags")) if isinstance(t, str) and t.strip()]
    description = raw.get("description") if isinstance(raw.get("description"), str) else ""
    return KeyMoment(start_s=round(start, 2), end_s=round(end if end is not None else start, 2),
                     description=description.strip(), tags=list(dict.fromkeys(tags)))
