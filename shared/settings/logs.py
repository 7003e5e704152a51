"""What is logged, in which form, and how the local stack's log files rotate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.logs import LOG_FILE_BACKUPS, LOG_FILE_MAX_MB


class LogSettings(BaseModel):
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"
    LOG_FILE_MAX_MB: float = Field(default=LOG_FILE_MAX_MB, gt=0)
    LOG_FILE_BACKUPS: int = Field(default=LOG_FILE_BACKUPS, ge=0, le=100)

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
