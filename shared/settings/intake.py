"""What videos are taken in: where from, how big and long, and the download's limits."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from shared.settings.types import CommaList


class IntakeSettings(BaseModel):
    MAX_VIDEO_MB: float = Field(default=2048, gt=0)
    MAX_VIDEO_SECONDS: float = Field(default=4 * 3600, gt=0)
    DOWNLOAD_CONNECT_TIMEOUT_S: float = Field(default=10, gt=0)
    DOWNLOAD_READ_TIMEOUT_S: float = Field(default=30, gt=0)
    DOWNLOAD_TOTAL_TIMEOUT_S: float = Field(default=300, gt=0)
    ALLOW_PRIVATE_URLS: bool = False
    PRIVATE_URL_ALLOWLIST: CommaList = []

    @field_validator("PRIVATE_URL_ALLOWLIST")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for entry in value:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"entry {entry!r} is not host:port")
        return [entry.lower() for entry in value]

    @property
    def max_video_bytes(self) -> int:
        return int(self.MAX_VIDEO_MB * 1024 * 1024)
