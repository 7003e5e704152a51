"""Value types several groups use."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode


def comma_parts(value: str) -> list[str]:
    """`a, b,,c` → ["a", "b", "c"]: a comma list in one variable."""
    return [part.strip() for part in value.split(",") if part.strip()]


def split_commas(value: object) -> object:
    """A comma list's parts when given as text (as `comma_parts`), else as given."""
    return comma_parts(value) if isinstance(value, str) else value


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
