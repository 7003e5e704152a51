"""The transcript Gemini writes in the same call as the tags (issue 38): read from its
answer, fitted to the video like key moments (models invent times past the end, overlap
and disorder), merged over a long video's parts, and sized in output tokens.

An answer cut off at the output limit even after the retry with a larger budget is cut
at the last whole segment (`salvage`), with a warning: the transcript comes last in the
answer's property order, so everything before it is whole.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from shared.tagging.result import TRANSLATIONS, TranscriptSegment

TRANSCRIPT_KEYS = ("spoken_language", "transcript")
"""The answer's last properties, in this order (the schema's `propertyOrdering`)."""

TOKENS_PER_MINUTE = 900
"""Output tokens a minute of dense speech takes as segments: about 160 words or 250
Chinese characters of text plus each segment's times, speaker and JSON (~15 segments a
minute). `benchmarks/transcript_tokens.py` prints the figure measured on answers."""

TRANSLATION_TOKENS_PER_MINUTE = 450
"""Added per minute when each segment also carries a translation."""

MAX_SEGMENT_CHARS = 2000
"""A segment's text beyond this is cut (a model that loops does not fill the result)."""


def wanted(dimensions: list[str], has_audio: bool) -> bool:
    """A transcript is asked for with the audio dimension, of a file that has sound."""
    return "audio" in dimensions and has_audio


def output_budget(base: int, seconds: float, translate_to: str | None,
                  ceiling: int) -> int:
    """Output tokens for an answer with a transcript of `seconds` of video: the tags'
    budget plus the transcript's, at most `ceiling`."""
    per_minute = TOKENS_PER_MINUTE + (TRANSLATION_TOKENS_PER_MINUTE if translate_to else 0)
    return min(ceiling, base + math.ceil(max(seconds, 0) / 60 * per_minute))


def fingerprint(translate_to: str | None) -> str:
    """Part of the result-cache key: an answer with a translation is another question."""
    return f"-tr{translate_to}" if translate_to else ""


def check_translation(value: str | None) -> str | None:
    """`translate_to` is one of TRANSLATIONS (or absent)."""
    if value is not None and value not in TRANSLATIONS:
        raise ValueError(f"unsupported language {value[:16]!r} (supported: "
                         f"{', '.join(TRANSLATIONS)})")
    return value


def schema(translate_to: str | None) -> dict[str, Any]:
    """The response schema's transcript properties."""
    item: dict[str, Any] = {"start": {"type": "STRING"}, "end": {"type": "STRING"},
                            "speaker": {"type": "STRING"}, "text": {"type": "STRING"}}
    if translate_to:
        item["translation"] = {"type": "STRING"}
    return {
        "spoken_language": {"type": "STRING"},
        "transcript": {"type": "ARRAY", "items": {
            "type": "OBJECT", "properties": item, "propertyOrdering": list(item),
            "required": ["start", "end", "text"]}},
    }


def parse(raw: Any, seconds_of: Any) -> list[TranscriptSegment]:
    """Segments from the answer's `transcript` (times as `MM:SS`, `M:SS.s` or seconds);
    items without a start or text are skipped."""
    found = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        start, end = seconds_of(item.get("start")), seconds_of(item.get("end"))
        text = " ".join(item["text"].split())[:MAX_SEGMENT_CHARS]
        if start is None or not text:
            continue
        translation = item.get("translation")
        translation = " ".join(translation.split())[:MAX_SEGMENT_CHARS] \
            if isinstance(translation, str) and translation.strip() else None
        speaker = item.get("speaker") if isinstance(item.get("speaker"), str) else ""
        found.append(TranscriptSegment(
            start_s=round(start, 2), end_s=round(end if end is not None else start, 2),
            text=text, speaker=speaker.strip()[:40], translation=translation))
    return found


