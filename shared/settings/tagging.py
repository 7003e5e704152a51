"""The tagger: offline or Gemini, which models, their time limits and token budgets, how the
video is sent, and Batch mode. The Gemini tagger itself sees these through `GeminiConfig`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from shared.settings.types import CommaList, comma_parts

DEFAULT_GEMINI_PRICES = {
    "gemini-2.5-flash": {"input": 0.30, "cached": 0.075, "output": 2.50, "batch": 0.5},
    "gemini-2.5-flash-lite": {"input": 0.10, "cached": 0.025, "output": 0.40, "batch": 0.5},
    "gemini-2.5-pro": {"input": 1.25, "cached": 0.31, "output": 10.00, "batch": 0.5},
    "gemini-2.0-flash": {"input": 0.10, "cached": 0.025, "output": 0.40, "batch": 0.5},
}
"""USD per million tokens (paid tier, prompts ≤ 200k tokens; video input priced as text
on 2.5 flash), from ai.google.dev/gemini-api/docs/pricing as published in 2025; check the
page and override with GEMINI_PRICES (JSON) when prices change. `batch`: the share of
those prices a Batch API request costs (50%, issue 27; 0.5 when a model leaves it out)."""


class TaggingSettings(BaseModel):
    TAGGER: Literal["local", "gemini"] = "local"
    GEMINI_MODEL: str = "gemini-2.5-flash"
    GEMINI_BASE_URL: str = ""
    GEMINI_FALLBACK_MODELS: CommaList = []
    GEMINI_TIMEOUT_S: float = Field(default=120, gt=0)
    GEMINI_TIMEOUT_PER_MINUTE_S: float = Field(default=60, ge=0)
    GEMINI_TIMEOUT_PER_MB_S: float = Field(default=2, ge=0)
    GEMINI_THINKING_BUDGET: int = Field(default=0, ge=-1, le=32768)
    GEMINI_MEDIA_RESOLUTION: Literal["auto", "low", "medium", "high"] = "auto"
    GEMINI_LOW_RES_ABOVE_S: float = Field(default=300, ge=0)
    GEMINI_PRICES: dict[str, dict[str, float]] = DEFAULT_GEMINI_PRICES
    TAXONOMY_FILE: str = ""
    GEMINI_TEMPERATURE: float = Field(default=0.2, ge=0, le=2)
    GEMINI_MAX_OUTPUT_TOKENS: int = Field(default=8192, ge=256, le=65536)
    GEMINI_WINDOW_S: float = Field(default=1200, gt=0)
    GEMINI_DEADLINE_S: float = Field(default=240, gt=0)
    GEMINI_FILE_TIMEOUT_S: float = Field(default=120, gt=0)
    TAG_INPUT: Literal["video", "frames"] = "video"
    INLINE_MAX_MB: float = Field(default=18, gt=0)
    # Gemini Batch mode (issue 27)
    DEFAULT_MODE: Literal["interactive", "batch"] = "interactive"
    BATCH_MAX_WAIT_S: float = Field(default=86400, gt=0)
    BATCH_POLL_S: float = Field(default=60, gt=0)
    BATCH_MAX_TASKS: int = Field(default=500, ge=1, le=10000)

    @field_validator("GEMINI_BASE_URL")
    @classmethod
    def _http_endpoints(cls, value: str) -> str:
        for url in comma_parts(value):
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url[:60]!r} is not an http(s) URL (a comma list of "
                                 "endpoints, or empty for Google's)")
        return value

    @model_validator(mode="after")
    def _batch_is_geminis(self) -> TaggingSettings:
        if self.DEFAULT_MODE == "batch" and self.TAGGER != "gemini":
            raise ValueError("DEFAULT_MODE=batch needs TAGGER=gemini (the Batch API is "
                             "Gemini's)")
        return self

    @property
    def gemini_endpoints(self) -> list[str]:
        """Where Gemini requests go, in order of preference ("" = Google's own endpoint)."""
        return comma_parts(self.GEMINI_BASE_URL) or [""]
