"""Redis (queue, locks, key pool): where, and the time limits on every call to it."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class RedisSettings(BaseModel):
    REDIS_URL: str = ""
    """Empty: the embedded redis-server under var/."""
    REDIS_CONNECT_TIMEOUT_S: float = Field(default=2, gt=0, le=60)
    REDIS_SOCKET_TIMEOUT_S: float = Field(default=3, gt=0, le=600)
    REDIS_HEALTH_CHECK_INTERVAL_S: float = Field(default=30, gt=0)

    @field_validator("REDIS_URL")
    @classmethod
    def _known_redis(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (or be empty)")
        return value