def language_of(raw: Any) -> str | None:
    """The answer's `spoken_language`, as a short lower-case code."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip().lower().replace("_", "-")[:16]


def fit(segments: list[TranscriptSegment], duration_s: float | None
        ) -> tuple[list[TranscriptSegment], list[str]]:
    """(segments inside the video, in time order, without overlap within a speaker;
    warnings saying what was fixed). Without a known duration only order and overlap."""
    warnings: list[str] = []
    kept, past, clamped = [], 0, 0
    for segment in segments:
        start, end = segment.start_s, max(segment.end_s, segment.start_s)
        if duration_s and duration_s > 0:
            if start >= duration_s:
                past += 1
                continue
            if end > duration_s:
                clamped += 1
                end = duration_s
        kept.append(segment.model_copy(update={"start_s": round(start, 2),
                                               "end_s": round(end, 2)}))
    if past:
        warnings.append(f"{past} transcript segment(s) past the end of the video "
                        f"({duration_s:g} s) dropped")
    if clamped:
        warnings.append(f"{clamped} transcript segment(s) ending past the end of the video "
                        "cut at its end")
    ordered = sorted(kept, key=lambda s: (s.start_s, s.end_s))
    if ordered != kept:
        warnings.append("transcript segments were out of order: sorted by time")
    separated, overlaps = _separated(ordered)
    if overlaps:
        warnings.append(f"{overlaps} overlapping transcript segment(s) of one speaker "
                        "moved after the one before")
    return separated, warnings


def _separated(segments: list[TranscriptSegment]) -> tuple[list[TranscriptSegment], int]:
    """Within a speaker, a segment starting before the previous one ends starts at that
    end; one that would then be empty is joined to the previous one."""
    out: list[TranscriptSegment] = []
    last: dict[str, int] = {}
    overlaps = 0
    for segment in segments:
        index = last.get(segment.speaker)
        before = out[index] if index is not None else None
        if before is None or segment.start_s >= before.end_s:
            last[segment.speaker] = len(out)
            out.append(segment)
            continue
        overlaps += 1
        if segment.end_s > before.end_s:
            last[segment.speaker] = len(out)
            out.append(segment.model_copy(update={"start_s": before.end_s}))
        else:
            out[index] = _joined(before, segment)
    return sorted(out, key=lambda s: (s.start_s, s.end_s)), overlaps


def _joined(first: TranscriptSegment, second: TranscriptSegment) -> TranscriptSegment:
    translation = " ".join(t for t in (first.translation, second.translation) if t) or None
    return first.model_copy(update={"text": f"{first.text} {second.text}",
                                    "translation": translation})


def merged(parts: list[dict[str, Any]]) -> tuple[list[TranscriptSegment], str | None]:
    """A long video's parts' transcripts as one (in time order) and the language spoken
    most (by characters) over all of them."""
    segments = sorted((TranscriptSegment.model_validate(s) for part in parts
                       for s in part.get("transcript") or []),
                      key=lambda s: (s.start_s, s.end_s))
    weight: Counter[str] = Counter()
    for part in parts:
        if part.get("spoken_language"):
            weight[part["spoken_language"]] += sum(
                len(s.get("text", "")) for s in part.get("transcript") or []) or 1
    return segments, (weight.most_common(1)[0][0] if weight else None)


def salvage(text: str) -> tuple[dict[str, Any], int] | None:
    """An answer cut off inside its transcript, made whole: every property before it and
    the segments that were complete. (data, segments kept), or None when the cut is
    elsewhere (then nothing can be kept)."""
    body = text.strip()
    at = body.rfind('"transcript"')
    if not body.startswith("{") or at < 0:
        return None
    head = body[:at].rstrip().rstrip(",")
    try:
        data = json.loads(head + "}")
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    data["transcript"] = _whole_items(body, body.find("[", at))
    return data, len(data["transcript"])


def _whole_items(body: str, start: int) -> list[Any]:
    """The complete JSON values of the array that opens at `start`."""
    if start < 0:
        return []
    decoder, items, position = json.JSONDecoder(), [], start + 1
    while True:
        while position < len(body) and body[position] in " \t\r\n,":
            position += 1
        if position >= len(body) or body[position] == "]":
            return items
        try:
            value, position = decoder.raw_decode(body, position)
        except json.JSONDecodeError:
            return items
        items.append(value)
