"""What every tagger receives and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.tagging.result import TagResult
from shared.video.frames import Frame
from shared.video.probe import MediaInfo


@dataclass(frozen=True)
class TagRequest:
    video_path: Path
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
