"""The HTTP API: who may call it (tokens, team keys, throttling of wrong keys), what a
request may name, and how long the synchronous route and /healthz wait."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from shared.settings.types import CommaList

ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,15}$")
"""An env names a search index and fits the 16-character column."""

AUTH_FAILURE_WINDOW_S = 60
"""Wrong API keys are counted per client address in a fixed window from the first one:
short, so a mistyped key costs a minute at most."""

AUTH_FAILURE_LIMIT = 20
"""Wrong keys an address may send in a window before its keys are refused (429): far more
than a person retrying, far too few to guess a key."""

MIN_PEPPER_CHARS = 32
"""API_KEY_PEPPER is a secret the key hashes are keyed with: long and random."""


class ApiSettings(BaseModel):
    API_TOKENS: CommaList = []
    API_KEY_PEPPER: str = ""
    AUTH_FAILURE_LIMIT: int = Field(default=AUTH_FAILURE_LIMIT, ge=1, le=100_000)
    AUTH_FAILURE_WINDOW_S: int = Field(default=AUTH_FAILURE_WINDOW_S, ge=1, le=86400)
    TRUSTED_PROXY_HOPS: int = Field(default=0, ge=0, le=10)
    PLATFORMS: CommaList = ["rpa", "miaobi"]
    ENVS: CommaList = ["develop", "production"]
    SYNC_TIMEOUT_S: float = Field(default=120, gt=0)
    HEALTH_TIMEOUT_S: float = Field(default=2, gt=0, le=30)

    @field_validator("PLATFORMS")
    @classmethod
    def _platforms_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one platform")
        return value

    @field_validator("ENVS")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one env")
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f"env {name!r}: 1-16 of a-z, 0-9, _ and -, starting with a "
                                 "letter or digit (it names a search index)")
        return value

    @field_validator("API_KEY_PEPPER")
    @classmethod
    def _long_pepper(cls, value: str) -> str:
        if value and len(value) < MIN_PEPPER_CHARS:
            raise ValueError(f"at least {MIN_PEPPER_CHARS} characters (e.g. "
                             "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        return value
