"""The Gemini key pool: its quota windows and day, probes of disabled keys, alerts."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from shared.settings.types import http_url, known_zone


class PoolSettings(BaseModel):
    GEMINI_RATE_WINDOW_S: float = Field(default=60, gt=0)
    QUOTA_TZ: str = "America/Los_Angeles"
    # key pool operations (issue 25): probes of disabled keys, alerts
    POOL_PROBE_INTERVAL_S: float = Field(default=900, ge=10)
    POOL_PROBE_TIMEOUT_S: float = Field(default=10, gt=0, le=120)
    POOL_ALERT_URL: str = ""
    POOL_ALERT_SECRET: str = ""
    POOL_ALERT_BELOW: float = Field(default=0.2, ge=0, le=1)
    POOL_ALERT_REPEAT_S: float = Field(default=3600, ge=60)

    @field_validator("QUOTA_TZ")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("POOL_ALERT_URL")
    @classmethod
    def _alert_url(cls, value: str) -> str:
        return http_url(value, "no alerts")
