"""Where videos and frames are kept: one interface, a local folder (GCS comes later).

Object keys follow DESIGN §10 and derive from the task, so a rerun overwrites instead of
piling up copies: `videos/YYYY/MM/DD/{task_id}/source.{ext}`.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Protocol


def video_key(created_at: datetime, task_id: str, ext: str) -> str:
    return f"videos/{created_at:%Y/%m/%d}/{task_id}/source.{ext}"


class Storage(Protocol):
    def put_file(self, key: str, path: Path, content_type: str) -> str:
        """Store the file under `key`; return its URI."""

    def exists(self, key: str) -> bool: ...

    def ping(self) -> None:
        """Raise when the storage cannot be written."""


class LocalStorage:
    """Objects as files under a root folder (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def put_file(self, key: str, path: Path, content_type: str = "") -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        partial.replace(target)
        return target.as_uri()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / ".healthz"
        probe.write_text("ok")
        probe.unlink()
