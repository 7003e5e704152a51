"""Where videos and frames are kept, and which buckets a task may read from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from shared.settings.paths import VAR_DIR
from shared.settings.types import CommaList


class StorageSettings(BaseModel):
    STORAGE: Literal["local", "gcs"] = "local"
    STORAGE_DIR: Path = VAR_DIR / "storage"
    GCS_BUCKET: str = ""
    GCS_TIMEOUT_S: float = Field(default=30, gt=0, le=600)
    GCS_RETRY_DEADLINE_S: float = Field(default=60, gt=0, le=3600)
    INPUT_BUCKETS: CommaList = []
    """Buckets whose objects a task may name as `gs://bucket/object` (read with the
    service's own credentials; issue 35). Empty: no gs:// URL is taken."""
    UPLOAD_TTL_S: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    """How long an upload (POST /api/v1/uploads) may wait to be finished and used by a
    create; the cleanup job removes it after that."""
