"""Opaque pagination cursors: a JSON list, URL-safe base64 without padding.

The task listing keeps `[row id]`, search keeps Elasticsearch's `search_after` values.
A cursor that does not decode is the caller's mistake: `InvalidCursor` (400)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class InvalidCursor(ValueError):
    """The `cursor` is not one this service handed out."""

    def __init__(self) -> None:
        super().__init__("cursor: not a cursor returned by this API")


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type | tuple[type, ...]) -> list[Any]:
    """The list, checked against `types` (one per position)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidCursor from None
    if not isinstance(values, list) or len(values) != len(types) or not all(
            isinstance(value, kind) and not isinstance(value, bool)
            for value, kind in zip(values, types, strict=True)):
        raise InvalidCursor
    return values
