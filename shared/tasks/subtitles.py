"""Subtitles from a result: every key moment — on-screen text, speech segments and what
the tagger marked as a moment — as a timed cue, in WebVTT or SRT.

The result keeps timings only in `key_moments` (the offline tagger puts each on-screen
text line and each speech segment there with its time range; Gemini its moments), so the
cues are those, in time order; a cue's text is the moment's description, or its tags
when it has none. A moment without length is shown for MIN_CUE_S.
"""

from __future__ import annotations

from shared.tagging.result import TagResult

MIN_CUE_S = 1.0
SUBTITLE_TYPES = {"vtt": "text/vtt; charset=utf-8", "srt": "application/x-subrip; charset=utf-8"}


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def cues(result: TagResult) -> list[tuple[float, float, str]]:
    """(start, end, text) of each key moment with something to say, in time order."""
    found = []
    for moment in sorted(result.key_moments, key=lambda m: (m.start_s, m.end_s)):
        text = moment.description.strip() or " / ".join(tag for tag in moment.tags if tag)
        text = "\n".join(line.strip() for line in text.splitlines() if line.strip())
        if not text:
            continue
        end = max(moment.end_s, moment.start_s + MIN_CUE_S) if moment.end_s <= moment.start_s \
            else moment.end_s
        found.append((moment.start_s, end, text))
    return found


def render_subtitles(result: TagResult, kind: str) -> str:
    """`kind` is vtt or srt. A blank line would end a cue early: text never holds one,
    and `-->` in text is written with a different arrow (it would start a new timing)."""
    lines = ["WEBVTT", ""] if kind == "vtt" else []
    separator = "." if kind == "vtt" else ","
    for number, (start, end, text) in enumerate(cues(result), 1):
        lines += [str(number), f"{_clock(start, separator)} --> {_clock(end, separator)}",
                  text.replace("-->", "→"), ""]
    return "\n".join(lines)
