"""A stored video, read in place (issue 35): ffmpeg reads `location` (a local path, or a
signed URL it sends range requests to), the Gemini Files API upload reads `open()` chunk
by chunk. No step copies the whole video into memory or into the temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class VideoSource:
    location: str
    """What ffmpeg is given as its input: a path or an http(s) URL."""
    size_bytes: int
    opener: Callable[[], BinaryIO]
    """A fresh seekable reader from the start (the Files API upload needs to seek)."""

    def open(self) -> BinaryIO:
        return self.opener()

    def read_head(self, size: int = 512) -> bytes:
        with self.open() as handle:
            return handle.read(size)

    @property
    def local_path(self) -> Path | None:
        """The file itself when the video is on this machine."""
        return None if "://" in self.location else Path(self.location)

    @classmethod
    def of_path(cls, path: Path) -> VideoSource:
        return cls(str(path), path.stat().st_size, lambda: open(path, "rb"))


def source_of(video: Path | VideoSource) -> VideoSource:
    """A path given where a source is expected (tests, benchmarks, offline tools)."""
    return video if isinstance(video, VideoSource) else VideoSource.of_path(Path(video))
