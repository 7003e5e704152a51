"""Subtitles from a result, in WebVTT or SRT, of one kind (`?kind=`):

- `transcript`: what was said — the transcript's segments, each cut into cues of at most
  MAX_LINES lines of MAX_LINE_CHARS characters (the usual broadcast limits), a long
  segment's time shared among its cues by their length; the default when the result has
  a transcript.
- `translation`: the same cues in the request's `translate_to`.
- `text`: on-screen text read by the offline tagger (key moments of source `text`).
- `moments`: every key moment, as before issue 38 (the default without a transcript);
  a cue's text is the moment's description, or its tags when it has none.

Every cue lasts at least MIN_CUE_S.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.tagging.result import KeyMoment, TagResult, TranscriptSegment

MIN_CUE_S = 1.0
"""Shorter cues cannot be read: one is shown at least this long."""
MAX_LINE_CHARS = 42
"""Characters a subtitle line holds (a CJK character counts as one)."""
MAX_LINES = 2
"""Lines a cue holds; longer speech goes on in the next cue."""
SUBTITLE_TYPES = {"vtt": "text/vtt; charset=utf-8", "srt": "application/x-subrip; charset=utf-8"}
SubtitleKind = Literal["transcript", "translation", "text", "moments"]
SUBTITLE_KINDS: tuple[str, ...] = ("transcript", "translation", "text", "moments")

Cue = tuple[float, float, str]


class SubtitlesQuery(BaseModel):
    """Query string of GET /api/v1/task/{task_id}/subtitles.{vtt,srt}."""

    model_config = ConfigDict(extra="forbid")

    kind: SubtitleKind | None = Field(
        default=None, description="`transcript` (what was said; the default when the result "
        "has a transcript), `translation` (the transcript in `translate_to`), `text` (on-screen "
        "text read by the offline tagger) or `moments` (every key moment; the default "
        "without a transcript)")


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def default_kind(result: TagResult) -> SubtitleKind:
    return "transcript" if result.transcript else "moments"


def cues(result: TagResult, kind: SubtitleKind | None = None) -> list[Cue]:
    """(start, end, text) of each cue of `kind`, in time order."""
    kind = kind or default_kind(result)
    if kind in ("transcript", "translation"):
        return speech_cues(result.transcript, translated=kind == "translation")
    moments = [m for m in result.key_moments if kind == "moments" or m.source == "text"]
    return moment_cues(moments)


def moment_cues(moments: list[KeyMoment]) -> list[Cue]:
    found = []
    for moment in sorted(moments, key=lambda m: (m.start_s, m.end_s)):
        text = moment.description.strip() or " / ".join(tag for tag in moment.tags if tag)
        text = "\n".join(line.strip() for line in text.splitlines() if line.strip())
        if text:
            found.append((moment.start_s, max(moment.end_s, moment.start_s + MIN_CUE_S), text))
    return found


def speech_cues(segments: list[TranscriptSegment], translated: bool = False) -> list[Cue]:
    """Each segment's text (or translation) in cues of at most MAX_LINES lines; the
    speaker is named at each change of voice when more than one speaks."""
    several = len({s.speaker for s in segments}) > 1
    found: list[Cue] = []
    previous: str | None = None
    for segment in sorted(segments, key=lambda s: (s.start_s, s.end_s)):
        text = segment.translation if translated else segment.text
        if not text or not text.strip():
            continue
        named = several and segment.speaker and segment.speaker != previous
        label = f"{segment.speaker}: " if named else ""
        previous = segment.speaker
        found += _timed(segment.start_s, segment.end_s, _blocks(label + text.strip()))
    return found


def _timed(start: float, end: float, blocks: list[str]) -> list[Cue]:
    """The segment's time shared by the blocks in proportion to their length, each at
    least MIN_CUE_S."""
    total = sum(len(block) for block in blocks) or 1
    span = max(end - start, 0.0)
    timed, at = [], start
    for block in blocks:
        length = max(span * len(block) / total, MIN_CUE_S)
        timed.append((round(at, 3), round(at + length, 3), block))
        at += length
    return timed


def _blocks(text: str) -> list[str]:
    """`text` wrapped into lines of at most MAX_LINE_CHARS, grouped MAX_LINES a cue."""
    lines = wrap(text)
    return ["\n".join(lines[i:i + MAX_LINES]) for i in range(0, len(lines), MAX_LINES)]


def wrap(text: str, width: int = MAX_LINE_CHARS) -> list[str]:
    """Lines of at most `width` characters, broken at spaces where there are any; a word
    longer than a line (or text without spaces, such as Chinese) fills the line and is
    cut there."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > width:
            room = width - len(current) - (1 if current else 0)
            if room < 1:
                lines.append(current)
                current = ""
                continue
            head, word = word[:room], word[room:]
            lines.append(f"{current} {head}" if current else head)
            current = ""
        if not word:
            continue
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current] if current else lines


def render_subtitles(result: TagResult, fmt: str, kind: SubtitleKind | None = None) -> str:
    """`fmt` is vtt or srt. A blank line would end a cue early: text never holds one,
    and `-->` in text is written with a different arrow (it would start a new timing)."""
    lines = ["WEBVTT", ""] if fmt == "vtt" else []
    separator = "." if fmt == "vtt" else ","
    for number, (start, end, text) in enumerate(cues(result, kind), 1):
        lines += [str(number), f"{_clock(start, separator)} --> {_clock(end, separator)}",
                  text.replace("-->", "→"), ""]
    return "\n".join(lines)
