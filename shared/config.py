"""One Settings object, read from the environment and `.env`, validated at start-up.

Every variable is listed in `.env.example`. A bad value stops the process with one line
that names the variable (see `load_settings`).
"""

from __future__ import annotations

import os
import re
import sys
from datetime import time as dt_time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.logs import LOG_FILE_BACKUPS, LOG_FILE_MAX_MB

ROOT = Path(__file__).resolve().parent.parent
"""Repository root: embedded defaults (SQLite file, Redis socket, videos) live under `var/`."""

VAR_DIR = Path(os.environ.get("VAR_DIR") or ROOT / "var")
"""Where the embedded defaults keep their files (database, Redis, videos, logs, the stack's
lock): `var/` of the checkout, or the environment's VAR_DIR (read at import, not from
`.env`: a second local stack beside the first, a test's own folder)."""

CommaList = Annotated[list[str], NoDecode]

CLOUD_TASKS_QUEUE_PATH = re.compile(
    r"^projects/[a-z][a-z0-9-]{4,61}[a-z0-9]/locations/[a-z0-9-]+/queues/[A-Za-z0-9-]{1,100}$"
)
"""projects/PROJECT/locations/LOCATION/queues/QUEUE, as Cloud Tasks spells it."""

ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,15}$")
"""An env names a search index and fits the 16-character column."""

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

LOCAL_WORKER_URL = "http://127.0.0.1:8081/"
"""The worker's address when WORKER_URL is unset (the local stack)."""


AUTH_FAILURE_WINDOW_S = 60
"""Wrong API keys are counted per client address in a fixed window from the first one:
short, so a mistyped key costs a minute at most."""

AUTH_FAILURE_LIMIT = 20
"""Wrong keys an address may send in a window before its keys are refused (429): far more
than a person retrying, far too few to guess a key."""

MIN_PEPPER_CHARS = 32
"""API_KEY_PEPPER is a secret the key hashes are keyed with: long and random."""


class ConfigError(SystemExit):
    """Raised with a one-line message naming the variable that is wrong."""


