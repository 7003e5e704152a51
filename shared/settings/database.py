"""The task store: which database, and the time limits on every call to it."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from shared.settings.paths import VAR_DIR


class DatabaseSettings(BaseModel):
    DATABASE_URL: str = f"sqlite:///{VAR_DIR / 'vision_to_tag.db'}"
    DB_POOL_SIZE: int = Field(default=5, ge=1, le=100)
    # time limits on every dependency call: a call past its limit is an outage (503)
    DB_CONNECT_TIMEOUT_S: float = Field(default=3, gt=0, le=60)
    DB_READ_TIMEOUT_S: float = Field(default=3, gt=0, le=600)
    DB_WRITE_TIMEOUT_S: float = Field(default=3, gt=0, le=600)
    DB_POOL_TIMEOUT_S: float = Field(default=2, gt=0, le=60)
    DB_POOL_PRE_PING: bool = True
    DB_POOL_RECYCLE_S: int = Field(default=1800, gt=0)
    DB_MIGRATION_TIMEOUT_S: float = Field(default=300, gt=0)
    SQLITE_BUSY_TIMEOUT_S: float = Field(default=5, gt=0, le=600)

    @field_validator("DATABASE_URL")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "mysql+pymysql:")):
            raise ValueError("must start with sqlite:/// or mysql+pymysql://")
        return value
