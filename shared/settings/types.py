"""Value types several groups use."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode


def split_commas(value: object) -> object:
    """`a, b,,c` → ["a", "b", "c"]: a comma list in one variable."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_commas)]
"""A list given as one comma-separated variable (not JSON)."""


def known_zone(value: str) -> str:
    """An IANA time zone name, or ValueError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone (use an IANA name like America/Los_Angeles)") \
            from None
    return value


def http_url(value: str, empty_means: str) -> str:
    """An http(s) URL or empty (which means `empty_means`)."""
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http(s) URL (or empty: {empty_means})")
    return value
