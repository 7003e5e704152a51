"""The periodic jobs' settings: how long videos and tasks are kept, when the clean-up runs,
how often the rollups are recounted."""

from __future__ import annotations

from datetime import time as dt_time

from pydantic import BaseModel, Field, field_validator

from shared.settings.types import known_zone


class HousekeepingSettings(BaseModel):
    CACHE_DAYS: int = Field(default=7, ge=1)
    TASK_RETENTION_DAYS: int | None = Field(default=None, ge=1)
    ARCHIVE_BEFORE_DELETE: bool = True
    RETENTION_CHUNK: int = Field(default=500, ge=1, le=5000)
    CLEANUP_AT: str = "03:00"
    CLEANUP_TZ: str = "Asia/Shanghai"
    ROLLUP_RECOUNT_S: float = Field(default=900, ge=0)

    @field_validator("TASK_RETENTION_DAYS", mode="before")
    @classmethod
    def _retention_off(cls, value: object) -> object:
        """Unset or empty: tasks are kept for ever (0 is refused: it would delete every
        finished task at the next run)."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("CLEANUP_AT")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        try:
            dt_time.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a time of day, HH:MM or HH:MM:SS") from None
        return value

    @field_validator("CLEANUP_TZ")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @property
    def cleanup_time(self) -> dt_time:
        return dt_time.fromisoformat(self.CLEANUP_AT)
