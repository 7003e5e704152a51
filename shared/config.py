"""The service's settings: every group of `shared.settings` together, read from the
environment and `.env` once, validated at start-up.

Every variable is listed in `.env.example`, in the same groups. A bad value stops the process
with one line that names the variable (see `load_settings`). A part of the service is handed
only its group (`settings.database`, `settings.queue`, ...), never the whole.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings.api import AUTH_FAILURE_LIMIT, AUTH_FAILURE_WINDOW_S, ApiSettings
from shared.settings.callbacks import CallbackSettings
from shared.settings.database import DatabaseSettings
from shared.settings.housekeeping import HousekeepingSettings
from shared.settings.intake import IntakeSettings
from shared.settings.logs import LogSettings
from shared.settings.paths import ROOT, VAR_DIR
from shared.settings.pool import PoolSettings
from shared.settings.queue import QueueSettings
from shared.settings.redis import RedisSettings
from shared.settings.reuse import ReuseSettings
from shared.settings.search import SearchSettings
from shared.settings.storage import StorageSettings
from shared.settings.tagging import DEFAULT_GEMINI_PRICES, TaggingSettings

__all__ = ["AUTH_FAILURE_LIMIT", "AUTH_FAILURE_WINDOW_S", "DEFAULT_GEMINI_PRICES", "ROOT",
           "VAR_DIR", "ConfigError", "Settings", "get_settings", "load_settings", "shown"]

Group = TypeVar("Group", bound=BaseModel)


class ConfigError(SystemExit):
    """Raised with a one-line message naming the variable that is wrong."""


class Settings(DatabaseSettings, RedisSettings, StorageSettings, QueueSettings,
               TaggingSettings, PoolSettings, ReuseSettings, IntakeSettings, SearchSettings,
               ApiSettings, CallbackSettings, HousekeepingSettings, LogSettings, BaseSettings):
    """Every group; field names are the environment variable names. Checks that span groups
    are here, each group's own in its module."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    @model_validator(mode="after")
    def _backend_needs(self) -> Settings:
        if self.STORAGE == "gcs" and not self.GCS_BUCKET:
            raise ValueError("GCS_BUCKET must be set when STORAGE=gcs")
        if self.QUEUE == "cloudtasks" and not self.CLOUD_TASKS_QUEUE:
            raise ValueError("CLOUD_TASKS_QUEUE must be set when QUEUE=cloudtasks")
        if self.QUEUE == "cloudtasks" and not self.WORKER_URL:
            raise ValueError("WORKER_URL must be set when QUEUE=cloudtasks "
                             "(the URL of the process_task function)")
        if self.QUEUE == "cloudtasks" and not self.REDIS_URL:
            raise ValueError("REDIS_URL must be set when QUEUE=cloudtasks "
                             "(the embedded Redis is for a single machine)")
        if self.QUEUE == "cloudtasks" and self.DATABASE_URL.startswith("sqlite"):
            raise ValueError("DATABASE_URL must be MySQL when QUEUE=cloudtasks "
                             "(SQLite lives on one machine)")
        return self

    def group(self, kind: type[Group]) -> Group:
        """The settings of one group, and nothing else (already validated)."""
        return kind.model_construct(**{name: getattr(self, name) for name in kind.model_fields})

    @property
    def database(self) -> DatabaseSettings:
        return self.group(DatabaseSettings)

    @property
    def redis(self) -> RedisSettings:
        return self.group(RedisSettings)

    @property
    def storage(self) -> StorageSettings:
        return self.group(StorageSettings)

    @property
    def queue(self) -> QueueSettings:
        return self.group(QueueSettings)

    @property
    def tagging(self) -> TaggingSettings:
        return self.group(TaggingSettings)

    @property
    def pool(self) -> PoolSettings:
        return self.group(PoolSettings)

    @property
    def reuse(self) -> ReuseSettings:
        return self.group(ReuseSettings)

    @property
    def intake(self) -> IntakeSettings:
        return self.group(IntakeSettings)

    @property
    def search(self) -> SearchSettings:
        return self.group(SearchSettings)

    @property
    def api(self) -> ApiSettings:
        return self.group(ApiSettings)

    @property
    def callbacks(self) -> CallbackSettings:
        return self.group(CallbackSettings)

    @property
    def housekeeping(self) -> HousekeepingSettings:
        return self.group(HousekeepingSettings)

    @property
    def logs(self) -> LogSettings:
        return self.group(LogSettings)


def describe_error(error: ValidationError) -> str:
    """One line per invalid variable: `CONFIG: MAX_ATTEMPTS=abc: <reason>`."""
    lines = []
    for item in error.errors():
        if not item["loc"]:
            lines.append(f"invalid configuration: {item['msg'].removeprefix('Value error, ')}")
            continue
        name = ".".join(str(part) for part in item["loc"])
        lines.append(f"invalid configuration: {name}={shown(name, item.get('input'))!r}: "
                     f"{item['msg']}")
    return "\n".join(lines)


SECRET_PARTS = ("TOKEN", "SECRET", "PASSWORD", "API_KEY", "PEPPER")
"""A variable whose name holds one of these is a secret: its value is never shown."""


def shown(name: str, value: object) -> object:
    """A value as an error message may show it: secrets masked, a URL's password masked,
    everything else as given (a bad `ALLOW_PRIVATE_URLS` is no secret)."""
    if any(part in name.upper() for part in SECRET_PARTS):
        return "***"
    if isinstance(value, str) and name.upper().endswith(("_URL", "_URLS")):
        return re.sub(r"(://[^/:@\s]*:)[^@/\s]*@", r"\1***@", value)
    return value


def load_settings(**overrides: object) -> Settings:
    """Read the settings; exit with a clear message naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(describe_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()


if __name__ == "__main__":
    print(get_settings().model_dump_json(indent=2), file=sys.stdout)
