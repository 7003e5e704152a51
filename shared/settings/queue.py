"""How tasks reach the worker (the local Redis queue or Cloud Tasks), and how long and how
often a task may run."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.settings.types import http_url

CLOUD_TASKS_QUEUE_PATH = re.compile(
    r"^projects/[a-z][a-z0-9-]{4,61}[a-z0-9]/locations/[a-z0-9-]+/queues/[A-Za-z0-9-]{1,100}$"
)
"""projects/PROJECT/locations/LOCATION/queues/QUEUE, as Cloud Tasks spells it."""

LOCAL_WORKER_URL = "http://127.0.0.1:8081/"
"""The worker's address when WORKER_URL is unset (the local stack)."""


class QueueSettings(BaseModel):
    QUEUE: Literal["redis", "cloudtasks"] = "redis"
    CLOUD_TASKS_QUEUE: str = ""
    WORKER_URL: str = ""
    WORKER_TOKEN: str = ""
    CLOUD_TASKS_EMULATOR_HOST: str = ""
    TASKS_SERVICE_ACCOUNT: str = ""
    CLOUD_TASKS_TIMEOUT_S: float = Field(default=5, gt=0, le=60)
    TASK_TIMEOUT_S: int = Field(default=90, ge=1, le=1800)
    DISPATCH_DEADLINE_S: int = Field(default=900, ge=15, le=1800)
    MAX_ATTEMPTS: int = Field(default=5, ge=1, le=100)
    MAX_QUOTA_WAIT_S: float = Field(default=86400, gt=0)
    RECONCILE_GRACE_S: float = Field(default=60, gt=0)
    FAIR_SHARE: bool = True
    """Teams share the key pool by fair share (issue 36; weights: `vtt-keys caps
    --weight`); off: deliveries are taken first come, first served."""

    @field_validator("WORKER_URL")
    @classmethod
    def _http_worker(cls, value: str) -> str:
        return http_url(value, "the local stack's worker")

    @field_validator("CLOUD_TASKS_QUEUE")
    @classmethod
    def _queue_path(cls, value: str) -> str:
        if value and not CLOUD_TASKS_QUEUE_PATH.match(value):
            raise ValueError("must look like projects/PROJECT/locations/LOCATION/queues/QUEUE")
        return value

    @property
    def worker_url(self) -> str:
        """Where the queue delivers: WORKER_URL, or the local worker of scripts/stack.py."""
        return self.WORKER_URL or LOCAL_WORKER_URL
