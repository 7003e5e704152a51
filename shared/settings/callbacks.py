"""Callbacks to the caller's URL when a task or batch finishes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CallbackSettings(BaseModel):
    CALLBACK_SECRET: str = ""
    CALLBACK_TIMEOUT_S: float = Field(default=10, gt=0, le=60)
    CALLBACK_MAX_ATTEMPTS: int = Field(default=4, ge=1, le=10)
