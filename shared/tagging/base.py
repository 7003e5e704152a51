"""What every tagger receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.tagging import transcript, vocabulary
from shared.tagging.result import TagResult
from shared.video.frames import Frame
from shared.video.probe import MediaInfo
from shared.video.source import VideoSource, source_of


@dataclass(frozen=True)
class TagRequest:
    video_path: Path | VideoSource
    """The video: a stored one read in place (`VideoSource`), or a local file."""
    media: MediaInfo
    dimensions: list[str]
    language: str
    frames: tuple[Frame, ...] = ()
    scene_changes: int | None = None
    cuts: tuple[float, ...] = ()
    """Shot boundaries found while extracting key frames (seconds)."""
    vocabulary: dict[str, Any] | None = None
    """The caller's own vocabulary (`shared.tagging.vocabulary.parse`)."""
    windows_done: dict[str, Any] | None = None
    """A long video's parts already answered (by an earlier delivery), by part index."""
    on_window: Callable[[dict[str, Any]], object] | None = None
    """Called with every part answered so far, as soon as one more is in (kept on the row)."""
    translate_to: str | None = None
    """The language the transcript's segments are also given in (`TRANSLATIONS`)."""
    workdir: Path | None = None
    """The attempt's temporary folder (small files only: the audio track)."""

    @property
    def source(self) -> VideoSource:
        return source_of(self.video_path)


def request_fingerprint(request: TagRequest) -> str:
    """What a request adds to a tagger's prompt version (the result-cache key)."""
    return fingerprint(request.vocabulary, request.translate_to, request.dimensions,
                       request.media.has_audio)


def fingerprint(vocab: dict[str, Any] | None, translate_to: str | None,
                dimensions: list[str], has_audio: bool) -> str:
    """The caller's own vocabulary, and the transcript's translation where there is one
    to translate: another question, so never a cached answer to the plain one."""
    translated = translate_to if transcript.wanted(dimensions, has_audio) else None
    return vocabulary.fingerprint(vocab) + transcript.fingerprint(translated)


class Tagger(Protocol):
    """`provider`, `model` and `prompt_version` identify results for the result cache.

    A tagger that spends a quota (Gemini) is asked before the expensive stages run whether
    it will have a key soon (`check_quota` raises WaitForKey when not), so a task that must
    wait has not downloaded anything yet."""

    provider: str
    model: str
    prompt_version: str
    needs_quota: bool

    def check_quota(self) -> None: ...

    def tag(self, request: TagRequest) -> TagResult: ...
