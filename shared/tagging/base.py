"""What every tagger receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


class Tagger(Protocol):
    """`provider`, `model` and `prompt_version` identify results for the result cache.

    A tagger that spends a quota (Gemini) reserves its slot before the expensive stages
    run (`reserve` raises WaitForKey when none is free) and uses it in `tag`; a
    reservation that ends up unused is given back with `cancel`."""

    provider: str
    model: str
    prompt_version: str
    reserves_quota: bool

    def reserve(self) -> object | None: ...

    def cancel(self, reservation: object) -> None: ...

    def tag(self, request: TagRequest, reservation: object | None = None) -> TagResult: ...
