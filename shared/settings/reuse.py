"""When a task's result comes from an earlier task instead of a Gemini call."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ReuseSettings(BaseModel):
    RESULT_CACHE: bool = True
    SHARE_RESULT_CACHE: bool = False
    """Teams reuse each other's results for the same video (only the result, never the
    task); off: the result cache never crosses teams (issue 36)."""
    REUSE: Literal["exact", "similar", "none"] = "exact"
