"""A task's stored key frame, read back for the dashboard (the stored URI, `file://` or
`gs://`, is not something a browser can fetch)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from shared.app.context import Services
from shared.app.tasks import get_task
from shared.errors import InvalidInput, NotFound, ServiceUnavailable

INDEX = re.compile(r"^[0-9]{1,4}$")


def frame_bytes(services: Services, task_id: str, index: str,
                team: str | None = None) -> bytes:
    """The JPEG of `result.frames[index]` of the task (of `team`, when given)."""
    if not INDEX.match(index):
        raise InvalidInput("index: malformed (the frame's position in result.frames, "
                           "0 to 9999)")
    task = get_task(services, task_id, team)
    frames = task.result.frames if task.result else []
    position = int(index)
    if position >= len(frames):
        raise NotFound(f"index: task {task.task_id} has {len(frames)} stored frames, "
                       f"no frame {position}")
    key = services.storage.key_of(frames[position].uri)
    if key is None:
        raise NotFound(f"index: frame {position} is not in this deployment's storage")
    with tempfile.TemporaryDirectory(prefix="vtt-frame-") as folder:
        path = Path(folder) / "frame.jpg"
        try:
            services.storage.get_file(key, path)
        except FileNotFoundError:
            raise NotFound(f"index: frame {position} is no longer stored") from None
        except Exception as error:  # GCS or disk trouble: the storage is down, say so
            raise ServiceUnavailable("storage", type(error).__name__) from error
        return path.read_bytes()