class Settings(BaseSettings):
    """Service configuration; field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    DATABASE_URL: str = f"sqlite:///{VAR_DIR / 'vision_to_tag.db'}"
    REDIS_URL: str = ""
    STORAGE: Literal["local", "gcs"] = "local"
    STORAGE_DIR: Path = VAR_DIR / "storage"
    GCS_BUCKET: str = ""
    QUEUE: Literal["redis", "cloudtasks"] = "redis"
    CLOUD_TASKS_QUEUE: str = ""
    WORKER_URL: str = ""
    CLOUD_TASKS_EMULATOR_HOST: str = ""
    TASKS_SERVICE_ACCOUNT: str = ""
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
    GEMINI_RATE_WINDOW_S: float = Field(default=60, gt=0)
    RESULT_CACHE: bool = True
    SHARE_RESULT_CACHE: bool = False
    """Teams reuse each other's results for the same video (only the result, never the
    task); off: the result cache never crosses teams (issue 36)."""
    FAIR_SHARE: bool = True
    """Teams share the key pool by weighted fair queuing (issue 36; weights: `vtt-keys
    caps --weight`); off: deliveries are taken first come, first served."""
    REUSE: Literal["exact", "similar", "none"] = "exact"
    # Gemini Batch mode (issue 27)
    DEFAULT_MODE: Literal["interactive", "batch"] = "interactive"
    BATCH_MAX_WAIT_S: float = Field(default=86400, gt=0)
    BATCH_POLL_S: float = Field(default=60, gt=0)
    BATCH_MAX_TASKS: int = Field(default=500, ge=1, le=10000)
    SYNC_TIMEOUT_S: float = Field(default=120, gt=0)
    TAG_INPUT: Literal["video", "frames"] = "video"
    INLINE_MAX_MB: float = Field(default=18, gt=0)
    MAX_VIDEO_MB: float = Field(default=2048, gt=0)
    MAX_VIDEO_SECONDS: float = Field(default=4 * 3600, gt=0)
    TASK_TIMEOUT_S: int = Field(default=90, ge=1, le=1800)
    DISPATCH_DEADLINE_S: int = Field(default=900, ge=15, le=1800)
    MAX_ATTEMPTS: int = Field(default=5, ge=1, le=100)
    MAX_QUOTA_WAIT_S: float = Field(default=86400, gt=0)
    RECONCILE_GRACE_S: float = Field(default=60, gt=0)
    ROLLUP_RECOUNT_S: float = Field(default=900, ge=0)
    CACHE_DAYS: int = Field(default=7, ge=1)
    TASK_RETENTION_DAYS: int | None = Field(default=None, ge=1)
    ARCHIVE_BEFORE_DELETE: bool = True
    RETENTION_CHUNK: int = Field(default=500, ge=1, le=5000)
    CLEANUP_AT: str = "03:00"
    CLEANUP_TZ: str = "Asia/Shanghai"
    DOWNLOAD_CONNECT_TIMEOUT_S: float = Field(default=10, gt=0)
    DOWNLOAD_READ_TIMEOUT_S: float = Field(default=30, gt=0)
    DOWNLOAD_TOTAL_TIMEOUT_S: float = Field(default=300, gt=0)
    ES_URL: str = ""
    ES_INDEX_PREFIX: str = "vision-to-tag"
    ES_COMPAT_HEADERS: bool = True
    CALLBACK_SECRET: str = ""
    CALLBACK_TIMEOUT_S: float = Field(default=10, gt=0, le=60)
    CALLBACK_MAX_ATTEMPTS: int = Field(default=4, ge=1, le=10)
    API_TOKENS: CommaList = []
    API_KEY_PEPPER: str = ""
    AUTH_FAILURE_LIMIT: int = Field(default=AUTH_FAILURE_LIMIT, ge=1, le=100_000)
    AUTH_FAILURE_WINDOW_S: int = Field(default=AUTH_FAILURE_WINDOW_S, ge=1, le=86400)
    TRUSTED_PROXY_HOPS: int = Field(default=0, ge=0, le=10)
    WORKER_TOKEN: str = ""
    ALLOW_PRIVATE_URLS: bool = False
    PRIVATE_URL_ALLOWLIST: CommaList = []
    QUOTA_TZ: str = "America/Los_Angeles"
    PLATFORMS: CommaList = ["rpa", "miaobi"]
    ENVS: CommaList = ["develop", "production"]
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"
    LOG_FILE_MAX_MB: float = Field(default=LOG_FILE_MAX_MB, gt=0)
    LOG_FILE_BACKUPS: int = Field(default=LOG_FILE_BACKUPS, ge=0, le=100)
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
    REDIS_CONNECT_TIMEOUT_S: float = Field(default=2, gt=0, le=60)
    REDIS_SOCKET_TIMEOUT_S: float = Field(default=3, gt=0, le=600)
    REDIS_HEALTH_CHECK_INTERVAL_S: float = Field(default=30, gt=0)
    GCS_TIMEOUT_S: float = Field(default=30, gt=0, le=600)
    GCS_RETRY_DEADLINE_S: float = Field(default=60, gt=0, le=3600)
    INPUT_BUCKETS: CommaList = []
    """Buckets whose objects a task may name as `gs://bucket/object` (read with the
    service's own credentials; issue 35). Empty: no gs:// URL is taken."""
    UPLOAD_TTL_S: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    """How long an upload (POST /api/v1/uploads) may wait to be finished and used by a
    create; the cleanup job removes it after that."""
    ES_TIMEOUT_S: float = Field(default=10, gt=0, le=300)
    CLOUD_TASKS_TIMEOUT_S: float = Field(default=5, gt=0, le=60)
    HEALTH_TIMEOUT_S: float = Field(default=2, gt=0, le=30)
    # key pool operations (issue 25): probes of disabled keys, alerts
    POOL_PROBE_INTERVAL_S: float = Field(default=900, ge=10)
    POOL_PROBE_TIMEOUT_S: float = Field(default=10, gt=0, le=120)
    POOL_ALERT_URL: str = ""
    POOL_ALERT_SECRET: str = ""
    POOL_ALERT_BELOW: float = Field(default=0.2, ge=0, le=1)
    POOL_ALERT_REPEAT_S: float = Field(default=3600, ge=60)

    @field_validator("API_TOKENS", "PLATFORMS", "PRIVATE_URL_ALLOWLIST", "ENVS",
                     "GEMINI_FALLBACK_MODELS", "INPUT_BUCKETS", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("TASK_RETENTION_DAYS", mode="before")
    @classmethod
    def _retention_off(cls, value: object) -> object:
        """Unset or empty: tasks are kept for ever (0 is refused: it would delete every
        finished task at the next run)."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("PRIVATE_URL_ALLOWLIST")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for entry in value:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"entry {entry!r} is not host:port")
        return [entry.lower() for entry in value]

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

    @field_validator("DATABASE_URL")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "mysql+pymysql:")):
            raise ValueError("must start with sqlite:/// or mysql+pymysql://")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _known_redis(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (or be empty)")
        return value

    @field_validator("WORKER_URL")
    @classmethod
    def _http_worker(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("GEMINI_BASE_URL")
    @classmethod
    def _http_endpoints(cls, value: str) -> str:
        for url in (part.strip() for part in value.split(",") if part.strip()):
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url[:60]!r} is not an http(s) URL (a comma list of "
                                 "endpoints, or empty for Google's)")
        return value

    @field_validator("POOL_ALERT_URL")
    @classmethod
    def _alert_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http or https URL (or empty: no alerts)")
        return value

    @property
    def gemini_endpoints(self) -> list[str]:
        """Where Gemini requests go, in order of preference ("" = Google's own endpoint)."""
        return [part.strip() for part in self.GEMINI_BASE_URL.split(",") if part.strip()] \
            or [""]

    @field_validator("ES_URL")
    @classmethod
    def _http_search(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL (or empty: search disabled)")
        return value

    @field_validator("CLOUD_TASKS_QUEUE")
    @classmethod
    def _queue_path(cls, value: str) -> str:
        if value and not CLOUD_TASKS_QUEUE_PATH.match(value):
            raise ValueError("must look like projects/PROJECT/locations/LOCATION/queues/QUEUE")
        return value

    @model_validator(mode="after")
    def _backend_needs(self) -> Settings:
        if self.DEFAULT_MODE == "batch" and self.TAGGER != "gemini":
            raise ValueError("DEFAULT_MODE=batch needs TAGGER=gemini (the Batch API is "
                             "Gemini's)")
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

    @property
    def worker_url(self) -> str:
        """Where the queue delivers: WORKER_URL, or the local worker of scripts/stack.py."""
        return self.WORKER_URL or LOCAL_WORKER_URL

    @field_validator("CLEANUP_AT")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        try:
            dt_time.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a time of day, HH:MM or HH:MM:SS") from None
        return value

    @property
    def cleanup_time(self) -> dt_time:
        return dt_time.fromisoformat(self.CLEANUP_AT)

    @field_validator("QUOTA_TZ", "CLEANUP_TZ")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "unknown time zone (use an IANA name like America/Los_Angeles)"
            ) from None
        return value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def max_video_bytes(self) -> int:
        return int(self.MAX_VIDEO_MB * 1024 * 1024)


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
